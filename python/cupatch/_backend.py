"""Backend detection and GPU array interop: the one place that probes for a GPU.

Everything here is safe to call on any machine: nothing raises because CUDA, a GPU or
CuPy is missing; the answers just say so. Two questions are asked of arrays: "is this GPU
memory" (:func:`is_gpu_array`: CuPy, or any CUDA Array Interface / CUDA DLPack producer)
and "is this a CuPy array" (:func:`is_cupy_array`, which never imports CuPy). GPU arrays
from other libraries are turned into CuPy arrays (zero copy) with the CUDA Array Interface
v3 / DLPack stream rules honoured, so the native kernels can always run on CuPy's current
stream.
"""

from __future__ import annotations

import ctypes
import functools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core

__all__ = [
    "CudaArrayInfo",
    "array_module",
    "as_cupy",
    "architectures_cover",
    "build_info",
    "current_stream_ptr",
    "gpu_available",
    "gpu_unavailable_reason",
    "gpu_unavailable_reasons",
    "import_cupy",
    "is_cupy_array",
    "is_gpu_array",
    "parse_cuda_array_interface",
    "require_gpu",
]

# DLPack device types that are CUDA memory (kDLCUDA, kDLCUDAManaged).
_DLPACK_CUDA_DEVICES = (2, 13)


def import_cupy():
    """CuPy, or None when it is not installed or fails to import."""
    try:
        import cupy  # optional dependency
    except Exception:  # ImportError, or a broken CUDA installation raising at import
        return None
    return cupy


@functools.lru_cache(maxsize=None)
def _gpu_status() -> tuple[bool, str]:
    if not _core.built_with_cuda:
        return False, "cupatch was built without CUDA (no CUDA compiler at build time, or CUPATCH_CUDA=OFF)"
    cupy = import_cupy()
    if cupy is None:
        return False, "CuPy is not installed (pip install cupy-cuda13x)"
    if _core.cuda_device_count() <= 0:
        return False, "the CUDA runtime reports no usable device (no GPU, or no/too old NVIDIA driver)"
    try:
        n_cupy = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CuPy's own CUDA runtime may disagree (version skew)
        return False, f"CuPy cannot use the GPU: {exc}"
    if n_cupy <= 0:
        return False, "CuPy reports no CUDA device"
    if not _core.cuda_emulated:
        try:
            capability = int(cupy.cuda.Device().compute_capability)
        except Exception as exc:
            return False, f"CuPy cannot query the GPU: {exc}"
        if not architectures_cover(str(_core.cuda_architectures), capability):
            return False, (
                f"this GPU (compute capability {capability // 10}.{capability % 10}) cannot run cupatch's CUDA kernels, "
                f"which were built for {_core.cuda_architectures}; rebuild for it: "
                f'CUDAARCHS="{capability}-real" pip install .'
            )
    return True, ""


def architectures_cover(architectures: str, capability: int) -> bool:
    """Whether kernels built for ``architectures`` run on a GPU of compute ``capability``.

    ``architectures`` is CMake's list (``"90-real,90-virtual"``, ``;`` or ``,`` separated);
    ``capability`` is major * 10 + minor (``80`` for 8.0). A real architecture (binary code)
    runs on GPUs of the same major version and at least its minor version (``90a``
    arch-specific code only on 9.0); a virtual one (PTX, compiled by the driver) on every
    GPU at least as new. A plain ``90`` is both. Lists this cannot read (``native``,
    ``all``) count as covering.
    """
    entries = [a.strip() for a in architectures.replace(";", ",").split(",") if a.strip()]
    if not entries:
        return False
    for entry in entries:
        number, _, kind = entry.partition("-")
        digits = number.rstrip("af")
        suffix = number[len(digits):]  # "a": this GPU only; "f": its family (same major)
        if not digits.isdigit():
            return True  # native, all, all-major: resolved by CMake, not checkable here
        arch = int(digits)
        if kind in ("", "real") and arch // 10 == capability // 10:
            if arch == capability or (suffix != "a" and arch % 10 <= capability % 10):
                return True
        if kind in ("", "virtual") and arch <= capability and (not suffix or arch == capability):
            return True
    return False


def gpu_available() -> bool:
    """Whether GPU calls can run: CUDA compiled in, CuPy importable and a device usable.

    Never raises; the result is computed once per process.
    """
    return _gpu_status()[0]


def gpu_unavailable_reason() -> str:
    """Why :func:`gpu_available` is False (an empty string when it is True)."""
    return _gpu_status()[1]


def require_gpu(what: str | None = None):
    """Return the ``cupy`` module, or raise RuntimeError saying why the GPU is unusable.

    ``what`` names the call that was given GPU arrays; without it the message says that a
    GPU was requested (``device="gpu"``, ``placement="gpu"``).
    """
    ok, reason = _gpu_status()
    if not ok:
        if what is None:
            raise RuntimeError(f"a GPU was requested but none is usable: {reason}")
        raise RuntimeError(f"{what} got GPU arrays but no GPU is usable: {reason}")
    return import_cupy()


def build_info() -> dict[str, Any]:
    """Describe the build and the runtime environment.

    Returns
    -------
    dict
        ``version`` (str), ``cuda_compiled`` (bool), ``cuda_emulated`` (bool: the CUDA
        kernels were compiled as host C++ and run on the CPU, ``CUPATCH_CUDA=EMULATE``;
        such a build reports one device), ``cuda_devices`` (int, 0 on any CUDA
        error), ``cuda_runtime_version`` (int such as 13000, or None without CUDA),
        ``cupy_version`` (str or None), ``cuda_architectures`` (str baked in at build time,
        empty without CUDA), ``cpu_threads`` (int, threads used by the CPU kernels),
        ``cpu_parallel`` (str, what the CPU kernels called from this thread run on now:
        ``"openmp <path>, <n> threads"``, the threads of an OpenMP runtime already loaded,
        such as torch's, or ``"pool"``, cupatch's own worker threads).
    """
    cupy = import_cupy()
    runtime = int(_core.cuda_runtime_version())
    return {
        "version": _core.version,
        "cuda_compiled": bool(_core.built_with_cuda),
        "cuda_emulated": bool(_core.cuda_emulated),
        "cuda_devices": int(_core.cuda_device_count()),
        "cuda_runtime_version": runtime if runtime > 0 else None,
        "cupy_version": getattr(cupy, "__version__", None) if cupy is not None else None,
        "cuda_architectures": str(_core.cuda_architectures),
        "cpu_threads": int(_core.cpu_threads()),
        "cpu_parallel": str(_core.cpu_parallel_backend()),
    }


def is_gpu_array(x: Any) -> bool:
    """True for CuPy arrays and any object exposing CUDA memory (CAI or a CUDA DLPack device)."""
    if isinstance(x, np.ndarray):
        return False
    try:
        if hasattr(x, "__cuda_array_interface__"):
            return True
    except Exception:  # some producers raise other errors for host tensors
        pass
    dlpack_device = getattr(x, "__dlpack_device__", None)
    if dlpack_device is None:
        return False
    try:
        return int(dlpack_device()[0]) in _DLPACK_CUDA_DEVICES
    except Exception:
        return False


def is_cupy_array(x: Any) -> bool:
    """True for a CuPy array (or anything whose type comes from CuPy), without importing
    CuPy: an object of a CuPy type can only exist once CuPy was imported."""
    return type(x).__module__.split(".")[0] == "cupy"


def array_module(x: Any):
    """``cupy`` for GPU arrays (raises RuntimeError if the GPU is unusable), else ``numpy``."""
    if is_gpu_array(x):
        return require_gpu("array_module")
    return np


def current_stream_ptr() -> int:
    """Pointer of CuPy's current stream (0 = the legacy default stream)."""
    cupy = require_gpu("current_stream_ptr")
    return int(cupy.cuda.get_current_stream().ptr)


@dataclass(frozen=True)
class CudaArrayInfo:
    """A parsed ``__cuda_array_interface__`` (strides always explicit, in bytes)."""

    ptr: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: np.dtype
    readonly: bool
    stream: int | None  # producer stream (CAI v3), None when not given


def parse_cuda_array_interface(obj: Any, name: str = "array") -> CudaArrayInfo:
    """Parse and check ``obj.__cuda_array_interface__`` (versions 2 and 3).

    Raises
    ------
    TypeError
        If the object has no interface, uses an unsupported version, a mask or a
        structured dtype.
    ValueError
        If strides are not multiples of the item size or the stream is 0 (forbidden by v3).
    """
    try:
        cai = obj.__cuda_array_interface__
    except AttributeError:
        raise TypeError(f"{name} does not expose __cuda_array_interface__") from None
    version = int(cai.get("version", 0))
    if version < 2:
        raise TypeError(f"{name}: __cuda_array_interface__ version {version} is not supported (need >= 2)")
    if cai.get("mask") is not None:
        raise TypeError(f"{name}: masked CUDA arrays are not supported")
    dtype = np.dtype(cai["typestr"])
    if dtype.fields is not None:
        raise TypeError(f"{name}: structured dtypes are not supported")
    shape = tuple(int(s) for s in cai["shape"])
    ptr, readonly = cai["data"]
    strides = cai.get("strides")
    if strides is None:
        acc, out = dtype.itemsize, []
        for s in reversed(shape):
            out.append(acc)
            acc *= max(s, 1)
        strides = tuple(reversed(out))
    else:
        strides = tuple(int(s) for s in strides)
        if len(strides) != len(shape):
            raise ValueError(f"{name}: strides {strides} do not match shape {shape}")
        if any(s % dtype.itemsize for s in strides):
            raise ValueError(f"{name}: strides {strides} (bytes) are not multiples of the item size {dtype.itemsize}")
    stream = cai.get("stream") if version >= 3 else None
    if stream is not None:
        stream = int(stream)
        if stream == 0:
            raise ValueError(f"{name}: __cuda_array_interface__ stream 0 is forbidden (use 1 for the legacy default stream)")
    return CudaArrayInfo(int(ptr or 0), shape, strides, dtype, bool(readonly), stream)


def _wait_for_producer(cupy, producer: int | None) -> None:
    """CAI v3 consumer duty: order CuPy's current stream after the producer's queued work."""
    if producer is None:
        return
    consumer = int(cupy.cuda.get_current_stream().ptr)
    # CuPy's 0 is the legacy default stream, which CAI spells 1.
    if producer == (consumer or 1):
        return
    _core.cuda_stream_wait(producer, consumer, int(cupy.cuda.Device().id))


def as_cupy(x: Any, name: str = "array", *, writable: bool = False):
    """View a GPU array as a CuPy array on the current device (zero copy).

    CuPy arrays pass through. Objects with a CUDA ``__dlpack__`` (torch, JAX) go through
    ``cupy.from_dlpack``, which orders the producer's stream before CuPy's current one;
    other ``__cuda_array_interface__`` objects are wrapped directly and, when their
    interface names a different stream, CuPy's current stream is made to wait for it.

    Raises
    ------
    ValueError
        If the array lives on another device, or is read-only while ``writable`` is set.
    """
    cupy = require_gpu(name)
    device = int(cupy.cuda.Device().id)
    if isinstance(x, cupy.ndarray):
        arr = x
    elif hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__") and is_gpu_array(x):
        if writable:  # DLPack does not carry a read-only flag; honour CAI's when offered
            try:
                info = parse_cuda_array_interface(x, name)
            except (TypeError, ValueError):
                info = None
            if info is not None and info.readonly:
                raise ValueError(f"{name} is read-only")
        arr = cupy.from_dlpack(x)
    else:
        info = parse_cuda_array_interface(x, name)
        if writable and info.readonly:
            raise ValueError(f"{name} is read-only")
        nbytes = 0
        if all(s > 0 for s in info.shape):
            nbytes = info.dtype.itemsize + sum((s - 1) * abs(st) for s, st in zip(info.shape, info.strides))
        if nbytes == 0:
            return cupy.empty(info.shape, dtype=info.dtype)
        attributes = cupy.cuda.runtime.pointerGetAttributes(info.ptr)
        if int(attributes.type) == cupy.cuda.runtime.memoryTypeUnregistered:
            raise ValueError(
                f"{name} does not point at GPU memory: its __cuda_array_interface__ names an address "
                "the CUDA runtime does not know (ordinary host memory?)"
            )
        owner_device = int(attributes.device)
        if owner_device != device:
            raise ValueError(f"{name} is on GPU {owner_device}, but the current device is GPU {device}")
        # The pointer may not be the lowest address when strides are negative.
        low = info.ptr + sum((s - 1) * st for s, st in zip(info.shape, info.strides) if st < 0)
        memory = cupy.cuda.UnownedMemory(low, nbytes, owner=x, device_id=owner_device)
        arr = cupy.ndarray(info.shape, info.dtype, cupy.cuda.MemoryPointer(memory, info.ptr - low), strides=info.strides)
        _wait_for_producer(cupy, info.stream)
        return arr
    if arr.device.id != device:
        raise ValueError(f"{name} is on GPU {arr.device.id}, but the current device is GPU {device}")
    return arr


# ---------------------------------------------------------------------------------------
# Why there is no GPU, in detail (for ``cupatch info``)

#: CUDA driver API results named in the reasons (cuda.h).
_CUDA_ERROR_NO_DEVICE = 100
_CUDA_ERROR_INSUFFICIENT_DRIVER = 35


def _load_cuda_driver():
    """The CUDA driver library (ctypes), or None when no NVIDIA driver is installed."""
    name = "nvcuda.dll" if os.name == "nt" else "libcuda.so.1"
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def _cuda_version(value: int) -> str:
    return f"{value // 1000}.{value % 1000 // 10}"


def _no_device_reason(runtime_version: int | None) -> str:
    """Why a CUDA build sees no device: hidden devices, no driver, an old driver, no GPU."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
    driver = _load_cuda_driver()
    if driver is None:
        return "no NVIDIA driver: the CUDA driver library (libcuda.so.1) cannot be loaded"
    version = ctypes.c_int(0)
    if driver.cuDriverGetVersion(ctypes.byref(version)) == 0 and runtime_version and 0 < version.value < runtime_version:
        return (
            f"the NVIDIA driver supports CUDA up to {_cuda_version(version.value)}, older than the CUDA runtime "
            f"cupatch was built with ({_cuda_version(runtime_version)}); update the driver"
        )
    status = driver.cuInit(0)
    if status == _CUDA_ERROR_NO_DEVICE:
        return "the NVIDIA driver is installed but finds no GPU (CUDA_ERROR_NO_DEVICE)"
    if status == _CUDA_ERROR_INSUFFICIENT_DRIVER:
        return "the NVIDIA driver is too old for this CUDA runtime (CUDA_ERROR_INSUFFICIENT_DRIVER); update it"
    if status != 0:
        return f"the NVIDIA driver cannot initialise CUDA (driver API error {status})"
    count = ctypes.c_int(0)
    driver.cuDeviceGetCount(ctypes.byref(count))
    if count.value == 0:
        return "the NVIDIA driver is installed but finds no GPU"
    return (
        f"the NVIDIA driver sees {count.value} GPU(s) but the CUDA runtime can use none (check "
        f"CUDA_VISIBLE_DEVICES and the GPUs' compute mode)"
    )


def gpu_unavailable_reasons(info: dict | None = None) -> list[str]:
    """Every reason the GPU is not usable, finer than :func:`gpu_unavailable_reason` (an
    empty list when it is usable): not compiled in, hidden devices, no driver, an old
    driver, no device, no CuPy. ``info`` is :func:`build_info`'s result (computed if None)."""
    info = build_info() if info is None else info
    if gpu_available():
        return []
    if not info["cuda_compiled"]:
        return [gpu_unavailable_reason() or "cupatch was built without CUDA"]
    reasons = []
    if info["cuda_devices"] == 0:
        reasons.append(_no_device_reason(info["cuda_runtime_version"]))
    if info["cupy_version"] is None:
        major = (info["cuda_runtime_version"] or 13000) // 1000
        reasons.append(f"CuPy is not installed or fails to import (pip install cupy-cuda{major}x)")
    if not reasons:
        reasons.append(gpu_unavailable_reason() or "unknown")
    return reasons
