"""Index maths shared by the strategies: patch index -> (data_idx, sample_idx, local index).

Every strategy numbers its patches stack by stack, sample by sample (CAREamics' bins):
sample ``g`` (global, over all stacks) owns the contiguous index range
``[sample_start[g], sample_start[g + 1])``. The mapping is a vectorised ``searchsorted``
(CAREamics uses ``np.digitize`` on the same cumulative sums, which is equivalent).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

__all__ = ["SampleBins", "unravel_c_order"]


class SampleBins:
    """Cumulative patch counts per sample and per stack.

    Parameters
    ----------
    patches_per_sample : sequence of array-like of int
        One entry per stack: the number of patches of each of its samples.
    """

    def __init__(self, patches_per_sample: Sequence[Sequence[int] | np.ndarray]):
        counts = [np.asarray(c, dtype=np.int64).reshape(-1) for c in patches_per_sample]
        n_samples = np.array([len(c) for c in counts], dtype=np.int64)
        flat = np.concatenate(counts) if counts else np.zeros(0, np.int64)
        #: data_idx / sample_idx of every global sample
        self.sample_data_idx = np.repeat(np.arange(len(counts), dtype=np.int64), n_samples)
        stack_first_sample = np.concatenate([[0], np.cumsum(n_samples)])
        self.sample_local_idx = np.arange(len(flat), dtype=np.int64) - stack_first_sample[self.sample_data_idx]
        #: first patch index of every global sample (length n_samples + 1)
        self.sample_start = np.concatenate([[0], np.cumsum(flat)]).astype(np.int64)
        #: first patch index of every stack (length n_stacks + 1)
        self.stack_start = self.sample_start[stack_first_sample]
        self.stack_first_sample = stack_first_sample
        self.patches_per_sample = flat

    @property
    def n_patches(self) -> int:
        """Total number of patches."""
        return int(self.sample_start[-1])

    def global_sample(self, indices: np.ndarray) -> np.ndarray:
        """Global sample number of each (validated) patch index."""
        return np.searchsorted(self.sample_start[1:], indices, side="right").astype(np.int64)

    def locate(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Map validated indices to ``(data_idx, sample_idx, index within the sample)``."""
        g = self.global_sample(indices)
        return self.sample_data_idx[g], self.sample_local_idx[g], indices - self.sample_start[g]

    def locate_one(self, index: int) -> tuple[int, int, int]:
        """Scalar :meth:`locate` on Python ints (no NumPy call overhead for single specs)."""
        if not hasattr(self, "_ends"):
            self._ends = self.sample_start[1:].tolist()
            self._starts = self.sample_start.tolist()
            self._data_list = self.sample_data_idx.tolist()
            self._local_list = self.sample_local_idx.tolist()
        g = bisect.bisect_right(self._ends, index)
        return self._data_list[g], self._local_list[g], index - self._starts[g]

    def stack_range(self, data_idx: int) -> range:
        """The contiguous range of patch indices of one stack."""
        return range(int(self.stack_start[data_idx]), int(self.stack_start[data_idx + 1]))


def unravel_c_order(flat: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Vectorised ``np.unravel_index`` with a different grid per row.

    Parameters
    ----------
    flat : (B,) int64
        Flat C-order positions (last axis fastest).
    counts : (B, ndim) int64
        Grid extent of each row.

    Returns
    -------
    (B, ndim) int64
        Multi-index of each row.
    """
    out = np.empty(counts.shape, dtype=np.int64)
    rest = flat.copy()
    for axis in range(counts.shape[1] - 1, -1, -1):
        rest, out[:, axis] = np.divmod(rest, counts[:, axis])
    return out
