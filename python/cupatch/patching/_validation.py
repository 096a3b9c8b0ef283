"""Argument checks shared by the patching strategies.

Every check raises with a message that names the offending parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "as_index",
    "as_indices",
    "as_int",
    "as_int_tuple",
    "as_overlaps",
    "as_patch_size",
    "validate_data_shapes",
]


def as_int(value: Any, name: str) -> int:
    """Return ``value`` as a Python int; bools, floats and other types raise TypeError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    return int(value)


def as_int_tuple(values: Any, name: str, *, length: int | None = None, minimum: int | None = None) -> tuple[int, ...]:
    """Return a sequence of integers as a tuple of Python ints, checking length and minimum."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of integers, got {type(values).__name__}")
    out = tuple(as_int(v, f"{name}[{i}]") for i, v in enumerate(values))
    if length is not None and len(out) != length:
        raise ValueError(f"{name} must have {length} entries (one per spatial axis), got {len(out)}: {out}")
    if minimum is not None:
        for i, v in enumerate(out):
            if v < minimum:
                raise ValueError(f"{name}[{i}] must be >= {minimum}, got {v}")
    return out


def validate_data_shapes(data_shapes: Any) -> tuple[tuple[int, ...], ...]:
    """Check SC(Z)YX shapes: non-empty, 4 or 5 positive entries each, one spatial ndim."""
    if isinstance(data_shapes, (str, bytes)) or not isinstance(data_shapes, (Sequence, np.ndarray)):
        raise TypeError(f"data_shapes must be a sequence of SC(Z)YX shapes, got {type(data_shapes).__name__}")
    if len(data_shapes) == 0:
        raise ValueError("data_shapes must not be empty")
    shapes = tuple(as_int_tuple(s, f"data_shapes[{k}]", minimum=1) for k, s in enumerate(data_shapes))
    for k, shape in enumerate(shapes):
        if len(shape) not in (4, 5):
            raise ValueError(f"data_shapes[{k}] must be SCYX or SCZYX (4 or 5 entries), got {shape}")
        if len(shape) != len(shapes[0]):
            raise ValueError(
                f"data_shapes must all have the same number of spatial dimensions: data_shapes[0] is "
                f"{shapes[0]}, data_shapes[{k}] is {shape}"
            )
    return shapes


def as_patch_size(patch_size: Any, ndim: int, name: str = "patch_size") -> tuple[int, ...]:
    """Validate a patch/tile size: ``ndim`` positive integers."""
    return as_int_tuple(patch_size, name, length=ndim, minimum=1)


def as_overlaps(overlaps: Any, patch_size: tuple[int, ...], name: str = "overlaps") -> tuple[int, ...]:
    """Validate overlaps: one non-negative integer per axis, each smaller than the patch."""
    out = as_int_tuple(overlaps, name, length=len(patch_size), minimum=0)
    for i, (o, p) in enumerate(zip(out, patch_size)):
        if o >= p:
            raise ValueError(f"{name}[{i}] must be smaller than patch_size[{i}] ({p}), got {o}")
    return out


def as_index(index: Any, n: int, name: str = "index") -> int:
    """Validate one index in ``[0, n)``; negative indices raise IndexError."""
    i = as_int(index, name)
    if i < 0 or i >= n:
        raise IndexError(f"{name} {i} out of range for {n} patches (valid: 0 <= {name} < {n})")
    return i


def as_indices(indices: Any, n: int, name: str = "indices") -> np.ndarray:
    """Validate a batch of indices in ``[0, n)``; return them as a 1-D int64 array."""
    arr = np.asarray(indices)
    if arr.ndim > 1:
        raise ValueError(f"{name} must be a scalar or 1-D, got shape {arr.shape}")
    arr = np.atleast_1d(arr)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi >= n:
        bad = lo if lo < 0 else hi
        raise IndexError(f"{name} contains {int(bad)}, out of range for {n} patches (valid: 0 <= index < {n})")
    return arr.astype(np.int64, copy=False)
