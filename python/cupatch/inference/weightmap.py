"""The blend weight-sum map of a tiling, known from its geometry alone.

A tiling's tiles are every combination of its per-axis tile positions, and blend windows
are separable, so the sum of all tiles' windows at a voxel is the product of one 1-D sum
per axis. predict_tiled therefore stitches blended tiles without accumulating weights (one
write stream per voxel instead of two) and divides each finished region once by this map,
built per geometry in O(sum of the axis lengths).
"""

from __future__ import annotations

import math

import numpy as np

from .. import _core
from ..patching.tiled import AXIS_COLUMNS

__all__ = ["WeightMap"]

_COORDS = AXIS_COLUMNS.index("coords")


class WeightMap:
    """Per-axis window sums of a :class:`~cupatch.inference.plan.Tiling`.

    Parameters
    ----------
    tiling : Tiling
        The image's tiles (all of them must be stitched: no tile skipping).
    table : float32 array (ndim, 4, T)
        The blend window table (:func:`cupatch.window_table`), host or device.
    xp : module
        ``numpy`` or ``cupy``: where the map lives.
    """

    def __init__(self, tiling, table, xp):
        table = table.get() if hasattr(table, "get") else np.asarray(table)
        sums = []
        for d, (axis, n, size) in enumerate(zip(tiling.axis_tiles, tiling.spatial, tiling.tile)):
            s = np.zeros(n, dtype=np.float64)
            for c in np.asarray(axis)[:, _COORDS].tolist():
                lo, hi = max(c, 0), min(c + size, n)
                flag = int(c <= 0) + 2 * int(c + size >= n)  # border flags as in the blend kernel
                s[lo:hi] += table[d, flag, lo - c : hi - c]
            s[s == 0] = 1.0  # no tile there: the sums are 0 and stay 0
            sums.append(s.astype(np.float32))
        # The axes after the first, multiplied once: (Y, X) for 3-D, (X,) for 2-D.
        rest = sums[1] if len(sums) == 2 else np.multiply.outer(sums[1], sums[2])
        self.xp = xp
        self.first = xp.asarray(sums[0])
        self.rest = xp.asarray(rest)
        # Rows divided per step: a cache-sized map block on the CPU, large ones on the GPU.
        per_row = math.prod(rest.shape)
        self.step = max(1, (1 << (16 if xp is np else 24)) // per_row)

    def divide(self, values, lo: int = 0) -> None:
        """Divide ``values`` (``(..., rows, *rest)``, image rows ``[lo, lo + rows)`` along the
        first spatial axis) by the weight sums, in place."""
        nd = self.rest.ndim + 1
        rows = values.shape[-nd]
        if self.xp is np and values.dtype == np.float32:
            blocks = _row_blocks(values, rows, self.rest.size)
            if blocks is not None:  # the native kernel: the same float32 maths, on every core
                _core.divide_by_weight_map_cpu(blocks, self.first[lo : lo + rows], self.rest.reshape(-1))
                return
        tail = (slice(None),) * (nd - 1)
        for r0 in range(0, rows, self.step):
            r1 = min(rows, r0 + self.step)
            w = self.first[lo + r0 : lo + r1].reshape((r1 - r0,) + (1,) * (nd - 1)) * self.rest
            block = values[(Ellipsis, slice(r0, r1)) + tail]
            block /= w


def _row_blocks(values: np.ndarray, rows: int, row_len: int) -> np.ndarray | None:
    """``values`` (``(..., rows, *rest)``) as a ``(blocks, rows, row_len)`` view whose rows
    are contiguous, or None when that takes a copy (then NumPy divides in place)."""
    if values.size == 0:
        return None
    try:
        blocks = np.reshape(values, (-1, rows, row_len), copy=False)
    except ValueError:
        return None
    except TypeError:  # NumPy < 2.1 has no copy=: only a C-ordered array surely reshapes to a view
        if not values.flags.c_contiguous:
            return None
        blocks = values.reshape(-1, rows, row_len)
    if row_len > 1 and blocks.strides[2] != blocks.itemsize:
        return None
    return blocks
