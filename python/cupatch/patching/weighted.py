"""Weighted patching: patch centres drawn with probability proportional to a weight map.

Every sample has a weight map (a probability map, a boolean mask, or a label map balanced
over its classes), at the image's resolution or at a reduced one (one map cell per ``d``
voxels per axis, see :mod:`cupatch._resolution`). The positive cells of all maps are laid
out in one array with the running sum of their weights; drawing a centre is a binary
search (``np.searchsorted``) of ``base + u * mass`` in it, vectorised over a batch of
indices.

Randomness is counter-based (see :mod:`cupatch.patching.random`): the cell of patch
``index`` comes from ``hash4(seed, epoch, index, Stream.REGION)`` and the voxel inside the
cell from ``hash4(seed, epoch, index, Stream.COORD_IN_BOX + axis)``, so sharding and worker
counts never change a patch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._layouts import patch_columns
from .._random import Stream, uniform01, uniform_int_scalar
from .._resolution import resolution_divisor
from .._validation import as_bool, as_indices, as_int
from ._base import INDEX_LIMIT, SeededPatching, new_table
from ._bins import SampleBins, unravel_c_order
from .random import _n_patches_per_sample, _splitmix64_int, draw_int, stream_hashes
from .specs import PatchSpecs

__all__ = ["WeightedPatching", "balanced_label_weights"]


def balanced_label_weights(labels: np.ndarray) -> np.ndarray:
    """float64 weights giving every label value present the same total weight (1 / classes),
    spread evenly over its voxels (MONAI's ``RandCropByLabelClasses`` with equal ratios)."""
    values, inverse, counts = np.unique(labels.reshape(-1), return_inverse=True, return_counts=True)
    return (1.0 / (counts * len(values)))[inverse].reshape(labels.shape)


def _as_weight_arrays(weights, n_stacks: int) -> list[np.ndarray]:
    if hasattr(weights, "__array__") or hasattr(weights, "__cuda_array_interface__"):
        if n_stacks != 1:
            raise TypeError(f"weights must be a list with one array per image stack ({n_stacks}), got one array")
        weights = [weights]
    if not isinstance(weights, (list, tuple)):
        raise TypeError(f"weights must be an array or a list of arrays (one per stack), got {type(weights).__name__}")
    if len(weights) != n_stacks:
        raise ValueError(f"weights must have one array per image stack ({n_stacks}), got {len(weights)}")
    out = []
    for k, w in enumerate(weights):
        if hasattr(w, "get") and hasattr(w, "__cuda_array_interface__"):
            w = w.get()  # a CuPy map: the bookkeeping lives on the host
        try:
            arr = np.asarray(w)
        except (TypeError, ValueError):
            raise TypeError(f"weights[{k}] must be an array of numbers, got {type(w).__name__}") from None
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"weights[{k}] must be a bool, integer or float array, got dtype {arr.dtype}")
        out.append(arr)
    return out


class WeightedPatching(SeededPatching):
    """Random patches whose centres follow a weight map (mask- or label-guided sampling).

    Parameters
    ----------
    data_shapes : sequence of sequence of int
        SC(Z)YX shape of every image stack.
    patch_size : int or sequence of int (one int: that size on every axis)
        Patch size, (Z)YX.
    weights : array or list of arrays
        One map per stack (a single array for a single stack), of shape ``(S, *M)`` (one
        map per sample) or ``M`` (the same map for every sample), where ``M`` per axis is
        the stack's spatial extent ``N`` or ``ceil(N / d)`` for an integer divisor ``d``.
        Float or integer weights (``>= 0``, finite; they need not sum to 1) or a boolean
        mask (True = 1). A CuPy map is copied to the host.
    seed : int or None, optional
        Seed of the counter-based generator; ``None`` draws fresh entropy once.
    n_patches : int, optional
        Total number of patches, split over the samples in proportion to their total weight
        (largest remainders, ties to the lower sample). Default: ``prod(ceil(N / P))`` per
        sample with any positive weight, as :class:`RandomPatching`.
    label_balanced : bool, default False
        Read ``weights`` as integer (or boolean) label maps and give every label value
        present in a sample the same probability, uniform over its voxels (label 0
        included: pass ``labels > 0`` without this flag for foreground-only sampling).
    divisor : int or sequence of int, optional
        The maps' resolution divisor per axis; checked against the shapes. Inferred when
        omitted (the smallest ``d`` with ``M == ceil(N / d)``).

    Notes
    -----
    A patch's *centre* is a voxel drawn with probability proportional to the weight of the
    cell holding it (uniform inside the cell; a cell of a reduced map covers ``d`` voxels
    per axis, fewer at the image border). The patch is placed with its voxel ``P // 2``
    on the centre, then clamped into the image per axis, ``corner = clip(centre - P // 2,
    0, max(0, N - P))``, as MONAI's weighted crops do: near the border the patch is shifted
    inward and the centre lies off the patch's middle but always inside the patch (when
    ``N < P`` the corner is 0 and the gather pads). Cells of weight 0 are never drawn. A
    sample whose weights are all 0 gets no patches; all weights 0 is an error.
    """

    def __init__(
        self,
        data_shapes: Sequence[Sequence[int]],
        patch_size: Sequence[int],
        weights,
        seed: int | None = None,
        n_patches: int | None = None,
        *,
        label_balanced: bool = False,
        divisor=None,
    ):
        super().__init__(data_shapes, patch_size, seed)
        label_balanced = as_bool(label_balanced, "label_balanced")
        nd = self._ndim
        self._divisor, self._map_shape = [], []
        # one running sum per distinct map (a map shared by a stack's samples is kept once)
        cum_parts, cell_parts, map_mass, sample_map = [], [], [], []
        for k, (shape, w) in enumerate(zip(self._data_shapes, _as_weight_arrays(weights, len(self._data_shapes)))):
            per_sample = self._check_map(k, shape, w, label_balanced, divisor)
            for s, m in enumerate(per_sample):
                if s == 0 or m is not per_sample[0]:
                    m = balanced_label_weights(m) if label_balanced else m.astype(np.float64, copy=False)
                    flat = m.reshape(-1)
                    cells = np.flatnonzero(flat)
                    cum = np.cumsum(flat[cells])
                    cell_parts.append(cells)
                    cum_parts.append(cum)
                    map_mass.append(float(cum[-1]) if len(cum) else 0.0)
                sample_map.append(len(cum_parts) - 1)
        map_mass = np.array(map_mass, dtype=np.float64)
        self._sample_map_id = np.array(sample_map, dtype=np.int64)
        mass = map_mass[self._sample_map_id]
        if not (mass > 0).any():
            raise ValueError("weights are 0 everywhere: at least one voxel needs a positive weight")
        # all maps in one running sum: map j owns [start[j], start[j + 1]), offset by base[j]
        base = np.concatenate([[0.0], np.cumsum(map_mass)])
        self._cum = np.concatenate([c + b for c, b in zip(cum_parts, base[:-1])])
        self._cell = np.concatenate(cell_parts).astype(np.int64)
        start = np.concatenate([[0], np.cumsum([len(c) for c in cell_parts])]).astype(np.int64)
        self._base = base[self._sample_map_id]  # per sample, from here on
        self._mass = mass
        self._start = start[self._sample_map_id]
        self._end = start[self._sample_map_id + 1]
        self._bins = self._weighted_bins(mass, n_patches)
        stack_of_sample = self._bins.sample_data_idx
        self._sample_spatial = np.array([self._data_shapes[k][2:] for k in stack_of_sample], np.int64).reshape(-1, nd)
        self._sample_map = np.array([self._map_shape[k] for k in stack_of_sample], np.int64).reshape(-1, nd)
        self._sample_divisor = np.array([self._divisor[k] for k in stack_of_sample], np.int64).reshape(-1, nd)
        self._half = np.array(self._patch_size, dtype=np.int64) // 2
        self._last_corner = np.maximum(0, self._sample_spatial - np.array(self._patch_size, dtype=np.int64))

    def _check_map(self, k: int, shape, w: np.ndarray, label_balanced: bool, divisor) -> list[np.ndarray]:
        """Stack ``k``'s map checked (shape, divisor, values), as one (Z)YX map per sample
        (the same object for every sample when shared)."""
        nd, name = self._ndim, f"weights[{k}]"
        if w.ndim == nd + 1:
            if w.shape[0] != shape[0]:
                raise ValueError(f"{name} has {w.shape[0]} sample maps but data_shapes[{k}] has {shape[0]} samples")
            per_sample = [w[s] for s in range(shape[0])]
        elif w.ndim == nd:
            per_sample = [w] * shape[0]
        else:
            raise ValueError(
                f"{name} must have shape (S, *spatial) or spatial ({nd} axes) for data_shapes[{k}] {shape}, "
                f"got shape {w.shape}"
            )
        self._divisor.append(resolution_divisor(shape[2:], w.shape[-nd:], name, divisor))
        self._map_shape.append(tuple(w.shape[-nd:]))
        if label_balanced and w.dtype.kind not in "biu":
            raise TypeError(f"label_balanced=True needs integer or bool label maps, {name} has dtype {w.dtype}")
        if not label_balanced and w.dtype.kind == "f" and not np.isfinite(w).all():
            raise ValueError(f"{name} must be finite; it holds NaN or infinity")
        if not label_balanced and w.dtype.kind in "if" and (w < 0).any():
            raise ValueError(f"{name} must be >= 0; its smallest weight is {w.min()}")
        return per_sample

    def _weighted_bins(self, mass: np.ndarray, n_patches) -> SampleBins:
        n_samples = [s[0] for s in self._data_shapes]
        if n_patches is None:
            per_stack = [_n_patches_per_sample(s[2:], self._patch_size) for s in self._data_shapes]
            counts = [c * (m > 0) for c, m in zip(np.repeat(per_stack, n_samples).tolist(), mass.tolist())]
        else:
            total = as_int(n_patches, "n_patches", minimum=1, below=INDEX_LIMIT, below_text="2**63")
            quota = total * (mass / mass.sum())
            counts = np.floor(quota).astype(np.int64)
            rest = total - int(counts.sum())
            order = np.lexsort((np.arange(len(mass)), -(quota - counts)))  # largest remainder, lower sample first
            counts[order[:rest]] += 1
            counts = counts.tolist()
        if sum(int(c) for c in counts) >= INDEX_LIMIT:
            raise ValueError(f"data_shapes {list(self._data_shapes)} give more patches than int64 indices can number")
        first = np.concatenate([[0], np.cumsum(n_samples)])
        return SampleBins([counts[first[k] : first[k + 1]] for k in range(len(n_samples))])

    @property
    def divisor(self) -> tuple[tuple[int, ...], ...]:
        """The resolution divisor of every stack's weight map, per axis."""
        return tuple(self._divisor)

    def centres(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """The drawn centre voxels ``(B, ndim)`` of a batch of indices (before clamping)."""
        idx = as_indices(indices, self.n_patches)
        return self._centres(idx, self._bins.global_sample(idx))

    def _centres(self, indices: np.ndarray, g: np.ndarray) -> np.ndarray:
        nd = self._ndim
        h_cell, *h_coord = stream_hashes(
            self._seed, self._epoch, indices, [Stream.REGION, *[Stream.COORD_IN_BOX + a for a in range(nd)]]
        )
        target = self._base[g] + uniform01(h_cell) * self._mass[g]
        pos = np.searchsorted(self._cum, target, side="right")
        pos = np.clip(pos, self._start[g], self._end[g] - 1)  # float rounding at the ends
        cell = unravel_c_order(self._cell[pos], self._sample_map[g])
        d = self._sample_divisor[g]
        lo = cell * d
        length = np.minimum(d, self._sample_spatial[g] - lo)
        centre = lo
        for a in range(nd):
            centre[:, a] += draw_int(h_coord[a], length[:, a]).astype(np.int64)
        return centre

    def _spec_one(self, index: int) -> PatchSpecs:
        """Scalar twin of :meth:`_table` on Python ints and floats (the same operations, so
        the same bits); one ``searchsorted`` call."""
        if not hasattr(self, "_scalars"):
            self._scalars = [a.tolist() for a in (self._base, self._mass, self._start, self._end)] + [
                a.tolist() for a in (self._sample_map, self._sample_divisor, self._sample_spatial, self._last_corner)
            ]
        base, mass, start, end, map_shape, divisor, spatial, last = self._scalars
        data_idx, sample_idx, _ = self._bins.locate_one(index)
        g = int(self._bins.stack_first_sample[data_idx]) + sample_idx
        prefix = _splitmix64_int(_splitmix64_int(_splitmix64_int(self._seed) ^ self._epoch) ^ index)
        u = float(_splitmix64_int(prefix ^ Stream.REGION) >> 11) * 2.0**-53
        pos = int(np.searchsorted(self._cum, base[g] + u * mass[g], side="right"))
        flat = int(self._cell[min(max(pos, start[g]), end[g] - 1)])
        cell = []
        for n in reversed(map_shape[g]):
            flat, c = divmod(flat, n)
            cell.append(c)
        coords = []
        for a, c in enumerate(reversed(cell)):
            lo = c * divisor[g][a]
            h = _splitmix64_int(prefix ^ (Stream.COORD_IN_BOX + a))
            centre = lo + uniform_int_scalar(h, min(divisor[g][a], spatial[g][a] - lo))
            coords.append(min(max(centre - self._patch_size[a] // 2, 0), last[g][a]))
        return {"data_idx": data_idx, "sample_idx": sample_idx, "coords": tuple(coords), "patch_size": self._patch_size}

    def _table(self, indices: np.ndarray) -> np.ndarray:
        g = self._bins.global_sample(indices)
        columns = patch_columns(self._ndim)
        table = new_table(self._bins.sample_data_idx[g], self._bins.sample_local_idx[g], columns)
        if len(indices):
            centre = self._centres(indices, g)
            table[:, columns["coords"]] = np.clip(centre - self._half, 0, self._last_corner[g])
        return table

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, divisor={self.divisor})"

