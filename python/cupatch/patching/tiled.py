"""Tiled patching for prediction, CAREamics' ``TiledPatching``.

Tiles are never materialised as dicts: each stack stores one small 1-D tiling per axis and
a tile's spec is computed on demand from its index (so 10^6 tiles cost a few kilobytes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .._layouts import TILE_AXIS_FIELDS, tile_columns
from ._base import OverlapPatching, new_table
from ._bins import unravel_c_order
from .specs import TileSpecs

__all__ = ["AXIS_COLUMNS", "TiledPatching", "tile_axis"]

#: columns of an axis tiling returned by :func:`tile_axis` / :meth:`TiledPatching.axis_tiles`:
#: the per-axis fields of a tile table, in the same order
AXIS_COLUMNS = tuple(TILE_AXIS_FIELDS)


def tile_axis(size: int, tile: int, overlap: int) -> np.ndarray:
    """Tile one axis the CAREamics way (vectorised).

    Parameters
    ----------
    size : int
        Axis length ``N``.
    tile : int
        Tile length ``P``.
    overlap : int
        Overlap ``O`` between neighbouring read windows (``0 <= O < P``).

    Returns
    -------
    numpy.ndarray
        int64 ``(n_tiles, 4)`` with columns ``coords, crop_coords, crop_size,
        stitch_coords``; ``n_tiles = max(1, ceil((N - O) / (P - O)))``.

    Notes
    -----
    Candidate starts are ``range(0, max(1, N - O), P - O)``. The first tile reads
    ``[0, P)`` and keeps ``[0, P - ceil(O/2))`` (all of ``[0, N)`` when ``N <= P``); an
    interior tile at ``i`` keeps ``[i + O//2, i + O//2 + P - O)``; the last tile is
    right-aligned at ``N - P`` and keeps everything from the previous tile's end to ``N``.
    The kept regions partition ``[0, N)`` exactly.

    For even ``O`` this is exactly CAREamics' ``_compute_1d_coords``. For odd ``O``
    CAREamics' first tile keeps ``P - O//2`` pixels, one more than the gap to the second
    tile's kept region, so the first junction overlaps by one pixel; here the first tile
    keeps ``P - ceil(O/2)`` so that the partition stays exact (the only difference).
    """
    step = tile - overlap
    starts = np.arange(0, max(1, size - overlap), step, dtype=np.int64)
    n = len(starts)
    out = np.empty((n, 4), dtype=np.int64)
    half = overlap // 2
    out[:, 0] = starts
    out[:, 1] = half
    out[:, 2] = tile - overlap
    out[:, 3] = starts + half
    out[0] = (0, 0, size if size <= tile else tile - (overlap + 1) // 2, 0)
    if n >= 2:  # the last candidate always ends at or past N (next start >= N - O)
        prev_end = out[n - 2, 3] + out[n - 2, 2]
        coord = size - tile  # > 0 here because N > P whenever there are two tiles
        out[n - 1] = (coord, prev_end - coord, size - prev_end, prev_end)
    return out


class TiledPatching(OverlapPatching):
    """Overlapping tiles covering every sample, with the crop/stitch data to reassemble it.

    Parameters
    ----------
    data_shapes : sequence of sequence of int
        SC(Z)YX shape of every image stack.
    patch_size : int or sequence of int (one int: that size on every axis)
        Tile size, (Z)YX.
    overlaps : int or sequence of int
        Overlap between neighbouring tiles per axis, ``0 <= overlap < tile``. Even
        overlaps give CAREamics' tiles exactly; odd overlaps are accepted (CAREamics'
        configuration rejects them) and still partition the image exactly, see
        :func:`tile_axis`.

    Notes
    -----
    Order: stack by stack, sample by sample, then the C-order product of the per-axis
    tilings (X fastest). ``spec_table`` returns the tile table ``(B, 2 + 4*ndim)``:
    ``data_idx, sample_idx, coords, crop_coords, crop_size, stitch_coords``.
    """

    _overlaps_required = True

    def __init__(self, data_shapes: Sequence[Sequence[int]], patch_size: Sequence[int], overlaps: Sequence[int]):
        super().__init__(data_shapes, patch_size, overlaps)
        self._axis_tiles = [
            [tile_axis(n, p, o) for n, p, o in zip(s[2:], self._patch_size, self._overlaps)]
            for s in self._data_shapes
        ]
        self._counts = np.array([[len(t) for t in axes] for axes in self._axis_tiles], dtype=np.int64)
        self._flat = [np.concatenate([axes[a] for axes in self._axis_tiles]) for a in range(self._ndim)]
        self._offsets = np.zeros_like(self._counts)
        self._offsets[1:] = np.cumsum(self._counts, axis=0)[:-1]
        self._counts_list = self._counts.tolist()
        self._bins = self._uniform_bins([math.prod(counts) for counts in self._counts_list])  # Python ints: no wrap
        self._tiles_per_sample = self._counts.prod(axis=1)
        self._tiles_list = [[t.tolist() for t in axes] for axes in self._axis_tiles]
        self._totals = [int(s[0] * n) for s, n in zip(self._data_shapes, self._tiles_per_sample)]

    def axis_tiles(self, data_idx: int) -> list[np.ndarray]:
        """The 1-D tilings of one stack.

        Returns
        -------
        list of numpy.ndarray
            One int64 ``(n_axis_tiles, 4)`` array per spatial axis with columns
            ``coords, crop_coords, crop_size, stitch_coords``; the tiles of a sample are
            the C-order product of these (X fastest). Copies, safe to modify.
        """
        k = self._check_data_idx(data_idx)
        return [t.copy() for t in self._axis_tiles[k]]

    def total_tiles(self, data_idx: int) -> int:
        """Number of tiles of one stack, all samples included (CAREamics' ``total_tiles``)."""
        k = self._check_data_idx(data_idx)
        return int(self._data_shapes[k][0] * self._tiles_per_sample[k])

    def _spec_one(self, index: int) -> TileSpecs:
        data_idx, sample_idx, local = self._bins.locate_one(index)
        rows = []
        for a in range(self._ndim - 1, -1, -1):
            local, m = divmod(local, self._counts_list[data_idx][a])
            rows.append(self._tiles_list[data_idx][a][m])
        rows.reverse()
        fields = {name: tuple(r[c] for r in rows) for c, name in enumerate(AXIS_COLUMNS)}
        return self._spec(data_idx, sample_idx, fields)

    def _spec(self, data_idx: int, sample_idx: int, fields: dict) -> TileSpecs:
        """A TileSpecs dict in CAREamics' key order, from the per-axis fields."""
        return {
            "data_idx": data_idx,
            "sample_idx": sample_idx,
            "coords": fields["coords"],
            "patch_size": self._patch_size,
            "crop_coords": fields["crop_coords"],
            "crop_size": fields["crop_size"],
            "stitch_coords": fields["stitch_coords"],
            "total_tiles": self._totals[data_idx],
        }

    def _table(self, indices: np.ndarray) -> np.ndarray:
        data_idx, sample_idx, local = self._bins.locate(indices)
        multi = unravel_c_order(local, self._counts[data_idx])
        columns = tile_columns(self._ndim)
        table = new_table(data_idx, sample_idx, columns)
        starts = [columns[name].start for name in AXIS_COLUMNS]
        for a in range(self._ndim):
            rows = self._flat[a][self._offsets[data_idx, a] + multi[:, a]]
            table[:, [s + a for s in starts]] = rows
        return table

    def _specs_from_table(self, table: np.ndarray) -> list[TileSpecs]:
        columns = tile_columns(self._ndim)
        d, s = columns["data_idx"].start, columns["sample_idx"].start
        return [
            self._spec(r[d], r[s], {name: tuple(r[columns[name]]) for name in AXIS_COLUMNS}) for r in table.tolist()
        ]
