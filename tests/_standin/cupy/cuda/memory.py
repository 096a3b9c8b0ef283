"""``cupy.cuda.memory`` of the stand-in: device memory that is host memory.

Every allocation is a host buffer, registered in a map of "device" address ranges for as
long as the buffer lives, so that pointer queries (``runtime.pointerGetAttributes``), the
memory pool's counters and memory hooks behave like CuPy's, and so that the emulated CUDA
kernels of cupatch can read and write the arrays in place through their pointers.
"""

from __future__ import annotations

import bisect
import ctypes
import threading
import weakref

import numpy

from . import _ordering
from . import memory_hook as _memory_hook
from . import runtime as _runtime

_ALIGNMENT = 512  # CuPy's pool rounds allocations up to 512 bytes

# -- the map of live allocations -----------------------------------------------------------------
_lock = threading.RLock()
_starts: list[int] = []
_regions: dict[int, tuple[int, str, int, object]] = {}  # start -> (end, "device" | "host", device id, accesses)
# id(root buffer) -> the memory object owning it (a view's base chain ends at its root)
_memory_of_root: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _register(start: int, size: int, kind: str, device: int, root, accesses=None) -> None:
    with _lock:
        if start in _regions:
            raise RuntimeError(f"stand-in memory map: {start:#x} is already mapped")
        bisect.insort(_starts, start)
        _regions[start] = (start + size, kind, device, accesses)
    weakref.finalize(root, _unregister, start)


def _unregister(start: int) -> None:
    with _lock:
        if _regions.pop(start, None) is not None:
            del _starts[bisect.bisect_left(_starts, start)]


def _lookup(ptr: int):
    """(kind, device) of the live allocation holding ``ptr``, or None."""
    with _lock:
        i = bisect.bisect_right(_starts, ptr) - 1
        if i < 0:
            return None
        end, kind, device, _ = _regions[_starts[i]]
        return (kind, device) if ptr < end else None


def _region(ptr: int):
    """(start, end, kind, accesses) of the live allocation holding ``ptr``, or None."""
    with _lock:
        i = bisect.bisect_right(_starts, ptr) - 1
        if i < 0:
            return None
        start = _starts[i]
        end, kind, _, accesses = _regions[start]
        return (start, end, kind, accesses) if ptr < end else None


def _access(ptr: int, nbytes: int, write: bool, stream, by: str) -> None:
    """Work on ``stream`` reads or writes ``[ptr, ptr + nbytes)`` of device memory (checked
    for stream order; pinned host memory is accessible but not tracked)."""
    if nbytes <= 0:
        return
    found = _region(ptr)
    if found is None or ptr + nbytes > found[1]:
        where = "outside any device allocation" if found is None else "past the end of its allocation"
        error = _runtime.CUDARuntimeError(700)
        error.add_note(f"{by}: [{ptr:#x}, +{nbytes}) is {where}")
        raise error
    if found[3] is not None:
        found[3].access(stream, ptr, ptr + nbytes, write, by)


def _root(a):
    while isinstance(a, numpy.ndarray) and a.base is not None:
        a = a.base
    return a


def _aligned_host_buffer(size: int) -> numpy.ndarray:
    try:
        raw = numpy.empty(size + _ALIGNMENT, dtype=numpy.uint8)
    except MemoryError:
        raise OutOfMemoryError(size, _default_pool.used_bytes()) from None
    start = (-raw.ctypes.data) % _ALIGNMENT
    return raw[start : start + size]


class OutOfMemoryError(MemoryError):
    def __init__(self, size, total, limit=0):
        self._size, self._total, self._limit = size, total, limit
        msg = f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes"
        if limit:
            msg += f", limit set to: {limit:,} bytes"
        super().__init__(msg + ").")

    def __reduce__(self):
        return (type(self), (self._size, self._total, self._limit))


# -- memory objects ------------------------------------------------------------------------------
class BaseMemory:
    """Memory on the (emulated) device."""

    _ptr = 0
    _size = 0
    _device_id = -1
    _host = None  # numpy uint8 view of the bytes, for array views

    @property
    def ptr(self):
        return self._ptr

    @property
    def size(self):
        return self._size

    @property
    def device_id(self):
        return self._device_id

    @property
    def device(self):
        from .device import Device

        return Device(self._device_id)

    def __int__(self):
        return self._ptr

    def __repr__(self):
        return f"<{type(self).__name__} {self._ptr:#x} size={self._size} device={self._device_id}>"

    def _bytes(self) -> numpy.ndarray:
        if self._host is None:
            raise ValueError(f"{self!r} has no bytes to view")
        return self._host


class Memory(BaseMemory):
    """A device allocation (``cudaMalloc``): host bytes registered as device memory."""

    def __init__(self, size):
        from .stream import _current_stream_ptr  # noqa: PLC0415

        size = int(size)
        self._size = size
        self._device_id = _runtime.getDevice()
        self._accesses = None
        if size > 0:
            self._host = _aligned_host_buffer(size)
            self._ptr = self._host.ctypes.data
            root = _root(self._host)
            self._accesses = _ordering.Accesses(self._ptr, size, _current_stream_ptr(), f"a {size}-byte allocation")
            _register(self._ptr, size, "device", self._device_id, root, self._accesses)
            _memory_of_root[id(root)] = self


class UnownedMemory(BaseMemory):
    """Memory that the stand-in does not own (kept alive through ``owner``)."""

    def __init__(self, ptr, size, owner, device_id=-1):
        ptr, size = int(ptr), int(size)
        if device_id < 0:
            device_id = _runtime.getDevice() if size == 0 else _runtime.pointerGetAttributes(ptr).device
        self._ptr, self._size, self._device_id = ptr, size, int(device_id)
        self._owner = owner

    def _bytes(self):
        if self._host is None:
            if self._size == 0:
                raise ValueError(f"{self!r} has no bytes to view")
            raw = (ctypes.c_uint8 * self._size).from_address(self._ptr)
            self._host = numpy.ctypeslib.as_array(raw)
            _memory_of_root[id(_root(self._host))] = self
        return self._host


class MemoryPointer:
    """Pointer to a place in a (stand-in) device memory buffer."""

    def __init__(self, mem, offset):
        if not isinstance(mem, BaseMemory):
            raise TypeError(f"mem must be a BaseMemory, got {type(mem).__name__}")
        self._mem = mem
        self._offset = int(offset)

    @property
    def mem(self):
        return self._mem

    @property
    def ptr(self):
        return self._mem.ptr + self._offset if self._mem.ptr else 0

    @property
    def device_id(self):
        return self._mem.device_id

    @property
    def device(self):
        return self._mem.device

    def __int__(self):
        return self.ptr

    def __add__(self, offset):
        return MemoryPointer(self._mem, self._offset + int(offset))

    def __iadd__(self, offset):
        self._offset += int(offset)
        return self

    def __sub__(self, offset):
        return self + -int(offset)

    def __isub__(self, offset):
        self._offset -= int(offset)
        return self

    def __repr__(self):
        return f"<MemoryPointer {self.ptr:#x} device={self.device_id}>"

    # The emulated device has finished everything queued before a copy, so copies run now;
    # the synchronous ones are ordered on the legacy default stream, the asynchronous ones on
    # the given (or current) stream, as in CUDA.
    def _copy(self, dst, src, size, stream, sync, label):
        size = int(size)
        if size <= 0:
            return
        if dst is not None:
            _access(dst, size, True, stream, label)
        if src is not None:
            _access(src, size, False, stream, label)

    def copy_from_device(self, src, size):
        self._copy(self.ptr, src.ptr, size, 0, True, "MemoryPointer.copy_from_device")
        ctypes.memmove(self.ptr, src.ptr, int(size))

    def copy_from_device_async(self, src, size, stream=None):
        self._copy(self.ptr, src.ptr, size, _stream_ptr(stream), False, "MemoryPointer.copy_from_device_async")
        ctypes.memmove(self.ptr, src.ptr, int(size))

    def copy_from_host(self, mem, size):
        self._copy(self.ptr, None, size, 0, True, "MemoryPointer.copy_from_host")
        ctypes.memmove(self.ptr, _address(mem), int(size))

    def copy_from_host_async(self, mem, size, stream=None):
        self._copy(self.ptr, None, size, _stream_ptr(stream), False, "MemoryPointer.copy_from_host_async")
        ctypes.memmove(self.ptr, _address(mem), int(size))

    def copy_from(self, mem, size):
        if isinstance(mem, MemoryPointer):
            self.copy_from_device(mem, size)
        else:
            self.copy_from_host(mem, size)

    def copy_from_async(self, mem, size, stream=None):
        if isinstance(mem, MemoryPointer):
            self.copy_from_device_async(mem, size, stream)
        else:
            self.copy_from_host_async(mem, size, stream)

    def copy_to_host(self, mem, size):
        self._copy(None, self.ptr, size, 0, True, "MemoryPointer.copy_to_host")
        ctypes.memmove(_address(mem), self.ptr, int(size))
        _ordering.host_sync(0)

    def copy_to_host_async(self, mem, size, stream=None):
        self._copy(None, self.ptr, size, _stream_ptr(stream), False, "MemoryPointer.copy_to_host_async")
        ctypes.memmove(_address(mem), self.ptr, int(size))

    def memset(self, value, size):
        self._copy(self.ptr, None, size, 0, True, "MemoryPointer.memset")
        ctypes.memset(self.ptr, int(value), int(size))

    def memset_async(self, value, size, stream=None):
        self._copy(self.ptr, None, size, _stream_ptr(stream), False, "MemoryPointer.memset_async")
        ctypes.memset(self.ptr, int(value), int(size))


def _stream_ptr(stream) -> int:
    if stream is not None:
        return int(stream.ptr)
    from .stream import _current_stream_ptr  # noqa: PLC0415

    return _current_stream_ptr()


def _address(mem) -> int:
    if isinstance(mem, ctypes.c_void_p):
        return int(mem.value or 0)
    return int(mem)


# -- the pool ------------------------------------------------------------------------------------
class MemoryPool:
    """Accounting of the stand-in's device allocations (no caching: a freed block is gone).

    Allocations run the memory hooks active in the calling thread (``malloc_*`` and
    ``alloc_*``), frees the hooks active where the last reference goes, like CuPy's pool.
    """

    def __init__(self, allocator=None):
        self._used = 0
        self._limit = 0
        self._lock = threading.Lock()

    def _account(self, size: int, mem_size: int, make):
        from .stream import _current_stream_ptr  # noqa: PLC0415

        device = _runtime.getDevice()
        _ordering.pending.allocating(_current_stream_ptr(), mem_size)
        hooks = _memory_hook._active()
        for h in hooks:
            h.malloc_preprocess(device_id=device, size=size, mem_size=mem_size)
        with self._lock:
            if self._limit and self._used + mem_size > self._limit:
                raise OutOfMemoryError(mem_size, self._used, self._limit)
        for h in hooks:
            h.alloc_preprocess(device_id=device, mem_size=mem_size)
        mem = make()
        for h in hooks:
            h.alloc_postprocess(device_id=device, mem_size=mem_size, mem_ptr=mem.ptr)
        with self._lock:
            self._used += mem_size
        weakref.finalize(mem, self._release, device, mem_size, mem.ptr, id(mem), mem._accesses)
        for h in hooks:
            h.malloc_postprocess(device_id=device, size=size, mem_size=mem_size, mem_ptr=mem.ptr, pmem_id=id(mem))
        return mem

    def _release(self, device, mem_size, mem_ptr, pmem_id, accesses):
        if accesses is not None:
            _ordering.pending.freed(accesses)
        hooks = _memory_hook._active()
        for h in hooks:
            h.free_preprocess(device_id=device, mem_size=mem_size, mem_ptr=mem_ptr, pmem_id=pmem_id)
        with self._lock:
            self._used -= mem_size
        for h in hooks:
            h.free_postprocess(device_id=device, mem_size=mem_size, mem_ptr=mem_ptr, pmem_id=pmem_id)

    def malloc(self, size):
        size = int(size)
        if size == 0:
            return MemoryPointer(Memory(0), 0)
        mem_size = -(-size // _ALIGNMENT) * _ALIGNMENT
        return MemoryPointer(self._account(size, mem_size, lambda: Memory(mem_size)), 0)

    def used_bytes(self):
        return self._used

    def total_bytes(self):
        return self._used

    def free_bytes(self):
        return 0

    def n_free_blocks(self):
        return 0

    def free_all_blocks(self, stream=None):
        pass

    def set_limit(self, size=None, fraction=None):
        if size is not None and fraction is not None:
            raise ValueError("size and fraction cannot be specified at one time")
        if fraction is not None:
            if not 0 <= fraction <= 1:
                raise ValueError(f"memory limit fraction out of range: {fraction}")
            size = int(fraction * _runtime.memGetInfo()[1])
        self._limit = int(size or 0)

    def get_limit(self):
        return self._limit


_default_pool = MemoryPool()


def alloc(size):
    """Allocate ``size`` bytes from the default pool."""
    return _default_pool.malloc(size)


__all__ = ["BaseMemory", "Memory", "MemoryPointer", "MemoryPool", "OutOfMemoryError", "UnownedMemory", "alloc"]
