"""Batched patch gathering and tile stitching (NumPy on the CPU, CuPy on the GPU).

Every function validates its arguments here, before any native call, with messages that
name the offending parameter; the native core (``cupatch._core``) re-checks cheaply and its
kernels clip every index, so no input can make them touch memory out of bounds. NumPy
inputs run the threaded C++ kernels and return NumPy arrays; CuPy (or any
``__cuda_array_interface__`` / CUDA DLPack) inputs run the CUDA kernels on CuPy's current
stream, without synchronising, and return CuPy arrays. Semantics: ``docs/contracts.md``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _backend, _core
from ._windows import WINDOWS, window_table

__all__ = [
    "OUTPUT_DTYPES",
    "SOURCE_DTYPES",
    "BlendAccumulator",
    "SourceTable",
    "gather_patches",
    "stitch_tiles",
    "window_table",
    "WINDOWS",
]


def _resolve_dtype(name: str) -> np.dtype | None:
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            return None
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


# The native dtype list (cpp/include/cupatch/dtype.h) is the single source of truth.
_DTYPE_CODES: dict[np.dtype, int] = {}
for _code, _name in enumerate(_core.DTYPES):
    _dt = _resolve_dtype(_name)
    if _dt is not None:
        _DTYPE_CODES[_dt] = _code

#: Element types accepted for gather sources.
SOURCE_DTYPES: tuple[np.dtype, ...] = tuple(_DTYPE_CODES)
#: Element types gather can produce.
OUTPUT_DTYPES: tuple[np.dtype, ...] = tuple(
    d for d in _DTYPE_CODES if d in (np.dtype(np.float32), np.dtype(np.float16)) or d.name == "bfloat16"
)

_FLOAT32 = np.dtype(np.float32)
# Array extents, origins and image shapes must stay below the native kCoordLimit (2**60).
_EXTENT_LIMIT = 1 << 60


# ---------------------------------------------------------------------------------------
# small validators


def _is_int(value: Any) -> bool:
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def _int_tuple(value: Any, name: str, length: int | None = None, *, minimum: int | None = None) -> tuple[int, ...]:
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints, got {type(value).__name__}") from None
    if not all(_is_int(v) for v in items):
        raise TypeError(f"{name} must contain only ints, got {items!r}")
    items = tuple(int(v) for v in items)
    if length is not None and len(items) != length:
        raise ValueError(f"{name} must have {length} entries, got {len(items)}: {items}")
    if minimum is not None and any(v < minimum for v in items):
        raise ValueError(f"{name} entries must be >= {minimum}, got {items}")
    return items


def _spatial3(shape: Sequence[int]) -> tuple[int, int, int]:
    """(Z, Y, X) with Z = 1 for 2-D."""
    return (1, *shape) if len(shape) == 2 else tuple(shape)  # type: ignore[return-value]


def _ptr(a: Any) -> int:
    if isinstance(a, np.ndarray):
        return int(a.__array_interface__["data"][0])
    return int(a.data.ptr)


def _element_strides(strides: Sequence[int], itemsize: int, name: str) -> list[int]:
    if any(s % itemsize for s in strides):
        raise ValueError(f"{name} has strides {tuple(strides)} that are not multiples of its item size {itemsize}")
    return [s // itemsize for s in strides]


def _as_backend_array(a: Any, xp, name: str, *, writable: bool = False):
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


def _host_array(value: Any, name: str):
    """``value`` as a NumPy array, or None when it lives on the GPU (it then stays there)."""
    if _backend.is_gpu_array(value):
        return None  # stays on the device
    try:
        return np.asarray(value)
    except Exception as exc:
        raise TypeError(f"{name} could not be converted to an array: {exc}") from None


# ---------------------------------------------------------------------------------------
# sources


class SourceTable:
    """Validated, reusable description of the gather sources.

    Parameters
    ----------
    sources : sequence of arrays
        SC(Z)YX arrays, all NumPy or all on the current GPU (CuPy or any
        ``__cuda_array_interface__`` / CUDA DLPack producer), with the same dtype (one of
        :data:`SOURCE_DTYPES`), the same number of channels and the same number of
        spatial dimensions (2 or 3). Any strides are accepted.

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
        if isinstance(sources, np.ndarray) or _backend.is_gpu_array(sources) or not isinstance(sources, Sequence):
            raise TypeError("sources must be a list of SC(Z)YX arrays (wrap a single array in a list)")
        if len(sources) == 0:
            raise ValueError("sources must contain at least one array")
        self.is_gpu = _backend.is_gpu_array(sources[0])
        if self.is_gpu:
            cupy = _backend.require_gpu("gather_patches")
            self.xp = cupy
        else:
            self.xp = np
        arrays = [_as_backend_array(a, self.xp, f"sources[{i}]") for i, a in enumerate(sources)]
        first = arrays[0]
        if first.ndim not in (4, 5):
            raise ValueError(f"sources must be SCYX (4-D) or SCZYX (5-D) arrays, sources[0] has shape {first.shape}")
        dtype = np.dtype(first.dtype)
        if dtype not in _DTYPE_CODES:
            names = ", ".join(d.name for d in SOURCE_DTYPES)
            raise TypeError(f"sources dtype {dtype} is not supported (supported: {names})")
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
        self.dtype_code = _DTYPE_CODES[dtype]
        self.shapes = [tuple(int(s) for s in a.shape) for a in arrays]
        for i, shape in enumerate(self.shapes):
            if max(shape) >= _EXTENT_LIMIT:
                raise ValueError(f"sources[{i}] has an extent of 2**60 or more: {shape}")
        self.n_samples = np.array([s[0] for s in self.shapes], dtype=np.int64)
        table = np.zeros((len(arrays), _core.SOURCE_FIELDS), dtype=np.int64)
        for i, a in enumerate(arrays):
            strides = _element_strides(a.strides, dtype.itemsize, f"sources[{i}]")
            shape = list(a.shape)
            if self.ndim == 2:  # (S, C, Y, X) -> (S, C, 1, Y, X) with a zero Z stride
                shape.insert(2, 1)
                strides.insert(2, 0)
            table[i, 0] = _ptr(a) if a.size else 0
            table[i, 1:6] = shape
            table[i, 6:11] = strides
        self.table = table
        self.device_id = None
        self.device_table = None
        self._device_cache: dict = {}
        if self.is_gpu:
            self.device_id = int(self.xp.cuda.Device().id)
            self.device_table = self.device_copy(table)
            # The sources are ready on this stream (as_cupy made it wait for their producers'
            # streams); launches on other streams wait for this point first.
            stream = self.xp.cuda.get_current_stream()
            self._stream_ptr = int(stream.ptr)
            self._ready = stream.record()

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


def _spec_table(specs: Any, n_cols: int, xp, name: str, *, what: str):
    """Validated C-contiguous int64 spec table on the right backend, plus its host copy
    (None when it was given on the GPU)."""
    host = _host_array(specs, name)
    if host is None:  # device-resident table: shape and dtype only (no synchronisation)
        if xp is np:
            raise TypeError(f"{name} is a GPU array but the sources are NumPy arrays")
        dev = _backend.as_cupy(specs, name)
        if dev.dtype.kind not in "iu":
            raise TypeError(f"{name} must be an integer array, got dtype {dev.dtype}")
        if dev.ndim != 2 or dev.shape[1] != n_cols:
            raise ValueError(f"{name} must be a {what} of shape (B, {n_cols}), got {dev.shape}")
        return xp.ascontiguousarray(dev, dtype=np.int64), None
    if host.size == 0 and host.ndim == 1:
        host = host.reshape(0, n_cols)
    if host.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {host.dtype}")
    if host.ndim != 2 or host.shape[1] != n_cols:
        raise ValueError(f"{name} must be a {what} of shape (B, {n_cols}), got {host.shape}")
    if host.dtype == np.uint64 and host.size and host.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} has values too large for int64")
    host = np.ascontiguousarray(host, dtype=np.int64)
    dev = host if xp is np else xp.asarray(host)
    return dev, host


def _device_argument(value: Any, xp, name: str):
    """A GPU-resident per-patch/per-channel argument as CuPy (only with GPU sources)."""
    if xp is np:
        raise TypeError(f"{name} is a GPU array but the sources are NumPy arrays")
    return _backend.as_cupy(value, name)


def _per_patch(value: Any, n: int, name: str, *, kind: str, xp=np):
    """Host (validated) or device (shape and dtype checked: no synchronisation) per-patch flags."""
    if value is None:
        return None
    on_device = _backend.is_gpu_array(value)
    arr = _device_argument(value, xp, name) if on_device else np.asarray(value)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have one entry per patch, shape ({n},), got {tuple(arr.shape)}")
    if kind == "bool":
        if arr.dtype != np.bool_ and arr.dtype.kind not in "iu":
            raise ValueError(f"{name} must be booleans (or 0/1), got dtype {arr.dtype}")
        if on_device:
            return arr != 0
        if arr.dtype != np.bool_ and not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must be booleans (or 0/1), got values {np.unique(arr)[:8]}")
        return arr.astype(bool)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers in 0..3, got dtype {arr.dtype}")
    if on_device:
        return arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() > 3):
        raise ValueError(f"{name} values must be in 0..3 quarter turns, got values in [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64)


def _per_channel(value: Any, n: int, name: str, xp=np):
    if value is None:
        return None
    arr = _device_argument(value, xp, name) if _backend.is_gpu_array(value) else np.asarray(value)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be numbers, got dtype {arr.dtype}")
    arr = arr.reshape(-1) if arr.ndim == 0 else arr
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have one value per output channel ({n}), got shape {tuple(arr.shape)}")
    return arr.astype(np.float32)


# ---------------------------------------------------------------------------------------
# gather


def gather_patches(
    sources: Sequence[Any] | SourceTable,
    specs: Any,
    patch_size: Sequence[int],
    *,
    channels: Sequence[int] | None = None,
    dtype: Any = np.float32,
    scale: Sequence[float] | None = None,
    shift: Sequence[float] | None = None,
    flip_y: Sequence[bool] | None = None,
    flip_x: Sequence[bool] | None = None,
    rot90: Sequence[int] | None = None,
    out: Any = None,
):
    """Gather a batch of patches in one kernel launch.

    Parameters
    ----------
    sources : list of arrays or SourceTable
        SC(Z)YX stacks (see :class:`SourceTable`). NumPy sources run on the CPU, GPU
        sources on CuPy's current stream and device.
    specs : int array (B, 2 + ndim)
        Patch table: ``data_idx, sample_idx, coords...`` ((Z)YX top-left corner). Coordinates
        may be negative or run past the image: voxels outside read as 0 (before scaling).
    patch_size : sequence of int
        (Z)YX patch size, ``len(patch_size) == ndim``.
    channels : sequence of int, optional
        Source channels to gather, in output order (default: all).
    dtype : numpy dtype, optional
        Output type: float32 (default), float16 or bfloat16 (with ml_dtypes), rounded to
        nearest even.
    scale, shift : sequence of float, optional
        Per output channel: ``out = float32(raw) * scale + shift`` in float32 without FMA.
    flip_y, flip_x : bool array (B,), optional
        Per-patch flips (Y first, then X).
    rot90 : int array (B,), optional
        Per-patch quarter turns 0..3 in the YX plane (``numpy.rot90(..., axes=(-2, -1))``
        after the flips); odd turns need equal Y and X patch sizes.
    out : array (B, C_out, *patch_size), optional
        C-contiguous, writable array of ``dtype`` on the sources' backend to fill.

    Returns
    -------
    numpy.ndarray or cupy.ndarray
        ``(B, C_out, *patch_size)`` batch (``out`` when given).

    Raises
    ------
    TypeError, ValueError, IndexError
        For invalid arguments (the message names the parameter).
    RuntimeError
        For GPU inputs when no GPU is usable; ``cupatch._core.CudaError`` for CUDA failures.
    """
    table = sources if isinstance(sources, SourceTable) else SourceTable(sources)
    xp, ndim = table.xp, table.ndim
    patch = _int_tuple(patch_size, "patch_size", ndim, minimum=1)
    specs_dev, specs_host = _spec_table(specs, 2 + ndim, xp, "specs", what="patch table")
    n_patches = int(specs_dev.shape[0])
    if specs_host is not None and n_patches:
        data_idx = specs_host[:, 0]
        if data_idx.min() < 0 or data_idx.max() >= len(table):
            raise IndexError(f"specs: data_idx must be in [0, {len(table)}), got values in [{data_idx.min()}, {data_idx.max()}]")
        sample_idx = specs_host[:, 1]
        bad = (sample_idx < 0) | (sample_idx >= table.n_samples[data_idx])
        if bad.any():
            b = int(np.flatnonzero(bad)[0])
            raise IndexError(
                f"specs: sample_idx {sample_idx[b]} of patch {b} is out of range for sources[{data_idx[b]}] "
                f"with {table.n_samples[data_idx[b]]} samples"
            )
    if channels is None:
        chan = np.arange(table.n_channels, dtype=np.int64)
    else:
        chan = np.asarray(_int_tuple(channels, "channels"), dtype=np.int64)
        if chan.size == 0:
            raise ValueError("channels must not be empty (use None for all channels)")
        if chan.min() < 0 or chan.max() >= table.n_channels:
            raise IndexError(f"channels must be in [0, {table.n_channels}), got {tuple(chan.tolist())}")
    n_out = int(chan.size)
    try:
        out_dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype {dtype!r} is not a valid dtype") from None
    if out_dtype not in OUTPUT_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(d.name for d in OUTPUT_DTYPES)}, got {out_dtype}")
    sc = _per_channel(scale, n_out, "scale", xp)
    sh = _per_channel(shift, n_out, "shift", xp)
    affine = None
    if sc is not None or sh is not None:
        on_device = any(v is not None and not isinstance(v, np.ndarray) for v in (sc, sh))
        mod = xp if on_device else np
        ones, zeros = mod.ones(n_out, dtype=np.float32), mod.zeros(n_out, dtype=np.float32)
        affine = mod.stack([ones if sc is None else mod.asarray(sc), zeros if sh is None else mod.asarray(sh)])
    fy = _per_patch(flip_y, n_patches, "flip_y", kind="bool", xp=xp)
    fx = _per_patch(flip_x, n_patches, "flip_x", kind="bool", xp=xp)
    rot = _per_patch(rot90, n_patches, "rot90", kind="int", xp=xp)
    if rot is not None and patch[-1] != patch[-2]:
        if not isinstance(rot, np.ndarray):
            raise ValueError(
                f"rot90 given on the GPU needs square YX patches, got patch_size {patch} "
                "(odd turns cannot be ruled out without a synchronisation: pass rot90 as a NumPy array)"
            )
        if (rot % 2).any():
            raise ValueError(f"rot90 with odd quarter turns needs square YX patches, got patch_size {patch}")
    aug = None
    flags = [f for f in (fy, fx, rot) if f is not None]
    if flags:
        mod = xp if any(not isinstance(f, np.ndarray) for f in flags) else np
        aug = mod.zeros(n_patches, dtype=np.uint8)
        if fy is not None:
            aug |= mod.asarray(fy).astype(np.uint8)
        if fx is not None:
            aug |= mod.asarray(fx).astype(np.uint8) << 1
        if rot is not None:
            aug |= (mod.asarray(rot) & 3).astype(np.uint8) << 2
    shape = (n_patches, n_out, *patch)
    if out is None:
        out = xp.empty(shape, dtype=out_dtype)
    else:
        out = _as_backend_array(out, xp, "out", writable=True)
        if tuple(out.shape) != shape:
            raise ValueError(f"out must have shape {shape}, got {tuple(out.shape)}")
        if np.dtype(out.dtype) != out_dtype:
            raise TypeError(f"out must have dtype {out_dtype} (the dtype argument), got {out.dtype}")
        if not out.flags.c_contiguous:
            raise ValueError("out must be C-contiguous")
    if n_patches == 0:
        return out
    patch3 = _spatial3(patch)
    out_code = _DTYPE_CODES[out_dtype]
    if xp is np:
        _core.gather_cpu(table.table, table.dtype_code, specs_dev, ndim, patch3, chan, affine, aug, out, out_code)
        return out
    if int(xp.cuda.Device().id) != table.device_id:
        raise ValueError(f"sources are on GPU {table.device_id} but the current device is GPU {xp.cuda.Device().id}")
    table.order_current_stream()
    chan_dev = table.device_copy(chan)
    if affine is None or not isinstance(affine, np.ndarray):
        affine_dev = None if affine is None else xp.ascontiguousarray(affine)
    else:
        affine_dev = table.device_copy(affine)
    aug_dev = None if aug is None else xp.ascontiguousarray(xp.asarray(aug))
    _core.gather_cuda(
        _ptr(table.device_copy(table.table)), len(table), table.dtype_code, _ptr(specs_dev), n_patches, 2 + ndim, ndim, patch3,
        _ptr(chan_dev), n_out, 0 if affine_dev is None else _ptr(affine_dev), 0 if aug_dev is None else _ptr(aug_dev),
        _ptr(out), out_code, int(xp.cuda.get_current_stream().ptr), table.device_id,
    )
    return out


# ---------------------------------------------------------------------------------------
# stitch


def _output_table(outputs, weights, origins, image_shapes, ndim: int, n_channels: int, xp, blend: bool):
    if isinstance(outputs, np.ndarray) or _backend.is_gpu_array(outputs) or not isinstance(outputs, Sequence):
        raise TypeError("outputs must be a list of SC(Z)YX float32 arrays (wrap a single array in a list)")
    if len(outputs) == 0:
        raise ValueError("outputs must contain at least one array")
    outs = [_as_backend_array(o, xp, f"outputs[{i}]", writable=True) for i, o in enumerate(outputs)]
    for i, o in enumerate(outs):
        if np.dtype(o.dtype) != _FLOAT32:
            raise TypeError(f"outputs[{i}] must be float32, got {o.dtype}")
        if o.ndim != 2 + ndim:
            raise ValueError(f"outputs[{i}] must be {'SCZYX' if ndim == 3 else 'SCYX'} ({2 + ndim}-D) like the tiles, got shape {o.shape}")
        if o.shape[1] != n_channels:
            raise ValueError(f"outputs[{i}] has {o.shape[1]} channels but the tiles have {n_channels}")
        if not o.flags.c_contiguous:
            raise ValueError(f"outputs[{i}] must be C-contiguous")
    n = len(outs)
    if origins is None:
        orig = [(0,) * ndim] * n
    else:
        if len(origins) != n:
            raise ValueError(f"origins must have one entry per output ({n}), got {len(origins)}")
        orig = [_int_tuple(o, f"origins[{i}]", ndim, minimum=0) for i, o in enumerate(origins)]
    if image_shapes is None:
        shapes = [tuple(int(s) + o for s, o in zip(out.shape[2:], og)) for out, og in zip(outs, orig)]
    else:
        if len(image_shapes) != n:
            raise ValueError(f"image_shapes must have one entry per output ({n}), got {len(image_shapes)}")
        shapes = [_int_tuple(s, f"image_shapes[{i}]", ndim, minimum=1) for i, s in enumerate(image_shapes)]
        for i, (out, og, s) in enumerate(zip(outs, orig, shapes)):
            if any(o + e > full for o, e, full in zip(og, out.shape[2:], s)):
                raise ValueError(f"outputs[{i}] (origin {og}, shape {out.shape[2:]}) does not fit in image_shapes[{i}] = {s}")
    wts = [None] * n
    if blend:
        if weights is None:
            raise ValueError('mode="blend" needs weights (one float32 (S, 1, *spatial) array per output)')
        if isinstance(weights, np.ndarray) or _backend.is_gpu_array(weights) or len(weights) != n:
            raise ValueError(f"weights must be a list with one array per output ({n})")
        wts = [_as_backend_array(w, xp, f"weights[{i}]", writable=True) for i, w in enumerate(weights)]
        for i, (w, o) in enumerate(zip(wts, outs)):
            if np.dtype(w.dtype) != _FLOAT32:
                raise TypeError(f"weights[{i}] must be float32, got {w.dtype}")
            want = (o.shape[0], 1, *o.shape[2:])
            if tuple(w.shape) != want:
                raise ValueError(f"weights[{i}] must have shape {want}, got {tuple(w.shape)}")
            if not w.flags.c_contiguous:
                raise ValueError(f"weights[{i}] must be C-contiguous")
    if blend:
        _check_disjoint_memory(outs + wts)
    for i, (og, s) in enumerate(zip(orig, shapes)):
        if max(*og, *s) >= _EXTENT_LIMIT:
            raise ValueError(f"origins[{i}] / image_shapes[{i}] entries must be below 2**60, got {og} / {s}")
    table = np.zeros((n, _core.OUTPUT_FIELDS), dtype=np.int64)
    for i, (o, w, og, s) in enumerate(zip(outs, wts, orig, shapes)):
        table[i, 0] = _ptr(o)
        table[i, 1] = 0 if w is None else _ptr(w)
        table[i, 2:7] = (o.shape[0], o.shape[1], *_spatial3(o.shape[2:]))
        table[i, 7:10] = (0, *og) if ndim == 2 else og
        table[i, 10:13] = _spatial3(s)
    return outs, wts, table, shapes


def _check_disjoint_memory(arrays) -> None:
    """Blending adds into outputs and weights with one writer per voxel; arrays sharing
    memory (the same output given for two data_idx, a weight array inside an output...)
    would break that rule (lost updates, nondeterministic results), so refuse them."""
    spans = []
    for i, a in enumerate(arrays):
        if a.size:
            start = _ptr(a)
            spans.append((start, start + a.size * a.itemsize, i))
    spans.sort()
    n_out = len(arrays) // 2
    name = lambda i: f"outputs[{i}]" if i < n_out else f"weights[{i - n_out}]"  # noqa: E731
    for (s0, e0, i0), (s1, _, i1) in zip(spans, spans[1:]):
        if s1 < e0:
            raise ValueError(f'mode="blend" needs separate memory for every output and weight array: {name(i0)} and {name(i1)} overlap')


def stitch_tiles(
    tiles: Any,
    specs: Any,
    outputs: Sequence[Any],
    *,
    mode: str = "crop",
    weights: Sequence[Any] | None = None,
    window_table: Any = None,
    image_shapes: Sequence[Sequence[int]] | None = None,
    origins: Sequence[Sequence[int]] | None = None,
) -> None:
    """Stitch a batch of predicted tiles into output images, in place, in one launch.

    Parameters
    ----------
    tiles : float32 array (B, C, *tile_size)
        Predictions; NumPy (CPU) or GPU (CuPy's current stream).
    specs : int array (B, 2 + 4 * ndim)
        Tile table: ``data_idx, sample_idx, coords, crop_coords, crop_size, stitch_coords``.
    outputs : list of float32 arrays
        One C-contiguous SC(Z)YX array per ``data_idx`` with ``C`` channels, written in
        place (each may hold only a slab of its image, see ``origins``).
    mode : {"crop", "blend"}
        ``crop`` copies each tile's kept region (every voxel written once, bit-identical on
        all backends). ``blend`` adds ``w * tile`` to ``outputs`` and ``w`` to ``weights``
        over each tile's read window clipped to the image; divide afterwards (or use
        :class:`BlendAccumulator`).
    weights : list of float32 arrays (S, 1, *spatial), optional
        Blend weight accumulators, one per output (required for ``blend``).
    window_table : float32 array (ndim, 4, T), optional
        Blend window from :func:`cupatch.window_table` (required for ``blend``).
    image_shapes : list of (Z)YX tuples, optional
        Full image extent per output (default: origin + output spatial shape); used for
        blend border flags and for checking stitch positions.
    origins : list of (Z)YX tuples, optional
        Position of each output array inside its image (default zeros); writes outside
        ``[origin, origin + shape)`` are skipped.

    Notes
    -----
    ``crop`` assumes the kept regions of the batch are disjoint (true for any tiling
    from :class:`cupatch.TiledPatching`); where a caller's kept regions overlap, each
    overlapping voxel ends up with the value of one of the overlapping tiles, which one is
    unspecified (it can differ between backends, thread counts and runs). ``blend`` is
    deterministic for any overlap; its outputs and weights must not share memory.

    Raises
    ------
    TypeError, ValueError, IndexError
        For invalid arguments (the message names the parameter).
    RuntimeError
        For GPU inputs when no GPU is usable; ``cupatch._core.CudaError`` for CUDA failures.
    """
    if mode not in ("crop", "blend"):
        raise ValueError(f'mode must be "crop" or "blend", got {mode!r}')
    blend = mode == "blend"
    is_gpu = _backend.is_gpu_array(tiles)
    xp = _backend.require_gpu("stitch_tiles") if is_gpu else np
    if not is_gpu and not isinstance(tiles, np.ndarray):
        raise TypeError(f"tiles must be a numpy.ndarray or a GPU array, got {type(tiles).__name__}")
    tiles = _as_backend_array(tiles, xp, "tiles")
    if np.dtype(tiles.dtype) != _FLOAT32:
        raise TypeError(f"tiles must be float32, got {tiles.dtype}")
    if tiles.ndim not in (4, 5):
        raise ValueError(f"tiles must be (B, C, Y, X) or (B, C, Z, Y, X), got shape {tiles.shape}")
    if tiles.shape[1] < 1 or any(s < 1 for s in tiles.shape[2:]):
        raise ValueError(f"tiles must have at least one channel and a non-empty tile size, got shape {tiles.shape}")
    tiles = xp.ascontiguousarray(tiles)
    ndim = tiles.ndim - 2
    tile_size = tuple(int(s) for s in tiles.shape[2:])
    n_cols = 2 + 4 * ndim
    specs_dev, specs_host = _spec_table(specs, n_cols, xp, "specs", what="tile table")
    n_tiles = int(specs_dev.shape[0])
    if n_tiles != tiles.shape[0]:
        raise ValueError(f"specs has {n_tiles} rows but tiles has {tiles.shape[0]} tiles")
    outs, wts, table, shapes = _output_table(outputs, weights, origins, image_shapes, ndim, int(tiles.shape[1]), xp, blend)
    if specs_host is not None and n_tiles:
        _check_tile_specs(specs_host, outs, shapes, tile_size, ndim, check_crop=not blend)
    window = None
    if blend:
        if window_table is None:
            raise ValueError('mode="blend" needs window_table (see cupatch.window_table)')
        if _backend.is_gpu_array(window_table) and xp is np:
            raise TypeError("window_table is a GPU array but the tiles are NumPy arrays")
        # GPU tables go through as_cupy like every other argument: device check, CAI stream.
        window = _backend.as_cupy(window_table, "window_table") if _backend.is_gpu_array(window_table) else np.asarray(window_table)
        if np.dtype(window.dtype) != _FLOAT32:
            raise TypeError(f"window_table must be float32, got {window.dtype}")
        if window.ndim != 3 or window.shape[0] != ndim or window.shape[1] != 4 or window.shape[2] < max(tile_size):
            raise ValueError(f"window_table must have shape ({ndim}, 4, T >= {max(tile_size)}), got {tuple(window.shape)}")
        window = xp.ascontiguousarray(xp.asarray(window) if xp is not np else window)
    if n_tiles == 0:
        return None
    if xp is np:
        if blend:
            _core.stitch_blend_cpu(tiles, specs_dev, table, window)
        else:
            _core.stitch_crop_cpu(tiles, specs_dev, table)
        return None
    device = int(xp.cuda.Device().id)
    table_dev = _cached_device_table(xp, device, table)
    launch = _core.stitch_blend_cuda if blend else _core.stitch_crop_cuda
    launch(
        _ptr(tiles), n_tiles, int(tiles.shape[1]), _spatial3(tile_size), _ptr(specs_dev), n_cols, ndim, _ptr(table_dev),
        len(outs), 0 if window is None else _ptr(window), 0 if window is None else int(window.shape[2]),
        int(xp.cuda.get_current_stream().ptr), device,
    )
    return None


_OUTPUT_TABLES: dict = {}


def _cached_device_table(xp, device: int, table: np.ndarray):
    """Device copy of an output table (pointers and shapes only), reused while the same
    outputs are stitched batch after batch. Cached per stream, for the reasons given in
    :meth:`SourceTable.device_copy`."""
    key = (device, int(xp.cuda.get_current_stream().ptr), table.shape, table.tobytes())
    cached = _OUTPUT_TABLES.get(key)
    if cached is None:
        if len(_OUTPUT_TABLES) >= 32:
            _OUTPUT_TABLES.pop(next(iter(_OUTPUT_TABLES)))
        cached = _OUTPUT_TABLES[key] = xp.asarray(table)
    return cached


def _check_tile_specs(specs: np.ndarray, outs, shapes, tile_size, ndim: int, *, check_crop: bool) -> None:
    data_idx, sample_idx = specs[:, 0], specs[:, 1]
    if data_idx.min() < 0 or data_idx.max() >= len(outs):
        raise IndexError(f"specs: data_idx must be in [0, {len(outs)}), got values in [{data_idx.min()}, {data_idx.max()}]")
    n_samples = np.array([o.shape[0] for o in outs], dtype=np.int64)
    bad = (sample_idx < 0) | (sample_idx >= n_samples[data_idx])
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        raise IndexError(f"specs: sample_idx {sample_idx[b]} of tile {b} is out of range for outputs[{data_idx[b]}] with {n_samples[data_idx[b]]} samples")
    if not check_crop:
        return
    crop = specs[:, 2 + ndim : 2 + 2 * ndim]
    size = specs[:, 2 + 2 * ndim : 2 + 3 * ndim]
    stitch = specs[:, 2 + 3 * ndim : 2 + 4 * ndim]
    image = np.array(shapes, dtype=np.int64)[data_idx]
    tile = np.array(tile_size, dtype=np.int64)
    # Written so that no int64 sum can wrap (crop, size, stitch are checked >= 0 first).
    bad = (crop < 0).any(1) | (size < 0).any(1) | (size > tile - np.maximum(crop, 0)).any(1)
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        raise ValueError(f"specs: tile {b} keeps crop_coords {tuple(crop[b])} + crop_size {tuple(size[b])}, outside the tile {tuple(tile_size)}")
    bad = (stitch < 0).any(1) | (size > image - np.maximum(stitch, 0)).any(1)
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        raise ValueError(f"specs: tile {b} stitches at {tuple(stitch[b])} with size {tuple(size[b])}, outside its image {tuple(image[b])}")


class BlendAccumulator:
    """Weighted tile blending over many batches, normalised at the end.

    Parameters
    ----------
    output_shapes : list of tuple
        SC(Z)YX shape of each output (C = prediction channels), indexed by ``data_idx``.
    tile_size : sequence of int
        (Z)YX tile size.
    overlaps : sequence of int, optional
        Taper width per axis (required by the ``linear`` and ``hann`` windows).
    window : {"linear", "hann", "gaussian", "uniform"}
        Blend window (:func:`cupatch.window_table`).
    array_module : module
        ``numpy`` (CPU) or ``cupy`` (GPU, current device).
    origins, image_shapes : list of (Z)YX tuples, optional
        When each output holds only a slab of its image (see :func:`stitch_tiles`).

    Attributes
    ----------
    outputs, weights : list of float32 arrays
        The running weighted sums and weight sums (zero-initialised).

    Examples
    --------
    >>> acc = BlendAccumulator([(1, 1, 64, 64)], (32, 32), (8, 8))   # doctest: +SKIP
    >>> acc.add(predictions, tile_specs)                                # doctest: +SKIP
    >>> (image,) = acc.finalize()                                       # doctest: +SKIP
    """

    def __init__(
        self,
        output_shapes: Sequence[Sequence[int]],
        tile_size: Sequence[int],
        overlaps: Sequence[int] | None = None,
        *,
        window: str = "hann",
        array_module=np,
        origins: Sequence[Sequence[int]] | None = None,
        image_shapes: Sequence[Sequence[int]] | None = None,
    ):
        xp = array_module
        if xp is not np:
            cupy = _backend.require_gpu("BlendAccumulator")
            if xp is not cupy:
                raise ValueError(f"array_module must be numpy or cupy, got {getattr(xp, '__name__', xp)!r}")
        tile = _int_tuple(tile_size, "tile_size", minimum=1)
        if len(tile) not in (2, 3):
            raise ValueError(f"tile_size must have 2 or 3 entries, got {tile}")
        shapes = [_int_tuple(s, f"output_shapes[{i}]", 2 + len(tile), minimum=0) for i, s in enumerate(output_shapes)]
        if not shapes:
            raise ValueError("output_shapes must contain at least one shape")
        self.xp = xp
        self.tile_size = tile
        self.window = window
        self.table = xp.asarray(window_table(tile, overlaps, window))
        self.outputs = [xp.zeros(s, dtype=np.float32) for s in shapes]
        self.weights = [xp.zeros((s[0], 1, *s[2:]), dtype=np.float32) for s in shapes]
        self.origins = None if origins is None else [tuple(o) for o in origins]
        self.image_shapes = None if image_shapes is None else [tuple(s) for s in image_shapes]
        self._finalized = False
        # The zero fills above are queued on the current stream: later calls on another
        # stream must wait for them (and for earlier batches).
        self._stream = xp.cuda.get_current_stream() if xp is not np else None

    def _follow_current_stream(self) -> None:
        """Order CuPy's current stream after the work queued on these arrays so far."""
        if self._stream is None:
            return
        stream = self.xp.cuda.get_current_stream()
        if stream.ptr != self._stream.ptr:
            stream.wait_event(self._stream.record())
            self._stream = stream

    def add(self, tiles: Any, specs: Any) -> None:
        """Accumulate one batch of tiles (one blend launch)."""
        if self._finalized:
            raise RuntimeError("BlendAccumulator.add called after finalize()")
        if tuple(tiles.shape[2:]) != self.tile_size:
            raise ValueError(f"tiles must have tile size {self.tile_size}, got shape {tuple(tiles.shape)}")
        self._follow_current_stream()
        stitch_tiles(
            tiles, specs, self.outputs, mode="blend", weights=self.weights, window_table=self.table,
            image_shapes=self.image_shapes, origins=self.origins,
        )

    def finalize(self) -> list:
        """Divide the sums by the weights in place and return the outputs.

        Voxels no tile covered (weight 0) stay 0.
        """
        if not self._finalized:
            xp = self.xp
            self._follow_current_stream()
            for out, w in zip(self.outputs, self.weights):
                out /= xp.where(w > 0, w, xp.float32(1))
            self._finalized = True
        return self.outputs
