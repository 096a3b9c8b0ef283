"""Behaviour shared by every strategy: the constructor preamble (validated data shapes,
patch size, seed, overlaps), index checks and spec dicts built from table rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._layouts import patch_columns
from .._random import resolve_seed
from .._validation import as_index, as_indices, as_int, as_overlaps, as_patch_size, validate_data_shapes
from ._bins import SampleBins
from .specs import PatchSpecs

__all__ = ["INDEX_LIMIT", "BasePatching", "OverlapPatching", "SeededPatching", "new_table", "specs_from_rows"]

#: Patch indices are int64: a strategy numbers fewer patches than this.
INDEX_LIMIT = 2**63


def new_table(data_idx: np.ndarray, sample_idx: np.ndarray, columns: dict[str, slice]) -> np.ndarray:
    """A zeroed int64 spec table with the given layout (:mod:`cupatch._layouts`), its
    ``data_idx`` and ``sample_idx`` columns filled."""
    table = np.zeros((len(data_idx), max(s.stop for s in columns.values())), dtype=np.int64)
    table[:, columns["data_idx"].start] = data_idx
    table[:, columns["sample_idx"].start] = sample_idx
    return table


def specs_from_rows(table: np.ndarray, ndim: int, patch_size) -> list[PatchSpecs]:
    """Turn rows of a patch table into PatchSpecs dicts of plain Python ints/tuples."""
    columns = patch_columns(ndim)
    d, s, c = columns["data_idx"].start, columns["sample_idx"].start, columns["coords"]
    return [{"data_idx": r[d], "sample_idx": r[s], "coords": tuple(r[c]), "patch_size": patch_size} for r in table.tolist()]


class BasePatching:
    """Common part of the strategies built on :class:`SampleBins`.

    The constructor validates and keeps the SC(Z)YX ``data_shapes`` and the ``patch_size``
    (none for strategies with ``_has_patch_size = False``); subclasses then set
    ``self._bins`` and implement ``_table(indices)`` for validated int64 indices.

    Indices follow the same rule everywhere: ``0 <= index < n_patches``; negative indices
    raise :class:`IndexError` (no Python-style wrapping, so a bad index never silently
    maps to another patch).
    """

    _bins: SampleBins
    _ndim: int
    _patch_size: tuple[int, ...] | None
    _data_shapes: tuple[tuple[int, ...], ...]
    #: False for strategies whose patch size varies per stack (whole samples)
    _has_patch_size = True

    def __init__(self, data_shapes: Sequence[Sequence[int]], patch_size: Sequence[int] | None = None):
        self._data_shapes = validate_data_shapes(data_shapes)
        self._ndim = len(self._data_shapes[0]) - 2
        self._patch_size = as_patch_size(patch_size, self._ndim) if self._has_patch_size else None

    @property
    def n_patches(self) -> int:
        """Number of patches (the dataset length)."""
        return self._bins.n_patches

    def __len__(self) -> int:
        return self.n_patches

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return self._ndim

    @property
    def patch_size(self) -> tuple[int, ...] | None:
        """Patch size, (Z)YX."""
        return self._patch_size

    @property
    def data_shapes(self) -> tuple[tuple[int, ...], ...]:
        """The validated SC(Z)YX shapes."""
        return self._data_shapes

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch that random coordinates depend on.

        Deterministic strategies (and :class:`FixedRandomPatching`) accept and store it but
        their specs do not change.
        """
        self._epoch = as_int(epoch, "epoch", minimum=0, below=2**63, below_text="2**63")

    @property
    def epoch(self) -> int:
        """The current epoch (0 until :meth:`set_epoch` is called)."""
        return getattr(self, "_epoch", 0)

    def spec_table(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Spec table for a batch of indices, computed without a Python loop per patch.

        Parameters
        ----------
        indices : int or sequence of int
            Patch indices, ``0 <= index < n_patches``.

        Returns
        -------
        numpy.ndarray
            C-contiguous int64 table ``(B, 2 + ndim)`` with columns ``data_idx,
            sample_idx, coords...`` (tile strategies: ``(B, 2 + 4*ndim)``, see
            ``docs/contracts.md``).

        Raises
        ------
        IndexError
            If an index is negative or ``>= n_patches``.
        TypeError
            If the indices are not integers.
        """
        idx = as_indices(indices, self.n_patches)
        return np.ascontiguousarray(self._table(idx), dtype=np.int64)

    def _table(self, indices: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_patch_spec(self, index: int) -> PatchSpecs:
        """Spec of one patch (plain Python ints and tuples).

        Raises
        ------
        IndexError
            If ``index`` is negative or ``>= n_patches``.
        """
        i = as_index(index, self.n_patches)
        spec = self._spec_one(i)
        if spec is not None:
            return spec
        return self._specs_from_table(self._table(np.array([i], dtype=np.int64)))[0]

    def _spec_one(self, index: int) -> PatchSpecs | None:
        """Optional pure-Python single-spec path (must agree with ``_table``; tests check it)."""
        return None

    def _specs_from_table(self, table: np.ndarray) -> list[PatchSpecs]:
        return specs_from_rows(table, self._ndim, self._patch_size)

    def get_patch_indices(self, data_idx: int) -> list[int]:
        """All patch indices of one image stack (a contiguous range), as a list.

        Raises
        ------
        IndexError
            If ``data_idx`` is not a valid stack index.
        """
        return list(self._bins.stack_range(self._check_data_idx(data_idx)))

    def _uniform_bins(self, per_sample: Sequence[int]) -> SampleBins:
        """Bins with ``per_sample[k]`` patches in every sample of stack ``k``, the total checked
        (in Python ints, before any int64 sum can wrap) to be numberable by int64 indices."""
        counts = [int(n) for n in per_sample]
        total = sum(s[0] * n for s, n in zip(self._data_shapes, counts))
        if total >= INDEX_LIMIT:
            raise ValueError(
                f"data_shapes {list(self._data_shapes)} with patch_size {self._patch_size} give {total} patches, "
                f"more than int64 indices can number (< 2**63)"
            )
        return SampleBins([np.full(s[0], n, dtype=np.int64) for s, n in zip(self._data_shapes, counts)])

    def _check_data_idx(self, data_idx) -> int:
        """``data_idx`` as an int naming one of the image stacks (IndexError otherwise)."""
        return as_index(data_idx, len(self._data_shapes), "data_idx", what="image stacks")


class SeededPatching(BasePatching):
    """A strategy whose coordinates are drawn from ``hash4(seed, epoch, index, stream)``."""

    def __init__(self, data_shapes: Sequence[Sequence[int]], patch_size: Sequence[int], seed: int | None = None):
        super().__init__(data_shapes, patch_size)
        self._seed = resolve_seed(seed)
        self._epoch = 0

    @property
    def seed(self) -> int:
        """The (resolved) seed."""
        return self._seed

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_stacks={len(self._data_shapes)}, patch_size={self._patch_size}, "
            f"seed={self._seed}, n_patches={self.n_patches})"
        )


class OverlapPatching(BasePatching):
    """A strategy of regular windows that overlap by a fixed amount per axis.

    ``overlaps`` may be None (no overlap) unless ``_overlaps_required``.
    """

    _overlaps_required = False

    def __init__(self, data_shapes: Sequence[Sequence[int]], patch_size: Sequence[int], overlaps: Sequence[int] | None):
        super().__init__(data_shapes, patch_size)
        if overlaps is None and self._overlaps_required:
            raise TypeError(f"overlaps is required for {type(self).__name__} (use zeros for no overlap)")
        self._overlaps = (0,) * self._ndim if overlaps is None else as_overlaps(overlaps, self._patch_size)

    @property
    def overlaps(self) -> tuple[int, ...]:
        """Overlap per axis."""
        return self._overlaps
