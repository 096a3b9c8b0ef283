"""Task planning: which output region each task owns and which tiles it runs.

A distributed run splits every sample of every image into *regions*: boxes of whole output
Zarr chunks (the last box of an axis ends at the image border). A task owns one region: it
writes exactly that region's chunks, so no two tasks ever write the same chunk, and it
runs every tile of the global tiling (the one ``predict_tiled`` uses) that contributes to
the region:

* crop mode: the tiles whose kept (cropped) part meets the region;
* blend modes: the tiles whose read window meets the region, so that every voxel of the
  region is finished from *all* the tiles covering it, inside the task.

Tiles straddling a region border are therefore run by both neighbours (halo tiles,
recomputed rather than exchanged); the share recomputed is about one tile per border per
axis. Regions are chosen (:func:`choose_region_chunks`) as large as the memory cap allows,
split first along the axis with the most tiles per region, where one more border costs the
smallest share of recomputation. Nothing here imports Dask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..patching.tiled import AXIS_COLUMNS

__all__ = ["REGION_BYTES", "RegionGrid", "choose_region_chunks", "region_tiles"]

#: Default cap on the float32 working buffers of one task's output region (values, plus
#: weights when blending); the input window and the batches come on top.
REGION_BYTES = 256 * 2**20

_COORDS, _CROP_SIZE, _STITCH = (AXIS_COLUMNS.index(c) for c in ("coords", "crop_size", "stitch_coords"))


@dataclass(frozen=True)
class RegionGrid:
    """The regions of one image: ``region_chunks`` output chunks per region along each axis.

    ``spatial`` and ``chunks`` are (Z)YX; a sample's regions are numbered in C order, and
    the task of region ``r`` of sample ``s`` is ``s * n_regions + r``.
    """

    spatial: tuple[int, ...]
    chunks: tuple[int, ...]
    region_chunks: tuple[int, ...]
    n_samples: int

    @property
    def region_shape(self) -> tuple[int, ...]:
        return tuple(min(k * c, n) for k, c, n in zip(self.region_chunks, self.chunks, self.spatial))

    @property
    def counts(self) -> tuple[int, ...]:
        """Regions per axis."""
        return tuple(math.ceil(n / r) for n, r in zip(self.spatial, self.region_shape))

    @property
    def n_regions(self) -> int:
        """Regions per sample."""
        return math.prod(self.counts)

    @property
    def n_tasks(self) -> int:
        return self.n_samples * self.n_regions

    def task(self, task_id: int) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
        """``(sample, lo, hi)`` of a task: its sample and its region ``[lo, hi)``, (Z)YX."""
        sample, region = divmod(int(task_id), self.n_regions)
        position = np.unravel_index(region, self.counts)
        size = self.region_shape
        lo = tuple(int(p) * s for p, s in zip(position, size))
        hi = tuple(min(a + s, n) for a, s, n in zip(lo, size, self.spatial))
        return sample, lo, hi


def _axis_range(tiles: np.ndarray, lo: int, hi: int, tile: int, n: int, mode: str) -> tuple[int, int]:
    """``[first, last)`` of the tiles of one axis that contribute to ``[lo, hi)``."""
    if mode == "crop":
        start, stop = tiles[:, _STITCH], tiles[:, _STITCH] + tiles[:, _CROP_SIZE]
    else:  # blend: the read window, clipped to the image (as the stitch clips it)
        start, stop = np.maximum(tiles[:, _COORDS], 0), np.minimum(tiles[:, _COORDS] + tile, n)
    hit = np.flatnonzero((start < hi) & (stop > lo))
    return int(hit[0]), int(hit[-1]) + 1


def region_tiles(
    axis_tiles: list[np.ndarray], tile: tuple[int, ...], spatial: tuple[int, ...], lo, hi, mode: str
) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...]]:
    """The tiles a region needs, and the input window they read.

    Returns ``(local, window_lo, window_hi)``: the tiles' indices within one sample (C
    order, ascending, as in the global tiling) and the box ``[window_lo, window_hi)`` of the
    image, clipped to it, that their read windows cover.
    """
    ranges = [_axis_range(t, a, b, p, n, mode) for t, a, b, p, n in zip(axis_tiles, lo, hi, tile, spatial)]
    counts = [len(t) for t in axis_tiles]
    grids = np.meshgrid(*[np.arange(a, b, dtype=np.int64) for a, b in ranges], indexing="ij")
    local = np.ravel_multi_index([g.ravel() for g in grids], counts).astype(np.int64)
    window_lo = tuple(max(int(t[a, _COORDS]), 0) for t, (a, _) in zip(axis_tiles, ranges))
    window_hi = tuple(min(int(t[b - 1, _COORDS]) + p, n) for t, (_, b), p, n in zip(axis_tiles, ranges, tile, spatial))
    return np.sort(local), window_lo, window_hi


def choose_region_chunks(
    spatial: tuple[int, ...],
    chunks: tuple[int, ...],
    tiles_per_axis: tuple[int, ...],
    *,
    bytes_per_voxel: int,
    n_samples: int,
    min_tasks: int,
    max_bytes: int = REGION_BYTES,
) -> tuple[int, ...]:
    """Chunks per region along each axis, for the automatic ``region_shape``.

    Starts from one region per sample and halves, one axis at a time, until a region's
    buffers fit in ``max_bytes`` and the run has at least ``min_tasks`` tasks (so that every
    worker gets a share). The axis halved is the one with the most tiles per region: an
    extra border recomputes about one row of tiles, the smallest share there.
    """
    n_chunks = [math.ceil(n / c) for n, c in zip(spatial, chunks)]
    k = list(n_chunks)
    while True:
        size = [min(ki * c, n) for ki, c, n in zip(k, chunks, spatial)]
        n_tasks = n_samples * math.prod(math.ceil(n / s) for n, s in zip(spatial, size))
        if math.prod(size) * bytes_per_voxel <= max_bytes and n_tasks >= min_tasks:
            return tuple(k)
        splittable = [a for a in range(len(k)) if k[a] > 1]
        if not splittable:
            return tuple(k)
        axis = max(splittable, key=lambda a: tiles_per_axis[a] * size[a] / spatial[a])
        k[axis] = math.ceil(k[axis] / 2)
