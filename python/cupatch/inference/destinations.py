"""Destinations: where predictions may go, checked before any work so no data is lost.

``out`` may be a path (``.zarr``, ``.tif``/``.tiff``, ``.npy``), a NumPy array or a Zarr
array, one per image. Paths must be new (or ``overwrite``) in a writable directory; no
destination may be an input, lie inside or around one, share memory or storage with one
(memory-mapped and ``.npy`` inputs, Zarr arrays and stacks included), be read-only, or be
given twice. These checks run in :meth:`Plan.build <cupatch.inference.plan.Plan.build>`,
before the first tile; :func:`clear_path` makes way for a new output file just before it
is created.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OUT_SUFFIXES", "check_outputs", "clear_path", "is_zarr_array", "normalise_out", "path_kind"]

#: Output file types by extension.
OUT_SUFFIXES = (".zarr", ".tif", ".tiff", ".npy")


def is_zarr_array(obj) -> bool:
    """True for a Zarr array (checked by module name: Zarr is never imported here)."""
    return type(obj).__module__.split(".")[0] == "zarr" and hasattr(obj, "chunks") and hasattr(obj, "shape")


def path_kind(path: Path) -> str:
    name = str(path).lower().rstrip("/")
    for suffix in OUT_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    raise ValueError(f"out path {str(path)!r} must end in one of {OUT_SUFFIXES}")


def _check_out_path(path: Path, overwrite: bool) -> None:
    """Refuse existing or unwritable output paths before any work is done."""
    path_kind(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"out {str(path)!r} already exists; pass overwrite=True (--overwrite) to replace it")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise FileNotFoundError(f"out {str(path)!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"out {str(path)!r}: directory {str(parent)!r} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"out {str(path)!r} exists and is not writable")


def _local_path(location: str) -> Path | None:
    """The file-system path of an input location (a path or a ``file://`` URI), else None."""
    if location.startswith("file://"):
        location = location[len("file://") :]
    elif "://" in location:
        return None
    return Path(location).absolute().resolve()


def _input_paths(data, stacks) -> list[tuple[str, Path]]:
    """``(label, path)`` of every input that lives in a file or a local store.

    Both the items of ``data`` that are paths and the sources of the stacks are used, so an
    input passed as an ``ImageStack`` or a Zarr array is protected too.
    """
    items = data if isinstance(data, (list, tuple)) else [data]
    found = []
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            path = _local_path(str(item))
            if path is not None:
                found.append((str(item), path))
    for stack in stacks:
        source = getattr(stack, "source", None)
        if isinstance(source, str) and source != "array":
            path = _local_path(source)
            if path is not None:
                found.append((source, path))
    # memory-mapped arrays (numpy.load(mmap_mode=...), tifffile.memmap) are files too
    for array in [*items, *(getattr(s, attr, None) for s in stacks for attr in ("array", "_backing"))]:
        filename = getattr(array, "filename", None) if isinstance(array, np.memmap) else None
        if filename:
            found.append((str(filename), Path(filename).absolute().resolve()))
    return found


def _check_not_input(path: Path, inputs: list[tuple[str, Path]]) -> None:
    """Refuse an output path that is, holds or lies inside one of the input files."""
    target = path.absolute().resolve()
    for label, source in inputs:
        if source == target or target in source.parents or source in target.parents:
            raise ValueError(f"out {str(path)!r} would overwrite the input {label!r}; choose another path")


def _zarr_location(array) -> tuple[Any, ...] | None:
    """A key identifying where a Zarr array is stored (local directory, or store and path)."""
    store = getattr(array, "store", None)
    root = getattr(store, "root", None)
    if root is not None:
        return ("local", Path(root, getattr(array, "path", "") or "").absolute().resolve())
    return ("store", id(store), getattr(array, "path", None))


def _input_arrays(data, stacks) -> list:
    """Every in-memory or Zarr array the inputs read from."""
    items = data if isinstance(data, (list, tuple)) else [data]
    arrays = [item for item in items if isinstance(item, np.ndarray) or is_zarr_array(item)]
    for stack in stacks:
        for attr in ("array", "_backing"):
            value = getattr(stack, attr, None)
            if isinstance(value, np.ndarray) or is_zarr_array(value):
                arrays.append(value)
    return arrays


def _same_storage(a, b) -> bool:
    """True when two destinations (or a destination and an input) share memory or storage."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a is b or np.may_share_memory(a, b)
    if is_zarr_array(a) and is_zarr_array(b):
        return a is b or _zarr_location(a) == _zarr_location(b)
    if isinstance(a, Path) and isinstance(b, Path):
        return a.absolute().resolve() == b.absolute().resolve()
    if isinstance(a, Path) or isinstance(b, Path):
        path, array = (a, b) if isinstance(a, Path) else (b, a)
        location = _zarr_location(array) if is_zarr_array(array) else None
        return location is not None and location[0] == "local" and location[1] == path.absolute().resolve()
    return False


def check_outputs(outs: list, data, stacks, overwrite: bool) -> None:
    """Refuse, before any work, destinations that would lose data or cannot be written.

    Paths must be new (or ``overwrite``) and writable; no destination may be an input, share
    memory with one, or be given twice (the second image would overwrite the first).
    """
    inputs = _input_paths(data, stacks)
    arrays = _input_arrays(data, stacks)
    for k, o in enumerate(outs):
        name = "out" if len(outs) == 1 else f"out[{k}]"
        if o is None:
            continue
        if isinstance(o, Path):
            _check_out_path(o, overwrite)
            _check_not_input(o, inputs)
            continue
        if isinstance(o, np.ndarray) and not o.flags.writeable:
            raise ValueError(f"{name} is a read-only NumPy array; pass a writable array")
        if is_zarr_array(o) and getattr(o, "read_only", False):
            raise ValueError(f"{name} is a read-only Zarr array; open it with mode='r+' or 'a'")
        if any(_same_storage(o, a) for a in arrays):
            raise ValueError(f"{name} shares memory or storage with an input; predictions would overwrite the data being read")
        location = _zarr_location(o) if is_zarr_array(o) else None
        if location is not None and location[0] == "local":
            _check_not_input(location[1], inputs)
    for k, o in enumerate(outs):
        for j in range(k):
            if o is not None and outs[j] is not None and _same_storage(o, outs[j]):
                raise ValueError(
                    f"out[{j}] and out[{k}] are the same destination; image {k} would overwrite image {j}"
                )


def normalise_out(out, n_images: int, is_list: bool) -> list:
    if out is None:
        return [None] * n_images
    if is_list:
        if not isinstance(out, (list, tuple)) or len(out) != n_images:
            raise ValueError(f"out must be a list with one destination per image ({n_images}) when data is a list")
        outs = list(out)
    else:
        outs = [out]
    result = []
    for o in outs:
        if o is None or isinstance(o, np.ndarray) or is_zarr_array(o):
            result.append(o)
        elif isinstance(o, (str, os.PathLike)):
            result.append(Path(o))
        else:
            raise TypeError(
                f"out must be None, a path ({', '.join(OUT_SUFFIXES)}), a NumPy array or a Zarr array, "
                f"got {type(o).__name__}"
            )
    return result


def clear_path(path: Path, overwrite: bool) -> None:
    """Make way for a new output file: refuse (without ``overwrite``) or remove what is there."""
    path_kind(path)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"out {str(path)!r} already exists; pass overwrite=True (--overwrite) to replace it")
        _remove_path(path)


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
