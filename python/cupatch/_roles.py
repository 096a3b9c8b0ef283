"""One side of a :class:`cupatch.PatchDataset` (its inputs or its targets): the stacks, their
common dtype, whether they already live on the compute device, and their source table."""

from __future__ import annotations

import numpy as np

from ._backend import is_cupy_array
from ._dtypes import STACK_DTYPES
from .ops import SourceTable

__all__ = ["Role"]


class Role:
    """The stacks of one side of the dataset (inputs or targets) and how to gather them."""

    def __init__(self, stacks, device: str, channels):
        self.stacks = stacks
        self.channels = channels
        self.dtype = np.result_type(*[s.dtype for s in stacks])
        if self.dtype not in STACK_DTYPES:
            raise TypeError(f"the stacks' dtypes {[str(s.dtype) for s in stacks]} have no supported common dtype")
        self.n_channels_out = stacks[0].data_shape[1] if channels is None else len(channels)
        self.resident = all(self._is_resident(s, device) for s in stacks)
        self._table = None

    @staticmethod
    def _is_resident(stack, device: str) -> bool:
        if stack.array is None:
            return False
        return is_cupy_array(stack.array) == (device == "gpu")

    def source_arrays(self) -> list:
        arrays = []
        for s in self.stacks:
            a = s.array
            if a.dtype != self.dtype:  # mixed dtypes: cast once to the common dtype
                a = a.astype(self.dtype)
            arrays.append(a)
        return arrays

    def source_table(self):
        if self._table is None:
            self._table = SourceTable(self.source_arrays())
        return self._table
