"""Batched patch gathering and tile stitching (NumPy on the CPU, CuPy on the GPU).

Every function validates its arguments before any native call, with messages that name the
offending parameter; the native core (``cupatch._core``) re-checks cheaply and its kernels
clip every index, so no input can make them touch memory out of bounds. NumPy inputs run
the threaded C++ kernels and return NumPy arrays; CuPy (or any ``__cuda_array_interface__``
/ CUDA DLPack) inputs run the CUDA kernels on CuPy's current stream, without synchronising,
and return CuPy arrays. Semantics: ``docs/contracts.md``.

:mod:`.sources` describes gather sources once (:class:`SourceTable`), :mod:`.gather` gathers
patches from them, :mod:`.stitch` writes tiles back (crop, blend, :class:`BlendAccumulator`).
"""

from __future__ import annotations

from .._dtypes import OUTPUT_DTYPES, SOURCE_DTYPES
from .._windows import WINDOWS, window_table
from .gather import gather_patches
from .sources import SourceTable
from .stitch import BlendAccumulator, TileStitcher, stitch_tiles

__all__ = [
    "OUTPUT_DTYPES",
    "SOURCE_DTYPES",
    "BlendAccumulator",
    "SourceTable",
    "gather_patches",
    "TileStitcher",
    "stitch_tiles",
    "window_table",
    "WINDOWS",
]
