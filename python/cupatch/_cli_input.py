"""The input of ``cupatch predict``: the built-in sample or a file, opened as an ImageStack.

Axes come from ``--axes``, else from the file's own metadata (OME-Zarr, OME/ImageJ TIFF,
Zarr ``dimension_names``: :func:`cupatch.stacks.source_axes`), else default to YX.
``--level`` picks an OME-Zarr resolution level.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from ._sample import sample_image
from .stacks import as_stack, source_axes

__all__ = ["open_input"]


def _raised_in(exc: BaseException, module_file: str) -> bool:
    """True when the innermost frame of ``exc`` is in ``cupatch/<module_file>``."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and Path(frames[-1].filename).as_posix().endswith(f"cupatch/{module_file}")


def _fmt_shape(shape) -> str:
    return "x".join(str(int(s)) for s in shape)


def open_input(path: str | None, axes: str | None, level: int | None = None):
    """``(stack, description)`` of the command's INPUT (None: the built-in sample)."""
    if path is None:
        if (axes or "YX").upper() != "YX":
            raise ValueError(f"the built-in sample image is 2-D (axes 'YX'); --axes {axes!r} does not fit it")
        if level is not None:
            raise ValueError("--level applies to OME-Zarr inputs; the built-in sample has one level")
        data, what, used = sample_image(), "built-in sample image (synthetic fluorescence, deterministic)", "YX"
    else:
        if not Path(path).exists() and "://" not in path:
            raise FileNotFoundError(f"INPUT {path!r} does not exist")
        data, what = path, path
        used = axes or source_axes(path)  # the file's own axes metadata
    defaulted = used is None
    try:
        stack = as_stack(data, used or "YX", level=level)
    except ValueError as exc:
        # Only a mismatch between the default axes and the data's dimensions is helped by
        # --axes; an unreadable or unsupported file is not.
        if defaulted and _raised_in(exc, "stacks/axes.py"):
            raise ValueError(
                f"{exc}: INPUT has no axes metadata and its axes default to YX; give them with --axes, one letter per "
                f"dimension from STCZYX (e.g. --axes ZYX, SYX or YXC)"
            ) from exc
        raise
    source = "" if path is None or axes else (", from the file's metadata" if not defaulted else ", the default")
    what += f" (axes {stack.original_axes}{source}, shape {_fmt_shape(stack.original_data_shape)}, {stack.dtype})"
    return stack, what
