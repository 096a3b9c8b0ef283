"""Input sources: the images ``predict_tiled`` reads, and the gathers that cut their tiles.

:func:`open_image` turns what a user passes (an array, a stack, a path) into an
``ImageStack``. A source gathers one batch of tiles with one ``gather_patches`` launch
(channel selection and normalisation fused): :class:`WholeSource` from a whole image
resident on the working device, :class:`RowSource` from per-row slabs of an image that is
not (a lazy file, or a host array too large to upload whole).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._backend import is_cupy_array
from .._dtypes import STACK_DTYPES
from .._layouts import n_patch_columns, patch_columns
from ..ops import SourceTable, gather_patches
from ..stacks import as_stack

__all__ = ["RowSource", "WholeSource", "open_image", "open_images"]


def open_image(item, axes: str):
    """An ImageStack for an array, a path or a stack (``.npy`` files are memory-mapped)."""
    return as_stack(item, axes)


def open_images(data, axes: str) -> tuple[list, bool]:
    """``(stacks, is_list)`` for one image or a list of images."""
    if isinstance(data, (list, tuple)):
        if not data:
            raise ValueError("data is an empty list; give at least one image")
        return [open_image(item, axes) for item in data], True
    return [open_image(data, axes)], False


class WholeSource:
    """Gathers from a whole SC(Z)YX array resident on the working device."""

    def __init__(self, array, tile, channels, scale, shift):
        self.sources = SourceTable([array])
        self.resident_bytes = int(array.nbytes)  # device memory the source holds
        self.tile, self.channels, self.scale, self.shift = tile, channels, scale, shift

    def gather(self, table: np.ndarray, tile_index: np.ndarray):
        return gather_patches(
            self.sources,
            np.ascontiguousarray(table[:, : n_patch_columns(len(self.tile))]),
            self.tile,
            channels=self.channels,
            scale=self.scale,
            shift=self.shift,
        )


class RowSource:
    """Gathers from per-row input slabs (the read window of one row of tiles).

    Used when the input is not resident on the working device (a lazy file, or a host
    array too large to upload whole): each row of tiles along the first spatial axis needs
    only ``tile[0]`` input rows, read (zero-padded) and uploaded once.
    """

    resident_bytes = 0  # only a few rows are on the device at a time

    def __init__(self, stack, xp, tile, channels, scale, shift, row_coords, n_per_sample, row_size):
        self.stack, self.xp, self.tile = stack, xp, tile
        # a list: NumPy reads a tuple index as one index per axis
        self.channels = None if channels is None else list(channels)
        self.scale, self.shift = scale, shift
        self.row_coords = row_coords
        self.n_per_sample, self.row_size = n_per_sample, row_size
        self.cache: dict[tuple[int, int], Any] = {}

    def _read_rows(self, sample_idx: int, coord0: int):
        stack, t0 = self.stack, self.tile[0]
        rest = tuple(stack.data_shape[3:])
        array = stack.array
        if array is not None and not is_cupy_array(array):
            sample = array[sample_idx]
            if self.channels is not None:
                sample = sample[self.channels]
            n0 = sample.shape[1]
            lo, hi = max(coord0, 0), min(coord0 + t0, n0)
            if lo == coord0 and hi == coord0 + t0:
                block = np.ascontiguousarray(sample[:, lo:hi])
            else:
                block = np.zeros((sample.shape[0], t0, *rest), dtype=sample.dtype)
                block[:, lo - coord0 : hi - coord0] = sample[:, lo:hi]
        else:
            block = stack.read_region(sample_idx, (coord0,) + (0,) * len(rest), (t0, *rest), channels=self.channels)
        block = np.asarray(block)
        if block.dtype not in STACK_DTYPES:
            block = block.astype(np.float32)
        return self.xp.asarray(block[None])

    def gather(self, table: np.ndarray, tile_index: np.ndarray):
        ndim = len(self.tile)
        data_col, sample_col, row_col = (patch_columns(ndim)[name].start for name in ("data_idx", "sample_idx", "coords"))
        samples = tile_index // self.n_per_sample
        rows = (tile_index % self.n_per_sample) // self.row_size
        keys = list(dict.fromkeys(zip(samples.tolist(), rows.tolist())))
        for key in keys:
            if key not in self.cache:
                self.cache[key] = self._read_rows(key[0], int(self.row_coords[key[1]]))
        # Later batches never go back to earlier rows (C order): drop them.
        for old in [k for k in self.cache if k < keys[0]]:
            del self.cache[old]
        slot = {key: i for i, key in enumerate(keys)}
        specs = np.array(table[:, : n_patch_columns(ndim)], dtype=np.int64, copy=True)
        # each row slab is its own single-sample source, starting at the row's first input row
        specs[:, data_col] = [slot[k] for k in zip(samples.tolist(), rows.tolist())]
        specs[:, sample_col] = 0
        specs[:, row_col] -= self.row_coords[rows]
        return gather_patches([self.cache[k] for k in keys], specs, self.tile, scale=self.scale, shift=self.shift)
