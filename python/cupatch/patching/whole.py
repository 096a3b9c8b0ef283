"""Whole-sample patching, CAREamics' ``WholeSamplePatching``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._layouts import patch_columns
from ._base import BasePatching, new_table, specs_from_rows
from .specs import PatchSpecs

__all__ = ["WholeSamplePatching"]


class WholeSamplePatching(BasePatching):
    """One patch per sample covering the whole sample.

    Parameters
    ----------
    data_shapes : sequence of sequence of int
        SC(Z)YX shape of every image stack.

    Notes
    -----
    ``coords`` are zeros and a spec's ``patch_size`` is the spatial shape of its stack,
    which may differ between stacks, so :attr:`patch_size` is ``None``; use
    :meth:`patch_size_of`. ``n_patches`` is the total number of samples.
    """

    _has_patch_size = False

    def __init__(self, data_shapes: Sequence[Sequence[int]]):
        super().__init__(data_shapes)
        self._bins = self._uniform_bins([1] * len(self._data_shapes))

    def patch_size_of(self, data_idx: int) -> tuple[int, ...]:
        """Spatial shape of stack ``data_idx`` (the patch size of its specs).

        Raises
        ------
        IndexError
            If ``data_idx`` is not a valid stack index (negative indices included).
        """
        return tuple(self._data_shapes[self._check_data_idx(data_idx)][2:])

    def _spec_one(self, index: int) -> PatchSpecs:
        data_idx, sample_idx, _ = self._bins.locate_one(index)
        size = tuple(self._data_shapes[data_idx][2:])  # data_idx comes from the bins: valid
        return {"data_idx": data_idx, "sample_idx": sample_idx, "coords": (0,) * self._ndim, "patch_size": size}

    def _table(self, indices: np.ndarray) -> np.ndarray:
        data_idx, sample_idx, _ = self._bins.locate(indices)
        return new_table(data_idx, sample_idx, patch_columns(self._ndim))  # coords stay 0

    def _specs_from_table(self, table: np.ndarray) -> list[PatchSpecs]:
        specs = specs_from_rows(table, self._ndim, None)
        for spec in specs:
            spec["patch_size"] = tuple(self._data_shapes[spec["data_idx"]][2:])
        return specs
