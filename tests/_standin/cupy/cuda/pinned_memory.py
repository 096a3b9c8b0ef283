"""``cupy.cuda.pinned_memory`` of the stand-in: page-locked host memory (plain host memory
here, registered as pinned so that pointer queries report host memory)."""

from __future__ import annotations

import numpy

from . import memory as _memory
from . import runtime as _runtime


class PinnedMemory:
    """Pinned memory allocation on host."""

    def __init__(self, size, flags=0):
        size = int(size)
        self._size = size
        self._ptr = 0
        self._host = None
        if size > 0:
            self._host = _memory._aligned_host_buffer(size)
            self._ptr = self._host.ctypes.data
            _memory._register(self._ptr, size, "host", _runtime.getDevice(), _memory._root(self._host))

    def __int__(self):
        return self._ptr


class PinnedMemoryPointer:
    """Pointer to a place in a pinned host buffer."""

    def __init__(self, mem, offset):
        self._mem = mem
        self._offset = int(offset)

    @property
    def mem(self):
        return self._mem

    @property
    def ptr(self):
        return self._mem._ptr + self._offset if self._mem._ptr else 0

    def size(self):
        return self._mem._size - self._offset

    def __int__(self):
        return self.ptr

    def _host_bytes(self) -> numpy.ndarray:
        if self._mem._host is None:
            return numpy.empty(0, numpy.uint8)
        return self._mem._host[self._offset :]


class PinnedMemoryPool:
    """Pinned host memory (no caching: a freed block is gone)."""

    def __init__(self, allocator=None):
        pass

    def malloc(self, size):
        return PinnedMemoryPointer(PinnedMemory(size), 0)

    def free_all_blocks(self):
        pass

    def n_free_blocks(self):
        return 0


_default_pool = PinnedMemoryPool()


def alloc_pinned_memory(size):
    """Allocate ``size`` bytes of pinned host memory from the default pinned pool."""
    return _default_pool.malloc(size)


__all__ = ["PinnedMemory", "PinnedMemoryPointer", "PinnedMemoryPool", "alloc_pinned_memory"]
