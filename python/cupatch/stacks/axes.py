"""Axes handling: user axis strings <-> the canonical SC(Z)YX layout.

The semantics follow CAREamics' ``reshape_array`` / ``restore_array``:

* user axes are any subset of ``STCZYX`` in any order, without duplicates, and must contain
  Y and X;
* reshaping moves the axes into the reference order S, T, C, Z, Y, X, merges S and T into one
  sample axis (T fastest, so the original S index is ``sample_idx // T`` and the T index is
  ``sample_idx % T``), prepends a singleton S when neither is present and inserts a singleton
  C at position 1 when C is absent;
* restoring undoes this, into ``target_axes`` order (default: the original axes); the channel
  size is taken from the array being restored, so outputs whose channel count differs from
  the input restore correctly.

Every function works on NumPy and CuPy arrays alike (only ``transpose``/``reshape`` are used,
so the result is a view whenever the memory layout allows it).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "REFERENCE_ORDER",
    "reshape_array",
    "reshaped_shape",
    "restore_array",
    "restored_shape",
    "sample_index",
    "spatial_axes",
    "validate_axes",
]

#: Order the axes are moved into before S and T are merged.
REFERENCE_ORDER = "STCZYX"


def validate_axes(axes: str, name: str = "axes") -> str:
    """Check an axes string and return it upper-cased.

    Parameters
    ----------
    axes : str
        Axis letters drawn from ``STCZYX`` in any order, e.g. ``"YX"``, ``"SYXC"``, ``"TZYX"``.
    name : str
        The argument's name in the messages (``"target_axes"``, ...).

    Returns
    -------
    str
        The validated axes, upper-case.

    Raises
    ------
    TypeError
        If ``axes`` is not a string.
    ValueError
        If it is empty, has more than 6 letters, contains letters outside ``STCZYX``, repeats a
        letter, or lacks Y or X.
    """
    if not isinstance(axes, str):
        raise TypeError(f"{name} must be a string such as 'SYX', got {type(axes).__name__}")
    upper = axes.upper()
    if not 2 <= len(upper) <= 6:
        raise ValueError(f"{name} must have 2 to 6 letters from 'STCZYX', got {axes!r}")
    bad = sorted(set(upper) - set(REFERENCE_ORDER))
    if bad:
        raise ValueError(f"{name} {axes!r} contains unknown axis letter(s) {bad}; allowed: 'STCZYX'")
    if len(set(upper)) != len(upper):
        raise ValueError(f"{name} {axes!r} repeats an axis letter")
    if "Y" not in upper or "X" not in upper:
        raise ValueError(f"{name} {axes!r} must contain both 'Y' and 'X'")
    return upper


def spatial_axes(axes: str) -> str:
    """The spatial axes of ``axes`` in canonical order: ``"YX"`` or ``"ZYX"``."""
    return "ZYX" if "Z" in validate_axes(axes) else "YX"


def _check_shape(shape: Sequence[int], axes: str) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != len(axes):
        raise ValueError(
            f"axes {axes!r} has {len(axes)} letters but the data has {len(shape)} dimensions "
            f"(shape {shape})"
        )
    return shape


def reshaped_shape(shape: Sequence[int], axes: str) -> tuple[int, ...]:
    """Shape of data with ``shape`` and ``axes`` once reshaped to SC(Z)YX."""
    axes = validate_axes(axes)
    shape = _check_shape(shape, axes)
    size = dict(zip(axes, shape))
    out = [size.get("S", 1) * size.get("T", 1), size.get("C", 1)]
    out += [size[a] for a in "ZYX" if a in size]
    return tuple(out)


def reshape_array(array, axes: str):
    """Reshape an array with arbitrary ``axes`` to SC(Z)YX.

    Parameters
    ----------
    array : numpy.ndarray or cupy.ndarray
        Data whose dimensions are described by ``axes``.
    axes : str
        Axes of ``array`` (see :func:`validate_axes`).

    Returns
    -------
    array of the same module
        ``(S*T or 1, C or 1, [Z,] Y, X)``; a view when the layout allows it.
    """
    axes = validate_axes(axes)
    _check_shape(array.shape, axes)
    present = [a for a in REFERENCE_ORDER if a in axes]
    perm = [axes.index(a) for a in present]
    if perm != list(range(len(perm))):
        array = array.transpose(perm)
    new_shape = reshaped_shape(array.shape, "".join(present))
    if tuple(array.shape) != new_shape:
        array = array.reshape(new_shape)
    return array


def sample_index(sample_idx: int, axes: str, shape: Sequence[int]) -> dict[str, int]:
    """Split a merged sample index into the original S and T indices.

    Parameters
    ----------
    sample_idx : int
        Index along the merged S axis of the SC(Z)YX layout.
    axes, shape
        Original axes and shape.

    Returns
    -------
    dict
        ``{"S": s, "T": t}`` restricted to the sample axes present in ``axes`` (empty when
        there are none).

    Raises
    ------
    IndexError
        If ``sample_idx`` is outside ``[0, S*T)``.
    """
    axes = validate_axes(axes)
    shape = _check_shape(shape, axes)
    size = dict(zip(axes, shape))
    n_s, n_t = size.get("S", 1), size.get("T", 1)
    sample_idx = int(sample_idx)
    if not 0 <= sample_idx < n_s * n_t:
        raise IndexError(f"sample_idx {sample_idx} is out of range for {n_s * n_t} samples")
    out = {}
    if "S" in size:
        out["S"] = sample_idx // n_t
    if "T" in size:
        out["T"] = sample_idx % n_t
    return out


def _check_target_axes(axes: str, target_axes: str) -> None:
    for group, name in (("ST", "sample"), ("ZYX", "spatial")):
        if {a for a in axes if a in group} != {a for a in target_axes if a in group}:
            raise ValueError(
                f"target_axes {target_axes!r} must have the same {name} axes as the original "
                f"axes {axes!r}"
            )


def restored_shape(
    shape: Sequence[int], axes: str, original_shape: Sequence[int], target_axes: str | None = None
) -> tuple[int, ...]:
    """Shape an SC(Z)YX array of ``shape`` takes once restored (see :func:`restore_array`)."""
    axes = validate_axes(axes)
    target_axes = axes if target_axes is None else validate_axes(target_axes)
    original_shape = _check_shape(original_shape, axes)
    _check_target_axes(axes, target_axes)
    shape = tuple(int(s) for s in shape)
    n_spatial = 3 if "Z" in axes else 2
    if len(shape) != 2 + n_spatial:
        raise ValueError(
            f"expected a {2 + n_spatial}-D SC{'Z' if n_spatial == 3 else ''}YX array for axes "
            f"{axes!r}, got shape {shape}"
        )
    size = dict(zip(axes, original_shape))
    n_samples = size.get("S", 1) * size.get("T", 1)
    if shape[0] != n_samples:
        raise ValueError(
            f"the array has {shape[0]} samples but axes {axes!r} with shape {original_shape} "
            f"give {n_samples}"
        )
    if "C" not in target_axes and shape[1] != 1:
        raise ValueError(
            f"Cannot drop C dimension: target_axes {target_axes!r} has no 'C' but the array has "
            f"{shape[1]} channels"
        )
    new = dict(size)
    new["C"] = shape[1]
    for a, n in zip("ZYX"[3 - n_spatial :], shape[2:]):
        new[a] = n
    return tuple(new[a] for a in target_axes)


def restore_array(array, axes: str, original_shape: Sequence[int], target_axes: str | None = None):
    """Restore an SC(Z)YX array to the original (or ``target_axes``) axis order.

    Parameters
    ----------
    array : numpy.ndarray or cupy.ndarray
        4-D SCYX or 5-D SCZYX data, e.g. a stitched prediction.
    axes : str
        Axes of the original data.
    original_shape : sequence of int
        Shape of the original data (gives the sizes of the merged S and T axes).
    target_axes : str, optional
        Axis order of the result (default ``axes``). It must have the same sample (S/T) and
        spatial axes as ``axes``; it may add or drop C (dropping needs a single channel).

    Returns
    -------
    array of the same module
        The data in ``target_axes`` order; the channel size is the array's own.
    """
    axes = validate_axes(axes)
    target_axes = axes if target_axes is None else validate_axes(target_axes)
    if array.ndim not in (4, 5):
        raise ValueError(f"Expected 4D (SCYX) or 5D (SCZYX) array, got shape {tuple(array.shape)}")
    shape = restored_shape(array.shape, axes, original_shape, target_axes)
    size = dict(zip(target_axes, shape))
    # Unflatten the merged sample axis into the original S, T (in reference order).
    sample_letters = [a for a in "ST" if a in axes]
    spatial = "ZYX"[5 - array.ndim :]
    current = "".join(sample_letters) + "C" + spatial
    array = array.reshape(tuple(size.get(a, 1) if a != "C" else array.shape[1] for a in current))
    if "C" not in target_axes:
        array = array.reshape(tuple(n for a, n in zip(current, array.shape) if a != "C"))
        current = current.replace("C", "")
    perm = [current.index(a) for a in target_axes]
    if perm != list(range(len(perm))):
        array = array.transpose(perm)
    return array
