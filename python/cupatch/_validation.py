"""Argument checks shared by every public entry point.

One helper per kind of check (an int that is not a bool, a per-axis tuple, an option from a
set, a finite float, an index in range), each raising with a message that names the
parameter and the allowed values, so that the same mistake reads the same everywhere. The
models are MONAI's ``look_up_option`` / ``ensure_tuple_rep`` and cuCIM's
``skimage/_shared/utils.py``.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = [
    "EXTENT_LIMIT",
    "ROW_LIMIT",
    "as_bool",
    "as_list",
    "as_channels",
    "as_dtype",
    "as_float",
    "as_float_array",
    "as_index",
    "as_indices",
    "as_int",
    "as_int_tuple",
    "as_overlaps",
    "as_patch_size",
    "as_probability",
    "deprecated_alias",
    "ensure_tuple_rep",
    "is_int",
    "look_up_option",
    "validate_data_shapes",
]


#: Array extents, origins and image shapes must stay below the native coordinate limit
#: (``docs/contracts.md``, *Spec tables*).
EXTENT_LIMIT = 1 << 60
#: Row lengths (the X extent of patches and tiles) are at most this (``docs/contracts.md``).
ROW_LIMIT = 1 << 30


def is_int(value: Any) -> bool:
    """True for Python and NumPy integers; bools (which are ints to Python) are not."""
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def as_bool(value: Any, name: str) -> bool:
    """A flag as a Python bool: ``True``/``False`` (NumPy bools and the ints 0 and 1 too).

    Raises
    ------
    TypeError
        For anything else (``"False"``, ``None``, ``2``, lists, arrays), which Python's
        truthiness would otherwise read as a flag without a word.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if is_int(value) and int(value) in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")


def as_list(values: Any, name: str, *, what: str = "values") -> list:
    """A list or tuple as a list (TypeError naming ``name`` for strings, mappings, arrays,
    scalars and other objects)."""
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{name} must be a list of {what}, got {values!r} ({type(values).__name__})")
    return list(values)


def _range_text(minimum: int | None, below: Any) -> str:
    if below is None:
        return f">= {minimum}"
    return f"in [{minimum if minimum is not None else '-inf'}, {below})"


def as_int(value: Any, name: str, *, minimum: int | None = None, below: int | None = None, below_text: str | None = None) -> int:
    """``value`` as a Python int, optionally in ``[minimum, below)``.

    Raises
    ------
    TypeError
        For bools, floats and anything else that is not an integer (never truncated).
    ValueError
        ``"{name} must be >= {minimum}"`` or ``"{name} must be in [{minimum}, {below})"``;
        ``below_text`` replaces the upper bound in the message (e.g. ``"world_size=4"``).
    """
    if not is_int(value):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    v = int(value)
    if (minimum is not None and v < minimum) or (below is not None and v >= below):
        raise ValueError(f"{name} must be {_range_text(minimum, below_text or below)}, got {v}")
    return v


def as_int_tuple(values: Any, name: str, *, length: int | None = None, minimum: int | None = None) -> tuple[int, ...]:
    """A sequence of integers as a tuple of Python ints, checking its length and minimum.

    Raises
    ------
    TypeError
        If ``values`` is not a sequence (strings are not) or holds a non-integer.
    ValueError
        If it has the wrong number of entries or an entry below ``minimum``.
    """
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, (Iterable, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of ints, got {values!r} ({type(values).__name__})")
    try:
        items = tuple(values)
    except TypeError:  # a 0-d array, an iterable that refuses to iterate
        raise TypeError(f"{name} must be a sequence of ints, got {values!r} ({type(values).__name__})") from None
    for i, v in enumerate(items):
        if not is_int(v):
            raise TypeError(
                f"{name} must contain only ints, got {items!r} ({name}[{i}] is a {type(v).__name__}; "
                f"{name} must contain ints, never floats or bools)"
            )
    out = tuple(int(v) for v in items)
    if length is not None and len(out) != length:
        raise ValueError(f"{name} must have {length} entries, got {len(out)}: {out}")
    if minimum is not None:
        for i, v in enumerate(out):
            if v < minimum:
                raise ValueError(f"{name} entries must be >= {minimum}, got {out}: {name}[{i}] must be >= {minimum}")
    return out


def ensure_tuple_rep(value: Any, length: int, name: str, *, minimum: int | None = None) -> tuple[int, ...]:
    """One int for every axis: an int is repeated ``length`` times, a sequence is checked."""
    if is_int(value):
        return as_int_tuple((value,) * length, name, length=length, minimum=minimum)
    return as_int_tuple(value, name, length=length, minimum=minimum)


def _shown(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def look_up_option(value: Any, options: Iterable[Any], name: str, *, error: type[Exception] = ValueError) -> Any:
    """``value`` when it is one of ``options``, else ``error`` naming the allowed values.

    The message reads ``'{name} must be "a" or "b", got "c"'`` for a choice between two
    names and ``'{name} must be one of "a", "b", "c", got "d"'`` otherwise.
    """
    options = tuple(options)
    try:
        found = any(value == o for o in options) and not isinstance(value, (bool, np.bool_))
    except (TypeError, ValueError):  # incomparable values (arrays, ...) are not options
        found = False
    if not found:
        if len(options) == 2 and all(isinstance(o, str) for o in options):
            allowed = f"{_shown(options[0])} or {_shown(options[1])}"
        else:
            allowed = "one of " + ", ".join(_shown(o) for o in options)
        raise error(f"{name} must be {allowed}, got {_shown(value)}")
    return value


def as_dtype(value: Any, options: Iterable[Any], name: str = "dtype") -> np.dtype:
    """``value`` as a NumPy dtype that is one of ``options``.

    Raises
    ------
    TypeError
        If ``value`` is not a dtype at all (``"abc"``, ``True``, ``2.5``).
    ValueError
        If it is a dtype outside ``options`` (as :func:`look_up_option`).
    """
    if isinstance(value, (bool, np.bool_, numbers.Number)):  # np.dtype(0) is not an answer
        raise TypeError(f"{name} {value!r} is not a valid dtype")
    try:
        dtype = np.dtype(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} {value!r} is not a valid dtype") from None
    return look_up_option(dtype, options, name)


def as_float(value: Any, name: str, *, low: float | None = None, high: float | None = None, what: str = "a finite number") -> float:
    """A finite real number (not a bool) as a Python float, optionally in ``[low, high]``.

    Raises
    ------
    ValueError
        ``"{name} must be {what} in [{low}, {high}], got ..."`` for non-numbers, NaN,
        infinities and values outside the range.
    """
    ok = isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, (bool, np.bool_))
    v = float(value) if ok else math.nan
    if ok and math.isfinite(v) and (low is None or v >= low) and (high is None or v <= high):
        return v
    if low is not None and high is not None:
        bounds = f" in [{low:g}, {high:g}]"
    elif low is not None:
        bounds = f" >= {low:g}"
    elif high is not None:
        bounds = f" <= {high:g}"
    else:
        bounds = ""
    kind = "" if ok else f" ({type(value).__name__})"  # a string "0.1" reads like a number otherwise
    raise ValueError(f"{name} must be {what}{bounds}, got {value!r}{kind}")


def as_float_array(values: Any, name: str) -> np.ndarray:
    """A finite real number or a non-empty 1-D sequence of them as a float64 array (1-D).

    Raises
    ------
    ValueError
        ``"{name} must be a finite number or a non-empty 1-D sequence of finite numbers, got
        ..."`` for strings, bools, complex numbers, NaN, infinities, nested or empty
        sequences and anything else that is not a real number.
    """
    what = f"{name} must be a finite number or a non-empty 1-D sequence of finite numbers"
    if isinstance(values, (str, bytes, Mapping)):
        raise ValueError(f"{what}, got {values!r} ({type(values).__name__})")
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):  # ragged sequences and objects NumPy refuses
        raise ValueError(f"{what}, got {values!r}") from None
    if arr.dtype.kind not in "iuf" or arr.ndim > 1 or arr.size == 0:
        raise ValueError(f"{what}, got {values!r}")
    arr = np.atleast_1d(arr.astype(np.float64))
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{what}, got {values!r} ({name}[{int(bad[0])}] is {arr[bad[0]]})")
    return arr


def as_channels(channels: Any, n_channels: int, name: str = "channels") -> list[int] | None:
    """A channel subset (an int or a non-empty sequence of ints) checked against
    ``n_channels``; ``None`` (all channels) stays None.

    Raises
    ------
    TypeError
        For non-integer entries (floats, bools, strings).
    ValueError
        For an empty subset and for an index outside ``[0, n_channels)`` (CAREamics' message).
    """
    if channels is None:
        return None
    values = as_int_tuple((channels,) if is_int(channels) else channels, name)
    if not values:
        raise ValueError(f"{name} must not be empty (use None for all channels)")
    for c in values:
        if not 0 <= c < n_channels:
            raise ValueError(
                f"Channel index {c} in {name} is out of bounds: the data has {n_channels} "
                f"channel(s) (valid indices 0..{n_channels - 1}). Check the provided `{name}`."
            )
    return list(values)


def as_probability(value: Any, name: str) -> float:
    """A probability in ``[0, 1]`` as a Python float (ValueError otherwise)."""
    return as_float(value, name, low=0.0, high=1.0, what="a probability")


def as_index(index: Any, n: int, name: str = "index", *, what: str = "patches") -> int:
    """One index in ``[0, n)``; negative indices raise IndexError (no wrapping)."""
    i = as_int(index, name)
    if i < 0 or i >= n:
        raise IndexError(f"{name} {i} out of range for {n} {what} (valid: 0 <= {name} < {n})")
    return i


def as_indices(indices: Any, n: int, name: str = "indices", *, what: str = "patches") -> np.ndarray:
    """A batch of indices in ``[0, n)`` (a scalar or 1-D) as a 1-D int64 array."""
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
        raise IndexError(f"{name} contains {int(bad)}, out of range for {n} {what} (valid: 0 <= index < {n})")
    return arr.astype(np.int64, copy=False)


def validate_data_shapes(data_shapes: Any) -> tuple[tuple[int, ...], ...]:
    """Check SC(Z)YX shapes: non-empty, 4 or 5 positive entries each below 2**60, one spatial ndim."""
    if isinstance(data_shapes, (str, bytes, Mapping)) or not isinstance(data_shapes, (Iterable, np.ndarray)):
        raise TypeError(f"data_shapes must be a sequence of SC(Z)YX shapes, got {type(data_shapes).__name__}")
    data_shapes = list(data_shapes)
    if len(data_shapes) == 0:
        raise ValueError("data_shapes must not be empty")
    shapes = tuple(as_int_tuple(s, f"data_shapes[{k}]", minimum=1) for k, s in enumerate(data_shapes))
    for k, shape in enumerate(shapes):
        if max(shape, default=0) >= EXTENT_LIMIT:
            raise ValueError(f"data_shapes[{k}] entries must be below 2**60 (the documented extent limit), got {shape}")
        if len(shape) not in (4, 5):
            raise ValueError(f"data_shapes[{k}] must be SCYX or SCZYX (4 or 5 entries), got {shape}")
        if len(shape) != len(shapes[0]):
            raise ValueError(
                f"data_shapes must all have the same number of spatial dimensions: data_shapes[0] is "
                f"{shapes[0]}, data_shapes[{k}] is {shape}"
            )
    return shapes


def as_patch_size(patch_size: Any, ndim: int, name: str = "patch_size") -> tuple[int, ...]:
    """A patch/tile size: ``ndim`` positive integers, below 2**60, the last (X) at most 2**30
    (the limits of ``docs/contracts.md``). One int means that size on every axis."""
    size = ensure_tuple_rep(patch_size, ndim, name, minimum=1)
    for i, s in enumerate(size):
        if s >= EXTENT_LIMIT:
            raise ValueError(f"{name}[{i}] must be below 2**60, got {size}")
    if size and size[-1] > ROW_LIMIT:
        raise ValueError(f"{name}[{len(size) - 1}] (the X extent) must be at most 2**30, got {size}")
    return size


def as_overlaps(overlaps: Any, patch_size: tuple[int, ...], name: str = "overlaps") -> tuple[int, ...]:
    """Overlaps: one non-negative integer per axis, each smaller than the patch (one int
    means that overlap on every axis)."""
    out = ensure_tuple_rep(overlaps, len(patch_size), name, minimum=0)
    for i, (o, p) in enumerate(zip(out, patch_size)):
        if o >= p:
            raise ValueError(f"{name}[{i}] must be smaller than patch_size[{i}] ({p}), got {o}")
    return out


def deprecated_alias(
    value: Any, old_value: Any, name: str, old_name: str, where: str, *, missing: Any = None, stacklevel: int = 3
) -> Any:
    """The value of a renamed parameter, also accepted under its old name for one release.

    ``value`` is what was passed as ``name`` (``missing`` when not given), ``old_value`` what
    was passed as ``old_name`` (``None`` when not given). The old name gives a
    ``DeprecationWarning``; both at once, or neither, are a ``TypeError`` naming them.
    """
    if old_value is None:
        if value is missing:
            raise TypeError(f"{where}() missing required argument {name!r}")
        return value
    if value is not missing:
        raise TypeError(f"{where}() got both {name!r} and its deprecated alias {old_name!r}; give {name!r} only")
    warnings.warn(
        f"{where}({old_name}=...) is deprecated and will be removed in the next release; use {name}=... instead",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return old_value
