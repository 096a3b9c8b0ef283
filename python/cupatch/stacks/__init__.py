"""Image stacks: arrays, TIFF and Zarr sources seen in the canonical SC(Z)YX layout.

A stack is built with :func:`as_stack` (one source) or :func:`as_stacks` (a list; Zarr groups
expand to all their arrays). Every stack exposes the :class:`ImageStack` attributes and reads
zero-padded regions with ``read_region``. Placement decides where the samples live:

``"gpu"``
    uploaded once to the GPU in the stored dtype (no float32 copy of the stack);
``"cpu"``
    in host memory (TIFF files that allow it stay memory-mapped);
``"disk"``
    read region by region on demand (only the touched TIFF pages / Zarr chunks);
``"auto"``
    arrays stay where they are, memory-mappable TIFF files are mapped, other files stay on disk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .axes import reshape_array, restore_array, validate_axes
from .base import PLACEMENTS, SUPPORTED_DTYPES, BaseStack, LazyStack, check_placement, is_cupy_array
from .memory import ArrayStack
from .tiff import TiffStack, is_tiff_path
from .zarr_stack import ZarrStack, is_zarr_source, open_zarr_arrays

__all__ = [
    "PLACEMENTS",
    "SUPPORTED_DTYPES",
    "ArrayStack",
    "ImageStack",
    "LazyArrayStack",
    "TiffStack",
    "ZarrStack",
    "as_stack",
    "as_stacks",
    "reshape_array",
    "restore_array",
    "validate_axes",
]


@runtime_checkable
class ImageStack(Protocol):
    """What the dataset needs from a stack (see :class:`cupatch.stacks.base.BaseStack`)."""

    source: str
    data_shape: tuple[int, ...]
    dtype: np.dtype
    original_axes: str
    original_data_shape: tuple[int, ...]
    additional_metadata: dict
    placement: str
    array: Any

    def read_region(self, sample_idx: int, coords: Sequence[int], size: Sequence[int], channels=None) -> np.ndarray: ...

    def to_device(self, placement: str) -> ImageStack: ...


class LazyArrayStack(LazyStack):
    """A host array (or any sliceable array-like) in its original axes, read region by region.

    This is the ``"disk"`` placement of an in-memory NumPy array: nothing is copied or
    reshaped up front, which mirrors how file-backed stacks are fed.
    """

    def __init__(self, array, axes: str, *, source: str = "array") -> None:
        self._init_lazy(array, source, axes)


def _array_names(arrays) -> list[str]:
    """Names of Zarr arrays within their group (their last path component)."""
    return [str(getattr(a, "path", "") or getattr(a, "name", "")).strip("/").split("/")[-1] for a in arrays]


def _place(stack: BaseStack, placement: str) -> BaseStack:
    if placement in ("gpu", "cpu"):
        return stack.to_device(placement)
    if placement == "auto":
        if isinstance(stack, TiffStack) and stack.memory_mapped:
            mapped = reshape_array(stack._backing, stack.original_axes)
            if np.shares_memory(mapped, stack._backing):  # a view: mapping costs nothing
                return stack.to_device("cpu")
        return stack
    # "disk"
    if isinstance(stack, ArrayStack):
        if stack.placement == "gpu":
            raise ValueError("placement='disk' is not available for GPU (CuPy) arrays")
        return stack
    return stack


def as_stack(obj, axes: str | None = None, *, placement: str = "auto") -> BaseStack:
    """Build one image stack.

    Parameters
    ----------
    obj : array, path, zarr array or stack
        A NumPy or CuPy array; a ``.tif``/``.tiff`` path; a Zarr array, a path inside a
        ``.zarr`` store or a ``file://`` URI naming one array; or an existing stack.
    axes : str
        Axes of the data (any subset of ``STCZYX`` with Y and X). Optional for an existing
        stack (checked when given).
    placement : {"auto", "gpu", "cpu", "disk"}
        Where the samples live (see the module documentation).

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
        Bad axes, axes not matching the data, unreadable file, a Zarr group with several
        arrays (use :func:`as_stacks`).
    RuntimeError
        ``placement="gpu"`` without a usable GPU.
    """
    check_placement(placement)
    if isinstance(obj, BaseStack):
        if axes is not None and validate_axes(axes) != obj.original_axes:
            raise ValueError(f"axes {axes!r} do not match the stack's axes {obj.original_axes!r}")
        return _place(obj, placement)
    if axes is None:
        raise ValueError("axes is required to build a stack from an array or a file")
    axes = validate_axes(axes)
    if isinstance(obj, np.ndarray) or is_cupy_array(obj):
        if placement == "disk" and isinstance(obj, np.ndarray):
            return LazyArrayStack(obj, axes)
        stack = ArrayStack.from_array(obj, axes)
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
        raise ValueError(f"unsupported file type {str(obj)!r}: expected .tif/.tiff or a .zarr store")
    else:
        raise TypeError(
            f"cannot build an image stack from {type(obj).__name__}: expected an array, a TIFF or "
            f"Zarr path, a zarr array or an image stack"
        )
    return _place(stack, placement)


def as_stacks(objs, axes: str | None = None, *, placement: str = "auto") -> list[BaseStack]:
    """Build a list of stacks from one source or a list of sources.

    A Zarr group (or a path/URI naming one) expands to every array it holds, sorted by name.
    Other arguments as in :func:`as_stack`.
    """
    check_placement(placement)
    if isinstance(objs, (list, tuple)):
        items = list(objs)
    else:
        items = [objs]
    if not items:
        raise ValueError("no image sources given")
    stacks = []
    for obj in items:
        if not isinstance(obj, BaseStack) and is_zarr_source(obj):
            if axes is None:
                raise ValueError("axes is required to build stacks from Zarr sources")
            stacks.extend(_place(ZarrStack(arr, axes), placement) for arr in open_zarr_arrays(obj))
        else:
            stacks.append(as_stack(obj, axes, placement=placement))
    return stacks
