"""``gather_patches``: a batch of patches from the sources in one kernel launch.

The channel subset, the cast to the output dtype, the per-channel affine (normalisation)
and the per-patch flips / quarter turns are all applied by the kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _backend, _core
from .._dtypes import DTYPE_CODES, OUTPUT_DTYPES
from .._layouts import n_patch_columns, patch_columns
from .._validation import as_channels, as_dtype, as_patch_size
from ._arrays import as_backend_array, device_argument, host_array, memory_overlaps, ptr, spatial3, spec_table
from .sources import SourceTable

__all__ = ["gather_patches"]


def _per_patch(value: Any, n: int, name: str, *, kind: str, xp=np):
    """Host (validated) or device (shape and dtype checked: no synchronisation) per-patch flags."""
    if value is None:
        return None
    on_device = _backend.is_gpu_array(value)
    arr = device_argument(value, xp, name) if on_device else np.asarray(value)
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
    on_device = _backend.is_gpu_array(value)
    arr = device_argument(value, xp, name) if on_device else host_array(value, name)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be numbers, got dtype {arr.dtype}")
    arr = arr.reshape(-1) if arr.ndim == 0 else arr
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have one value per output channel ({n}), got shape {tuple(arr.shape)}")
    with np.errstate(over="ignore"):  # a float64 beyond float32 becomes inf, refused below
        arr = arr.astype(np.float32)
    if not on_device and not np.isfinite(arr).all():  # host values only: no device synchronisation
        raise ValueError(f"{name} must be finite in float32, got {value!r}")
    return arr


def _check_rows(specs: np.ndarray, table: SourceTable) -> None:
    """Every host spec row names an existing source and sample."""
    columns = patch_columns(table.ndim)
    data_idx = specs[:, columns["data_idx"]][:, 0]
    if data_idx.min() < 0 or data_idx.max() >= len(table):
        raise IndexError(f"specs: data_idx must be in [0, {len(table)}), got values in [{data_idx.min()}, {data_idx.max()}]")
    sample_idx = specs[:, columns["sample_idx"]][:, 0]
    bad = (sample_idx < 0) | (sample_idx >= table.n_samples[data_idx])
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        raise IndexError(
            f"specs: sample_idx {sample_idx[b]} of patch {b} is out of range for sources[{data_idx[b]}] "
            f"with {table.n_samples[data_idx[b]]} samples"
        )


def _channels(channels, n_channels: int) -> np.ndarray:
    if channels is None:
        return np.arange(n_channels, dtype=np.int64)
    return np.asarray(as_channels(channels, n_channels), dtype=np.int64)


def _affine(scale, shift, n_out: int, xp):
    """The (2, C_out) float32 scale/shift table, on the device when either was given there."""
    sc = _per_channel(scale, n_out, "scale", xp)
    sh = _per_channel(shift, n_out, "shift", xp)
    if sc is None and sh is None:
        return None
    on_device = any(v is not None and not isinstance(v, np.ndarray) for v in (sc, sh))
    mod = xp if on_device else np
    ones, zeros = mod.ones(n_out, dtype=np.float32), mod.zeros(n_out, dtype=np.float32)
    return mod.stack([ones if sc is None else mod.asarray(sc), zeros if sh is None else mod.asarray(sh)])


def _augmentation_flags(flip_y, flip_x, rot90, n_patches: int, patch: tuple[int, ...], xp):
    """Per-patch uint8 flags (bit 0 flip Y, bit 1 flip X, bits 2-3 quarter turns) or None."""
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
    flags = [f for f in (fy, fx, rot) if f is not None]
    if not flags:
        return None
    mod = xp if any(not isinstance(f, np.ndarray) for f in flags) else np
    aug = mod.zeros(n_patches, dtype=np.uint8)
    if fy is not None:
        aug |= mod.asarray(fy).astype(np.uint8)
    if fx is not None:
        aug |= mod.asarray(fx).astype(np.uint8) << 1
    if rot is not None:
        aug |= (mod.asarray(rot) & 3).astype(np.uint8) << 2
    return aug


def _output(out, shape: tuple[int, ...], out_dtype: np.dtype, xp, table: SourceTable):
    if out is None:
        return xp.empty(shape, dtype=out_dtype)
    out = as_backend_array(out, xp, "out", writable=True)
    if tuple(out.shape) != shape:
        raise ValueError(f"out must have shape {shape}, got {tuple(out.shape)}")
    if np.dtype(out.dtype) != out_dtype:
        raise TypeError(f"out must have dtype {out_dtype} (the dtype argument), got {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    for i, source in enumerate(table.arrays):
        # the kernel reads the sources while it writes out: a patch would read voxels that
        # an earlier write (a flip, another patch) already replaced
        if memory_overlaps(out, source):
            raise ValueError(
                f"out shares memory with sources[{i}]; gather_patches reads the sources while writing out, "
                f"so pass a separate out array"
            )
    return out


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
    patch_size : int or sequence of int (one int: that size on every axis)
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
        C-contiguous, writable array of ``dtype`` on the sources' backend to fill; it must
        not share memory with any source (ValueError naming ``out`` and the source).

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
    patch = as_patch_size(patch_size, ndim)
    n_cols = n_patch_columns(ndim)
    specs_dev, specs_host = spec_table(specs, n_cols, xp, "specs", what="patch table")
    n_patches = int(specs_dev.shape[0])
    if specs_host is not None and n_patches:
        _check_rows(specs_host, table)
    chan = _channels(channels, table.n_channels)
    n_out = int(chan.size)
    out_dtype = as_dtype(dtype, OUTPUT_DTYPES)
    affine = _affine(scale, shift, n_out, xp)
    aug = _augmentation_flags(flip_y, flip_x, rot90, n_patches, patch, xp)
    out = _output(out, (n_patches, n_out, *patch), out_dtype, xp, table)
    if n_patches == 0:
        return out
    patch3 = spatial3(patch)
    out_code = DTYPE_CODES[out_dtype]
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
        ptr(table.device_copy(table.table)), len(table), table.dtype_code, ptr(specs_dev), n_patches, n_cols, ndim, patch3,
        ptr(chan_dev), n_out, 0 if affine_dev is None else ptr(affine_dev), 0 if aug_dev is None else ptr(aug_dev),
        ptr(out), out_code, int(xp.cuda.get_current_stream().ptr), table.device_id,
    )
    return out
