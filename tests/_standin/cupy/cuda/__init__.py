"""``cupy.cuda`` of the stand-in (see ``tests/_standin/cupy/__init__.py``)."""

from . import device, memory, memory_hook, pinned_memory, runtime, stream  # noqa: F401
from .device import Device, get_device_id  # noqa: F401
from .memory import BaseMemory, Memory, MemoryPointer, MemoryPool, UnownedMemory, alloc  # noqa: F401
from .memory_hook import MemoryHook  # noqa: F401
from .pinned_memory import PinnedMemory, PinnedMemoryPointer, PinnedMemoryPool, alloc_pinned_memory  # noqa: F401
from .stream import Event, ExternalStream, Stream, get_current_stream, get_elapsed_time  # noqa: F401


def is_available():
    """The emulated device is always there."""
    return True


__all__ = [
    "BaseMemory", "Device", "Event", "ExternalStream", "Memory", "MemoryHook", "MemoryPointer", "MemoryPool",
    "PinnedMemory", "PinnedMemoryPointer", "PinnedMemoryPool", "Stream", "UnownedMemory", "alloc",
    "alloc_pinned_memory", "device", "get_current_stream", "get_device_id", "get_elapsed_time", "is_available",
    "memory", "memory_hook", "pinned_memory", "runtime", "stream",
]
