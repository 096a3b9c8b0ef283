"""``cupy.cuda.runtime`` of the stand-in: the CUDA runtime of one emulated device.

The device is the emulated CUDA build of cupatch (its kernels run on the host), so "device
memory" is host memory that the stand-in hands out and keeps a map of: pointer queries
answer from that map, and memory sizes come from the host.
"""

from __future__ import annotations

import os
import threading

# -- constants (same values as CUDA's and CuPy's) ----------------------------------------------
memoryTypeUnregistered = 0
memoryTypeHost = 1
memoryTypeDevice = 2
memoryTypeManaged = 3
streamDefault = 0
streamNonBlocking = 1
streamLegacy = 1
streamPerThread = 2
eventDefault = 0
eventBlockingSync = 1
eventDisableTiming = 2
eventInterprocess = 4
cudaInvalidDeviceId = -2
cudaCpuDeviceId = -1
is_hip = False

#: what ``cupatch._core.cuda_runtime_version()`` reports in the emulated build
_RUNTIME_VERSION = 13000
_DRIVER_VERSION = 13000
# as many devices as the emulated build reports (its knob, default 1); they share host memory
_DEVICE_COUNT = int(os.environ.get("CUPATCH_EMULATE_DEVICES", "1") or 1)
_COMPUTE_CAPABILITY = (9, 0)

_ERRORS = {
    1: ("cudaErrorInvalidValue", "invalid argument"),
    100: ("cudaErrorNoDevice", "no CUDA-capable device is detected"),
    2: ("cudaErrorMemoryAllocation", "out of memory"),
    101: ("cudaErrorInvalidDevice", "invalid device ordinal"),
    400: ("cudaErrorInvalidResourceHandle", "invalid resource handle"),
    600: ("cudaErrorNotReady", "device not ready"),
    700: ("cudaErrorIllegalAddress", "an illegal memory access was encountered"),
}


class CUDARuntimeError(RuntimeError):
    """A CUDA runtime call failed (``status`` is the ``cudaError_t`` value)."""

    def __init__(self, status):
        self.status = int(status)
        name, text = _ERRORS.get(self.status, ("cudaErrorUnknown", "unknown error"))
        super().__init__(f"{name}: {text}")

    def __reduce__(self):
        return (type(self), (self.status,))


class PointerAttributes:
    """What ``cudaPointerGetAttributes`` reports for a pointer."""

    def __init__(self, device, devicePointer, hostPointer, type=-1):
        self.device = int(device)
        self.devicePointer = int(devicePointer)
        self.hostPointer = int(hostPointer)
        self.type = int(type)

    def __repr__(self):
        return (f"PointerAttributes(device={self.device}, devicePointer={self.devicePointer:#x}, "
                f"hostPointer={self.hostPointer:#x}, type={self.type})")


# -- devices ------------------------------------------------------------------------------------
_thread = threading.local()


def _check_device(device):
    device = int(device)
    if not 0 <= device < _DEVICE_COUNT:
        raise CUDARuntimeError(101)
    return device


def getDeviceCount():
    if _DEVICE_COUNT <= 0:
        raise CUDARuntimeError(100)  # cudaErrorNoDevice, as without a GPU
    return _DEVICE_COUNT


def getDevice():
    return getattr(_thread, "device", 0)


def setDevice(device):
    _thread.device = _check_device(device)


def deviceSynchronize():
    """Everything the emulated device runs has finished when the launch returns."""
    from . import _ordering  # noqa: PLC0415

    _ordering.host_sync_all()


def runtimeGetVersion():
    return _RUNTIME_VERSION


def driverGetVersion():
    return _DRIVER_VERSION


def _host_memory():
    """(available, total) bytes of host memory, the emulated device's memory."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    return min(available, total), total


def memGetInfo():
    """(free, total) bytes of the current device."""
    return _host_memory()


def getDeviceProperties(device):
    device = _check_device(device)
    _, total = _host_memory()
    major, minor = _COMPUTE_CAPABILITY
    return {
        "name": b"cupatch emulated CUDA device (host)",
        "totalGlobalMem": total,
        "sharedMemPerBlock": 48 * 1024,
        "regsPerBlock": 65536,
        "warpSize": 32,
        "maxThreadsPerBlock": 1024,
        "maxThreadsDim": (1024, 1024, 64),
        "maxGridSize": (2**31 - 1, 65535, 65535),
        "clockRate": 0,
        "memoryClockRate": 0,
        "memoryBusWidth": 0,
        "l2CacheSize": 0,
        "multiProcessorCount": os.cpu_count() or 1,
        "major": major,
        "minor": minor,
        "pciBusID": 0,
        "pciDeviceID": device,
        "pciDomainID": 0,
        "unifiedAddressing": 1,
        "concurrentKernels": 1,
    }


def pointerGetAttributes(ptr):
    """Attributes of ``ptr`` from the stand-in's map of its device and pinned allocations."""
    from . import memory  # noqa: PLC0415 - the map lives with the allocator

    found = memory._lookup(int(ptr))
    if found is None:
        return PointerAttributes(cudaInvalidDeviceId, 0, 0, memoryTypeUnregistered)
    kind, device = found
    if kind == "host":
        return PointerAttributes(device, ptr, ptr, memoryTypeHost)
    return PointerAttributes(device, ptr, 0, memoryTypeDevice)


__all__ = [
    "CUDARuntimeError", "PointerAttributes", "cudaCpuDeviceId", "cudaInvalidDeviceId", "deviceSynchronize",
    "driverGetVersion", "eventBlockingSync", "eventDefault", "eventDisableTiming", "eventInterprocess", "getDevice",
    "getDeviceCount", "getDeviceProperties", "is_hip", "memGetInfo", "memoryTypeDevice", "memoryTypeHost",
    "memoryTypeManaged", "memoryTypeUnregistered", "pointerGetAttributes", "runtimeGetVersion", "setDevice",
    "streamDefault", "streamLegacy", "streamNonBlocking", "streamPerThread",
]
