"""Where a stack's samples live: the placements, the host <-> GPU moves, the ``as_stack`` policy.

``"gpu"`` (uploaded once in the stored dtype), ``"cpu"`` (host memory; memory maps stay
mapped), ``"disk"`` (read region by region) or ``"auto"``. Stacks move with their
``to_device`` method, which uses :func:`move_array`; :func:`place` is the policy
:func:`cupatch.stacks.as_stack` applies. Nothing here knows the kinds of stack, so every
stack module may use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._backend import is_cupy_array, require_gpu
from .._validation import look_up_option

__all__ = ["DEVICE_PLACEMENTS", "PLACEMENTS", "check_placement", "move_array", "must_move", "place", "upload_to_gpu"]

#: Where a stack's samples live: on the GPU, in host memory, or read from storage on demand.
PLACEMENTS = ("auto", "gpu", "cpu", "disk")
#: The placements ``to_device`` moves to.
DEVICE_PLACEMENTS = ("gpu", "cpu")


def check_placement(placement: str) -> str:
    """``placement`` when it is one of :data:`PLACEMENTS` (ValueError otherwise)."""
    return look_up_option(placement, PLACEMENTS, "placement")


def must_move(placement: str, current: str) -> bool:
    """Check a ``to_device`` target (``"gpu"`` or ``"cpu"``): True when data at ``current``
    must move there, in which case a ``"gpu"`` target must be usable."""
    look_up_option(placement, DEVICE_PLACEMENTS, "to_device placement")
    if placement == current:
        return False
    if placement == "gpu":
        require_gpu()
    return True


def upload_to_gpu(array) -> Any:
    """Copy a host array into a new CuPy array (C order) on the current device.

    The copy is queued on CuPy's current stream straight from the (pageable) host memory.
    ``cupy.asarray`` would first copy the whole array into a pinned buffer from CuPy's pinned
    memory pool, which keeps that page-locked host memory cached for the rest of the process:
    for whole stacks, gigabytes of RAM nobody can use. From pageable memory the driver stages
    the copy itself and returns once the host data have been read, so ``array`` may be changed
    or freed as soon as this returns.
    """
    import cupy  # optional dependency, only on the GPU path

    host = np.ascontiguousarray(array)
    device_array = cupy.empty(host.shape, dtype=host.dtype)
    if host.size:
        device_array.set(host, stream=cupy.cuda.get_current_stream())
    return device_array


def move_array(array, placement: str):
    """``array`` (NumPy, memory map or CuPy) on the GPU or on the host, in its stored dtype."""
    if placement == "gpu":
        return array if is_cupy_array(array) else upload_to_gpu(array)  # one upload, stored dtype
    return array.get() if is_cupy_array(array) else array


def place(stack, placement: str):
    """The stack ``as_stack`` returns for ``placement``.

    ``"gpu"``/``"cpu"`` move it there; ``"auto"`` keeps it where it is, except that a stack
    whose samples can be mapped into memory at no cost (``maps_in_place``, e.g. an
    uncompressed TIFF file) goes to ``"cpu"``; ``"disk"`` keeps it, refusing GPU arrays.
    """
    if placement in DEVICE_PLACEMENTS:
        return stack.to_device(placement)
    if placement == "auto":
        return stack.to_device("cpu") if getattr(stack, "maps_in_place", False) else stack
    if stack.placement == "gpu":  # "disk"
        raise ValueError("placement='disk' is not available for GPU (CuPy) arrays")
    return stack
