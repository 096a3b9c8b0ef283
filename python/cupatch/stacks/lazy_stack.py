"""Stacks read region by region from an array-like in its original axis order.

:class:`LazyStack` is the base of the file-backed stacks (TIFF, Zarr); :class:`LazyArrayStack`
is the ``"disk"`` placement of an in-memory array. Only the bytes, pages or chunks a region
covers are read; ``to_device`` reads every sample once.
"""

from __future__ import annotations

import numpy as np

from .array_stack import ArrayStack
from .axes import reshape_array, sample_index
from .base import BaseStack
from .placement import must_move

__all__ = ["LazyArrayStack", "LazyStack"]


class LazyStack(BaseStack):
    """A stack read region by region from an array-like in its *original* axis order.

    ``backing`` needs ``shape``, ``dtype`` and basic slicing with ints and slices (a NumPy
    memory map, a Zarr array, tifffile's Zarr view of a TIFF): a region read touches only the
    bytes, pages or chunks that the region covers.
    """

    placement = "disk"

    def _init_lazy(self, backing, source: str, axes: str, metadata=None) -> None:
        self._backing = backing
        self._init_metadata(source, axes, backing.shape, backing.dtype, metadata)

    def to_device(self, placement: str) -> ArrayStack:
        """Every sample read into host memory, then placed on ``"gpu"`` or ``"cpu"``."""
        must_move(placement, self.placement)  # checks the target (always a move from disk)
        return ArrayStack(self._load_all(), **self._metadata_kwargs()).to_device(placement)

    def _read_box(self, sample_idx, channels, box):
        axes = self.original_axes
        samples = sample_index(sample_idx, axes, self.original_data_shape)
        spatial = dict(zip("ZYX"[3 - len(box) :], box))
        if channels is None:
            chan_slice, chan_pick = slice(None), None
        else:
            lo, hi = min(channels), max(channels) + 1
            chan_slice, chan_pick = slice(lo, hi), [c - lo for c in channels]
        index, kept = [], []
        for a in axes:
            if a in samples:
                index.append(samples[a])
            elif a == "C":
                index.append(chan_slice)
                kept.append(a)
            else:
                index.append(spatial[a])
                kept.append(a)
        region = self._read_original(tuple(index))
        order = [kept.index(a) for a in "CZYX" if a in kept]
        region = region.transpose(order)
        if "C" not in kept:
            region = region[None]
        elif chan_pick is not None and chan_pick != list(range(hi - lo)):
            region = region[chan_pick]
        return region

    def _read_original(self, index: tuple) -> np.ndarray:
        """``backing[index]`` as a NumPy array (index: ints and slices, original axis order)."""
        return np.asarray(self._backing[index])

    def _load_all(self):
        return np.ascontiguousarray(reshape_array(np.asarray(self._backing[...]), self.original_axes))


class LazyArrayStack(LazyStack):
    """A host array (or any sliceable array-like) in its original axes, read region by region.

    This is the ``"disk"`` placement of an in-memory NumPy array: nothing is copied or
    reshaped up front, which mirrors how file-backed stacks are fed.
    """

    def __init__(self, array, axes: str, *, source: str = "array") -> None:
        self._init_lazy(array, source, axes)
