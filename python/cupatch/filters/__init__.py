"""Background patch filters (CAREamics' ``dataset/patch_filter``), batched on NumPy or CuPy.

Each filter has CAREamics' constructor and ``filter_out(patch) -> bool`` rule, plus
``filter_out_batch(regions)`` over a ``(B, 1, *spatial)`` batch that gives the same decisions
from vectorised reductions, and CAREamics' ``filter_map`` / ``apply_filter`` /
``plot_filter_map`` helpers for choosing a threshold. :func:`filter_background` applies a
filter to a :class:`cupatch.StratifiedPatching`.
"""

from __future__ import annotations

from .background import filter_background
from .base import PatchFilter
from .maps import create_filter_map, plot_filter_map
from .mask import MaskPatchFilter
from .max import MaxPatchFilter
from .mean_std import MeanStdPatchFilter
from .shannon import ShannonPatchFilter

__all__ = [
    "MaskPatchFilter",
    "MaxPatchFilter",
    "MeanStdPatchFilter",
    "PatchFilter",
    "ShannonPatchFilter",
    "create_filter_map",
    "filter_background",
    "plot_filter_map",
]
