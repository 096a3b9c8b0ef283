"""Behaviour shared by every strategy: index checks, spec dicts built from table rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._bins import SampleBins
from .._validation import as_index, as_indices, as_int
from .specs import PatchSpecs

__all__ = ["BasePatching", "specs_from_rows"]


def specs_from_rows(table: np.ndarray, ndim: int, patch_size) -> list[PatchSpecs]:
    """Turn rows of a patch table into PatchSpecs dicts of plain Python ints/tuples."""
    rows = table.tolist()
    return [
        {
            "data_idx": r[0],
            "sample_idx": r[1],
            "coords": tuple(r[2 : 2 + ndim]),
            "patch_size": patch_size,
        }
        for r in rows
    ]


class BasePatching:
    """Common part of the strategies built on :class:`SampleBins`.

    Subclasses set ``self._bins``, ``self._ndim`` and ``self._patch_size`` and implement
    ``_table(indices)`` for validated int64 indices.

    Indices follow the same rule everywhere: ``0 <= index < n_patches``; negative indices
    raise :class:`IndexError` (no Python-style wrapping, so a bad index never silently
    maps to another patch).
    """

    _bins: SampleBins
    _ndim: int
    _patch_size: tuple[int, ...] | None
    _data_shapes: tuple[tuple[int, ...], ...]

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
        epoch = as_int(epoch, "epoch")
        if not 0 <= epoch < 2**63:
            raise ValueError(f"epoch must be in [0, 2**63), got {epoch}")
        self._epoch = epoch

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
        k = as_int(data_idx, "data_idx")
        n_stacks = len(self._bins.stack_start) - 1
        if k < 0 or k >= n_stacks:
            raise IndexError(f"data_idx {k} out of range for {n_stacks} image stacks")
        return list(self._bins.stack_range(k))
