"""What one Dask task does on its worker: predict one region and write its chunks.

A task runs the single-process machinery on a subset of the global tiling: the tiles its
region needs (:func:`~cupatch.distributed.regions.region_tiles`), gathered with one
``gather_patches`` launch per batch from the input window they read (channel selection
and normalisation fused, as in ``predict_tiled``), through the cached model
(:func:`~cupatch.distributed.models.worker_runner`) and its shape check, denormalised, and
stitched with one ``stitch_tiles`` launch per batch into a buffer holding only the region
(``origins``: writes outside it are skipped). Crop mode copies the same tile voxels to the
same places as ``predict_tiled``; blend modes sum the same tiles in the same order and
divide by the same weights. The finished region, cast to the output dtype, is written into
the region's own Zarr chunks. Tasks are idempotent: a retried task rewrites the same
chunks with the same values.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._layouts import n_patch_columns, tile_columns
from ..inference.model import check_prediction
from ..inference.plan import resolve_device
from ..inference.sinks import cast
from ..inference.writers import Layout, ZarrWriter
from ..ops import gather_patches, stitch_tiles
from ..patching import TiledPatching
from .inputs import InputRef, read_window
from .models import ModelSpec, worker_runner
from .regions import RegionGrid, region_tiles

__all__ = ["ImageJob", "RegionResult", "probe_output", "run_region"]


@dataclass(frozen=True, eq=False)
class ImageJob:
    """Everything a task needs about one image (small and picklable)."""

    index: int  # the image's position in data
    ref: InputRef
    data_shape: tuple[int, ...]  # SC(Z)YX
    tile: tuple[int, ...]
    overlap: tuple[int, ...]
    mode: str  # "crop" or "blend"
    window_table: Any  # float32 (ndim, 4, T) for blend, else None
    batch_size: int
    channels: tuple[int, ...] | None
    scale: Any
    shift: Any
    normalization: Any
    device: str  # "auto", "cpu" or "gpu", resolved on the worker
    fill: float | None = None  # skip_value when tiles may be skipped (skip=), else None
    out: Any = None  # the output Zarr array (None for the probe)
    layout: Layout | None = None
    grid: RegionGrid | None = None


@dataclass(frozen=True)
class RegionResult:
    """What a task reports back (task metadata only; no image data)."""

    image: int
    task: int
    n_tiles: int
    seconds: float
    device: str


_PATCHINGS: dict[tuple, TiledPatching] = {}


def _patching(job: ImageJob) -> TiledPatching:
    key = (job.data_shape, job.tile, job.overlap)
    patching = _PATCHINGS.get(key)
    if patching is None:
        if len(_PATCHINGS) >= 16:
            _PATCHINGS.pop(next(iter(_PATCHINGS)))
        patching = _PATCHINGS[key] = TiledPatching([job.data_shape], job.tile, job.overlap)
    return patching


def _predict_batches(job: ImageJob, runner, xp, specs: np.ndarray, window, window_lo, emit) -> None:
    """Gather, predict and hand each batch of ``specs`` (tile tables) to ``emit``."""
    ndim = len(job.tile)
    columns = tile_columns(ndim)
    data_col, sample_col, coord_col = (columns[name] for name in ("data_idx", "sample_idx", "coords"))
    source = xp.asarray(window[None])
    c_out = None
    for number, begin in enumerate(range(0, len(specs), job.batch_size)):
        table = specs[begin : begin + job.batch_size]
        gather = np.array(table[:, : n_patch_columns(ndim)], dtype=np.int64, copy=True)
        gather[:, data_col] = 0
        gather[:, sample_col] = 0  # the window is its own single-sample source ...
        gather[:, coord_col] -= np.asarray(window_lo, dtype=np.int64)  # ... starting at window_lo
        batch = gather_patches([source], gather, job.tile, scale=job.scale, shift=job.shift)
        pred = runner(batch)
        check_prediction(pred, runner, tuple(batch.shape), job.tile, channels=c_out, batch=number)
        c_out = int(pred.shape[1])
        if job.normalization is not None:
            pred = job.normalization.denormalize(pred)
        emit(pred, table)


def _setup(job: ImageJob, spec: ModelSpec, model):
    device = resolve_device(job.device)
    xp = np
    if device == "gpu":
        import cupy as xp  # optional dependency, only on GPU workers
    return device, xp, worker_runner(spec, model, device)


def probe_output(job: ImageJob, spec: ModelSpec, model, block=None) -> tuple[int, str]:
    """Run the model on the image's first tile: ``(output channels, output dtype)``.

    Also builds (and caches) the model on the worker, so that a failing factory or a model
    on the wrong device is reported before any output is created.
    """
    device, xp, runner = _setup(job, spec, model)
    specs = np.ascontiguousarray(_patching(job).spec_table(np.zeros(1, dtype=np.int64)), dtype=np.int64)
    lo = tuple(max(int(c), 0) for c in specs[0, tile_columns(len(job.tile))["coords"]])
    hi = tuple(min(a + t, n) for a, t, n in zip(lo, job.tile, job.data_shape[2:]))
    window = read_window(job.ref, 0, job.channels, lo, hi, block)
    found = []
    _predict_batches(job, runner, xp, specs, window, lo, lambda pred, table: found.append(pred))
    return int(found[0].shape[1]), np.dtype(found[0].dtype).str


def window_box(job: ImageJob, task_id: int):
    """``(sample, region lo, region hi, local tile indices, window lo, window hi)`` of a task."""
    sample, lo, hi = job.grid.task(task_id)
    axis_tiles = _patching(job).axis_tiles(0)
    local, w_lo, w_hi = region_tiles(axis_tiles, job.tile, job.data_shape[2:], lo, hi, job.mode)
    return sample, lo, hi, local, w_lo, w_hi


def run_region(job: ImageJob, task_id: int, spec: ModelSpec, model, block=None, keep=None) -> RegionResult:
    """Predict the region of ``task_id`` and write it into its own chunks of ``job.out``.

    ``keep`` (``skip=``): bool per tile of the image, False for the tiles that never reach
    the model; voxels no run tile writes get ``job.fill``, as in one process.
    """
    start = time.perf_counter()
    device, xp, runner = _setup(job, spec, model)
    sample, lo, hi, local, w_lo, w_hi = window_box(job, task_id)
    patching = _patching(job)
    n_per_sample = len(patching) // job.data_shape[0]
    tiles = sample * n_per_sample + local
    if keep is not None:
        tiles = tiles[np.asarray(keep)[tiles]]
    specs = np.ascontiguousarray(patching.spec_table(tiles), dtype=np.int64)
    size = tuple(b - a for a, b in zip(lo, hi))
    c_out = _out_channels(job)
    if job.fill and job.mode == "crop":  # skipped tiles' kept regions (crop) keep the fill
        values = xp.full((1, c_out, *size), job.fill, dtype=np.float32)
    else:
        values = xp.zeros((1, c_out, *size), dtype=np.float32)
    weights = xp.zeros((1, 1, *size), dtype=np.float32) if job.mode == "blend" else None
    table = None if weights is None else xp.asarray(job.window_table)
    sample_col = tile_columns(len(job.tile))["sample_idx"]
    image_shape = [tuple(job.data_shape[2:])]

    def stitch(pred, tiles_table):
        if int(pred.shape[1]) != c_out:
            raise ValueError(
                f"model {runner.name} returned {pred.shape[1]} channels but the output has {c_out} (from the first tile)"
            )
        tiles = xp.ascontiguousarray(pred, dtype=np.float32)
        stitch_specs = np.array(tiles_table, dtype=np.int64, copy=True)
        stitch_specs[:, sample_col] = 0  # the region buffer holds one sample
        if weights is None:
            stitch_tiles(tiles, stitch_specs, [values], mode="crop", image_shapes=image_shape, origins=[lo])
        else:
            stitch_tiles(
                tiles, stitch_specs, [values], mode="blend", weights=[weights], window_table=table,
                image_shapes=image_shape, origins=[lo],
            )  # fmt: skip

    if len(tiles):
        window = read_window(job.ref, sample, job.channels, w_lo, w_hi, block)
        _predict_batches(job, runner, xp, specs, window, w_lo, stitch)
    if weights is None:
        block_out = values[0]
    elif job.fill is None:
        block_out = values[0] / weights[0]
    else:  # voxels that no run tile covers get the fill
        covered = weights[0] > 0
        block_out = xp.where(covered, values[0] / xp.where(covered, weights[0], xp.float32(1)), xp.float32(job.fill))
    host = cast(block_out, job.out.dtype, xp)
    if xp is not np:
        host = host.get()
    ZarrWriter(job.out, job.layout).write_box(sample, lo, hi, np.ascontiguousarray(host))
    return RegionResult(job.index, int(task_id), len(tiles), time.perf_counter() - start, device)


def _out_channels(job: ImageJob) -> int:
    """The output's channel count, from its shape in the restored layout."""
    layout = job.layout
    if "C" not in layout.target_axes:
        return 1
    return int(job.out.shape[layout.target_axes.index("C")])
