"""``ShannonPatchFilter``: CAREamics' Shannon-entropy background test."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import as_float
from .base import refine, region_batch
from .maps import ThresholdMapMixin, create_filter_map

__all__ = ["ShannonPatchFilter", "batch_entropy"]


def _shannon_entropy():
    try:
        from skimage.measure import shannon_entropy
    except ImportError as exc:  # pragma: no cover - scikit-image is in the filters extra
        raise ImportError("the Shannon filter needs scikit-image: pip install 'cupatch[filters]'") from exc
    return shannon_entropy


def batch_entropy(rows, xp):
    """Entropy in bits of the value histogram of every row of a ``(B, n)`` array.

    Each row is sorted and cut into runs of equal values (NaNs form one run, as in
    ``numpy.unique``); the entropy is ``-sum(p log p) / log 2`` over the run lengths ``p``.
    It differs from ``skimage.measure.shannon_entropy`` only by the summation order (below
    ``(n + 8) * 4 * eps`` relative, see :class:`ShannonPatchFilter`).
    """
    b, n = int(rows.shape[0]), int(rows.shape[1])
    s = xp.sort(rows, axis=1)
    new = xp.ones((b, n), dtype=bool)
    if n > 1:
        differ = s[:, 1:] != s[:, :-1]
        if s.dtype.kind == "f":
            differ &= ~(xp.isnan(s[:, 1:]) & xp.isnan(s[:, :-1]))
        new[:, 1:] = differ
    starts = xp.flatnonzero(new.reshape(-1))
    ends = xp.concatenate([starts[1:], xp.asarray([b * n], dtype=starts.dtype)])
    p = (ends - starts).astype(np.float64) / n
    terms = -p * xp.log(p)
    return xp.bincount(starts // n, weights=terms, minlength=b) / math.log(2)


class ShannonPatchFilter(ThresholdMapMixin):
    """Filter out regions whose Shannon entropy (bits) is below ``threshold``.

    Parameters
    ----------
    threshold : float
        ``>= 0``.

    Notes
    -----
    Same argument, check and rule as CAREamics' ``ShannonPatchFilter``, whose entropy is
    ``skimage.measure.shannon_entropy`` (one histogram bin per distinct value). The batch
    sorts every region (NumPy or CuPy) and sums the histogram in another order, so its
    entropies can differ from scikit-image's in the last bits; regions within
    ``4 (n + 8) eps`` (relative) of the threshold are decided by :meth:`filter_out`.
    """

    _map_title = "Shannon Entropy Filter Map"
    _map_label = "threshold"

    def __init__(self, threshold: float) -> None:
        self.threshold = as_float(threshold, "threshold", low=0.0)

    def __repr__(self) -> str:
        return f"ShannonPatchFilter(threshold={self.threshold!r})"

    def filter_out(self, patch: np.ndarray) -> bool:
        """True when ``patch`` is background (CAREamics' rule on one region)."""
        return bool(_shannon_entropy()(np.asarray(patch)) < self.threshold)

    def filter_out_batch(self, regions: Any):
        """Decisions for a ``(B, 1, *spatial)`` batch (NumPy or CuPy; bool array of length B on
        the same module), equal to :meth:`filter_out` of every region."""
        xp, x = region_batch(regions)
        b = int(x.shape[0])
        if b == 0:
            return xp.zeros(0, dtype=bool)
        rows = x.reshape(b, -1)
        h = batch_entropy(rows, xp)
        tol = 4.0 * (rows.shape[1] + 8) * float(np.finfo(np.float64).eps) * xp.maximum(xp.abs(h), 1.0)
        uncertain = xp.abs(h - self.threshold) <= tol
        return refine(h < self.threshold, uncertain, x, self.filter_out, xp)

    # -- threshold exploration (CAREamics' static helpers) ------------------------------
    @staticmethod
    def filter_map(image: np.ndarray, patch_size: Sequence[int]) -> np.ndarray:
        """Per-pixel map of the largest entropy of the regions covering the pixel."""
        return create_filter_map(image, lambda r: batch_entropy(r.reshape(len(r), -1), np), patch_size, "greater")

