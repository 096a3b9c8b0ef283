"""Random patching: CAREamics' counts and index mapping, counter-based coordinates.

Difference from CAREamics (deliberate): CAREamics draws fresh coordinates from one
``numpy.random.Generator`` on every call, so the same index gives different patches on
each call and every DataLoader worker, forked with an identical Generator state, draws the
same sequence. Here the coordinates of a patch are a pure function of
``(seed, epoch, index)`` through :func:`cupatch._random.hash4`; the same index gives the same
patch within an epoch, on every backend and in every worker, and :meth:`set_epoch` moves to
a new, independent set of patches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .._layouts import patch_columns
from .._random import Stream, draw_uniform_int, hash4_indices, uniform_int_scalar
from ._base import SeededPatching, new_table
from .specs import PatchSpecs

__all__ = ["FixedRandomPatching", "RandomPatching", "draw_int", "stream_hashes"]


_MASK64 = (1 << 64) - 1


def _splitmix64_int(x: int) -> int:
    """SplitMix64 on a Python int (the scalar twin of :func:`cupatch._random.splitmix64`)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def stream_hashes(seed: int, epoch: int, indices: np.ndarray, streams: Sequence[int]) -> list[np.ndarray]:
    """``hash4(seed, epoch, indices, s)`` for several streams, sharing the common prefix.

    Equal to calling :func:`cupatch._random.hash4` once per stream: batches use its native
    twin (:func:`cupatch._random.hash4_indices`), tiny batches (single specs) Python ints
    with the first three SplitMix64 rounds shared, cheaper than a call per stream.
    """
    if len(indices) <= 16:
        prefix = _splitmix64_int(_splitmix64_int(seed & _MASK64) ^ (epoch & _MASK64))
        rows = [_splitmix64_int(prefix ^ (i & _MASK64)) for i in indices.tolist()]
        return [np.array([_splitmix64_int(r ^ int(s)) for r in rows], dtype=np.uint64) for s in streams]
    return [hash4_indices(seed, epoch, indices, s) for s in streams]  # native, the same bits


def draw_int(h: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``uniform_int(h, n)`` without its argument checks (callers guarantee ``1 <= n <= 2**62``:
    every extent is below 2**60)."""
    return draw_uniform_int(h, n)


def _n_patches_per_sample(spatial: Sequence[int], patch_size: Sequence[int]) -> int:
    """CAREamics' count: the non-overlapping grid count ``prod ceil(N / P)``."""
    return math.prod(-(-n // p) for n, p in zip(spatial, patch_size))


class RandomPatching(SeededPatching):
    """Random patches, about one per grid cell of each sample and epoch.

    Parameters
    ----------
    data_shapes : sequence of sequence of int
        SC(Z)YX shape of every image stack (only S and the spatial sizes are used).
    patch_size : int or sequence of int (one int: that size on every axis)
        Patch size, (Z)YX; one entry per spatial axis.
    seed : int or None, optional
        Seed of the counter-based generator; ``None`` draws fresh entropy once.

    Notes
    -----
    Each sample of stack ``k`` contributes ``prod(ceil(N / P))`` patches; indices are
    numbered stack by stack, sample by sample, so an index fixes ``data_idx`` and
    ``sample_idx`` (as in CAREamics). The top-left corner along an axis of size ``N`` is
    uniform over ``0 .. max(0, N - P)`` (inclusive): ``uniform_int(hash4(seed, epoch, index,
    Stream.COORD + axis), max(0, N - P) + 1)``. When ``N < P`` it is 0 and the gather pads.
    """

    def __init__(self, data_shapes: Sequence[Sequence[int]], patch_size: Sequence[int], seed: int | None = None):
        super().__init__(data_shapes, patch_size, seed)
        spatial = np.array([s[2:] for s in self._data_shapes], dtype=np.int64)
        # number of valid top-left corners per stack and axis
        self._n_corners = np.maximum(0, spatial - np.array(self._patch_size)) + 1
        self._n_corners_list = self._n_corners.tolist()
        self._bins = self._uniform_bins([_n_patches_per_sample(s[2:], self._patch_size) for s in self._data_shapes])

    def _coords_epoch(self) -> int:
        return self._epoch

    def _table(self, indices: np.ndarray) -> np.ndarray:
        data_idx, sample_idx, _ = self._bins.locate(indices)
        columns = patch_columns(self._ndim)
        table = new_table(data_idx, sample_idx, columns)
        coords = table[:, columns["coords"]]
        hashes = stream_hashes(
            self._seed, self._coords_epoch(), indices, [Stream.COORD + a for a in range(self._ndim)]
        )
        for axis, h in enumerate(hashes):
            coords[:, axis] = draw_int(h, self._n_corners[data_idx, axis]).astype(np.int64)
        return table

    def _spec_one(self, index: int) -> PatchSpecs:
        data_idx, sample_idx, _ = self._bins.locate_one(index)
        seed, epoch = self._seed, self._coords_epoch()
        prefix = _splitmix64_int(_splitmix64_int(_splitmix64_int(seed) ^ epoch) ^ index)
        n_corners = self._n_corners_list[data_idx]
        coords = tuple(
            uniform_int_scalar(_splitmix64_int(prefix ^ (Stream.COORD + a)), n_corners[a]) for a in range(self._ndim)
        )
        return {"data_idx": data_idx, "sample_idx": sample_idx, "coords": coords, "patch_size": self._patch_size}


class FixedRandomPatching(RandomPatching):
    """Random patches that never change (validation), same counts as :class:`RandomPatching`.

    The coordinates are those :class:`RandomPatching` would give at epoch 0 for the same
    seed; :meth:`set_epoch` does not change them. Same seed, same specs. Unlike CAREamics
    nothing is pre-generated, so construction is O(number of stacks).
    """

    def _coords_epoch(self) -> int:
        return 0
