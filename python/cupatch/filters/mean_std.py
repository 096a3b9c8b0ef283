"""``MeanStdPatchFilter``: CAREamics' mean / standard-deviation background test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import as_float
from .base import compare_dtype, refine, region_batch
from .maps import create_filter_map, plot_filter_map

__all__ = ["MeanStdPatchFilter"]


def _result_dtype(dtype) -> np.dtype:
    """The dtype of ``numpy.mean`` / ``numpy.std`` of an array of ``dtype``."""
    return np.mean(np.zeros(1, dtype=dtype)).dtype


class MeanStdPatchFilter:
    """Filter out regions whose mean (or standard deviation) is below a threshold.

    Parameters
    ----------
    mean_threshold : float
        ``>= 0``. A region whose mean is below it is background.
    std_threshold : float, optional
        ``>= 0``. When given, a region whose (population) standard deviation is below it is
        background too.

    Notes
    -----
    Same arguments, checks and rule as CAREamics' ``MeanStdPatchFilter``. For a C-contiguous
    NumPy batch the means and standard deviations are computed exactly as NumPy computes
    them for one region. On the GPU (and for strided batches) they are computed in float64
    with a bound on their distance to NumPy's value; the few regions within that bound of a
    threshold are decided on the host by :meth:`filter_out`.
    """

    def __init__(self, mean_threshold: float, std_threshold: float | None = None) -> None:
        self.mean_threshold = as_float(mean_threshold, "mean_threshold", low=0.0)
        self.std_threshold = None if std_threshold is None else as_float(std_threshold, "std_threshold", low=0.0)

    def __repr__(self) -> str:
        return f"MeanStdPatchFilter(mean_threshold={self.mean_threshold!r}, std_threshold={self.std_threshold!r})"

    def filter_out(self, patch: np.ndarray) -> bool:
        """True when ``patch`` is background (CAREamics' rule on one region)."""
        patch = np.asarray(patch)
        patch_mean = np.mean(patch)
        patch_std = np.std(patch)
        return bool(
            (patch_mean < self.mean_threshold).item()
            or (self.std_threshold is not None and (patch_std < self.std_threshold).item())
        )

    def _decide(self, mean, std, xp):
        ct = compare_dtype(mean.dtype, self.mean_threshold)
        out = mean.astype(ct, copy=False) < ct.type(self.mean_threshold)
        if self.std_threshold is not None:
            ct = compare_dtype(std.dtype, self.std_threshold)
            out |= std.astype(ct, copy=False) < ct.type(self.std_threshold)
        return out

    def filter_out_batch(self, regions: Any):
        """Decisions for a ``(B, 1, *spatial)`` batch (NumPy or CuPy; bool array of length B on
        the same module), equal to :meth:`filter_out` of every region."""
        xp, x = region_batch(regions)
        b = int(x.shape[0])
        if b == 0:
            return xp.zeros(0, dtype=bool)
        if xp is np and x.flags.c_contiguous:
            # row reductions of a C-contiguous batch sum in NumPy's order for one region
            rows = x.reshape(b, -1)
            with np.errstate(all="ignore"):
                return self._decide(np.mean(rows, axis=1), np.std(rows, axis=1), np)
        # GPU, or strided regions (NumPy sums a strided region in another order)
        return self.bounded_decisions(x, xp)

    def bounded_decisions(self, x, xp):
        """Decisions from float64 statistics and an error bound, ties re-decided exactly.

        The bound covers NumPy's pairwise float summation (error below
        ``(runs + 2 log2 run + 18) eps`` times the sum of magnitudes, one run for a contiguous
        region, one per innermost row for a strided one), the rounding of the deviations
        and of the threshold, and overflow of the sums; regions within it of a threshold, or
        whose sums could overflow, go to :meth:`filter_out`. Used on the GPU; it works on any
        module (the tests run it on NumPy too).
        """
        b = int(x.shape[0])
        rows = x.reshape(b, -1)
        n = rows.shape[1]
        res = _result_dtype(x.dtype)
        eps, big = float(np.finfo(res).eps), float(np.finfo(res).max)
        # NumPy sums a contiguous region pairwise in one loop; a strided one pairwise per
        # innermost run and those runs one after the other
        region = x[0]
        inner = n if region.flags.c_contiguous else (int(x.shape[-1]) if region.strides[-1] == region.itemsize else 1)
        gamma = (n // inner + 2.0 * np.log2(max(inner, 2)) + 18.0) * eps
        r64 = rows.astype(np.float64)
        mean = r64.mean(axis=1)
        std = r64.std(axis=1)
        mag = xp.abs(r64)
        mean_abs = mag.mean(axis=1)
        max_abs = mag.max(axis=1)
        slack = 1e-9 * mean_abs + 1e-300  # float64 statistics and division rounding
        d_mean = gamma * mean_abs + slack
        uncertain = xp.abs(mean - self.mean_threshold) <= d_mean + eps * self.mean_threshold
        if self.std_threshold is not None:
            d_std = (gamma + 4 * eps) * std + 2 * d_mean + slack
            uncertain |= xp.abs(std - self.std_threshold) <= d_std + eps * self.std_threshold
        with np.errstate(over="ignore"):
            uncertain |= (n * max_abs >= big / 4) | (4.0 * n * max_abs * max_abs >= big / 4)
        uncertain |= ~xp.isfinite(mean) | ~xp.isfinite(std)
        return refine(self._decide(mean, std, xp), uncertain, x, self.filter_out, xp)

    # -- threshold exploration (CAREamics' static helpers) ------------------------------
    @staticmethod
    def filter_map(image: np.ndarray, patch_size: Sequence[int]) -> np.ndarray:
        """Stacked per-pixel mean and standard-deviation maps (``(2, *image.shape)``): every
        pixel gets the largest value of the ``2**ndim`` stratified regions covering it."""
        means = create_filter_map(image, lambda r: np.mean(r.reshape(len(r), -1), axis=1), patch_size, "greater")
        stds = create_filter_map(image, lambda r: np.std(r.reshape(len(r), -1), axis=1), patch_size, "greater")
        return np.stack([means, stds])

    @staticmethod
    def apply_filter(filter_map: np.ndarray, mean_threshold: float, std_threshold: float | None = None) -> np.ndarray:
        """True where the pixels are kept for training (both maps above their thresholds)."""
        filter_map = np.asarray(filter_map)
        if std_threshold is not None:
            return (filter_map[0, ...] > mean_threshold) & (filter_map[1, ...] > std_threshold)
        return filter_map[0, ...] > mean_threshold

    @staticmethod
    def plot_filter_map(image: np.ndarray, filter_map: np.ndarray, z_idx: int | None = None):
        """Both maps over the image, side by side (matplotlib figure)."""
        return plot_filter_map(
            image, filter_map, z_idx, title="Mean-Std Filter Map", label=("mean_threshold", "std_threshold"),
            panel_titles=("Mean Filter Map", "Standard-Deviation Filter Map"),
        )
