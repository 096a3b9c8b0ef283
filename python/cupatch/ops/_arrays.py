"""Argument conversion shared by gather and stitch: backend arrays, pointers, spec tables.

NumPy arguments stay NumPy on the CPU path; GPU arguments (CuPy, CUDA Array Interface,
CUDA DLPack) become CuPy arrays through :func:`cupatch._backend.as_cupy`, which honours
their producers' streams. Mixing the two raises TypeError naming the argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _backend
from .._validation import EXTENT_LIMIT  # re-exported: the limit is defined once

__all__ = [
    "EXTENT_LIMIT",
    "FLOAT32",
    "as_backend_array",
    "byte_range",
    "device_argument",
    "element_strides",
    "host_array",
    "is_array_list",
    "memory_overlaps",
    "ptr",
    "spatial3",
    "spec_table",
]

FLOAT32 = np.dtype(np.float32)


def spatial3(shape: Sequence[int]) -> tuple[int, int, int]:
    """(Z, Y, X) with Z = 1 for 2-D."""
    return (1, *shape) if len(shape) == 2 else tuple(shape)  # type: ignore[return-value]


def ptr(a: Any) -> int:
    """Address of the first element of a NumPy or CuPy array."""
    if isinstance(a, np.ndarray):
        return int(a.__array_interface__["data"][0])
    return int(a.data.ptr)


def byte_range(a: Any) -> tuple[int, int]:
    """``[low, high)``: the bytes an array's elements occupy, for any strides (negative too)."""
    start = ptr(a)
    low = start + sum((n - 1) * st for n, st in zip(a.shape, a.strides) if st < 0)
    high = start + sum((n - 1) * st for n, st in zip(a.shape, a.strides) if st > 0) + a.itemsize
    return low, high


def memory_overlaps(a: Any, b: Any) -> bool:
    """True when two arrays (both NumPy, or both on the GPU) may share an element's memory.

    NumPy arrays are compared exactly (``np.shares_memory``; when that is too costly to
    decide, assumed to overlap); GPU arrays by the device address ranges their elements span.
    """
    if a.size == 0 or b.size == 0:
        return False
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        try:
            return bool(np.shares_memory(a, b, max_work=10**6))
        except getattr(np, "exceptions", np).TooHardError:
            return True
    (a0, a1), (b0, b1) = byte_range(a), byte_range(b)
    return a0 < b1 and b0 < a1


def element_strides(strides: Sequence[int], itemsize: int, name: str) -> list[int]:
    """Byte strides as element strides (ValueError when they are not whole elements)."""
    if any(s % itemsize for s in strides):
        raise ValueError(f"{name} has strides {tuple(strides)} that are not multiples of its item size {itemsize}")
    return [s // itemsize for s in strides]


def is_array_list(value: Any) -> bool:
    """A list/tuple of arrays, not one array (NumPy or GPU) and not any other object."""
    return not (isinstance(value, np.ndarray) or _backend.is_gpu_array(value)) and isinstance(value, Sequence)


def as_backend_array(a: Any, xp, name: str, *, writable: bool = False):
    """NumPy arrays stay NumPy on the CPU path; GPU arrays become CuPy arrays."""
    if xp is np:
        if _backend.is_gpu_array(a):
            raise TypeError(f"{name} is a GPU array but the other arguments are NumPy arrays")
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray (or a GPU array), got {type(a).__name__}")
        if writable and not a.flags.writeable:
            raise ValueError(f"{name} is read-only")
        return a
    if not _backend.is_gpu_array(a):
        raise TypeError(f"{name} must be a GPU array like the other arguments, got {type(a).__name__}")
    return _backend.as_cupy(a, name, writable=writable)


def host_array(value: Any, name: str):
    """``value`` as a NumPy array, or None when it lives on the GPU (it then stays there)."""
    if _backend.is_gpu_array(value):
        return None  # stays on the device
    try:
        return np.asarray(value)
    except Exception as exc:
        raise TypeError(f"{name} could not be converted to an array: {exc}") from None


def device_argument(value: Any, xp, name: str):
    """A GPU-resident per-patch/per-channel argument as CuPy (only with GPU sources)."""
    if xp is np:
        raise TypeError(f"{name} is a GPU array but the sources are NumPy arrays")
    return _backend.as_cupy(value, name)


def spec_table(specs: Any, n_cols: int, xp, name: str, *, what: str):
    """Validated C-contiguous int64 spec table on the right backend, plus its host copy
    (None when it was given on the GPU)."""
    host = host_array(specs, name)
    if host is None:  # device-resident table: shape and dtype only (no synchronisation)
        if xp is np:
            raise TypeError(f"{name} is a GPU array but the sources are NumPy arrays")
        dev = _backend.as_cupy(specs, name)
        if dev.dtype.kind not in "iu":
            raise TypeError(f"{name} must be an integer array, got dtype {dev.dtype}")
        if dev.ndim != 2 or dev.shape[1] != n_cols:
            raise ValueError(f"{name} must be a {what} of shape (B, {n_cols}), got {dev.shape}")
        return xp.ascontiguousarray(dev, dtype=np.int64), None
    if host.size == 0 and (host.ndim == 1 or (host.ndim == 2 and host.shape[1] == n_cols)):
        # an empty batch ([], np.empty((0, n))): no entry has a dtype worth checking
        host = np.zeros((0, n_cols), dtype=np.int64)
    if host.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {host.dtype}")
    if host.ndim != 2 or host.shape[1] != n_cols:
        raise ValueError(f"{name} must be a {what} of shape (B, {n_cols}), got {host.shape}")
    if host.dtype == np.uint64 and host.size and host.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} has values too large for int64")
    host = np.ascontiguousarray(host, dtype=np.int64)
    dev = host if xp is np else xp.asarray(host)
    return dev, host
