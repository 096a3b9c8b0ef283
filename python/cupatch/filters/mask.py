"""``MaskPatchFilter``: CAREamics' mask-coverage background test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import as_probability
from .base import region_batch
from .maps import ThresholdMapMixin, create_filter_map

__all__ = ["MaskPatchFilter"]


def _coverage(rows, xp):
    return xp.count_nonzero(rows, axis=1) / rows.shape[1]


class MaskPatchFilter(ThresholdMapMixin):
    """Filter out regions of a mask whose fraction of non-zero pixels is below ``coverage``.

    Parameters
    ----------
    coverage : float
        In ``[0, 1]``.

    Notes
    -----
    Same argument, check and rule as CAREamics' ``MaskPatchFilter``. The regions are
    regions of the *mask* (``filter_background(strategy, masks, MaskPatchFilter(...))``).
    Counts and one division: the batch is exact on every backend.
    """

    _map_title = "Mask Filter Map"
    _map_label = "coverage"

    def __init__(self, coverage: float) -> None:
        self.coverage = as_probability(coverage, "coverage")

    def __repr__(self) -> str:
        return f"MaskPatchFilter(coverage={self.coverage!r})"

    def filter_out(self, patch: np.ndarray) -> bool:
        """True when the mask region ``patch`` is background (CAREamics' rule)."""
        patch = np.asarray(patch)
        return bool(np.count_nonzero(patch) / patch.size < self.coverage)

    def filter_out_batch(self, regions: Any):
        """Decisions for a ``(B, 1, *spatial)`` batch of mask regions (NumPy or CuPy; bool
        array of length B on the same module)."""
        xp, x = region_batch(regions)
        b = int(x.shape[0])
        if b == 0:
            return xp.zeros(0, dtype=bool)
        return _coverage(x.reshape(b, -1), xp) < self.coverage

    # -- threshold exploration (CAREamics' static helpers) ------------------------------
    @staticmethod
    def filter_map(image: np.ndarray, patch_size: Sequence[int]) -> np.ndarray:
        """Per-pixel map of the largest mask coverage of the regions covering the pixel."""
        return create_filter_map(image, lambda r: _coverage(r.reshape(len(r), -1), np), patch_size, "greater")

