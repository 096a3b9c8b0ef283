"""``cupy.cuda.device`` of the stand-in: the emulated device(s)."""

from __future__ import annotations

from . import _ordering
from . import runtime as _runtime


class Device:
    """A CUDA device of the emulated build (``with Device(i):`` makes it current)."""

    def __init__(self, device=None):
        if device is None:
            self._id = _runtime.getDevice()
        elif isinstance(device, Device):
            self._id = device.id
        else:
            self._id = int(device)
        self._device_stack = []

    @property
    def id(self):
        return self._id

    def __int__(self):
        return self._id

    def __enter__(self):
        prev = _runtime.getDevice()
        self._device_stack.append(prev)
        if self._id != prev:
            _runtime.setDevice(self._id)
        return self

    def __exit__(self, *args):
        _runtime.setDevice(self._device_stack.pop())

    def use(self):
        _runtime.setDevice(self._id)

    def synchronize(self):
        _runtime._check_device(self._id)  # every launch has finished when it returns
        _ordering.host_sync_all()

    @property
    def compute_capability(self):
        _runtime._check_device(self._id)
        major, minor = _runtime._COMPUTE_CAPABILITY
        return f"{major}{minor}"

    @property
    def mem_info(self):
        _runtime._check_device(self._id)
        return _runtime.memGetInfo()

    @property
    def attributes(self):
        props = _runtime.getDeviceProperties(self._id)
        return {
            "MaxThreadsPerBlock": props["maxThreadsPerBlock"],
            "WarpSize": props["warpSize"],
            "MultiProcessorCount": props["multiProcessorCount"],
            "ComputeCapabilityMajor": props["major"],
            "ComputeCapabilityMinor": props["minor"],
            "UnifiedAddressing": 1,
        }

    @property
    def pci_bus_id(self):
        _runtime._check_device(self._id)
        return f"0000:00:{self._id:02x}.0"

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self._id

    def __hash__(self):
        return hash(self._id)

    def __lt__(self, other):
        return self._id < other.id

    def __repr__(self):
        return f"<CUDA Device {self._id}>"


def get_device_id():
    return _runtime.getDevice()


__all__ = ["Device", "get_device_id"]
