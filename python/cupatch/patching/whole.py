"""Whole-sample patching, CAREamics' ``WholeSamplePatching``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._base import BasePatching
from ._bins import SampleBins
from .._validation import validate_data_shapes
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

    def __init__(self, data_shapes: Sequence[Sequence[int]]):
        self._data_shapes = validate_data_shapes(data_shapes)
        self._ndim = len(self._data_shapes[0]) - 2
        self._patch_size = None
        self._bins = SampleBins([np.ones(s[0], dtype=np.int64) for s in self._data_shapes])

    def patch_size_of(self, data_idx: int) -> tuple[int, ...]:
        """Spatial shape of stack ``data_idx`` (the patch size of its specs)."""
        return tuple(self._data_shapes[data_idx][2:])

    def _spec_one(self, index: int) -> PatchSpecs:
        data_idx, sample_idx, _ = self._bins.locate_one(index)
        size = self.patch_size_of(data_idx)
        return {"data_idx": data_idx, "sample_idx": sample_idx, "coords": (0,) * self._ndim, "patch_size": size}

    def _table(self, indices: np.ndarray) -> np.ndarray:
        data_idx, sample_idx, _ = self._bins.locate(indices)
        table = np.zeros((len(indices), 2 + self._ndim), dtype=np.int64)
        table[:, 0] = data_idx
        table[:, 1] = sample_idx
        return table

    def _specs_from_table(self, table: np.ndarray) -> list[PatchSpecs]:
        return [
            {"data_idx": r[0], "sample_idx": r[1], "coords": tuple(r[2:]), "patch_size": self.patch_size_of(r[0])}
            for r in table.tolist()
        ]
