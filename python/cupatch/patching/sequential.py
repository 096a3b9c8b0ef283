"""Sequential (sliding-window) patching, CAREamics' ``SequentialPatching``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .._layouts import patch_columns
from ._base import OverlapPatching, new_table
from ._bins import unravel_c_order
from .specs import PatchSpecs

__all__ = ["SequentialPatching", "sequential_starts"]


def sequential_starts(size: int, patch: int, overlap: int) -> np.ndarray:
    """Window starts along one axis: ``0, step, 2*step, ...`` while the window fits, plus
    a final right-aligned window at ``size - patch`` if the last one stops short."""
    step = patch - overlap
    starts = np.arange(0, size - patch + 1, step, dtype=np.int64)
    if starts[-1] + patch < size:
        starts = np.append(starts, size - patch)
    return starts


class SequentialPatching(OverlapPatching):
    """Regular grid of (possibly overlapping) windows covering every pixel of each sample.

    Parameters
    ----------
    data_shapes : sequence of sequence of int
        SC(Z)YX shape of every image stack.
    patch_size : int or sequence of int (one int: that size on every axis)
        Window size, (Z)YX.
    overlaps : int, sequence of int or None, optional
        Overlap between neighbouring windows per axis (``0 <= overlap < patch``; odd
        values are allowed, there is no stitching). ``None`` means no overlap.

    Raises
    ------
    ValueError
        If a stack is smaller than the patch along some axis (CAREamics raises an
        ``IndexError`` from inside its constructor in that case).

    Notes
    -----
    Per axis the starts are ``0, P - O, 2(P - O), ...`` while ``start <= N - P``, plus a
    last window at ``N - P`` if needed. Windows are the C-order product (X fastest),
    repeated for each sample: exactly CAREamics' specs in CAREamics' order.
    """

    def __init__(
        self,
        data_shapes: Sequence[Sequence[int]],
        patch_size: Sequence[int],
        overlaps: Sequence[int] | None = None,
    ):
        super().__init__(data_shapes, patch_size, overlaps)
        for k, shape in enumerate(self._data_shapes):
            for a, (n, p) in enumerate(zip(shape[2:], self._patch_size)):
                if n < p:
                    raise ValueError(
                        f"patch_size[{a}] ({p}) is larger than axis {a} of data_shapes[{k}] ({shape}); "
                        "sequential patching needs images at least as large as the patch"
                    )
        per_axis = [
            [sequential_starts(n, p, o) for n, p, o in zip(s[2:], self._patch_size, self._overlaps)]
            for s in self._data_shapes
        ]
        self._counts = np.array([[len(a) for a in axes] for axes in per_axis], dtype=np.int64)
        # per axis: all stacks' starts concatenated, and where each stack's block begins
        self._starts = [np.concatenate([axes[a] for axes in per_axis]) for a in range(self._ndim)]
        self._offsets = np.zeros_like(self._counts)
        self._offsets[1:] = np.cumsum(self._counts, axis=0)[:-1]
        self._counts_list = self._counts.tolist()
        self._starts_list = [[a.tolist() for a in axes] for axes in per_axis]
        self._bins = self._uniform_bins([math.prod(counts) for counts in self._counts_list])  # Python ints: no wrap

    def _spec_one(self, index: int) -> PatchSpecs:
        data_idx, sample_idx, local = self._bins.locate_one(index)
        coords = []
        for a in range(self._ndim - 1, -1, -1):
            local, m = divmod(local, self._counts_list[data_idx][a])
            coords.append(self._starts_list[data_idx][a][m])
        return {"data_idx": data_idx, "sample_idx": sample_idx, "coords": tuple(coords[::-1]), "patch_size": self._patch_size}

    def _table(self, indices: np.ndarray) -> np.ndarray:
        data_idx, sample_idx, local = self._bins.locate(indices)
        multi = unravel_c_order(local, self._counts[data_idx])
        columns = patch_columns(self._ndim)
        table = new_table(data_idx, sample_idx, columns)
        coords = table[:, columns["coords"]]
        for a in range(self._ndim):
            coords[:, a] = self._starts[a][self._offsets[data_idx, a] + multi[:, a]]
        return table
