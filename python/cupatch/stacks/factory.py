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
from .ome_zarr import OmeZarrStack, is_ome_image, label_names, ome_image
from .tiff_stack import TiffStack, is_tiff_path, tiff_axes
from .zarr_stack import ZarrStack, dimension_axes, is_zarr_source, open_zarr_arrays, open_zarr_node

__all__ = ["as_stack", "as_stacks", "is_npy_path", "open_npy", "source_axes"]

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


def source_axes(obj) -> str | None:
    """The axes a source carries in its own metadata, or None when it has none.

    A stack's ``original_axes``; an OME-Zarr image's (or labels group's) NGFF axes; a Zarr v3
    array's ``dimension_names`` (for a group: of its single array); a TIFF file's OME-XML,
    ImageJ or tifffile axes (:func:`~cupatch.stacks.tiff_stack.tiff_axes`). Arrays and
    ``.npy`` files carry none.
    """
    if isinstance(obj, BaseStack):
        return obj.original_axes
    if is_tiff_path(obj):
        return tiff_axes(obj) if os.path.isfile(obj) else None
    if not is_zarr_source(obj):
        return None
    node = open_zarr_node(obj)
    if is_ome_image(node):
        return ome_image(node).axes
    names = label_names(node)
    if names:
        return ome_image(node[names[0]]).axes
    try:
        arrays = open_zarr_arrays(node)
    except ValueError:
        return None
    return dimension_axes(arrays[0]) if len(arrays) == 1 else None


def _ome_stacks(node, axes: str | None, level, obj) -> list[BaseStack] | None:
    """The stacks of an OME-Zarr image (one) or labels group (one per label image), else None."""
    if is_ome_image(node):
        return [OmeZarrStack(node, 0 if level is None else level, axes)]
    names = label_names(node)
    if names is None:
        return None
    if not names:
        raise ValueError(f"{str(obj)!r} is an OME-Zarr labels group that lists no label image")
    return [OmeZarrStack(node[name], 0 if level is None else level, axes) for name in names]


def _axes_required(obj) -> ValueError:
    return ValueError(
        f"axes is required to build a stack from {type(obj).__name__ if not isinstance(obj, (str, os.PathLike)) else repr(str(obj))}: "
        f"it carries no axes metadata (OME-Zarr, OME-TIFF, ImageJ TIFF and Zarr dimension_names do); give axes, "
        f"e.g. axes='YX'"
    )


def as_stack(obj, axes: str | None = None, *, placement: str = "auto", level: int | None = None) -> BaseStack:
    """Build one image stack.

    Parameters
    ----------
    obj : array, path, zarr array or group, or stack
        A NumPy or CuPy array; a ``.tif``/``.tiff`` path; a ``.npy`` path (memory-mapped,
        :func:`open_npy`); a Zarr array, a path inside a ``.zarr`` store or a ``file://``
        URI naming one array; an OME-Zarr image or labels group (a path or a
        ``zarr.Group``; a labels group must list one label image, or name it:
        ``img.ome.zarr/labels/cells``); or an existing stack.
    axes : str, optional
        Axes of the data (any subset of ``STCZYX`` with Y and X). Optional when the source
        carries them (:func:`source_axes`: stacks, OME-Zarr, OME/ImageJ TIFF, Zarr
        ``dimension_names``), and then checked against them when given.
    placement : {"auto", "gpu", "cpu", "disk"}
        Where the samples live (see :mod:`cupatch.stacks`).
    level : int, optional
        Resolution level of an OME-Zarr image (default 0, full resolution); only for
        OME-Zarr sources.

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
        if level is not None:
            raise ValueError("level applies to OME-Zarr sources, not to an existing stack")
        if axes is not None and validate_axes(axes) != obj.original_axes:
            raise ValueError(f"axes {axes!r} do not match the stack's axes {obj.original_axes!r}")
        return place(obj, placement)
    node = open_zarr_node(obj) if is_zarr_source(obj) else None
    ome = None if node is None else _ome_stacks(node, axes, level, obj)
    if ome is not None:
        if len(ome) != 1:
            names = label_names(node)
            raise ValueError(
                f"{str(obj)!r} is an OME-Zarr labels group with {len(ome)} label images ({', '.join(names)}); name one "
                f"(e.g. {str(obj).rstrip('/') + '/' + names[0]!r}) or use as_stacks to load them all"
            )
        return place(ome[0], placement)
    if level is not None:
        raise ValueError(f"level applies to OME-Zarr images only; {_shown(obj)} is not one")
    if axes is None:
        if node is None and isinstance(obj, (str, os.PathLike)) and not os.path.exists(obj):
            raise FileNotFoundError(f"image file not found: {str(obj)!r}")
        axes = source_axes(node if node is not None else obj)
        if axes is None:
            raise _axes_required(obj)
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
    elif node is not None:
        arrays = open_zarr_arrays(node)
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


def _shown(obj) -> str:
    return repr(str(obj)) if isinstance(obj, (str, os.PathLike)) else f"a {type(obj).__name__}"


def as_stacks(objs, axes: str | None = None, *, placement: str = "auto", level: int | None = None) -> list[BaseStack]:
    """Build a list of stacks from one source or a list of sources.

    A Zarr group (or a path/URI naming one) expands to every array it holds, sorted by name;
    an OME-Zarr image gives one stack (its ``level``), an OME-Zarr labels group one per
    label image. Other arguments as in :func:`as_stack`.
    """
    check_placement(placement)
    items = list(objs) if isinstance(objs, (list, tuple)) else [objs]
    if not items:
        raise ValueError(f"objs is an empty {type(objs).__name__}: no image sources given")
    stacks = []
    for obj in items:
        if not isinstance(obj, BaseStack) and is_zarr_source(obj):
            node = open_zarr_node(obj)
            ome = _ome_stacks(node, axes, level, obj)
            if ome is not None:
                stacks.extend(place(stack, placement) for stack in ome)
                continue
            if level is not None:
                raise ValueError(f"level applies to OME-Zarr images only; {_shown(obj)} is not one")
            for arr in open_zarr_arrays(node):
                arr_axes = axes if axes is not None else dimension_axes(arr)
                if arr_axes is None:
                    raise _axes_required(obj)
                stacks.append(place(ZarrStack(arr, arr_axes), placement))
        else:
            stacks.append(as_stack(obj, axes, placement=placement, level=level))
    return stacks
