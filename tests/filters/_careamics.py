"""CAREamics' own filter, background-filtering and validation-split modules, where importable.

They come from an installed ``careamics`` or from the unpacked wheel named by
``CAREAMICS_PATH`` (as in ``tests/patching/test_careamics.py``); the package ``__init__``
files that would pull in the rest of CAREamics are replaced by bare namespace modules. The
filters need SciPy, scikit-image and matplotlib; the factories pydantic and tqdm.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path

import pytest

_MODULES = {
    "filters": "careamics.dataset.patch_filter",
    "filter_bg": "careamics.dataset.factory.filter_bg",
    "val_split": "careamics.dataset.factory.val_split",
    "patching": "careamics.dataset.patching",
    "extractor": "careamics.dataset.patch_extractor",
    "loader": "careamics.dataset.image_stack_loader",
    "config": "careamics.config.data.patch_filter",
}


def _stub_packages(root: Path) -> None:
    for name, sub in [
        ("careamics", "careamics"),
        ("careamics.utils", "careamics/utils"),
        ("careamics.config", "careamics/config"),
        ("careamics.config.data", "careamics/config/data"),
        ("careamics.dataset", "careamics/dataset"),
        ("careamics.dataset.factory", "careamics/dataset/factory"),
    ]:
        if name not in sys.modules:
            stub = types.ModuleType(name)
            stub.__path__ = [str(root / sub)]
            sys.modules[name] = stub
    utils = sys.modules["careamics.utils"]
    if not hasattr(utils, "get_logger"):
        utils.get_logger = importlib.import_module("careamics.utils.logging").get_logger


def _load():
    try:
        return {k: importlib.import_module(v) for k, v in _MODULES.items()}, ""
    except Exception:
        pass
    path = os.environ.get("CAREAMICS_PATH")
    if not path or not (Path(path) / "careamics" / "dataset" / "patch_filter").is_dir():
        return None, "CAREamics not importable (install careamics or set CAREAMICS_PATH)"
    try:
        _stub_packages(Path(path))
        return {k: importlib.import_module(v) for k, v in _MODULES.items()}, ""
    except Exception as exc:  # a missing dependency of CAREamics' modules
        return None, f"CAREamics' filter modules do not import: {exc!r}"


CAREAMICS, _REASON = _load()

#: ``pytestmark = needs_careamics`` skips a module with the reason when CAREamics is absent
needs_careamics = pytest.mark.skipif(CAREAMICS is None, reason=_REASON)


def careamics_filter(ours):
    """CAREamics' filter object with the arguments of one of ours."""
    f = CAREAMICS["filters"]
    name = type(ours).__name__
    if name == "MaxPatchFilter":
        return f.MaxPatchFilter(ours.threshold, ours.coverage)
    if name == "MeanStdPatchFilter":
        return f.MeanStdPatchFilter(ours.mean_threshold, ours.std_threshold)
    if name == "ShannonPatchFilter":
        return f.ShannonPatchFilter(ours.threshold)
    return f.MaskPatchFilter(ours.coverage)
