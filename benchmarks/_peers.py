"""The tools users would pick instead of cupatch for tiled inference, run as they ship.

* MONAI: ``monai.inferers.sliding_window_inference`` (modes ``constant`` and ``gaussian``).
* CAREamics: its prediction path, tiling (``create_pred_dataset`` with ``TiledPatching``)
  → torch ``DataLoader`` → model → ``ImageRegionData.from_model_output`` →
  ``decollate_image_region_data`` → ``stitch_prediction``, as its Lightning
  ``predict_step`` and prediction callbacks run it.

Each loader returns ``(callable, None)`` or ``(None, reason)`` when the peer cannot run.
CAREamics is imported from an installed ``careamics`` or from an unpacked wheel named by
``CAREAMICS_PATH``; its top-level package (and the ``config``, ``models``, ``lightning``
packages) pull in Lightning and torchvision, which the prediction path does not use, so
their ``__init__`` modules are skipped and only the modules the path needs are loaded
(they need pydantic and bioimageio.spec).
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path

import numpy as np

_CAREAMICS_PACKAGES = ("", "config", "models", "models/lvae", "lightning", "lightning/prediction")


def _torch_input(image, device):
    import torch

    x = torch.from_numpy(np.ascontiguousarray(image))[None, None]
    return x.cuda() if device == "gpu" else x


def load_monai():
    """``run(model, image, tile, overlap, batch, mode, device) -> (Y)X float32 NumPy``."""
    try:
        from monai.inferers import sliding_window_inference
    except Exception as exc:  # not installed, or its imports fail
        return None, f"MONAI not importable ({type(exc).__name__}: {exc})"
    import torch

    def run(model, image, tile, overlap, batch, mode, device):
        fractions = [o / t for o, t in zip(overlap, tile)]
        with torch.no_grad():
            out = sliding_window_inference(
                _torch_input(image, device), roi_size=list(tile), sw_batch_size=batch, predictor=model,
                overlap=fractions, mode=mode, progress=False,
            )  # fmt: skip
        return out[0, 0].cpu().numpy()

    return run, None


def _import_careamics():
    try:
        return importlib.import_module("careamics.lightning.prediction.stitch_prediction")
    except Exception:
        pass
    path = os.environ.get("CAREAMICS_PATH")
    root = Path(path) / "careamics" if path else None
    if root is None or not (root / "dataset").is_dir():
        raise ImportError("careamics is not installed and CAREAMICS_PATH names no unpacked careamics package")
    for sub in _CAREAMICS_PACKAGES:  # package shells: their __init__ (Lightning, torchvision) is skipped
        name = "careamics" + ("." + sub.replace("/", ".") if sub else "")
        if name not in sys.modules or not hasattr(sys.modules[name], "__file__"):
            shell = types.ModuleType(name)
            shell.__path__ = [str(root / sub) if sub else str(root)]
            sys.modules[name] = shell
    return importlib.import_module("careamics.lightning.prediction.stitch_prediction")


def load_careamics():
    """``run(model, image, tile, overlap, batch, device) -> (Z)YX float32 NumPy``."""
    try:
        stitch = _import_careamics()
        from careamics.config.data.data_config import DataConfig
        from careamics.dataset.factory.factory import PredData, create_pred_dataset
        from careamics.dataset.image_region_data import ImageRegionData
        from careamics.lightning.prediction.convert_prediction import decollate_image_region_data
    except Exception as exc:
        return None, f"CAREamics prediction path not importable ({type(exc).__name__}: {exc})"
    import torch
    from torch.utils.data import DataLoader
    from torch.utils.data._utils.collate import default_collate

    def run(model, image, tile, overlap, batch, device):
        config = DataConfig(
            mode="predicting", data_type="array", axes="ZYX"[3 - image.ndim :],
            patching={"name": "tiled", "patch_size": list(tile), "overlaps": list(overlap)},
            normalization={"name": "none"}, batch_size=batch,
        )  # fmt: skip
        dataset = create_pred_dataset(config, PredData(pred_data=[image]), loading=None)
        loader = DataLoader(dataset, batch_size=batch, collate_fn=default_collate, shuffle=False)
        tiles = []
        with torch.no_grad():
            for (region, *_) in loader:  # predict_step: model, denormalise, back to NumPy
                x = region.data.cuda() if device == "gpu" else region.data
                pred = dataset.normalization.denormalize(model(x)).cpu().numpy()
                tiles.extend(decollate_image_region_data(ImageRegionData.from_model_output(region, pred)))
        (out,), _ = stitch.stitch_prediction(tiles)
        return out[0, 0]

    return run, None
