"""Destinations: where predictions may go, checked before any work so no data is lost.

``out`` may be a path (``.zarr``, ``.ome.zarr``, ``.tif``/``.tiff``, ``.ome.tif``, ``.npy``),
a NumPy array or a Zarr array, one per image. Paths must be new (or ``overwrite``) in a writable directory; no
destination may be an input, lie inside or around one, share memory or storage with one
(memory-mapped and ``.npy`` inputs, Zarr arrays and stacks included), be read-only, or be
given twice. Sharing is decided by storage identity, never by how a path is spelled: NumPy
memory (``np.shares_memory``), files by device and inode (symbolic and hard links, memory maps
through their file), Zarr arrays by their store and path. These checks run in :meth:`Plan.build <cupatch.inference.plan.Plan.build>`,
before the first tile; :func:`clear_path` makes way for a new output file just before it
is created.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

try:
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # NumPy < 2
    from numpy import byte_bounds

__all__ = [
    "COMPRESSIONS",
    "INCOMPLETE_SUFFIX",
    "OUT_SUFFIXES",
    "check_compression",
    "check_out_axes",
    "check_outputs",
    "clear_path",
    "incomplete_marker",
    "is_own_incomplete",
    "is_zarr_array",
    "mark_complete",
    "mark_incomplete",
    "normalise_out",
    "path_kind",
]

#: Output file types by extension (the longest first: ``path_kind`` takes the first match).
OUT_SUFFIXES = (".ome.zarr", ".zarr", ".ome.tiff", ".ome.tif", ".tiff", ".tif", ".npy")

#: Values of ``predict_tiled(compression=...)``, for created ``.tif``/``.zarr`` outputs.
COMPRESSIONS = ("zlib", "zstd")

#: Axes an OME-Zarr image may have, in the order NGFF stores them.
_NGFF_ORDER = "TCZYX"

#: Added to an output's name for the marker file that says the output is incomplete.
INCOMPLETE_SUFFIX = ".incomplete"

# The first line of every marker file: how a marker is told from a user's file of that name.
_MARKER_HEADER = "cupatch incomplete-output marker"


def is_zarr_array(obj) -> bool:
    """True for a Zarr array (checked by module name: Zarr is never imported here)."""
    return type(obj).__module__.split(".")[0] == "zarr" and hasattr(obj, "chunks") and hasattr(obj, "shape")


def path_kind(path: Path) -> str:
    name = str(path).lower().rstrip("/")
    for suffix in OUT_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    raise ValueError(f"out path {str(path)!r} must end in one of {OUT_SUFFIXES}")


def incomplete_marker(path: Path) -> Path:
    """The marker file of an output path: ``NAME.incomplete`` beside it."""
    path = Path(path)
    return path.with_name(path.name + INCOMPLETE_SUFFIX)


def _identity(path: Path) -> str:
    """Device and inode of what is at ``path`` (not following a symlink)."""
    info = os.lstat(path)
    return f"{info.st_dev}:{info.st_ino}"


def _read_marker(marker: Path) -> dict[str, str] | None:
    """The fields of one of our marker files, or None for anything else."""
    try:
        if marker.is_symlink() or not marker.is_file() or marker.stat().st_size > 4096:
            return None
        lines = marker.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or lines[0] != _MARKER_HEADER:
        return None
    return dict(line.split(": ", 1) for line in lines[1:] if ": " in line)


def mark_incomplete(path: Path) -> Path:
    """Write the marker saying that the output just created at ``path`` is incomplete."""
    path = Path(path)
    marker = incomplete_marker(path)
    text = (
        f"{_MARKER_HEADER}\n"
        f"This file marks {path.name!r} beside it as incomplete: cupatch's predict_tiled created it and has not\n"
        "finished writing it (still running, or stopped by an error, an interruption or a killed process).\n"
        "The next run writing to the same path replaces it without overwrite=True / --overwrite;\n"
        "delete both files to discard it.\n"
        f"output: {path.name}\n"
        f"identity: {_identity(path)}\n"
        f"pid: {os.getpid()}\n"
    )
    with open(marker, "x", encoding="utf-8") as file:  # "x": never over someone else's file
        file.write(text)
    return marker


def mark_complete(path: Path) -> None:
    """Remove the marker of an output that is now completely written."""
    marker = incomplete_marker(path)
    if _read_marker(marker) is not None:
        marker.unlink(missing_ok=True)


def is_own_incomplete(path: Path) -> bool:
    """True when ``path`` is an output that predict_tiled created and did not finish.

    That is: our marker is beside it, names it, and records its current file identity
    (so a file that replaced the partial output is not taken for it).
    """
    path = Path(path)
    fields = _read_marker(incomplete_marker(path))
    if fields is None or fields.get("output") != path.name:
        return False
    try:
        return fields.get("identity") == _identity(path)
    except OSError:
        return False


def _check_out_path(path: Path, overwrite: bool) -> None:
    """Refuse existing or unwritable output paths before any work is done.

    An incomplete output left by an earlier run (:func:`is_own_incomplete`) is replaced
    without ``overwrite``.
    """
    path_kind(path)
    if path.exists() and not overwrite and not is_own_incomplete(path):
        raise FileExistsError(f"out {str(path)!r} already exists; pass overwrite=True (--overwrite) to replace it")
    marker = incomplete_marker(path)
    if (marker.exists() or marker.is_symlink()) and _read_marker(marker) is None:
        raise FileExistsError(
            f"out {str(path)!r}: {str(marker)!r} exists and is not a cupatch marker file; predict_tiled marks an "
            f"output as incomplete there while writing it, so move or rename that file first"
        )
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


@dataclass
class _Footprint:
    """Where one input or destination keeps its data, compared by storage identity.

    ``arrays`` are NumPy arrays (compared with ``np.shares_memory``); ``paths`` are the files
    or directories the data live in (compared by file identity, so a symbolic link, a hard
    link or another spelling of the same file is the same file); ``stores`` are Zarr stores
    that are not local directories, as ``(store identity, path inside the store)``.
    """

    label: str
    arrays: list = field(default_factory=list)
    paths: list = field(default_factory=list)
    stores: list = field(default_factory=list)


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


def _within(inner: Path, outer: Path) -> bool:
    """True when ``inner`` is ``outer`` or lies inside it (by path or by file identity)."""
    if inner == outer or outer in inner.parents:
        return True
    outer_id = _file_id(outer)
    return outer_id is not None and any(_file_id(p) == outer_id for p in (inner, *inner.parents))


def _mapped_maps() -> list[tuple[int, int, str]]:
    """``(start, end, file)`` of every file mapping of this process (Linux), else []."""
    try:
        with open("/proc/self/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[4] != "0" and parts[5].startswith("/"):
            start, end = parts[0].split("-")
            found.append((int(start, 16), int(end, 16), parts[5].removesuffix(" (deleted)")))
    return found


def _mapped_files(array: np.ndarray, maps: list[tuple[int, int, str]]) -> list[Path]:
    """The files a NumPy array's memory maps: a ``np.memmap`` anywhere in its base chain
    (``numpy.load(mmap_mode=...)``, ``tifffile.memmap``, views of them), and on Linux any
    file mapping of the process that its bytes overlap."""
    files = []
    obj, depth = array, 0
    while obj is not None and depth < 64:
        filename = getattr(obj, "filename", None) if isinstance(obj, np.memmap) else None
        if filename:
            files.append(Path(filename).absolute().resolve())
            break
        obj, depth = getattr(obj, "base", None), depth + 1
    if maps and array.size:
        low, high = byte_bounds(array)
        files.extend(Path(name) for start, end, name in maps if start < high and low < end)
    return files


def _zarr_footprint(array, fp: _Footprint) -> None:
    store = getattr(array, "store", None)
    inner = str(getattr(array, "path", "") or "").strip("/")
    root = getattr(store, "root", None)
    if root is not None:  # LocalStore: a directory
        fp.paths.append(Path(root, inner).absolute().resolve())
    elif hasattr(store, "_zf") and getattr(store, "path", None):  # ZipStore: one file
        fp.paths.append(Path(store.path).absolute().resolve())
    elif getattr(store, "_store_dict", None) is not None:  # MemoryStore: its dict, however wrapped
        fp.stores.append((("memory", id(store._store_dict)), inner))
    elif store is not None:
        fp.stores.append(((type(store).__name__, str(store)), inner))


def _add(fp: _Footprint, obj, maps) -> None:
    """Add what ``obj`` (a path, an array, a Zarr array or a stack) reads or writes to ``fp``."""
    if isinstance(obj, (str, os.PathLike)):
        path = _local_path(str(obj))
        if path is not None:
            fp.paths.append(path)
    elif isinstance(obj, np.ndarray):
        fp.arrays.append(obj)
        fp.paths.extend(_mapped_files(obj, maps))
    elif is_zarr_array(obj):
        _zarr_footprint(obj, fp)


def _stack_footprint(stack, fp: _Footprint, maps) -> None:
    source = getattr(stack, "source", None)
    if isinstance(source, str) and source != "array":
        _add(fp, source, maps)
    for attr in ("array", "_backing"):
        value = getattr(stack, attr, None)
        if value is not None:
            _add(fp, value, maps)


def _input_footprints(data, stacks, maps) -> list[_Footprint]:
    """One footprint per input image: the item of ``data`` and the stack built from it, so an
    input passed as a path, an array, a memory map, a Zarr array or an ``ImageStack`` is
    protected however it is held."""
    items = list(data) if isinstance(data, (list, tuple)) else [data]
    found = []
    for k, stack in enumerate(stacks):
        item = items[k] if k < len(items) else None
        if isinstance(item, (str, os.PathLike)):
            label = str(item)
        elif isinstance(getattr(stack, "source", None), str) and stack.source != "array":
            label = stack.source
        else:
            label = "data" if len(stacks) == 1 else f"data[{k}]"
        fp = _Footprint(label)
        if item is not None and item is not stack:
            _add(fp, item, maps)
        _stack_footprint(stack, fp, maps)
        if item is not stack and item is not None and hasattr(item, "source"):
            _stack_footprint(item, fp, maps)
        if fp.label.startswith("data") and fp.paths:  # a memory map: name its file
            fp.label = f"{fp.label}, memory-mapped from {str(fp.paths[0])!r}"
        found.append(fp)
    return found


def _shares_memory(a: np.ndarray, b: np.ndarray) -> bool:
    try:
        return bool(np.shares_memory(a, b, max_work=10**6))
    except getattr(np, "exceptions", np).TooHardError:  # cannot tell cheaply: assume the worst
        return True


def _store_paths_overlap(a: str, b: str) -> bool:
    return a == b or not a or not b or a.startswith(b + "/") or b.startswith(a + "/")


def _overlap(a: _Footprint, b: _Footprint) -> bool:
    """True when two footprints share memory, a file, a directory tree or a Zarr node."""
    if any(_shares_memory(x, y) for x in a.arrays for y in b.arrays):
        return True
    if any(_within(p, q) or _within(q, p) for p in a.paths for q in b.paths):
        return True
    return any(ka == kb and _store_paths_overlap(pa, pb) for ka, pa in a.stores for kb, pb in b.stores)


def check_outputs(outs: list, data, stacks, overwrite: bool) -> None:
    """Refuse, before any work, destinations that would lose data or cannot be written.

    Paths must be new (or ``overwrite``) and writable; no destination may be an input, share
    memory or storage with one (a view of an input array, a memory map of an input file, the
    same Zarr store and path; compared by storage identity, not by spelling), or be given
    twice (the second image would overwrite the first).
    """
    if all(o is None for o in outs):
        return  # results in new arrays: nothing to check (and no /proc/self/maps to read)
    maps = _mapped_maps()
    inputs = _input_footprints(data, stacks, maps)
    footprints = []
    for k, o in enumerate(outs):
        name = "out" if len(outs) == 1 else f"out[{k}]"
        fp = _Footprint(name)
        footprints.append(fp)
        if o is None:
            continue
        if isinstance(o, Path):
            _check_out_path(o, overwrite)
        elif isinstance(o, np.ndarray) and not o.flags.writeable:
            raise ValueError(f"{name} is a read-only NumPy array; pass a writable array")
        elif is_zarr_array(o) and getattr(o, "read_only", False):
            raise ValueError(f"{name} is a read-only Zarr array; open it with mode='r+' or 'a'")
        _add(fp, o.absolute() if isinstance(o, Path) else o, maps)
        for source in inputs:
            if not _overlap(fp, source):
                continue
            if isinstance(o, Path):
                raise ValueError(f"out {str(o)!r} would overwrite the input {source.label!r}; choose another path")
            raise ValueError(
                f"{name} shares memory or storage with an input ({source.label}); predictions would "
                f"overwrite the data being read"
            )
    for k, o in enumerate(outs):
        for j in range(k):
            if o is not None and outs[j] is not None and _overlap(footprints[k], footprints[j]):
                raise ValueError(
                    f"out[{j}] and out[{k}] are the same destination; image {k} would overwrite image {j}"
                )


def per_image(out, n_images: int, is_list: bool, what: str = "destination") -> list:
    """``out`` as one entry per image: the list itself for a list of images, else ``[out]``."""
    if not is_list:
        return [out]
    if not isinstance(out, (list, tuple)) or len(out) != n_images:
        raise ValueError(f"out must be a list with one {what} per image ({n_images}) when data is a list")
    return list(out)


def normalise_out(out, n_images: int, is_list: bool) -> list:
    if out is None:
        return [None] * n_images
    result = []
    for o in per_image(out, n_images, is_list):
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
    """Make way for a new output file: refuse (without ``overwrite``) or remove what is there.

    An incomplete output of an earlier run is removed without ``overwrite``; so is a marker
    of ours left without its output.
    """
    path_kind(path)
    if path.exists():
        if not overwrite and not is_own_incomplete(path):
            raise FileExistsError(f"out {str(path)!r} already exists; pass overwrite=True (--overwrite) to replace it")
        _remove_path(path)
    mark_complete(path)  # a stale marker of ours would otherwise describe the new file


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def check_compression(compression, outs: list) -> str | None:
    """``compression`` checked against the destinations: only created ``.tif``/``.zarr``
    paths can be compressed (TIFF needs imagecodecs, the ``ome`` extra)."""
    from .._validation import look_up_option

    look_up_option(compression, (None, *COMPRESSIONS), "compression")
    if compression is None:
        return None
    for k, o in enumerate(outs):
        name = "out" if len(outs) == 1 else f"out[{k}]"
        kind = path_kind(o) if isinstance(o, Path) else None
        if kind is None or kind == ".npy":
            shown = str(o) if isinstance(o, Path) else ("None" if o is None else type(o).__name__)
            raise ValueError(
                f"compression={compression!r} applies to .tif/.tiff and .zarr output paths, but {name} is {shown!r}"
            )
        if "tif" in kind:
            try:
                import imagecodecs  # noqa: F401  (what tifffile compresses with)
            except ImportError:
                raise ImportError(
                    f"compression={compression!r} for a TIFF output needs imagecodecs: pip install 'cupatch[ome]'"
                ) from None
    return compression


def check_out_axes(outs: list, stacks, target_axes: str | None) -> None:
    """Refuse, before any work, OME outputs whose axes the format cannot hold: OME-Zarr with
    a sample axis S or axes out of NGFF's TCZYX order (without target_axes they are put in
    that order), OME-TIFF with S or with axes after Y, X; and check that ome-zarr (the
    ``ome`` extra) is there for OME-Zarr."""
    for k, (o, stack) in enumerate(zip(outs, stacks)):
        kind = path_kind(o) if isinstance(o, Path) else None
        if kind in (".ome.tif", ".ome.tiff"):
            axes = target_axes or stack.original_axes
            if "S" in axes or not axes.endswith("YX"):
                raise ValueError(
                    f"out {str(o)!r}: OME-TIFF needs the axes T, Z, C (any order) before Y, X, and the output's axes "
                    f"{axes!r} are not so; give target_axes (e.g. {''.join(a for a in 'TZCYX' if a in axes)!r}) or "
                    f"write a .tif"
                )
        if kind != ".ome.zarr":
            continue
        try:
            import ome_zarr  # noqa: F401  (writes the NGFF metadata)
        except ImportError:
            raise ImportError(f"out {str(o)!r}: writing OME-Zarr needs ome-zarr: pip install 'cupatch[ome]'") from None
        axes = target_axes or stack.original_axes
        if "S" in axes:
            raise ValueError(
                f"out {str(o)!r}: OME-Zarr images have no sample axis S, and the output's axes {axes!r} have one; "
                f"predict the samples one by one, or write .zarr or .tif"
            )
        ordered = "".join(a for a in _NGFF_ORDER if a in axes)
        if target_axes is not None and target_axes != ordered:
            raise ValueError(
                f"out {str(o)!r}: OME-Zarr stores axes in the order TCZYX; target_axes {target_axes!r} is not in that "
                f"order (use {ordered!r}, or leave target_axes out)"
            )

