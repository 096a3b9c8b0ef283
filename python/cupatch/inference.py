"""Tiled inference: ``predict_tiled``.

Images are cut into overlapping tiles with :class:`cupatch.TiledPatching` (CAREamics
semantics), gathered in batches (one ``gather_patches`` launch per batch, with channel
selection and normalisation fused), run through the model, and stitched back (one
``stitch_tiles`` launch per batch) either by CAREamics' overlap cropping or by a blend
window. Everything stays on one device: the GPU when usable, else the CPU.

When the output should not live on the device (``out`` is a Zarr/NumPy/TIFF destination,
or the whole output would exceed ``max_gpu_bytes``) the prediction is *streamed*: tiles
are processed in C order, so rows of tiles along the first spatial axis complete one after
the other; only an output slab covering the rows still open is kept on the device, and
every region no later tile touches is finished (blend: divided by its weights) and written
out, chunk-aligned for Zarr and through a pinned buffer for host arrays. Writes to Zarr
and files run in a background thread, overlapping the next batches.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._windows import WINDOWS, window_table
from .stacks import axes as axes_mod

__all__ = ["BLEND_MODES", "predict_tiled"]

#: Values accepted by ``predict_tiled(blend=...)``: overlap cropping or a blend window.
BLEND_MODES = ("crop", "blend", *WINDOWS)

#: Source dtypes the gather kernel reads directly; anything else is cast to float32 first.
_GATHER_DTYPES = tuple(np.dtype(t) for t in ("uint8", "uint16", "int16", "int32", "float16", "float32", "float64"))

#: Output file types by extension.
_OUT_SUFFIXES = (".zarr", ".tif", ".tiff", ".npy")

#: Share of the free device memory used when ``max_gpu_bytes`` is not given.
_DEFAULT_GPU_FRACTION = 0.5


# --------------------------------------------------------------------------------------
# argument handling
# --------------------------------------------------------------------------------------


def _resolve_blend(blend: str, window: str | None) -> tuple[str, str | None]:
    """Return ``(mode, window)`` with mode ``"crop"`` or ``"blend"``."""
    if not isinstance(blend, str) or blend not in BLEND_MODES:
        raise ValueError(f"blend must be one of {BLEND_MODES}, got {blend!r}")
    if window is not None and window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS} or None, got {window!r}")
    if blend == "crop":
        if window is not None:
            raise ValueError(f"window={window!r} needs a blended mode, but blend='crop'")
        return "crop", None
    if blend == "blend":
        return "blend", window or "hann"
    if window is not None and window != blend:
        raise ValueError(f"blend={blend!r} and window={window!r} disagree; give one of them")
    return "blend", blend


def _resolve_device(device: str) -> str:
    from . import _backend

    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'gpu', got {device!r}")
    if device == "cpu":
        return "cpu"
    if _backend.gpu_available():
        return "gpu"
    if device == "gpu":
        raise RuntimeError(f"device='gpu' was requested but no GPU is usable: {_backend.gpu_unavailable_reason()}")
    return "cpu"


def _per_axis(value, ndim: int, name: str) -> tuple[int, ...]:
    if isinstance(value, (bool, np.bool_)) or (
        isinstance(value, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in value)
    ):
        raise TypeError(f"{name} must be an int or a sequence of ints, got {value!r}")
    if isinstance(value, (int, np.integer)):
        values = (int(value),) * ndim
    else:
        try:
            values = tuple(int(v) for v in value)
        except TypeError:
            raise TypeError(f"{name} must be an int or a sequence of ints, got {value!r}") from None
        if any(not isinstance(v, (int, np.integer)) for v in value):
            raise TypeError(f"{name} must contain ints, got {value!r}")
    if len(values) != ndim:
        raise ValueError(f"{name} must have {ndim} entries ((Z)YX) for {ndim}-D images, got {tuple(values)}")
    return values


def _check_tiling(tile: tuple[int, ...], overlap: tuple[int, ...], mode: str) -> None:
    if any(t < 1 for t in tile):
        raise ValueError(f"tile_size must be positive, got {tile}")
    if any(o < 0 for o in overlap):
        raise ValueError(f"overlap must be non-negative, got {overlap}")
    if any(o >= t for o, t in zip(overlap, tile)):
        raise ValueError(f"overlap {overlap} must be smaller than tile_size {tile} on every axis")
    if mode == "crop" and any(o % 2 for o in overlap):
        # CAREamics forbids odd overlaps: the first two crops would overlap by one pixel.
        raise ValueError(f"overlap must be even in crop mode (half is cropped from each side), got {overlap}")


def _model_name(model) -> str:
    name = getattr(model, "__qualname__", None) or getattr(model, "__name__", None)
    if name is None:
        name = type(model).__name__
    return str(name)


# --------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------


def _is_cupy(x) -> bool:
    return type(x).__module__.split(".")[0] == "cupy"


def _as_stack(item, axes: str):
    """An ImageStack for an array, a path or a stack."""
    from .stacks import as_stack

    if isinstance(item, (str, os.PathLike)) and str(item).lower().endswith(".npy"):
        path = Path(item)
        if not path.exists():
            raise FileNotFoundError(f"data file {str(path)!r} does not exist")
        stack = as_stack(np.load(path, mmap_mode="r"), axes)
        stack.source = str(path)  # the file, not "array": outputs must never overwrite it
        return stack
    return as_stack(item, axes)


def _as_stacks(data, axes: str) -> tuple[list, bool]:
    """``(stacks, is_list)`` for one image or a list of images."""
    if isinstance(data, (list, tuple)):
        if not data:
            raise ValueError("data is an empty list; give at least one image")
        return [_as_stack(item, axes) for item in data], True
    return [_as_stack(data, axes)], False


def _check_channels(channels, n_channels: int) -> list[int] | None:
    if channels is None:
        return None
    if isinstance(channels, (int, np.integer)) and not isinstance(channels, (bool, np.bool_)):
        channels = [int(channels)]
    try:
        values = list(channels)
    except TypeError:
        raise TypeError(f"channels must be an int or a sequence of ints, got {channels!r}") from None
    if any(isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) for c in values):
        raise TypeError(f"channels must contain ints, got {channels!r}")
    channels = [int(c) for c in values]
    if not channels:
        raise ValueError("channels must name at least one channel")
    bad = [c for c in channels if not 0 <= c < n_channels]
    if bad:
        raise IndexError(f"channels {bad} out of range for data with {n_channels} channels")
    return channels


class _WholeSource:
    """Gathers from a whole SC(Z)YX array resident on the working device."""

    def __init__(self, array, tile, channels, scale, shift):
        from .ops import SourceTable

        self.sources = SourceTable([array])
        self.tile, self.channels, self.scale, self.shift = tile, channels, scale, shift

    def gather(self, table: np.ndarray, tile_index: np.ndarray):
        from .ops import gather_patches

        ndim = len(self.tile)
        return gather_patches(
            self.sources,
            np.ascontiguousarray(table[:, : 2 + ndim]),
            self.tile,
            channels=self.channels,
            scale=self.scale,
            shift=self.shift,
        )


class _RowSource:
    """Gathers from per-row input slabs (the read window of one row of tiles).

    Used when the input is not resident on the working device (a lazy file, or a host
    array too large to upload whole): each row of tiles along the first spatial axis needs
    only ``tile[0]`` input rows, read (zero-padded) and uploaded once.
    """

    def __init__(self, stack, xp, tile, channels, scale, shift, row_coords, n_per_sample, row_size):
        self.stack, self.xp, self.tile = stack, xp, tile
        self.channels, self.scale, self.shift = channels, scale, shift
        self.row_coords = row_coords
        self.n_per_sample, self.row_size = n_per_sample, row_size
        self.cache: dict[tuple[int, int], Any] = {}

    def _read_rows(self, sample_idx: int, coord0: int):
        stack, t0 = self.stack, self.tile[0]
        rest = tuple(stack.data_shape[3:])
        array = stack.array
        if array is not None and not _is_cupy(array):
            sample = array[sample_idx]
            if self.channels is not None:
                sample = sample[self.channels]
            n0 = sample.shape[1]
            lo, hi = max(coord0, 0), min(coord0 + t0, n0)
            if lo == coord0 and hi == coord0 + t0:
                block = np.ascontiguousarray(sample[:, lo:hi])
            else:
                block = np.zeros((sample.shape[0], t0, *rest), dtype=sample.dtype)
                block[:, lo - coord0 : hi - coord0] = sample[:, lo:hi]
        else:
            block = stack.read_region(sample_idx, (coord0,) + (0,) * len(rest), (t0, *rest), channels=self.channels)
        block = np.asarray(block)
        if block.dtype not in _GATHER_DTYPES:
            block = block.astype(np.float32)
        return self.xp.asarray(block[None])

    def gather(self, table: np.ndarray, tile_index: np.ndarray):
        from .ops import gather_patches

        ndim = len(self.tile)
        samples = tile_index // self.n_per_sample
        rows = (tile_index % self.n_per_sample) // self.row_size
        keys = list(dict.fromkeys(zip(samples.tolist(), rows.tolist())))
        for key in keys:
            if key not in self.cache:
                self.cache[key] = self._read_rows(key[0], int(self.row_coords[key[1]]))
        # Later batches never go back to earlier rows (C order): drop them.
        for old in [k for k in self.cache if k < keys[0]]:
            del self.cache[old]
        slot = {key: i for i, key in enumerate(keys)}
        specs = np.array(table[:, : 2 + ndim], dtype=np.int64, copy=True)
        specs[:, 0] = [slot[k] for k in zip(samples.tolist(), rows.tolist())]
        specs[:, 1] = 0
        specs[:, 2] -= self.row_coords[rows]
        return gather_patches([self.cache[k] for k in keys], specs, self.tile, scale=self.scale, shift=self.shift)


# --------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------


def _is_torch_module(model) -> bool:
    # Checked by class name so that torch is never imported for other models.
    return any(cls.__name__ == "Module" and cls.__module__.startswith("torch.nn") for cls in type(model).__mro__)


class _ModelRunner:
    """Calls the model on a ``(B, C, ...)`` batch of the working device's array type."""

    def __init__(self, model, device: str):
        if not callable(model):
            raise TypeError(f"model must be callable (a function on arrays or a torch.nn.Module), got {type(model).__name__}")
        self.model, self.device = model, device
        self.name = _model_name(model)
        self.torch = None
        if _is_torch_module(model):
            import torch

            self.torch = torch
            wanted = "cuda" if device == "gpu" else "cpu"
            for p in list(model.parameters())[:1] + list(model.buffers())[:1]:
                if p.device.type != wanted:
                    raise ValueError(
                        f"model {self.name} has parameters on {p.device} but predict_tiled runs on "
                        f"{'the GPU' if device == 'gpu' else 'the CPU'}; move it with model.to({wanted!r}) "
                        f"or pass device={'cpu' if wanted == 'cpu' else 'gpu'}"
                    )
                if wanted == "cuda" and p.device.index is not None:
                    import cupy

                    current = cupy.cuda.Device().id
                    if p.device.index != current:
                        raise ValueError(
                            f"model {self.name} is on {p.device} but the tiles are on cuda:{current} "
                            f"(CuPy's current device); move the model with model.to('cuda:{current}') "
                            f"or run inside `with cupy.cuda.Device({p.device.index}):`"
                        )

    def _torch_stream_context(self):
        """Run torch on CuPy's current stream (GPU), where the batches are gathered and stitched.

        On different streams, memory would be reused while the other library still reads it:
        CuPy's pool hands a dropped batch out again in CuPy's stream order while the model may
        still be reading it on torch's stream, and torch's caching allocator reuses a dropped
        prediction in torch's stream order while the stitch may still be reading it.
        """
        if self.device != "gpu":
            return contextlib.nullcontext()
        import cupy

        torch = self.torch
        device = cupy.cuda.Device().id
        ptr = int(cupy.cuda.get_current_stream().ptr)
        if int(torch.cuda.current_stream(device).cuda_stream) == ptr:
            return contextlib.nullcontext()
        return torch.cuda.stream(torch.cuda.ExternalStream(ptr, device=device))

    def __call__(self, batch):
        if self.torch is not None:
            torch = self.torch
            # everything torch does with the batch and the prediction (including the bfloat16
            # cast) stays on the stream CuPy uses next
            with torch.no_grad(), self._torch_stream_context():
                x = torch.from_dlpack(batch) if self.device == "gpu" else torch.from_numpy(batch)
                y = self.model(x)
                if not isinstance(y, torch.Tensor):
                    raise TypeError(f"model {self.name} returned {type(y).__name__}; expected a tensor")
                y = y.detach()
                if y.dtype == torch.bfloat16:  # neither NumPy nor CuPy has bfloat16
                    y = y.float()
                if self.device == "gpu":
                    import cupy

                    return cupy.from_dlpack(y)
                return y.cpu().numpy()
        y = self.model(batch)
        return self._to_device(y)

    def _to_device(self, y):
        if self.device == "gpu":
            import cupy

            if isinstance(y, cupy.ndarray):
                return y
            if hasattr(y, "__cuda_array_interface__"):
                return cupy.asarray(y)
            if hasattr(y, "__dlpack__") and not isinstance(y, np.ndarray):
                return cupy.from_dlpack(y)
            if isinstance(y, np.ndarray):
                return cupy.asarray(y)
        else:
            if isinstance(y, np.ndarray):
                return y
            if _is_cupy(y):
                return y.get()
            if hasattr(y, "__dlpack__"):
                return np.from_dlpack(y)
        raise TypeError(f"model {self.name} returned {type(y).__name__}; expected an array of shape (B, C, *tile)")


def _check_prediction(pred, runner: _ModelRunner, batch_shape: tuple[int, ...], tile: tuple[int, ...]) -> None:
    shape = tuple(pred.shape)
    if len(shape) != 2 + len(tile):
        raise ValueError(
            f"model {runner.name} returned shape {shape} for a batch of shape {batch_shape}; expected "
            f"{2 + len(tile)} dimensions (B, C, {'Z, ' if len(tile) == 3 else ''}Y, X)"
        )
    if shape[0] != batch_shape[0]:
        raise ValueError(
            f"model {runner.name} returned batch size {shape[0]} for a batch of {batch_shape[0]} tiles "
            f"(input shape {batch_shape}, output shape {shape})"
        )
    if shape[2:] != tuple(tile):
        raise ValueError(
            f"model {runner.name} changed the spatial shape: tile {tuple(tile)} in, {shape[2:]} out "
            f"(input shape {batch_shape}, output shape {shape}); tiled inference needs outputs the size of the tile"
        )
    if shape[1] < 1:
        raise ValueError(f"model {runner.name} returned no channels (output shape {shape})")


# --------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------


def _output_axes(axes: str, target_axes: str | None, c_out: int) -> str:
    """Target axes of the restored output; C is added when the model makes channels."""
    if target_axes is not None:
        return axes_mod.validate_axes(target_axes)
    if "C" in axes or c_out == 1:
        return axes
    first_spatial = min(axes.index(a) for a in "ZYX" if a in axes)
    return axes[:first_spatial] + "C" + axes[first_spatial:]


def _path_kind(path: Path) -> str:
    name = str(path).lower().rstrip("/")
    for suffix in _OUT_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    raise ValueError(f"out path {str(path)!r} must end in one of {_OUT_SUFFIXES}")


def _check_out_path(path: Path, overwrite: bool) -> None:
    """Refuse existing or unwritable output paths before any work is done."""
    _path_kind(path)
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
    arrays = [item for item in items if isinstance(item, np.ndarray) or _is_zarr_array(item)]
    for stack in stacks:
        for attr in ("array", "_backing"):
            value = getattr(stack, attr, None)
            if isinstance(value, np.ndarray) or _is_zarr_array(value):
                arrays.append(value)
    return arrays


def _same_storage(a, b) -> bool:
    """True when two destinations (or a destination and an input) share memory or storage."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a is b or np.may_share_memory(a, b)
    if _is_zarr_array(a) and _is_zarr_array(b):
        return a is b or _zarr_location(a) == _zarr_location(b)
    if isinstance(a, Path) and isinstance(b, Path):
        return a.absolute().resolve() == b.absolute().resolve()
    if isinstance(a, Path) or isinstance(b, Path):
        path, array = (a, b) if isinstance(a, Path) else (b, a)
        location = _zarr_location(array) if _is_zarr_array(array) else None
        return location is not None and location[0] == "local" and location[1] == path.absolute().resolve()
    return False


def _check_outputs(outs: list, data, stacks, overwrite: bool) -> None:
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
        if _is_zarr_array(o) and getattr(o, "read_only", False):
            raise ValueError(f"{name} is a read-only Zarr array; open it with mode='r+' or 'a'")
        if any(_same_storage(o, a) for a in arrays):
            raise ValueError(f"{name} shares memory or storage with an input; predictions would overwrite the data being read")
        location = _zarr_location(o) if _is_zarr_array(o) else None
        if location is not None and location[0] == "local":
            _check_not_input(location[1], inputs)
    for k, o in enumerate(outs):
        for j in range(k):
            if o is not None and outs[j] is not None and _same_storage(o, outs[j]):
                raise ValueError(
                    f"out[{j}] and out[{k}] are the same destination; image {k} would overwrite image {j}"
                )


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _is_zarr_array(obj) -> bool:
    return type(obj).__module__.split(".")[0] == "zarr" and hasattr(obj, "chunks") and hasattr(obj, "shape")


def _normalise_out(out, n_images: int, is_list: bool) -> list:
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
        if o is None or isinstance(o, np.ndarray) or _is_zarr_array(o):
            result.append(o)
        elif isinstance(o, (str, os.PathLike)):
            result.append(Path(o))
        else:
            raise TypeError(
                f"out must be None, a path ({', '.join(_OUT_SUFFIXES)}), a NumPy array or a Zarr array, "
                f"got {type(o).__name__}"
            )
    return result


#: Largest chunk (bytes) of a Zarr output created by predict_tiled.
_ZARR_CHUNK_BYTES = 16 * 2**20


def _zarr_chunks(
    shape: tuple[int, ...], target_axes: str, chunk0: int, first_spatial: str, itemsize: int = 4
) -> tuple[int, ...]:
    """Chunks of a created Zarr output: one sample, all channels, ``chunk0`` (the tile
    step) along the first spatial axis so that slab writes are chunk-aligned, and the other
    spatial axes halved until a chunk is at most ``_ZARR_CHUNK_BYTES``."""
    chunks = []
    for letter, n in zip(target_axes, shape):
        if letter in "ST":
            chunks.append(1)
        elif letter == "C":
            chunks.append(n)
        elif letter == first_spatial:
            chunks.append(max(1, min(chunk0, n)))
        else:
            chunks.append(max(1, min(n, 1024)))
    others = [i for i, a in enumerate(target_axes) if a in "ZYX" and a != first_spatial]
    while int(np.prod(chunks)) * itemsize > _ZARR_CHUNK_BYTES:
        largest = max(others, key=lambda i: chunks[i])
        if chunks[largest] <= 64:
            break
        chunks[largest] = (chunks[largest] + 1) // 2
    return tuple(chunks)


def _create_out_file(path: Path, shape, dtype, target_axes: str, chunk0: int, first_spatial: str, overwrite: bool):
    """Create the destination array for an output path; returns ``(array, chunk0)``."""
    kind = _path_kind(path)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"out {str(path)!r} already exists; pass overwrite=True (--overwrite) to replace it")
        _remove_path(path)
    if kind == ".zarr":
        import zarr

        chunks = _zarr_chunks(shape, target_axes, chunk0, first_spatial, np.dtype(dtype).itemsize)
        array = zarr.create_array(
            store=str(path),
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            fill_value=0,
            dimension_names=list(target_axes),
        )
        return array, chunks[target_axes.index(first_spatial)]
    if kind == ".npy":
        return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape), 1
    import tifffile

    return tifffile.memmap(path, shape=shape, dtype=dtype, metadata={"axes": target_axes}), 1


class _Writer:
    """Writes finished SC(Z)YX blocks ``(C, a:b, ...)`` of one sample into a restored-layout array."""

    def __init__(self, target, axes: str, original_shape, target_axes: str, ndim: int):
        self.target = target
        sizes = dict(zip(axes, original_shape))
        self.n_t = sizes.get("T", 1)
        self.target_axes = target_axes
        self.spatial = "ZYX"[3 - ndim :]
        block = ("C" if "C" in target_axes else "") + self.spatial
        self.drop_c = "C" not in target_axes
        self.perm = [block.index(a) for a in target_axes if a in block]
        self.is_zarr = _is_zarr_array(target)

    def write(self, sample_idx: int, a: int, b: int, block: np.ndarray) -> None:
        index = {"S": sample_idx // self.n_t, "T": sample_idx % self.n_t}
        key = []
        for letter in self.target_axes:
            if letter in "ST":
                key.append(index[letter])
            elif letter == self.spatial[0]:
                key.append(slice(a, b))
            else:
                key.append(slice(None))
        if self.drop_c:
            block = block[0]
        self.target[tuple(key)] = block.transpose(self.perm)


class _BackgroundWriter:
    """Runs a writer's ``write`` calls in order in one background thread.

    Encoding and storing Zarr chunks (or filling a memory-mapped file) then overlaps the
    next batches' gather, model and stitch. At most ``max_pending`` blocks wait in the
    queue, which bounds the extra host memory. The first error is re-raised in the
    calling thread by the next ``write`` or by ``close``.
    """

    def __init__(self, writer: _Writer, max_pending: int = 2):
        self.writer = writer
        self.pending: queue.Queue = queue.Queue(maxsize=max_pending)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="cupatch-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.pending.get()
            if item is None:
                return
            if self.error is None:
                try:
                    self.writer.write(*item)
                except BaseException as exc:  # handed to the caller, never lost
                    self.error = exc

    def write(self, sample_idx: int, a: int, b: int, block: np.ndarray) -> None:
        if self.error is not None:
            raise self.error
        self.pending.put((sample_idx, a, b, block))

    def close(self) -> None:
        """Wait for every queued write; re-raise the first write error."""
        if self.thread.is_alive():
            self.pending.put(None)
            self.thread.join()
        if self.error is not None:
            raise self.error


def _cast(block, dtype, xp):
    if block.dtype == dtype:
        return block
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        block = xp.clip(xp.rint(block), info.min, info.max)
    return block.astype(dtype)


class _HostCopier:
    """Device-to-host copies through one reusable pinned buffer (GPU), or plain views (CPU)."""

    def __init__(self, xp):
        self.xp = xp
        self.buffer = None

    def __call__(self, block):
        if self.xp is np:
            return block
        import cupyx

        block = self.xp.ascontiguousarray(block)
        if self.buffer is None or self.buffer.nbytes < block.nbytes:
            self.buffer = cupyx.empty_pinned(block.nbytes, dtype=np.uint8)
        host = self.buffer[: block.nbytes].view(block.dtype).reshape(block.shape)
        block.get(out=host)
        return host


# --------------------------------------------------------------------------------------
# stitching sinks
# --------------------------------------------------------------------------------------


@dataclass
class _Tiling:
    """The tiling of one image and the per-row facts streaming needs."""

    patching: Any
    data_shape: tuple[int, ...]
    tile: tuple[int, ...]
    overlap: tuple[int, ...]
    axis_tiles: list = field(default_factory=list)

    def __post_init__(self):
        self.axis_tiles = [np.asarray(t, dtype=np.int64) for t in self.patching.axis_tiles(0)]
        self.n_samples = self.data_shape[0]
        self.spatial = tuple(self.data_shape[2:])
        self.row_size = int(np.prod([len(t) for t in self.axis_tiles[1:]]))
        self.n_per_sample = len(self.axis_tiles[0]) * self.row_size
        self.n_tiles = self.n_samples * self.n_per_sample
        rows = self.axis_tiles[0]
        self.row_coords = rows[:, 0]
        n0, t0 = self.spatial[0], self.tile[0]
        # Extent each row of tiles writes along the first spatial axis, per mode.
        self.crop_range = np.stack([rows[:, 3], rows[:, 3] + rows[:, 2]], axis=1)
        self.blend_range = np.stack([np.maximum(rows[:, 0], 0), np.minimum(rows[:, 0] + t0, n0)], axis=1)


class _MemorySink:
    """Stitches into full-size outputs on the working device."""

    def __init__(self, xp, mode, window, tiling: _Tiling, c_out: int):
        from .ops import BlendAccumulator

        shape = (tiling.n_samples, c_out, *tiling.spatial)
        self.mode = mode
        if mode == "crop":
            self.output = xp.zeros(shape, dtype=np.float32)
            self.acc = None
        else:
            self.acc = BlendAccumulator([shape], tiling.tile, tiling.overlap, window=window, array_module=xp)

    def add(self, tiles, table, tile_index) -> None:
        from .ops import stitch_tiles

        if self.acc is None:
            stitch_tiles(tiles, table, [self.output], mode="crop")
        else:
            self.acc.add(tiles, table)

    def finish(self):
        if self.acc is None:
            return self.output
        return self.acc.finalize()[0]


class _SlabSink:
    """Stitches into per-sample output slabs and writes finished regions out.

    A slab of sample ``s`` holds image rows ``[lo, lo + capacity)`` along the first spatial
    axis. After each batch, everything before the first row any remaining tile writes to is
    final: it is divided by its weights (blend), cast, and written (rounded down to the
    destination's chunk size so Zarr writes stay chunk-aligned), and the slab moves on.
    """

    def __init__(
        self, xp, mode, table, tiling: _Tiling, c_out: int, dtype, writer: _Writer, chunk0: int, background: bool = False
    ):
        self.xp, self.mode, self.table = xp, mode, table
        self.tiling, self.c_out, self.dtype = tiling, c_out, np.dtype(dtype)
        self.chunk0 = max(1, int(chunk0))
        # Slow destinations (Zarr, files) are written from a background thread.
        self.background = background
        self.writer = _BackgroundWriter(writer) if background else writer
        self.ranges = tiling.crop_range if mode == "crop" else tiling.blend_range
        self.slabs: dict[int, list] = {}  # sample -> [lo, values, weights]
        self.copy_to_host = _HostCopier(xp)
        self.peak_rows = 0

    def _alloc(self, rows: int):
        rest = self.tiling.spatial[1:]
        values = self.xp.zeros((1, self.c_out, rows, *rest), dtype=np.float32)
        weights = self.xp.zeros((1, 1, rows, *rest), dtype=np.float32) if self.mode == "blend" else None
        return values, weights

    def _ensure(self, sample: int, need_lo: int, need_hi: int) -> list:
        n0 = self.tiling.spatial[0]
        slab = self.slabs.get(sample)
        if slab is None:
            rows = min(n0 - need_lo, max(need_hi - need_lo, self.tiling.tile[0] + self.chunk0))
            slab = [need_lo, *self._alloc(rows)]
            self.slabs[sample] = slab
        lo, values, weights = slab
        if need_lo < lo:
            raise AssertionError(f"slab of sample {sample} starts at {lo} but row data from {need_lo} is still needed")
        if need_hi > lo + values.shape[2]:
            rows = min(n0 - lo, max(need_hi - lo, int(values.shape[2] * 1.5)))
            new_values, new_weights = self._alloc(rows)
            new_values[:, :, : values.shape[2]] = values
            if weights is not None:
                new_weights[:, :, : weights.shape[2]] = weights
            slab[1], slab[2] = new_values, new_weights
        self.peak_rows = max(self.peak_rows, sum(s[1].shape[2] for s in self.slabs.values()))
        return slab

    def add(self, tiles, table, tile_index) -> None:
        from .ops import stitch_tiles

        t = self.tiling
        samples = tile_index // t.n_per_sample
        rows = (tile_index % t.n_per_sample) // t.row_size
        specs = np.array(table, dtype=np.int64, copy=True)
        outputs, weights, origins = [], [], []
        for slot, sample in enumerate(dict.fromkeys(samples.tolist())):
            mask = samples == sample
            first, last = int(rows[mask].min()), int(rows[mask].max())
            need_lo = int(self.ranges[first, 0])
            need_hi = int(self.ranges[first : last + 1, 1].max())
            lo, values, w = self._ensure(sample, need_lo, need_hi)
            specs[mask, 0] = slot
            specs[mask, 1] = 0
            outputs.append(values)
            weights.append(w)
            origins.append((lo,) + (0,) * (len(t.spatial) - 1))
        image_shapes = [t.spatial] * len(outputs)
        if self.mode == "crop":
            stitch_tiles(tiles, specs, outputs, mode="crop", image_shapes=image_shapes, origins=origins)
        else:
            stitch_tiles(
                tiles,
                specs,
                outputs,
                mode="blend",
                weights=weights,
                window_table=self.table,
                image_shapes=image_shapes,
                origins=origins,
            )
        self._flush(int(tile_index[-1]) + 1)

    def _flush(self, next_tile: int) -> None:
        t = self.tiling
        n0 = t.spatial[0]
        for sample in sorted(self.slabs):
            if next_tile >= (sample + 1) * t.n_per_sample:
                final = n0
            else:
                row = (next_tile - sample * t.n_per_sample) // t.row_size
                final = int(self.ranges[row, 0])
                final -= final % self.chunk0
            slab = self.slabs[sample]
            lo, values, weights = slab
            if final <= lo:
                continue
            k = final - lo
            block = values[0, :, :k]
            if weights is not None:
                block = block / weights[0, :, :k]
            host = self.copy_to_host(_cast(block, self.dtype, self.xp))
            if self.background and self.xp is not np:
                host = host.copy()  # the pinned buffer is reused by the next flush
            self.writer.write(sample, lo, final, host)
            if final == n0:
                del self.slabs[sample]
                continue
            # Move the still-open rows to the front of a fresh slab that ends inside the image.
            keep = values.shape[2] - k
            new_values, new_weights = self._alloc(min(values.shape[2], n0 - final))
            new_values[:, :, :keep] = values[:, :, k:]
            if weights is not None:
                new_weights[:, :, :keep] = weights[:, :, k:]
            slab[:] = [final, new_values, new_weights]

    def finish(self) -> None:
        if self.background:
            self.writer.close()
        if self.slabs:
            raise RuntimeError(f"streaming ended with unfinished samples {sorted(self.slabs)}")

    def abort(self) -> None:
        """Stop the background writer after an error (its own error, if any, is dropped)."""
        if self.background:
            try:
                self.writer.close()
            except BaseException:  # the error that stopped the run is the one to report
                pass


# --------------------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------------------


@dataclass
class PredictionStats:
    """What one ``predict_tiled`` run did (used by the command line and the benchmarks)."""

    n_tiles: int = 0
    n_images: int = 0
    device: str = "cpu"
    wall_s: float = 0.0
    streamed: list = field(default_factory=list)
    gather_s: float = 0.0
    model_s: float = 0.0
    stitch_s: float = 0.0

    @property
    def tiles_per_s(self) -> float:
        return self.n_tiles / self.wall_s if self.wall_s > 0 else float("nan")


def _gpu_budget(max_gpu_bytes, device: str) -> float:
    if max_gpu_bytes is not None:
        value = float(max_gpu_bytes)
        if not value > 0:
            raise ValueError(f"max_gpu_bytes must be positive, got {max_gpu_bytes!r}")
        return value
    if device == "gpu":
        import cupy

        free, _total = cupy.cuda.runtime.memGetInfo()
        return _DEFAULT_GPU_FRACTION * (free + cupy.get_default_memory_pool().free_bytes())
    return math.inf


def predict_tiled(
    model,
    data,
    *,
    axes: str,
    tile_size,
    overlap,
    batch_size: int = 8,
    blend: str = "crop",
    window: str | None = None,
    channels=None,
    normalization=None,
    target_axes: str | None = None,
    out=None,
    device: str = "auto",
    progress: bool = True,
    overwrite: bool = False,
    max_gpu_bytes: float | None = None,
):
    """Run a model over images too large for it, tile by tile, and stitch the result.

    Parameters
    ----------
    model : callable or torch.nn.Module
        Maps a float32 batch ``(B, C_in, [Z,] Y, X)`` to ``(B, C_out, [Z,] Y, X)`` with the
        same spatial size. A plain callable gets CuPy arrays on the GPU and NumPy arrays on
        the CPU; a ``torch.nn.Module`` gets tensors (through DLPack on the GPU, no host round
        trip) and runs under ``torch.no_grad()`` on CuPy's current stream, where the batches
        are gathered and stitched (put it in ``eval()`` mode and on the working device
        first). ``C_out`` and the output dtype may differ from the input's;
        they are taken from the first batch. Stitching accumulates in float32 and the result
        is cast to the model's dtype (integers are rounded).
    data : array, ImageStack, path, or list of them
        NumPy or CuPy array, ``ImageStack``, or a ``.tif/.tiff``, ``.zarr`` or ``.npy``
        path. A list predicts several images and returns a list.
    axes : str
        Axes of ``data`` (e.g. ``"YX"``, ``"SZYX"``, ``"TYXC"``); S and T are samples.
    tile_size, overlap : int or sequence of int
        Tile size and overlap per spatial axis, (Z)YX. ``overlap < tile_size``; in crop
        mode the overlap must be even (half of it is cropped from each side).
    batch_size : int, default 8
        Tiles per model call.
    blend : {"crop", "linear", "hann", "gaussian", "uniform", "blend"}, default "crop"
        ``"crop"``: CAREamics' overlap cropping (every output voxel comes from exactly one
        tile; exact). A window name blends overlapping tiles with that window (weights stay
        positive at image borders); ``"blend"`` means ``window`` (default ``"hann"``).
    window : str, optional
        Blend window, an alternative spelling of ``blend=<window>``.
    channels : int or sequence of int, optional
        Input channels fed to the model (default all).
    normalization : normalisation object, optional
        A ``cupatch.normalization`` object. Its input scale/shift is fused into the gather
        and ``normalization.denormalize`` is applied to the model output. It is fitted on
        ``data`` first when not yet fitted.
    target_axes : str, optional
        Axes order of the result (default: ``axes``, with C inserted before the spatial axes
        when the model outputs several channels and ``axes`` has none).
    out : path, NumPy array, Zarr array, or list of them, optional
        Destination. A ``.zarr``, ``.tif/.tiff`` or ``.npy`` path is created (refused if it
        exists unless ``overwrite``); arrays must have the restored output shape. With a
        destination the prediction streams into it and it is returned.
    device : {"auto", "gpu", "cpu"}, default "auto"
        ``"auto"`` uses the GPU when usable; ``"gpu"`` without a usable GPU is an error.
    progress : bool, default True
        Show a tqdm progress bar (tiles/s).
    overwrite : bool, default False
        Replace existing output paths.
    max_gpu_bytes : float, optional
        Working-memory budget on the device (default: half the free GPU memory; no limit
        on the CPU). If the full output would not fit, it is streamed to a host array.

    Returns
    -------
    array, destination, or list of them
        The stitched prediction in ``target_axes`` order (CuPy if the input was CuPy, else
        NumPy), or ``out`` when given. A list when ``data`` is a list.

    Raises
    ------
    ValueError
        Bad tiling, axes, channels, blend, or a model output of the wrong batch size or
        spatial shape (the message names the model and the shapes).
    FileExistsError, FileNotFoundError, PermissionError
        Output path exists (without ``overwrite``), has no parent directory, or is not
        writable. Checked before any work.
    MemoryError
        The GPU ran out of memory; the message names ``batch_size``, ``tile_size`` and
        ``max_gpu_bytes``.
    """
    results, _stats = run_prediction(
        model,
        data,
        axes=axes,
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        blend=blend,
        window=window,
        channels=channels,
        normalization=normalization,
        target_axes=target_axes,
        out=out,
        device=device,
        progress=progress,
        overwrite=overwrite,
        max_gpu_bytes=max_gpu_bytes,
    )
    return results


def run_prediction(
    model,
    data,
    *,
    axes: str,
    tile_size,
    overlap,
    batch_size: int = 8,
    blend: str = "crop",
    window: str | None = None,
    channels=None,
    normalization=None,
    target_axes: str | None = None,
    out=None,
    device: str = "auto",
    progress: bool = True,
    overwrite: bool = False,
    max_gpu_bytes: float | None = None,
    timing: bool = False,
):
    """:func:`predict_tiled` returning ``(result, PredictionStats)``.

    With ``timing=True`` the device is synchronised after every phase so that the gather,
    model and stitch times in the stats are exact (slightly slower overall).
    """
    mode, window_name = _resolve_blend(blend, window)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    axes = axes_mod.validate_axes(axes)
    if target_axes is not None:
        target_axes = axes_mod.validate_axes(target_axes)
    working = _resolve_device(device)
    stacks, is_list = _as_stacks(data, axes)
    outs = _normalise_out(out, len(stacks), is_list)
    _check_outputs(outs, data, stacks, overwrite)
    budget = _gpu_budget(max_gpu_bytes, working)
    stats = PredictionStats(n_images=len(stacks), device=working)

    ndim = len(stacks[0].data_shape) - 2
    tile = _per_axis(tile_size, ndim, "tile_size")
    ovl = _per_axis(overlap, ndim, "overlap")
    _check_tiling(tile, ovl, mode)
    table = window_table(tile, ovl, window_name) if mode == "blend" else None

    try:
        from .patching import TiledPatching
    except ImportError:  # the package namespace may not re-export it yet
        from .patching.tiled import TiledPatching

    tilings = []
    for k, stack in enumerate(stacks):
        shape = tuple(int(s) for s in stack.data_shape)
        if len(shape) - 2 != ndim:
            raise ValueError(f"all images must have the same number of spatial axes; image {k} has shape {shape}")
        tilings.append(_Tiling(TiledPatching([shape], tile, ovl), shape, tile, ovl))

    n_in = stacks[0].data_shape[1]
    chans = _check_channels(channels, n_in)
    for k, stack in enumerate(stacks):
        if stack.data_shape[1] != n_in:
            raise ValueError(
                f"all images must have the same channel count; image 0 has {n_in}, image {k} has {stack.data_shape[1]}"
            )
    n_model_in = n_in if chans is None else len(chans)
    scale = shift = None
    if normalization is not None:
        if not getattr(normalization, "fitted", True):
            normalization.fit(stacks, channels=chans, progress=progress)
        scale, shift = normalization.input_scale_shift(n_model_in)
        scale = np.asarray(scale, dtype=np.float32)
        shift = np.asarray(shift, dtype=np.float32)

    runner = _ModelRunner(model, working)
    xp = np
    if working == "gpu":
        import cupy as xp

    total = sum(t.n_tiles for t in tilings)
    bar = _progress_bar(total, progress)
    results = []
    start = time.perf_counter()
    created: list[Path] = []  # output files made by this call
    finished: list[Path] = []  # ... and those completely written
    try:
        for stack, tiling, dest in zip(stacks, tilings, outs):
            n_created = len(created)
            result = _predict_one(
                runner, stack, tiling, dest, xp=xp, working=working, mode=mode, window=window_name,
                table=table, channels=chans, scale=scale, shift=shift, normalization=normalization,
                axes=axes, target_axes=target_axes, batch_size=int(batch_size), budget=budget,
                overwrite=overwrite, bar=bar, stats=stats, created=created, timing=timing,
            )  # fmt: skip
            finished.extend(created[n_created:])
            results.append(result)
    except BaseException as exc:
        incomplete = [path for path in created if path not in finished]
        # CuPy and torch raise OutOfMemoryError; a failed pinned or runtime allocation comes
        # as a CUDA runtime error carrying cudaErrorMemoryAllocation.
        oom = type(exc).__name__ == "OutOfMemoryError" or "cudaErrorMemoryAllocation" in str(exc)
        if oom:
            new = MemoryError(
                f"the GPU ran out of memory during tiled inference ({exc}); lower batch_size "
                f"(={batch_size}) or tile_size (={tile}), or lower max_gpu_bytes (={budget:.3g}) so "
                f"that the output is streamed in slabs"
            )
            for path in incomplete:
                new.add_note(f"predict_tiled: the output {str(path)!r} is incomplete (stopped by this error)")
            raise new from exc
        for path in incomplete:
            exc.add_note(f"predict_tiled: the output {str(path)!r} is incomplete (stopped by this error)")
        raise
    finally:
        bar.close()
    stats.wall_s = time.perf_counter() - start
    stats.n_tiles = total
    return (results if is_list else results[0]), stats


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, progress: bool):
    """A tqdm bar over tiles (tiles/s), or a silent stand-in when off or tqdm is missing."""
    if not progress:
        return _NoProgress()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a dependency, but the package must still work without it
        return _NoProgress()
    return tqdm(total=total, desc="predict_tiled", unit="tile", dynamic_ncols=True)


def _sync(xp) -> None:
    if xp is not np:
        xp.cuda.get_current_stream().synchronize()


def _predict_one(
    runner, stack, tiling: _Tiling, dest, *, xp, working, mode, window, table, channels, scale, shift,
    normalization, axes, target_axes, batch_size, budget, overwrite, bar, stats, created, timing,
):  # fmt: skip
    input_is_cupy = _is_cupy(stack.array) if stack.array is not None else False
    original_axes = getattr(stack, "original_axes", axes) or axes
    original_shape = tuple(getattr(stack, "original_data_shape", None) or stack.data_shape)

    # Input: gather from the whole array when it is (or may be put) on the device.
    array = stack.array
    source = None
    if array is not None:
        if working == "cpu" and input_is_cupy:
            array = array.get()
        elif working == "gpu" and not input_is_cupy and array.nbytes <= budget / 4:
            from .stacks.base import upload_to_gpu

            array = upload_to_gpu(array)  # no pinned copy of the whole image
        if (working == "gpu") == _is_cupy(array):
            if np.dtype(array.dtype) not in _GATHER_DTYPES:
                array = array.astype(np.float32)
            source = _WholeSource(array, tiling.tile, channels, scale, shift)
    if source is None:
        source = _RowSource(
            stack, xp, tiling.tile, channels, scale, shift, tiling.row_coords, tiling.n_per_sample, tiling.row_size
        )
    resident_input = array.nbytes if array is not None and isinstance(source, _WholeSource) else 0

    sink = None
    try:
        for begin in range(0, tiling.n_tiles, batch_size):
            tile_index = np.arange(begin, min(begin + batch_size, tiling.n_tiles), dtype=np.int64)
            specs = np.ascontiguousarray(tiling.patching.spec_table(tile_index), dtype=np.int64)
            t0 = time.perf_counter()
            batch = source.gather(specs, tile_index)
            if timing:
                _sync(xp)
            t1 = time.perf_counter()
            pred = runner(batch)
            _check_prediction(pred, runner, tuple(batch.shape), tiling.tile)
            if normalization is not None:
                pred = normalization.denormalize(pred)
            if timing:
                _sync(xp)
            t2 = time.perf_counter()
            if sink is None:
                sink, dest = _make_sink(
                    xp, mode, window, table, tiling, pred, dest, axes=original_axes, original_shape=original_shape,
                    target_axes=target_axes, budget=budget, resident_input=resident_input, batch_size=batch_size,
                    overwrite=overwrite, created=created, stats=stats,
                )  # fmt: skip
            tiles = xp.ascontiguousarray(pred, dtype=np.float32)
            sink.add(tiles, specs, tile_index)
            if timing:
                _sync(xp)
            t3 = time.perf_counter()
            stats.gather_s += t1 - t0
            stats.model_s += t2 - t1
            stats.stitch_s += t3 - t2
            bar.update(len(tile_index))
        if isinstance(sink, _SlabSink):
            sink.finish()
    except BaseException:
        if isinstance(sink, _SlabSink):
            sink.abort()
        raise

    if isinstance(sink, _SlabSink):
        if hasattr(dest, "flush"):
            dest.flush()
        return dest
    output = sink.finish()
    output = _cast(output, sink.out_dtype, xp)
    out_axes = _output_axes(original_axes, target_axes, output.shape[1])
    output = axes_mod.restore_array(output, original_axes, original_shape, out_axes)
    if xp is not np and not input_is_cupy:
        return output.get()
    if xp is np and input_is_cupy:
        import cupy

        return cupy.asarray(output)
    return xp.ascontiguousarray(output)


def _make_sink(
    xp, mode, window, table, tiling: _Tiling, pred, dest, *, axes, original_shape, target_axes, budget,
    resident_input, batch_size, overwrite, created, stats,
):  # fmt: skip
    """Choose between in-memory stitching and streaming once the output channels are known."""
    c_out = int(pred.shape[1])
    dtype = np.dtype(pred.dtype)
    out_axes = _output_axes(axes, target_axes, c_out)
    out_shape = axes_mod.restored_shape((tiling.n_samples, c_out, *tiling.spatial), axes, original_shape, out_axes)
    voxels = int(np.prod(tiling.spatial))
    full_bytes = tiling.n_samples * voxels * 4 * (c_out + (1 if mode == "blend" else 0))
    # Working memory per batch (input, output, float32 copy) and a worst-case slab.
    tile_voxels = int(np.prod(tiling.tile))
    batch_bytes = batch_size * tile_voxels * 4 * (int(pred.shape[1]) * 2 + 1)
    rows_per_batch = math.ceil(batch_size / tiling.row_size) + 1
    slab_rows = min(tiling.spatial[0], rows_per_batch * tiling.tile[0])
    samples_per_batch = math.ceil(batch_size / tiling.n_per_sample) + 1
    slab_bytes = min(tiling.n_samples, samples_per_batch) * slab_rows * (voxels // tiling.spatial[0])
    slab_bytes *= 4 * (c_out + (1 if mode == "blend" else 0))

    if dest is None and full_bytes + resident_input + batch_bytes <= budget:
        sink = _MemorySink(xp, mode, window, tiling, c_out)
        sink.out_dtype = dtype
        return sink, None
    if batch_bytes + slab_bytes > budget:
        raise ValueError(
            f"tile_size {tiling.tile} with batch_size {batch_size} needs about {batch_bytes + slab_bytes:.3g} bytes "
            f"of working memory (batches plus one output slab), more than max_gpu_bytes={budget:.3g}; "
            f"lower batch_size or tile_size, or raise max_gpu_bytes"
        )
    first_spatial = "ZYX"[3 - len(tiling.tile)]
    chunk0 = tiling.tile[0] - tiling.overlap[0]
    if dest is None:
        stats.streamed.append("host")
        dest = np.empty(out_shape, dtype=dtype)
        chunk0 = 1
    elif isinstance(dest, Path):
        target, chunk0 = _create_out_file(dest, out_shape, dtype, out_axes, chunk0, first_spatial, overwrite)
        created.append(dest)
        stats.streamed.append(str(dest))
        dest = target
    else:
        if tuple(dest.shape) != tuple(out_shape):
            raise ValueError(
                f"out has shape {tuple(dest.shape)} but the prediction restored to axes {out_axes!r} has shape "
                f"{tuple(out_shape)}"
            )
        dtype = np.dtype(dest.dtype)
        if _is_zarr_array(dest):
            chunk0 = int(dest.chunks[out_axes.index(first_spatial)])
            stats.streamed.append("zarr")
        else:
            chunk0 = 1
            stats.streamed.append("numpy")
    writer = _Writer(dest, axes, original_shape, out_axes, len(tiling.tile))
    if table is not None and xp is not np:
        table = xp.asarray(table)  # upload the blend window once, not per batch
    # Plain in-memory arrays are filled synchronously; anything backed by storage is not.
    background = type(dest) is not np.ndarray
    return _SlabSink(xp, mode, table, tiling, c_out, dtype, writer, chunk0, background), dest
