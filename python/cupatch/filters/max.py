"""``MaxPatchFilter``: CAREamics' maximum-filter background test (CSBDeep-inspired)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import as_float, as_probability
from .base import compare_dtype, region_batch, require_scipy_ndimage
from .maps import ThresholdMapMixin, create_filter_map

__all__ = ["MaxPatchFilter"]


def _window(shape: Sequence[int]) -> tuple[int, ...]:
    """CAREamics' max-filter window: half the region per axis (1 for axes of length 1)."""
    return tuple(p // 2 if p > 1 else 1 for p in shape)


class MaxPatchFilter(ThresholdMapMixin):
    """Filter out regions whose maximum filter rarely exceeds ``threshold``.

    Parameters
    ----------
    threshold : float
        A region whose maximum is below ``threshold`` is background. Otherwise the region is
        max-filtered with a window of half its size per axis (zeros beyond the border) and
        it is background when the fraction of filtered values above ``threshold`` is below
        ``coverage``.
    coverage : float, default 0.25
        In ``[0, 1]``.

    Notes
    -----
    Same arguments and rule as CAREamics' ``MaxPatchFilter``; the threshold and coverage
    are checked (finite, and ``coverage`` in ``[0, 1]``, as CAREamics' configuration does).
    """

    _map_title = "Maximum Filter Map"
    _map_label = "threshold"

    def __init__(self, threshold: float, coverage: float = 0.25) -> None:
        self.threshold = as_float(threshold, "threshold")
        self.coverage = as_probability(coverage, "coverage")

    def __repr__(self) -> str:
        return f"MaxPatchFilter(threshold={self.threshold!r}, coverage={self.coverage!r})"

    def filter_out(self, patch: np.ndarray) -> bool:
        """True when ``patch`` is background (CAREamics' rule on one region)."""
        ndimage = require_scipy_ndimage(np)
        patch = np.asarray(patch)
        if np.max(patch) < self.threshold:
            return True
        filtered = ndimage.maximum_filter(patch, _window(patch.shape), mode="constant")
        return bool((np.mean(filtered > self.threshold) < self.coverage).item())

    def filter_out_batch(self, regions: Any):
        """Decisions for a ``(B, 1, *spatial)`` batch (NumPy or CuPy; bool array of length B on
        the same module). Exact: maxima and counts involve no rounding.

        Only the regions that neither test below decides are max-filtered: a region whose
        maximum is below ``threshold`` is background, and one whose own fraction of values
        above ``threshold`` reaches ``coverage`` is not (the filter never lowers a value:
        every window holds its centre). The others are filtered as a mask: a filtered value
        is above ``threshold`` exactly when its window holds a value above it.
        """
        xp, x = region_batch(regions)
        b = int(x.shape[0])
        if b == 0:
            return xp.zeros(0, dtype=bool)
        ct = compare_dtype(x.dtype, self.threshold)
        t = ct.type(self.threshold)
        x = x.astype(ct, copy=False)
        rows = x.reshape(b, -1)
        n = rows.shape[1]
        low = rows.max(axis=1) < t
        hot = x > t
        dense = xp.count_nonzero(hot.reshape(b, -1), axis=1) / n >= self.coverage
        out = low.copy()
        todo = xp.flatnonzero(~low & ~dense)
        if int(todo.size):  # one synchronisation on the GPU
            # max(window) > t exactly when some value in the window is > t (the zeros beyond
            # the border too when t < 0): a box dilation of the uint8 mask, a quarter of the
            # float traffic and no rounding
            ndimage = require_scipy_ndimage(xp)
            grown = ndimage.maximum_filter(
                hot[todo].view(np.uint8), (1, *_window(x.shape[1:])), mode="constant", cval=int(0 > t)
            )
            above = xp.count_nonzero(grown.reshape(len(todo), -1), axis=1)
            out[todo] = above / n < self.coverage
        return out

    # -- threshold exploration (CAREamics' static helpers) ------------------------------
    @staticmethod
    def filter_map(image: np.ndarray, patch_size: Sequence[int], coverage: float | None = None) -> np.ndarray:
        """Per-pixel map of the largest threshold that keeps the regions covering the pixel.

        For every stratified region (2P at g·P) the value is the largest ``v`` such that at
        least ``coverage`` of the region's max-filtered pixels (window P, reflected borders)
        are ``>= v``, as CAREamics computes it; a pixel gets the largest value of the
        ``2**ndim`` regions covering it. ``coverage`` defaults to ``0.5**ndim``.
        """
        ndim = len(patch_size)
        cov = 0.5**ndim if coverage is None else as_probability(coverage, "coverage")
        size = tuple(int(p) for p in patch_size)

        def values(batch: np.ndarray) -> np.ndarray:
            ndimage = require_scipy_ndimage(np)
            b = len(batch)
            filtered = ndimage.maximum_filter(batch, (1, 1, *size)).reshape(b, -1)
            total = filtered.shape[1]
            # smallest k with k / total >= coverage (CAREamics' cumulative count test)
            k = max(1, int(np.searchsorted(np.arange(1, total + 1) / total >= cov, True)) + 1)
            k = min(k, total)
            return -np.partition(-filtered, k - 1, axis=1)[:, k - 1].astype(np.float64)

        return create_filter_map(image, values, patch_size, direction="greater")

