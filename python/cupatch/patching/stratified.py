"""Stratified patching, CAREamics' ``StratifiedPatching`` with array-based bookkeeping.

Every sample is covered by a grid of *sampling regions*, one per grid cell ``c`` (cell
size = patch size ``P``, grid shape ``(N + 1) // P``). The selectable top-left corners of
region ``c`` are ``c*P + [0, P)`` per axis, clipped to ``<= N - P``, so a patch drawn from
it lies inside a ``2P`` box. A region is stored as ``2**ndim`` sub-boxes (per axis the
split ``[0, 1)`` / ``[1, P)``), which makes excluding a grid cell a bit operation: the
region at ``c - q`` (``q`` in ``{0, 1}**ndim``) loses its sub-boxes that can reach cell
``c``, i.e. those that take the upper part on every axis where ``q`` is 1.

All of this lives in flat NumPy arrays over every region of every sample (a sub-box
bitmask, relative probabilities, bin assignment), so construction and
:meth:`StratifiedPatching.spec_table` are vectorised.

Counts and bins follow CAREamics: ``n_patches`` per sample is
``ceil(prod(N / P) - sum(1 - p) - n_excluded)``; regions (area times relative probability)
are packed into exactly ``n_patches`` bins by best-fit decreasing with a growable common
capacity; a patch index is a bin, a region of the bin is chosen with probability
``area / bin_size``, and a bin's leftover probability is spread over all regions of the
sample in proportion to their weighted area.

Randomness is counter-based (see :mod:`cupatch.patching.random`): region, sub-box and
coordinates of patch ``index`` are drawn from ``hash4(seed, epoch, index, stream)`` with the
streams ``REGION``, ``SUBBOX`` and ``COORD_IN_BOX + axis``.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from .._layouts import patch_columns
from .._random import Stream, uniform01
from .._validation import as_index
from ._base import INDEX_LIMIT, SeededPatching, new_table
from ._bins import SampleBins
from .random import draw_int, stream_hashes

__all__ = ["StratifiedPatching", "region_bin_packing"]


def region_bin_packing(areas: Sequence[float] | np.ndarray, n_bins: int) -> tuple[int, np.ndarray]:
    """Pack region areas into exactly ``n_bins`` bins of a common, minimal-ish capacity.

    Best-fit decreasing: regions in decreasing area order (ties by index) go into the
    fullest bin they fit in (ties: lowest bin); if a region fits in no bin, the capacity of
    every bin grows by what the emptiest bin lacks. With no more regions than bins each
    region gets its own bin, in index order.

    Parameters
    ----------
    areas : sequence of float
        Area (weighted by relative probability) of every region.
    n_bins : int
        Number of bins (``>= 0``).

    Returns
    -------
    bin_size : int
        Common capacity, rounded up (0 when ``n_bins`` is 0).
    bin_of_region : numpy.ndarray
        int64 bin number of every region (-1 when ``n_bins`` is 0).
    """
    areas = np.asarray(areas, dtype=np.float64)
    n_regions = len(areas)
    if n_bins == 0 or n_regions == 0:
        return 0, np.full(n_regions, -1, dtype=np.int64)
    if n_regions <= n_bins:
        return int(math.ceil(areas.max())), np.arange(n_regions, dtype=np.int64)
    order = np.argsort(-areas, kind="stable")
    bin_size = float(areas.max())
    # bins sorted by (load, bin number); best fit = largest load <= bin_size - area
    keys: list[tuple[float, int]] = [(0.0, b) for b in range(n_bins)]
    bin_of_region = np.empty(n_regions, dtype=np.int64)
    for r, area in zip(order.tolist(), areas[order].tolist()):
        pos = bisect.bisect_right(keys, (bin_size - area, math.inf)) - 1
        if pos < 0:  # fits nowhere: grow every bin by the emptiest bin's shortfall
            pos = 0
            bin_size = keys[0][0] + area
        else:  # lowest bin number among equally loaded best fits
            pos = bisect.bisect_left(keys, (keys[pos][0], -1))
        load, b = keys.pop(pos)
        bisect.insort(keys, (load + area, b))
        bin_of_region[r] = b
    return int(math.ceil(bin_size)), bin_of_region


class _StackGeometry:
    """Grid and sub-box lengths of one stack (shared by its samples)."""

    def __init__(self, spatial: tuple[int, ...], patch_size: tuple[int, ...], name: str = "data_shapes"):
        n = np.array(spatial, dtype=np.int64)
        p = np.array(patch_size, dtype=np.int64)
        self.grid_shape = tuple(int(v) for v in (n + 1) // p)
        self.n_regions = math.prod(self.grid_shape)
        if self.n_regions >= INDEX_LIMIT:
            raise ValueError(
                f"{name} (spatial shape {tuple(spatial)}) with patch_size {tuple(patch_size)} has "
                f"{self.n_regions} sampling regions, more than int64 can number (< 2**63)"
            )
        # C order, as np.ndindex; vectorised, so a grid too large for memory fails in NumPy's
        # allocation (a MemoryError giving the size) instead of building a list of tuples
        cells = np.unravel_index(np.arange(self.n_regions, dtype=np.int64), self.grid_shape)
        self.grid = np.stack(cells, axis=1).astype(np.int64, copy=False).reshape(self.n_regions, len(spatial))
        self.origin = self.grid * p
        last = n - p  # largest valid corner per axis (negative: none)
        # sub-box lengths per axis: lower part [0, 1) and upper part [1, P), clipped to <= last
        self.len_lower = (self.origin <= last).astype(np.int64)
        self.len_upper = np.maximum(0, np.minimum(self.origin + p, last + 1) - (self.origin + 1))
        self.full_ratio = float(np.prod(n / p))  # CAREamics' real-valued patch count


def _subbox_areas(len_lower: np.ndarray, len_upper: np.ndarray) -> np.ndarray:
    """(R, 2**ndim) areas of the sub-boxes; bit ``a`` of the sub-box number = upper on axis ``a``."""
    ndim = len_lower.shape[1]
    out = np.ones((len_lower.shape[0], 2**ndim), dtype=np.int64)
    for s in range(2**ndim):
        for a in range(ndim):
            out[:, s] *= len_upper[:, a] if (s >> a) & 1 else len_lower[:, a]
    return out


class StratifiedPatching(SeededPatching):
    """Random patches spread evenly: each pixel is expected to be covered about once per epoch.

    Parameters
    ----------
    data_shapes : sequence of sequence of int
        SC(Z)YX shape of every image stack.
    patch_size : int or sequence of int (one int: that size on every axis)
        Patch size, (Z)YX.
    seed : int or None, optional
        Seed of the counter-based generator; ``None`` draws fresh entropy once.

    Notes
    -----
    Same ``n_patches``, index mapping, exclusion and probability semantics as CAREamics
    (see the module docstring). Differences: the draws are counter-based, so an index gives
    the same patch within an epoch and :meth:`set_epoch` changes them; grid coordinates
    outside a sample's grid and probabilities outside ``[0, 1]`` raise ``ValueError``; a
    sample whose regions all have probability 0 gets no patches.
    """

    def __init__(self, data_shapes: Sequence[Sequence[int]], patch_size: Sequence[int], seed: int | None = None):
        super().__init__(data_shapes, patch_size, seed)
        self._geom = [_StackGeometry(s[2:], self._patch_size, f"data_shapes[{k}]") for k, s in enumerate(self._data_shapes)]
        n_samples = np.array([s[0] for s in self._data_shapes], dtype=np.int64)
        regions_per_sample = np.repeat([g.n_regions for g in self._geom], n_samples)
        #: first region of every global sample (length n_samples + 1)
        self._region_start = np.concatenate([[0], np.cumsum(regions_per_sample)]).astype(np.int64)
        self._region_sample = np.repeat(np.arange(len(regions_per_sample), dtype=np.int64), regions_per_sample)
        self._sample_first = np.concatenate([[0], np.cumsum(n_samples)]).astype(np.int64)

        def tiled(attr):
            parts = [np.tile(getattr(g, attr), (s[0], 1)) for g, s in zip(self._geom, self._data_shapes)]
            return np.concatenate(parts).reshape(-1, self._ndim)

        self._origin = tiled("origin")
        self._len_lower = tiled("len_lower")
        self._len_upper = tiled("len_upper")
        self._box_areas = _subbox_areas(self._len_lower, self._len_upper)
        self._alive = (self._box_areas > 0).astype(np.uint8)  # (R, 2**ndim): 1 = sub-box selectable
        self._rel_prob = np.ones(len(self._origin), dtype=np.float64)
        self._excluded = np.zeros(len(self._origin), dtype=bool)
        n_total_samples = len(regions_per_sample)
        self._sample_n_patches = np.zeros(n_total_samples, dtype=np.int64)
        self._sample_bin_size = np.zeros(n_total_samples, dtype=np.int64)
        self._bin_local = np.full(len(self._origin), -1, dtype=np.int64)
        # samples of one stack start identical: pack once per stack, copy to its samples
        for k, shape in enumerate(self._data_shapes):
            first = int(self._sample_first[k])
            n_p, size, bins = self._pack(first)
            for s in range(shape[0]):
                g = first + s
                self._sample_n_patches[g] = n_p
                self._sample_bin_size[g] = size
                self._bin_local[self._region_start[g] : self._region_start[g + 1]] = bins
        self._rebuild()

    # ----------------------------------------------------------------- bookkeeping
    def grid_shape(self, data_idx: int) -> tuple[int, ...]:
        """Grid of sampling regions of stack ``data_idx`` (``(N + 1) // P`` per axis)."""
        return self._geom[self._check_data_idx(data_idx)].grid_shape

    def _global_sample(self, data_idx, sample_idx) -> int:
        k = self._check_data_idx(data_idx)
        s = as_index(sample_idx, self._data_shapes[k][0], "sample_idx", what=f"samples of data_idx {k}")
        return int(self._sample_first[k] + s)

    def _region_slice(self, g: int) -> slice:
        return slice(int(self._region_start[g]), int(self._region_start[g + 1]))

    def region_areas(self, data_idx: int, sample_idx: int) -> np.ndarray:
        """Number of selectable corners of every region of one sample, in grid shape."""
        g = self._global_sample(data_idx, sample_idx)
        sl = self._region_slice(g)
        areas = (self._alive[sl] * self._box_areas[sl]).sum(axis=1)
        return areas.reshape(self.grid_shape(data_idx))

    def n_patches_of(self, data_idx: int, sample_idx: int) -> int:
        """Number of patches (bins) of one sample."""
        return int(self._sample_n_patches[self._global_sample(data_idx, sample_idx)])

    def bin_size_of(self, data_idx: int, sample_idx: int) -> int:
        """Common bin capacity of one sample."""
        return int(self._sample_bin_size[self._global_sample(data_idx, sample_idx)])

    def _pack(self, g: int) -> tuple[int, int, np.ndarray]:
        """Recompute n_patches, bin size and the bin of every region of global sample ``g``."""
        sl = self._region_slice(g)
        areas = (self._alive[sl] * self._box_areas[sl]).sum(axis=1).astype(np.float64)
        weighted = areas * self._rel_prob[sl]
        stack = self._stack_of_sample(g)
        if areas.sum() != 0 and weighted.sum() > 0:
            # CAREamics subtracts 1 - p region by region; the same order rounds the same, so the
            # ceil below agrees where the total lands near an integer (regions with p = 1 add 0)
            total = self._geom[stack].full_ratio
            rel = self._rel_prob[sl]
            for q in (1.0 - rel[rel != 1.0]).tolist():
                total -= q
            n_patches = max(0, int(math.ceil(total - int(self._excluded[sl].sum()))))
        else:
            n_patches = 0
        size, bins = region_bin_packing(weighted, n_patches)
        return n_patches, size, bins

    def _stack_of_sample(self, g: int) -> int:
        return int(np.searchsorted(self._sample_first[1:], g, side="right"))

    def _update_sample(self, g: int) -> None:
        n_p, size, bins = self._pack(g)
        self._sample_n_patches[g] = n_p
        self._sample_bin_size[g] = size
        self._bin_local[self._region_slice(g)] = bins
        self._dirty = True  # flattened arrays are rebuilt on next use, once for many updates

    @property
    def _bins(self) -> SampleBins:
        if self._dirty:
            self._rebuild()
        return self._sample_bins

    def _rebuild(self) -> None:
        """Flatten the per-sample bins into arrays indexed by global patch index."""
        per_stack = [
            self._sample_n_patches[self._sample_first[k] : self._sample_first[k + 1]]
            for k in range(len(self._data_shapes))
        ]
        self._sample_bins = SampleBins(per_stack)
        self._dirty = False
        areas = (self._alive * self._box_areas).sum(axis=1).astype(np.float64)
        weighted = areas * self._rel_prob
        size = self._sample_bin_size[self._region_sample].astype(np.float64)
        self._region_prob = np.divide(weighted, size, out=np.zeros_like(weighted), where=(weighted != 0) & (size > 0))
        # regions of every bin, grouped by global bin number
        in_bin = self._bin_local >= 0
        global_bin = np.where(in_bin, self._sample_bins.sample_start[self._region_sample] + self._bin_local, -1)
        members = np.flatnonzero(in_bin)
        members = members[np.argsort(global_bin[members], kind="stable")]
        self._members = members
        counts = np.bincount(global_bin[members], minlength=self._sample_bins.n_patches)
        self._bin_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._member_cum = np.concatenate([[0.0], np.cumsum(self._region_prob[members])])
        self._region_cum = np.concatenate([[0.0], np.cumsum(self._region_prob)])
        # last region with positive probability per sample (guards rounding at the end)
        positive = np.flatnonzero(self._region_prob > 0)
        if len(positive):
            before_end = np.searchsorted(positive, self._region_start[1:], side="left") - 1
            self._last_positive = positive[np.maximum(before_end, 0)]
        else:
            self._last_positive = np.zeros(len(self._region_start) - 1, dtype=np.int64)

    # ----------------------------------------------------------------- CAREamics API
    def _as_grid_coords(self, grid_coords, data_idx: int, name: str) -> np.ndarray:
        shape = self._geom[data_idx].grid_shape
        what = f"{name} must be a sequence of {self._ndim}-tuples of ints (grid coordinates)"
        if isinstance(grid_coords, (str, bytes, Mapping)) or not hasattr(grid_coords, "__len__"):
            raise TypeError(f"{what}, got {type(grid_coords).__name__}")
        try:
            arr = np.asarray(grid_coords)
        except ValueError:  # ragged
            raise ValueError(f"{what}, got {grid_coords!r}") from None
        if arr.size == 0:
            arr = np.zeros((0, self._ndim), np.int64)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name} must be integer grid coordinates, got dtype {arr.dtype}")
        if arr.ndim != 2 or arr.shape[1] != self._ndim:  # never reshaped: (2, 3) is not (3, 2)
            raise ValueError(f"{what}, got shape {arr.shape}")
        bad = (arr < 0) | (arr >= np.array(shape))
        if bad.any():
            raise ValueError(f"{name} contains {tuple(arr[bad.any(axis=1)][0].tolist())}, outside the grid {shape}")
        return arr.astype(np.int64)

    @staticmethod
    def _as_probs(values) -> np.ndarray:
        """Probability values as float64 (ValueError naming probs for non-numbers)."""
        if isinstance(values, (str, bytes)):
            raise ValueError(f"probs values must be numbers in [0, 1], got {values!r}")
        try:
            arr = np.asarray(values)
        except ValueError:  # ragged
            raise ValueError(f"probs values must be numbers in [0, 1], got {values!r}") from None
        if arr.size and arr.dtype.kind not in "iuf":
            raise ValueError(f"probs values must be numbers in [0, 1], got {values!r}")
        return arr.astype(np.float64)

    def exclude_patches(self, data_idx: int, sample_idx: int, grid_coords: Sequence[tuple[int, ...]]) -> None:
        """Make grid cells of one sample unselectable.

        After this no patch returned for that sample overlaps any pixel of the cells
        ``[c * P, (c + 1) * P)``; ``n_patches`` drops by the number of excluded cells.

        Parameters
        ----------
        data_idx, sample_idx : int
            The sample.
        grid_coords : sequence of tuple of int
            Grid coordinates (cell size = patch size), within :meth:`grid_shape`.
        """
        g = self._global_sample(data_idx, sample_idx)
        k = self._check_data_idx(data_idx)
        cells = self._as_grid_coords(grid_coords, k, "grid_coords")
        geom = self._geom[k]
        base = int(self._region_start[g])
        strides = np.array([math.prod(geom.grid_shape[a + 1 :]) for a in range(self._ndim)], dtype=np.int64)
        self._excluded[base + cells @ strides] = True
        n_boxes = 2**self._ndim
        for q in itertools.product((0, 1), repeat=self._ndim):
            owner = cells - np.array(q)
            ok = (owner >= 0).all(axis=1)
            rows = base + owner[ok] @ strides
            qbits = sum(b << a for a, b in enumerate(q))
            # sub-boxes s that take the upper part on every axis where q is 1 reach the cell
            for s in range(n_boxes):
                if qbits & ~s == 0:
                    self._alive[rows, s] = 0
        self._update_sample(g)

    def set_region_probs(
        self, data_idx: int, sample_idx: int, probs: Mapping[tuple[int, ...], float] | np.ndarray
    ) -> None:
        """Set the relative probability of sampling regions of one sample.

        Parameters
        ----------
        data_idx, sample_idx : int
            The sample.
        probs : dict or numpy.ndarray
            ``{grid_coord: p}``, or an array of shape :meth:`grid_shape` with every
            region's ``p``; ``0 <= p <= 1``. ``n_patches`` drops by ``sum(1 - p)``.
        """
        g = self._global_sample(data_idx, sample_idx)
        k = self._check_data_idx(data_idx)
        shape = self._geom[k].grid_shape
        sl = self._region_slice(g)
        if isinstance(probs, Mapping):
            coords = self._as_grid_coords(list(probs.keys()), k, "probs keys")
            values = self._as_probs(list(probs.values()))
            rows = np.ravel_multi_index(coords.T, shape) if len(coords) else np.zeros(0, np.int64)
        else:
            values = self._as_probs(probs)
            if values.shape != shape:
                raise ValueError(f"probs must be a dict or an array of the grid shape {shape}, got shape {values.shape}")
            values = values.reshape(-1)
            rows = np.arange(len(values))
        if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values > 1):
            raise ValueError("probs values must lie in [0, 1]")
        self._rel_prob[sl.start + rows] = values
        self._update_sample(g)

    def get_included_grid_coords(self) -> dict[tuple[int, int], list[tuple[int, ...]]]:
        """Grid cells that can still be selected, per ``(data_idx, sample_idx)`` (C order)."""
        out = {}
        for g in range(len(self._region_start) - 1):
            k = self._stack_of_sample(g)
            s = g - int(self._sample_first[k])
            sl = self._region_slice(g)
            out[(k, s)] = [tuple(c) for c in self._geom[k].grid[~self._excluded[sl]].tolist()]
        return out

    def get_all_grid_coords(self) -> dict[tuple[int, int], list[tuple[int, ...]]]:
        """All grid cells, per ``(data_idx, sample_idx)`` (C order)."""
        out = {}
        for k, shape in enumerate(self._data_shapes):
            cells = [tuple(c) for c in self._geom[k].grid.tolist()]
            for s in range(shape[0]):
                out[(k, s)] = list(cells)
        return out

    # ----------------------------------------------------------------- sampling
    def _table(self, indices: np.ndarray) -> np.ndarray:
        g = self._bins.global_sample(indices)
        nd = self._ndim
        h_region, h_box, *h_coord = stream_hashes(
            self._seed,
            self._epoch,
            indices,
            [Stream.REGION, Stream.SUBBOX, *[Stream.COORD_IN_BOX + a for a in range(nd)]],
        )
        u = uniform01(h_region)
        # 1) region: inside the bin with probability sum(p in bin), else from the whole sample
        start = self._bin_ptr[indices]
        end = self._bin_ptr[indices + 1]
        base = self._member_cum[start]
        target = base + u
        in_bin = target < self._member_cum[end]
        pos = np.searchsorted(self._member_cum[1:], target, side="right")
        pos = np.clip(pos, start, np.maximum(end - 1, start))
        region = np.zeros(len(indices), dtype=np.int64)
        region[in_bin] = self._members[pos[in_bin]]
        out_bin = ~in_bin
        if out_bin.any():
            gs = g[out_bin]
            bin_total = self._member_cum[end[out_bin]] - base[out_bin]
            rest = np.clip((u[out_bin] - bin_total) / np.maximum(1.0 - bin_total, 1e-300), 0.0, 1.0)
            r0, r1 = self._region_start[gs], self._region_start[gs + 1]
            lo = self._region_cum[r0]
            t = lo + rest * (self._region_cum[r1] - lo)
            rpos = np.searchsorted(self._region_cum[1:], t, side="right")
            region[out_bin] = np.clip(rpos, r0, self._last_positive[gs])
        # 2) sub-box in proportion to its area
        areas = self._alive[region] * self._box_areas[region]
        cum = np.cumsum(areas, axis=1)
        pick = np.floor(uniform01(h_box) * cum[:, -1]).astype(np.int64)
        box = (cum <= pick[:, None]).sum(axis=1)
        # 3) uniform corner inside the sub-box
        columns = patch_columns(nd)
        table = new_table(self._bins.sample_data_idx[g], self._bins.sample_local_idx[g], columns)
        coords = table[:, columns["coords"]]
        for a in range(nd):
            upper = (box >> a) & 1
            length = np.where(upper == 1, self._len_upper[region, a], self._len_lower[region, a])
            coords[:, a] = self._origin[region, a] + upper + draw_int(h_coord[a], np.maximum(length, 1)).astype(np.int64)
        return table
