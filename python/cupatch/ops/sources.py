"""``SourceTable``: the gather sources validated and described once, reused every batch.

The table holds one native descriptor row per source (pointer, SC(Z)YX shape, element
strides; layout in :mod:`cupatch._layouts`) and, on the GPU, a device copy of it and the
stream point at which the sources are ready.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _backend, _core
from .._dtypes import DTYPE_CODES, SOURCE_DTYPES, dtype_names
from .._layouts import SOURCE_COLUMNS
from ._arrays import EXTENT_LIMIT, as_backend_array, element_strides, is_array_list, ptr

__all__ = ["SourceTable"]


class SourceTable:
    """Validated, reusable description of the gather sources.

    Parameters
    ----------
    sources : sequence of arrays
        SC(Z)YX arrays, all NumPy or all on the current GPU (CuPy or any
        ``__cuda_array_interface__`` / CUDA DLPack producer), with the same dtype (one of
        :data:`cupatch.ops.SOURCE_DTYPES`), the same number of channels and the same number
        of spatial dimensions (2 or 3). Any strides are accepted.

    Building a table validates the sources once and, on the GPU, uploads their small
    descriptor table once; pass the same ``SourceTable`` to :func:`gather_patches` for every
    batch. The table keeps the arrays alive.

    Attributes
    ----------
    arrays : list
        The sources (GPU ones as CuPy arrays).
    ndim : int
        Spatial dimensions (2 or 3).
    n_channels : int
        Channels per source.
    dtype : numpy.dtype
        Element type of the sources.
    is_gpu : bool
        Whether the sources live on the GPU.
    shapes : list of tuple
        Full SC(Z)YX shape of each source.
    """

    def __init__(self, sources: Sequence[Any]):
        if isinstance(sources, SourceTable):
            raise TypeError("sources is already a SourceTable; pass it directly")
        if not is_array_list(sources):
            raise TypeError("sources must be a list of SC(Z)YX arrays (wrap a single array in a list)")
        if len(sources) == 0:
            raise ValueError("sources must contain at least one array")
        self.is_gpu = _backend.is_gpu_array(sources[0])
        self.xp = _backend.require_gpu("gather_patches") if self.is_gpu else np
        arrays = [as_backend_array(a, self.xp, f"sources[{i}]") for i, a in enumerate(sources)]
        first = arrays[0]
        if first.ndim not in (4, 5):
            raise ValueError(f"sources must be SCYX (4-D) or SCZYX (5-D) arrays, sources[0] has shape {first.shape}")
        dtype = np.dtype(first.dtype)
        if dtype not in DTYPE_CODES:
            raise TypeError(f"sources dtype {dtype} is not supported (supported: {dtype_names(SOURCE_DTYPES)})")
        for i, a in enumerate(arrays):
            if a.ndim != first.ndim:
                raise ValueError(f"sources must all have the same number of dimensions: sources[{i}] has shape {a.shape}, sources[0] {first.shape}")
            if np.dtype(a.dtype) != dtype:
                raise TypeError(f"sources must all have the same dtype: sources[{i}] is {a.dtype}, sources[0] is {dtype}")
            if a.shape[1] != first.shape[1]:
                raise ValueError(f"sources must all have the same number of channels: sources[{i}] has {a.shape[1]}, sources[0] has {first.shape[1]}")
        self.arrays = arrays
        self.ndim = first.ndim - 2
        self.n_channels = int(first.shape[1])
        self.dtype = dtype
        self.dtype_code = DTYPE_CODES[dtype]
        if first.shape[1] < 1:
            raise ValueError(f"sources must have at least one channel, sources[0] has shape {first.shape}")
        self.shapes = [tuple(int(s) for s in a.shape) for a in arrays]
        for i, shape in enumerate(self.shapes):
            if max(shape) >= EXTENT_LIMIT:
                raise ValueError(f"sources[{i}] has an extent of 2**60 or more: {shape}")
        self.n_samples = np.array([s[0] for s in self.shapes], dtype=np.int64)
        self.table = self._descriptors(arrays, dtype.itemsize)
        self.device_id = None
        self.device_table = None
        self._device_cache: dict = {}
        if self.is_gpu:
            self.device_id = int(self.xp.cuda.Device().id)
            self.device_table = self.device_copy(self.table)
            # The sources are ready on this stream (as_cupy made it wait for their producers'
            # streams); launches on other streams wait for this point first.
            stream = self.xp.cuda.get_current_stream()
            self._stream_ptr = int(stream.ptr)
            self._ready = stream.record()

    def _descriptors(self, arrays, itemsize: int) -> np.ndarray:
        """One native source row per array (2-D sources get a Z extent of 1, Z stride 0)."""
        table = np.zeros((len(arrays), _core.SOURCE_FIELDS), dtype=np.int64)
        for i, a in enumerate(arrays):
            strides = element_strides(a.strides, itemsize, f"sources[{i}]")
            shape = list(a.shape)
            if self.ndim == 2:  # (S, C, Y, X) -> (S, C, 1, Y, X) with a zero Z stride
                shape.insert(2, 1)
                strides.insert(2, 0)
            table[i, SOURCE_COLUMNS["data"]] = ptr(a) if a.size else 0
            table[i, SOURCE_COLUMNS["shape"]] = shape
            table[i, SOURCE_COLUMNS["strides"]] = strides
        return table

    def order_current_stream(self) -> None:
        """Make CuPy's current stream wait (on the device, no host synchronisation) until the
        sources are ready, when it is not the stream the table was built on."""
        if not self.is_gpu:
            return
        stream = self.xp.cuda.get_current_stream()
        if int(stream.ptr) != self._stream_ptr:
            stream.wait_event(self._ready)

    def device_copy(self, host: np.ndarray):
        """Device copy of a small per-call table (source descriptors, channels, affine) for
        CuPy's current stream, cached by content so loops over batches upload each distinct
        table once.

        Copies are made and cached per stream: the upload is asynchronous on the stream
        current when it is made, so a kernel on another stream could read it before it
        lands, and a copy dropped from the cache returns to the memory pool of the stream it
        was allocated on, which reuses it only in that stream's order.
        """
        stream = int(self.xp.cuda.get_current_stream().ptr)
        key = (stream, host.dtype.str, host.shape, host.tobytes())
        cached = self._device_cache.get(key)
        if cached is None:
            if len(self._device_cache) >= 64:
                self._device_cache.pop(next(iter(self._device_cache)))
            cached = self._device_cache[key] = self.xp.asarray(host)
        return cached

    def __len__(self) -> int:
        return len(self.arrays)

    def __repr__(self) -> str:
        where = f"GPU {self.device_id}" if self.is_gpu else "CPU"
        return f"SourceTable({len(self)} sources, {self.ndim}-D, {self.n_channels} channels, {self.dtype}, {where})"
