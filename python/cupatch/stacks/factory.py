"""``as_stack`` / ``as_stacks``: build image stacks from arrays, files, Zarr nodes or stacks.

The factory knows every kind of stack and picks one for the source it is given, then applies
the placement policy (:func:`cupatch.stacks.placement.place`).
"""

from __future__ import annotations

import os

import numpy as np

from .._backend import is_cupy_array
from .array_stack import ArrayStack
from .axes import validate_axes
from .base import BaseStack
from .lazy_stack import LazyArrayStack
from .placement import check_placement, place
from .tiff_stack import TiffStack, is_tiff_path
from .zarr_stack import ZarrStack, is_zarr_source, open_zarr_arrays

__all__ = ["as_stack", "as_stacks", "is_npy_path", "open_npy"]

_NPY_MAGIC = b"\x93NUMPY"


def is_npy_path(obj) -> bool:
    """True for a str/PathLike naming a ``.npy`` file."""
    return isinstance(obj, (str, os.PathLike)) and os.fspath(obj).lower().endswith(".npy")


def open_npy(path) -> np.memmap:
    """A ``.npy`` file memory-mapped read-only.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        ``"cannot read .npy file '<path>': ..."`` for an empty, truncated or corrupt file,
        a file that is not in the ``.npy`` format (a pickle, another format renamed) and a
        file of Python objects (never unpickled).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path!r}")
    with open(path, "rb") as f:
        head = f.read(len(_NPY_MAGIC))
    if not head:
        raise ValueError(f"cannot read .npy file {path!r}: the file is empty")
    if head != _NPY_MAGIC:
        raise ValueError(f"cannot read .npy file {path!r}: it is not in the .npy format (no NumPy header)")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:  # truncated header or data, object arrays
        raise ValueError(f"cannot read .npy file {path!r}: {exc}") from None


def _array_names(arrays) -> list[str]:
    """Names of Zarr arrays within their group (their last path component)."""
    return [str(getattr(a, "path", "") or getattr(a, "name", "")).strip("/").split("/")[-1] for a in arrays]


def as_stack(obj, axes: str | None = None, *, placement: str = "auto") -> BaseStack:
    """Build one image stack.

    Parameters
    ----------
    obj : array, path, zarr array or stack
        A NumPy or CuPy array; a ``.tif``/``.tiff`` path; a ``.npy`` path (memory-mapped,
        :func:`open_npy`); a Zarr array, a path inside a ``.zarr`` store or a ``file://``
        URI naming one array; or an existing stack.
    axes : str
        Axes of the data (any subset of ``STCZYX`` with Y and X). Optional for an existing
        stack (checked when given).
    placement : {"auto", "gpu", "cpu", "disk"}
        Where the samples live (see :mod:`cupatch.stacks`).

    Returns
    -------
    ImageStack

    Raises
    ------
    FileNotFoundError
        Missing file or store (the message names the path).
    TypeError
        Unsupported source type or dtype.
    ValueError
        Bad axes, axes not matching the data, unreadable (empty, corrupt) file naming it, a Zarr group with several
        arrays (use :func:`as_stacks`).
    RuntimeError
        ``placement="gpu"`` without a usable GPU.
    """
    check_placement(placement)
    if isinstance(obj, BaseStack):
        if axes is not None and validate_axes(axes) != obj.original_axes:
            raise ValueError(f"axes {axes!r} do not match the stack's axes {obj.original_axes!r}")
        return place(obj, placement)
    if axes is None:
        raise ValueError("axes is required to build a stack from an array or a file")
    axes = validate_axes(axes)
    if isinstance(obj, np.ndarray) or is_cupy_array(obj):
        if placement == "disk" and isinstance(obj, np.ndarray):
            return LazyArrayStack(obj, axes)
        stack = ArrayStack.from_array(obj, axes)
    elif is_npy_path(obj):
        array, source = open_npy(obj), os.fspath(obj)  # the file, not "array": outputs must never overwrite it
        if placement == "disk":
            stack = LazyArrayStack(array, axes, source=source)
        else:
            stack = ArrayStack.from_array(array, axes, source=source)
    elif is_tiff_path(obj):
        stack = TiffStack(obj, axes)
    elif is_zarr_source(obj):
        arrays = open_zarr_arrays(obj)
        if len(arrays) != 1:
            raise ValueError(
                f"{str(obj)!r} holds {len(arrays)} Zarr arrays ({', '.join(_array_names(arrays))}); name one "
                f"(e.g. {str(obj).rstrip('/') + '/' + _array_names(arrays)[0]!r}) or use as_stacks to load them all"
            )
        stack = ZarrStack(arrays[0], axes)
    elif isinstance(obj, (str, os.PathLike)):
        if not os.path.exists(obj):
            raise FileNotFoundError(f"image file not found: {str(obj)!r}")
        raise ValueError(f"unsupported file type {str(obj)!r}: expected .tif/.tiff, .npy or a .zarr store")
    else:
        raise TypeError(
            f"cannot build an image stack from {type(obj).__name__}: expected an array, a TIFF or "
            f"Zarr path, a zarr array or an image stack"
        )
    return place(stack, placement)


def as_stacks(objs, axes: str | None = None, *, placement: str = "auto") -> list[BaseStack]:
    """Build a list of stacks from one source or a list of sources.

    A Zarr group (or a path/URI naming one) expands to every array it holds, sorted by name.
    Other arguments as in :func:`as_stack`.
    """
    check_placement(placement)
    items = list(objs) if isinstance(objs, (list, tuple)) else [objs]
    if not items:
        raise ValueError(f"objs is an empty {type(objs).__name__}: no image sources given")
    stacks = []
    for obj in items:
        if not isinstance(obj, BaseStack) and is_zarr_source(obj):
            if axes is None:
                raise ValueError("axes is required to build stacks from Zarr sources")
            stacks.extend(place(ZarrStack(arr, axes), placement) for arr in open_zarr_arrays(obj))
        else:
            stacks.append(as_stack(obj, axes, placement=placement))
    return stacks
