"""``cupy.cuda.stream`` of the stand-in: streams and events of the emulated device.

Kernels of the emulated build run to completion when launched, so streams and events only
keep the book CuPy keeps: the current stream of each thread and device (``with stream:``
pushes, leaving pops), a unique non-zero handle per created stream (0 is the legacy null
stream, 2 the per-thread default stream), and checks that handles and events are real.
"""

from __future__ import annotations

import itertools
import threading
import time
import warnings
import weakref

from . import _ordering
from . import runtime as _runtime

_thread_local = threading.local()
_handles = itertools.count(1)
_handle_lock = threading.Lock()
_stream_flags: dict[int, tuple[int, int]] = {}  # live stream handle -> (flags, priority)


def _new_handle(base: int) -> int:
    with _handle_lock:
        return base + 0x100 * next(_handles)


def _check_handle(ptr: int) -> int:
    """A stream handle the emulated device knows (CUDA: cudaErrorInvalidResourceHandle)."""
    ptr = int(ptr)
    if ptr in (0, _runtime.streamLegacy, _runtime.streamPerThread) or ptr in _stream_flags:
        return ptr
    raise _runtime.CUDARuntimeError(400)


class _ThreadLocal:
    def __init__(self):
        n = _runtime.getDeviceCount()
        default = Stream.null
        self.current_stream = [default] * n
        self.current_device_id_stack: list[int] = []
        self.current_stream_stack = [[default] for _ in range(n)]

    @staticmethod
    def get():
        tls = getattr(_thread_local, "tls", None)
        if tls is None:
            tls = _thread_local.tls = _ThreadLocal()
        return tls

    def push_stream(self, stream, device_id):
        self.current_stream_stack[device_id].append(stream)
        self.current_device_id_stack.append(device_id)
        self.set_current_stream(stream)

    def pop_stream(self):
        device_id = self.current_device_id_stack.pop()
        self.current_stream_stack[device_id].pop()
        self.set_current_stream(self.current_stream_stack[device_id][-1])

    def set_current_stream(self, stream):
        device_id = stream.device_id
        if device_id == -1:
            device_id = _runtime.getDevice()
        self.current_stream[device_id] = stream

    def get_current_stream(self, device_id=-1):
        if device_id == -1:
            device_id = _runtime.getDevice()
        return self.current_stream[_runtime._check_device(device_id)]


def get_current_stream(device_id=-1):
    """The current stream of this thread on ``device_id`` (the current device by default)."""
    return _ThreadLocal.get().get_current_stream(device_id)


def _current_stream_ptr() -> int:
    return int(get_current_stream().ptr)


class Event:
    """CUDA event, a synchronization point of CUDA streams."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.ptr = 0
        if interprocess and not disable_timing:
            raise ValueError("Timing must be disabled for interprocess events")
        self._timing = not disable_timing
        self._block = bool(block)
        self._recorded_on = None  # handle of the stream of the last record
        self._seen = None  # the stream-order snapshot of the last record
        self._time = None
        self.ptr = _new_handle(0x7E7E_0000_0000)

    @property
    def done(self):
        _ordering.host_sync(seen=self._seen or {})  # the host now knows the recorded work is done
        return True  # the emulated device has finished everything queued

    def record(self, stream=None):
        ptr = _current_stream_ptr() if stream is None else _check_handle(stream.ptr)
        self._recorded_on = ptr
        self._seen = _ordering.snapshot(ptr)
        self._time = time.perf_counter()

    def synchronize(self):
        _ordering.host_sync(seen=self._seen or {})

    def __repr__(self):
        return f"<Event {self.ptr:#x}>"


def get_elapsed_time(start_event, end_event):
    """Milliseconds between two recorded timing events."""
    for e in (start_event, end_event):
        if not isinstance(e, Event):
            raise TypeError(f"expected an Event, got {type(e).__name__}")
        if not e._timing or e._time is None:
            raise _runtime.CUDARuntimeError(400)
    return (end_event._time - start_event._time) * 1000.0


def _check_stream_device_match(device_id):
    curr = _runtime.getDevice()
    if device_id == -1:
        device_id = curr
    if device_id != curr:
        raise RuntimeError(
            f"The device that the stream is created on ({device_id}) does not match with the current device ({curr})"
        )
    return device_id


class _BaseStream:
    """CUDA stream (``ptr``: raw handle, ``device_id``: device it was created on or -1)."""

    def __init__(self, ptr, device_id):
        self.ptr = ptr
        self.device_id = device_id

    def __eq__(self, other):
        if isinstance(other, _BaseStream):
            return self.ptr == other.ptr
        return False

    def __hash__(self):
        return self.ptr

    def __enter__(self):
        tls = _ThreadLocal.get()
        tls.push_stream(self, _check_stream_device_match(self.device_id))
        return self

    def __exit__(self, *args):
        _ThreadLocal.get().pop_stream()

    def __repr__(self):
        return f"<{type(self).__name__} {self.ptr} (device {self.device_id})>"

    def __cuda_stream__(self):
        return (0, self.ptr)

    def use(self):
        _check_stream_device_match(self.device_id)
        _ThreadLocal.get().set_current_stream(self)
        return self

    @property
    def done(self):
        _ordering.host_sync(_check_handle(self.ptr))
        return True

    def synchronize(self):
        _ordering.host_sync(_check_handle(self.ptr))

    def add_callback(self, callback, arg):
        _check_handle(self.ptr)
        callback(self, 0, arg)

    def launch_host_func(self, callback, arg):
        _check_handle(self.ptr)
        callback(arg)

    def record(self, event=None):
        if event is None:
            event = Event()
        elif not isinstance(event, Event):
            raise TypeError(f"record() needs a cupy.cuda.Event, got {type(event).__name__}")
        event.record(self)
        return event

    def wait_event(self, event):
        if not isinstance(event, Event):
            raise TypeError(f"wait_event() needs a cupy.cuda.Event, got {type(event).__name__}")
        _ordering.wait(_check_handle(self.ptr), event._seen)

    def is_capturing(self):
        _check_handle(self.ptr)
        return False

    @property
    def is_non_blocking(self):
        flags, _ = _stream_flags.get(_check_handle(self.ptr), (_runtime.streamDefault, 0))
        return (flags & _runtime.streamNonBlocking) != 0

    @property
    def priority(self):
        _, priority = _stream_flags.get(_check_handle(self.ptr), (_runtime.streamDefault, 0))
        return priority


class Stream(_BaseStream):
    """CUDA stream (``Stream.null``: the legacy default stream, ``Stream.ptds``: the
    per-thread default stream; otherwise a new stream with a unique handle)."""

    null = None
    ptds = None

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        if null:
            ptr, device_id = 0, -1
        elif ptds:
            ptr, device_id = _runtime.streamPerThread, -1
        else:
            flags = _runtime.streamNonBlocking if non_blocking else _runtime.streamDefault
            ptr = _new_handle(0x5E5E_0000_0000)
            device_id = _runtime.getDevice()
            _stream_flags[ptr] = (flags, 0 if priority is None else int(priority))
            _ordering.new_stream(ptr, blocking=not non_blocking)
            weakref.finalize(self, _stream_flags.pop, ptr, None)
        super().__init__(ptr, device_id)

    @classmethod
    def from_external(cls, obj):
        try:
            result = obj.__cuda_stream__()
        except AttributeError:
            raise AttributeError(
                f"Object of type {type(obj).__name__} does not implement the CUDA stream protocol (__cuda_stream__ method)"
            ) from None
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError(f"__cuda_stream__() must return a 2-tuple of (version, stream_ptr), got {type(result).__name__}")
        version, stream_ptr = result
        if not isinstance(version, int) or not isinstance(stream_ptr, int):
            raise TypeError(
                f"__cuda_stream__() must return (int, int), got ({type(version).__name__}, {type(stream_ptr).__name__})"
            )
        if version != 0:
            raise ValueError(f"__cuda_stream__() returned unsupported version {version}, only version 0 is supported")
        stream = cls.__new__(cls)
        _BaseStream.__init__(stream, stream_ptr, _runtime.getDevice())
        stream._foreign_stream_ref = obj
        return stream


class ExternalStream(_BaseStream):
    """CUDA stream not managed by CuPy (deprecated in CuPy 14, as here)."""

    def __init__(self, ptr, device_id=-1):
        warnings.warn(
            "ExternalStream is deprecated. Use Stream.from_external() instead to interoperate with external streams "
            "that implement the CUDA stream protocol.",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(ptr, device_id)


Stream.null = Stream(null=True)
Stream.ptds = Stream(ptds=True)


__all__ = ["Event", "ExternalStream", "Stream", "get_current_stream", "get_elapsed_time"]
