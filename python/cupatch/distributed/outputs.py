"""Outputs of a distributed run: ``.zarr`` paths, created up front or reopened to resume.

Every image gets one Zarr array at its ``out`` path, in the restored layout of
``predict_tiled``, chunked so that regions can be cut at every tile step. Paths are checked
before any work: an existing path needs ``overwrite=True``, or ``resume=True`` when it holds
an unfinished run (which is never replaced silently); a partial single-process output is
replaced as ``predict_tiled`` does. A created output carries the ``.incomplete`` marker of
single-process runs until every region is written.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .._validation import ensure_tuple_rep
from ..inference.destinations import clear_path, is_own_incomplete, mark_incomplete, path_kind, per_image
from ..inference.writers import Layout, _zarr_compressors
from .record import read_record

__all__ = ["MIN_CHUNK_BYTES", "check_existing", "open_output", "out_paths", "output_chunks"]


def out_paths(out, n_images: int, is_list: bool) -> list[Path]:
    if out is None:
        raise TypeError(
            "out is required: the .zarr path (one per image for a list of images) that the workers write into; "
            "it must be on storage every worker can reach"
        )
    paths = []
    for k, o in enumerate(per_image(out, n_images, is_list, ".zarr path")):
        name = "out" if not is_list else f"out[{k}]"
        if not isinstance(o, (str, Path)) or hasattr(o, "shape"):
            raise TypeError(f"{name} must be a .zarr path that every worker can write, got {type(o).__name__}")
        kind = path_kind(Path(o))
        if kind == ".ome.zarr":
            raise NotImplementedError(
                f"{name} {str(o)!r}: distributed runs write plain Zarr arrays, not OME-Zarr images yet; give a .zarr path"
            )
        if kind != ".zarr":
            raise ValueError(f"{name} {str(o)!r} must be a .zarr path: tasks write their regions as Zarr chunks")
        paths.append(Path(o))
    return paths


#: Created outputs' chunks grow from the tile step until they hold at least this many bytes.
MIN_CHUNK_BYTES = 2**20


def output_chunks(shape, layout: Layout, steps: tuple[int, ...], dtype, chunks) -> tuple[int, ...]:
    """Chunks of a created output: one sample, all channels, and ``chunks`` (Z)YX, or by
    default the tile step along every spatial axis (so that regions can be cut at every
    step), doubled from the last axis on while a chunk is below 1 MiB."""
    spatial = "ZYX"[3 - layout.ndim :]
    sizes = dict(zip(layout.target_axes, shape))
    if chunks is not None:
        chosen = list(ensure_tuple_rep(chunks, layout.ndim, "chunks", minimum=1))
    else:
        chosen = list(steps)
        per_voxel = np.dtype(dtype).itemsize * sizes.get("C", 1)
        while math.prod(min(c, sizes[a]) for c, a in zip(chosen, spatial)) * per_voxel < MIN_CHUNK_BYTES:
            open_axes = [i for i, a in enumerate(spatial) if chosen[i] < sizes[a]]
            if not open_axes:
                break
            chosen[open_axes[-1]] *= 2
    by_letter = dict(zip(spatial, chosen))
    return tuple(1 if a in "ST" else n if a == "C" else min(by_letter[a], n) for a, n in zip(layout.target_axes, shape))


def open_output(path: Path, resume: bool, shape, dtype, layout: Layout, chunks, compression):
    """``(zarr array, resuming)``: the output created anew, or reopened to resume."""
    import zarr  # optional dependency, only for Zarr outputs

    if path.exists() and resume:
        array = zarr.open_array(str(path), mode="r+")
        if tuple(array.shape) != tuple(shape) or np.dtype(array.dtype) != np.dtype(dtype):
            raise ValueError(
                f"out {str(path)!r} has shape {tuple(array.shape)} and dtype {array.dtype}, but this run makes "
                f"{tuple(shape)} {np.dtype(dtype)}; resume needs the same arguments (or pass overwrite=True)"
            )
        return array, True
    clear_path(path, True)  # existence was checked up front
    array = zarr.create_array(
        store=str(path), shape=shape, chunks=chunks, dtype=dtype, fill_value=0, dimension_names=list(layout.target_axes),
        **_zarr_compressors(compression),
    )
    mark_incomplete(path)  # until every region is written
    return array, False


def check_existing(paths: list[Path], resume: bool, overwrite: bool) -> None:
    for path in paths:
        if not path.exists() or resume or overwrite:
            continue
        import zarr  # optional dependency, only for Zarr outputs

        try:
            record = read_record(zarr.open_array(str(path), mode="r"))
        except Exception:  # not a Zarr array of ours: check_outputs names the problem
            record = None
        if record is not None and not record.get("complete"):
            done = sum(last - first + 1 for first, last in record.get("done", []))
            raise FileExistsError(
                f"out {str(path)!r} holds an interrupted distributed run ({done} of {record.get('n_tasks')} regions "
                f"finished); pass resume=True to finish it, or overwrite=True to start again"
            )
        if is_own_incomplete(path):
            continue  # a partial single-process output: replaced as predict_tiled does
        raise FileExistsError(f"out {str(path)!r} already exists; pass overwrite=True to replace it (or resume=True)")
