"""The client side: ``cupatch.distributed.predict_tiled`` plans the regions and drives Dask.

The call checks every ``predict_tiled`` argument with the single-process
:class:`~cupatch.inference.plan.Plan` (same messages, same tiling), asks one worker for the
output channels and dtype (one tile through the model, which also builds the model there),
creates each output Zarr array up front (or reopens it with ``resume=True``), and submits
one task per unfinished region to the Dask scheduler, with Dask's retries. As futures
finish, a tqdm bar advances and the completion record is updated; a task that fails after
its retries cancels the rest, and the error says how to resume.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from .._validation import as_bool, as_int, ensure_tuple_rep, look_up_option
from ..inference.destinations import COMPRESSIONS, check_outputs, mark_complete
from ..inference.driver import _ARGUMENTS, _NoProgress
from ..inference.plan import DEVICES, Plan, output_axes
from ..inference.skip import check_fill, tiles_to_run
from ..inference.writers import Layout
from ..stacks import axes as axes_mod
from .inputs import input_refs
from .models import model_spec
from .outputs import check_existing, open_output, out_paths, output_chunks
from .record import CompletionRecord, read_record
from .regions import REGION_BYTES, RegionGrid, choose_region_chunks
from .tasks import ImageJob, probe_output, run_region, window_box

__all__ = ["DistributedStats", "predict_tiled", "run_distributed"]


@dataclass
class DistributedStats:
    """What one distributed run did (used by the benchmark and the tests)."""

    n_tasks: int = 0  # tasks of the run, finished before included
    n_run: int = 0  # tasks run by this call
    n_skipped: int = 0  # tasks already finished (resume=True)
    n_tiles: int = 0  # tiles of the global tiling (all images)
    n_tiles_run: int = 0  # tiles the tasks of this call ran (halo tiles counted once per task)
    wall_s: float = 0.0
    task_s: float = 0.0  # sum of the tasks' own times
    task_bytes: int = 0  # pickled arguments of one task (its metadata: no image data)
    region_shapes: list = field(default_factory=list)
    results: list = field(default_factory=list)  # RegionResult of every task run

    @property
    def tiles_per_s(self) -> float:
        return self.n_tiles / self.wall_s if self.wall_s > 0 else float("nan")


def _require_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            "cupatch.distributed needs Dask's distributed scheduler: pip install 'cupatch[distributed]'"
        ) from exc
    return distributed


def _client(distributed, client):
    if client is not None:
        if not isinstance(client, distributed.Client):
            raise TypeError(f"client must be a dask.distributed.Client or None, got {type(client).__name__}")
        return client
    try:
        return distributed.get_client()
    except ValueError:
        raise ValueError(
            "client=None needs a running dask.distributed.Client; create one first (Client(LocalCluster(...)) or "
            "Client('scheduler-address:8786')) or pass client="
        ) from None


def _progress_bar(total: int, progress: bool, **labels):
    """A tqdm bar over finished regions on the client, or a silent stand-in."""
    if not progress:
        return _NoProgress()
    from tqdm.auto import tqdm  # a dependency of cupatch

    return tqdm(total=total, dynamic_ncols=True, **labels)


def _fingerprint(plan: Plan, image, grid: RegionGrid, out_shape, dtype) -> dict:
    return {
        "data_shape": list(image.stack.data_shape),
        "data_dtype": str(image.stack.dtype),
        "tile": list(plan.tile),
        "overlap": list(plan.overlap),
        "mode": plan.mode,
        "window": plan.window,
        "channels": None if plan.channels is None else list(plan.channels),
        "scale": None if plan.scale is None else plan.scale.tolist(),
        "shift": None if plan.shift is None else plan.shift.tolist(),
        "out_shape": list(out_shape),
        "out_dtype": np.dtype(dtype).str,
        "region_shape": list(grid.region_shape),
        "chunks": list(grid.chunks),
    }


def _region_chunks(region_shape, grid_args: dict, min_tasks: int, bytes_per_voxel: int) -> tuple[int, ...]:
    spatial, chunks = grid_args["spatial"], grid_args["chunks"]
    if region_shape is None:
        return choose_region_chunks(
            spatial, chunks, grid_args["tiles_per_axis"], bytes_per_voxel=bytes_per_voxel,
            n_samples=grid_args["n_samples"], min_tasks=min_tasks, max_bytes=REGION_BYTES,
        )  # fmt: skip
    shape = ensure_tuple_rep(region_shape, len(spatial), "region_shape", minimum=1)
    return tuple(-(-s // c) for s, c in zip(shape, chunks))  # whole chunks: rounded up


def predict_tiled(model, data, *, client=None, out=None, resume: bool = False, factory: bool = False,
                  region_shape=None, chunks=None, retries: int = 3, progress: bool = True, overwrite: bool = False,
                  device: str = "auto", **arguments):  # fmt: skip
    """:func:`cupatch.predict_tiled` on a Dask cluster, writing straight into Zarr.

    Same arguments and results as :func:`cupatch.predict_tiled` (every keyword not listed
    here, e.g. ``axes``, ``tile_size``, ``overlaps``, ``batch_size``, ``blend``,
    ``channels``, ``normalization``, ``target_axes``, ``compression``, ``skip`` (a mask) and
    ``skip_value``, is passed on and checked by it; an option the tasks cannot apply is a
    ``NotImplementedError`` naming it), plus:

    Parameters
    ----------
    model : callable, torch.nn.Module, or str
        A picklable model (scattered once to every worker), a ``"module:callable"`` string
        naming a zero-argument factory (imported and called once per worker process), or
        a zero-argument callable with ``factory=True``. Use a factory for models that cannot
        be pickled or must be built on the worker's GPU. A factory's model is kept for the
        worker process's life (``client.restart()`` rebuilds it).
    data : path, Zarr array, dask.array.Array, file-backed stack, or a list of them
        What every worker can read: a Zarr array or path/URI (array, or a group holding one
        array), a ``.tif``/``.tiff`` or ``.npy`` path; or a dask array (each task receives
        the box its tiles read). In-memory NumPy/CuPy arrays are refused: save them as Zarr
        or wrap them in ``dask.array.from_array``.
    client : dask.distributed.Client, optional
        The cluster (default: the current client).
    out : path or list of paths
        Required: a new ``.zarr`` path per image, on storage all workers can write.
    resume : bool, default False
        Continue an interrupted run into the existing ``out``: finished regions (the
        completion record) are kept, the rest computed. Needs the same arguments.
    factory : bool, default False
        ``model`` is a zero-argument callable that builds the model.
    region_shape : int or sequence of int, optional
        Spatial size of one task's output region, rounded up to whole output chunks.
        Default: the largest regions whose float32 buffers stay under 256 MiB, split until
        there are at least two tasks per worker, along the axes with the most tiles first.
    chunks : int or sequence of int, optional
        Spatial (Z)YX chunk shape of created outputs (one sample and all channels per
        chunk). Default: the tile step along every axis, doubled from the last axis on
        while a chunk is below 1 MiB. Regions are whole chunks.
    retries : int, default 3
        Dask retries of a failed task (a killed worker's tasks are rescheduled by Dask too).
    progress : bool, default True
        A tqdm bar over finished regions on the client.
    overwrite : bool, default False
        Replace existing ``out`` paths.
    device : {"auto", "cpu", "gpu"}, default "auto"
        Resolved on each worker: the GPU it was given when usable (``LocalCUDACluster``
        sets ``CUDA_VISIBLE_DEVICES`` per worker), else the CPU.

    Returns
    -------
    zarr.Array or list of zarr.Array
        The outputs.

    Raises
    ------
    TypeError
        ``out`` missing; unreachable (in-memory) data; an unpicklable model (the message
        names the factory alternative).
    FileExistsError
        ``out`` exists without ``overwrite`` or ``resume``.
    ModelFactoryError
        The factory failed on a worker (the message holds the worker's traceback).
    """
    return run_distributed(
        model, data, client=client, out=out, resume=resume, factory=factory, region_shape=region_shape, chunks=chunks,
        retries=retries, progress=progress, overwrite=overwrite, device=device, **arguments,
    )[0]  # fmt: skip


def _plan(data, plan_data, progress, arguments) -> Plan:
    """The single-process plan of the run (argument checks, tiling, normalisation)."""
    bound = _ARGUMENTS.bind(_planning_model, plan_data if isinstance(data, (list, tuple)) else plan_data[0],
                            out=None, device="cpu", progress=progress, overwrite=False, **arguments)  # fmt: skip
    bound.apply_defaults()
    plan = Plan.build(**bound.arguments)
    _refuse_unapplied(plan)
    return plan


#: Plan fields the tasks apply (or, for ``budget``, replace by the region buffers); any other
#: field away from its default is an option the distributed run does not implement.
_APPLIED = {
    "model", "images", "is_list", "device", "xp", "mode", "window", "window_table", "tile", "overlap", "batch_size",
    "channels", "scale", "shift", "normalization", "target_axes", "budget", "overwrite", "progress",
}  # fmt: skip


def _refuse_unapplied(plan: Plan) -> None:
    """Refuse single-process options the tasks do not apply, rather than ignore them."""
    unapplied = [
        f.name for f in dataclasses.fields(plan)
        if f.name not in _APPLIED and getattr(plan, f.name) != f.default
    ]  # fmt: skip
    rule = getattr(plan, "skip", None)
    if rule is not None and rule.decide is None:
        unapplied.remove("skip")  # masks: decided on the client, applied by the tasks
    elif rule is not None:
        raise NotImplementedError(
            "cupatch.distributed.predict_tiled takes skip= as a mask only (an array or path, as in predict_tiled); "
            "a callable or filter object would read every tile on the client: compute a mask from it, or run "
            "cupatch.predict_tiled"
        )
    if unapplied:
        names = ", ".join(f"{name}=" for name in dict.fromkeys(unapplied))
        raise NotImplementedError(
            f"cupatch.distributed.predict_tiled does not support {names} yet; run cupatch.predict_tiled for it"
        )


def _planning_model(batch):  # never called: the plan is built for its checks and tiling only
    raise AssertionError("the planning model is not run")


def run_distributed(model, data, *, client=None, out=None, resume=False, factory=False, region_shape=None, chunks=None,
                    retries=3, progress=True, overwrite=False, device="auto", **arguments):  # fmt: skip
    """:func:`predict_tiled` (same arguments) returning ``(result, DistributedStats)``."""
    distributed = _require_distributed()
    resume, factory = as_bool(resume, "resume"), as_bool(factory, "factory")
    overwrite, progress = as_bool(overwrite, "overwrite"), as_bool(progress, "progress")
    retries = as_int(retries, "retries", minimum=0)
    look_up_option(device, DEVICES, "device")
    axes = arguments.get("axes")
    if axes is None:
        raise TypeError("predict_tiled() missing required keyword argument 'axes'")
    refs, plan_data, is_list = input_refs(data, axes_mod.validate_axes(axes))
    paths = out_paths(out, len(refs), is_list)
    compression = look_up_option(arguments.pop("compression", None), (None, *COMPRESSIONS), "compression")
    plan = _plan(data, plan_data, progress, arguments)
    check_outputs(paths, plan_data, [image.stack for image in plan.images], True)
    check_existing(paths, resume, overwrite)
    client = _client(distributed, client)
    spec, payload = model_spec(model, factory)
    model_ref = client.scatter(payload, broadcast=True, hash=False) if payload is not None else None

    jobs = [_job(plan, k, ref, device) for k, ref in enumerate(refs)]
    keeps = _skip_keeps(plan)
    keep_refs = [None if k is None else client.scatter(k, broadcast=True, hash=False) for k in keeps]
    start = time.perf_counter()
    probe = client.submit(probe_output, jobs[0], spec, model_ref, _probe_block(client, jobs[0]), pure=False,
                          retries=retries, key=f"cupatch-probe-{uuid.uuid4().hex}")  # fmt: skip
    c_out, dtype = probe.result()
    if getattr(plan, "skip", None) is not None:
        check_fill(plan.skip.value, dtype)
    # at least two tasks per worker thread, shared among the images
    min_tasks = math.ceil(2 * max(1, sum(client.nthreads().values())) / len(jobs))
    stats = DistributedStats(n_tiles=plan.n_tiles)
    records, arrays = [], []
    pending = []
    for job, image, path in zip(jobs, plan.images, paths):
        job, record, array = _prepare_image(
            plan, job, image, path, c_out, dtype, region_shape, chunks, compression, min_tasks, resume, keeps[job.index]
        )
        records.append(record)
        arrays.append(array)
        stats.n_tasks += job.grid.n_tasks
        stats.region_shapes.append(job.grid.region_shape)
        todo = [t for t in range(job.grid.n_tasks) if t not in record.done]
        stats.n_skipped += job.grid.n_tasks - len(todo)
        pending.extend((job, t) for t in todo)

    if pending:
        from distributed.protocol.pickle import dumps

        stats.task_bytes = len(dumps(pending[0] + (spec,)))
    futures = {}
    for job, task_id in pending:
        block = _task_block(client, job, task_id)
        future = client.submit(run_region, job, task_id, spec, model_ref, block, keep_refs[job.index], retries=retries, pure=False,
                               key=f"cupatch-region-{job.index}-{task_id}-{uuid.uuid4().hex}")  # fmt: skip
        futures[future] = job.index
    bar = _progress_bar(len(futures), progress, desc="predict_tiled", unit="region")
    try:
        for future in distributed.as_completed(list(futures)):
            result = future.result()  # raises the task's error after its retries
            records[result.image].mark(result.task)
            stats.results.append(result)
            stats.n_run += 1
            stats.n_tiles_run += result.n_tiles
            stats.task_s += result.seconds
            bar.update(1)
            del futures[future]
    except BaseException as exc:
        client.cancel(list(futures))
        for record in records:
            record.flush()
        for path, record in zip(paths, records):
            if not record.complete:
                exc.add_note(
                    f"predict_tiled: out {str(path)!r} is incomplete ({len(record.done)} of {record.n_tasks} regions "
                    f"finished and recorded); run again with resume=True to compute only the rest"
                )
        raise
    finally:
        bar.close()
    for path, record in zip(paths, records):
        record.flush()
        mark_complete(path)  # the marker of an output being written goes once every region is
    stats.wall_s = time.perf_counter() - start
    return (arrays if is_list else arrays[0]), stats


def _job(plan: Plan, k: int, ref, device: str) -> ImageJob:
    image = plan.images[k]
    return ImageJob(
        index=k, ref=ref, data_shape=tuple(image.stack.data_shape), tile=plan.tile, overlap=plan.overlap,
        mode=plan.mode, window_table=plan.window_table, batch_size=plan.batch_size, channels=plan.channels,
        scale=plan.scale, shift=plan.shift, normalization=plan.normalization, device=device,
        fill=None if getattr(plan, "skip", None) is None else float(plan.skip.value),
    )  # fmt: skip


def _skip_keeps(plan: Plan) -> list:
    """Per image, bool per tile (False: skipped by the ``skip=`` mask), or None."""
    keeps = []
    for image in plan.images:
        run = tiles_to_run(plan, image, None)  # masks only: no source is opened
        if run is None:
            keeps.append(None)
            continue
        keep = np.zeros(image.tiling.n_tiles, dtype=bool)
        keep[run] = True
        keeps.append(keep)
    return keeps


def _probe_block(client, job: ImageJob):
    """For dask inputs: a future of the box of the first tile, which the probe task reads."""
    if job.ref.dask is None:
        return None
    lo = (0,) * len(job.tile)
    hi = tuple(min(t, n) for t, n in zip(job.tile, job.data_shape[2:]))
    return client.compute(job.ref.dask.lazy_box(0, None if job.channels is None else list(job.channels), lo, hi))


def _task_block(client, job: ImageJob, task_id: int):
    """For dask inputs: a future of the input window the task's tiles read."""
    if job.ref.dask is None:
        return None
    sample, _lo, _hi, _local, w_lo, w_hi = window_box(job, task_id)
    channels = None if job.channels is None else list(job.channels)
    return client.compute(job.ref.dask.lazy_box(sample, channels, w_lo, w_hi))


def _prepare_image(plan, job, image, path, c_out, dtype, region_shape, chunks, compression, min_tasks, resume, keep):
    """Create (or reopen) one image's output and plan its regions: ``(job, record, array)``."""
    tiling = image.tiling
    out_axes = output_axes(image.axes, plan.target_axes, c_out)
    shape = axes_mod.restored_shape((tiling.n_samples, c_out, *tiling.spatial), image.axes, image.shape, out_axes)
    layout = Layout(image.axes, image.shape, out_axes, len(plan.tile))
    steps = tuple(t - o for t, o in zip(plan.tile, plan.overlap))
    chunks = output_chunks(shape, layout, steps, dtype, chunks)
    array, resuming = open_output(path, resume, shape, dtype, layout, chunks, compression)
    chunks = tuple(int(array.chunks[out_axes.index(a)]) for a in "ZYX"[3 - len(plan.tile) :])
    tiles_per_axis = tuple(len(t) for t in tiling.axis_tiles)
    stored = (read_record(array) or {}).get("fingerprint", {}).get("region_shape") if resuming else None
    grid_args = {"spatial": tiling.spatial, "chunks": chunks, "tiles_per_axis": tiles_per_axis, "n_samples": tiling.n_samples}
    bytes_per_voxel = 4 * (c_out + (1 if plan.mode == "blend" else 0))
    wanted = region_shape if region_shape is not None or stored is None else stored
    k = _region_chunks(wanted, grid_args, min_tasks, bytes_per_voxel)
    grid = RegionGrid(tiling.spatial, chunks, k, tiling.n_samples)
    fingerprint = _fingerprint(plan, image, grid, shape, dtype)
    if keep is not None:  # which tiles run, and what fills the rest
        fingerprint["skip"] = [hashlib.sha256(np.packbits(keep).tobytes()).hexdigest(), plan.skip.value]
    if resuming:
        record = CompletionRecord.resume(array, fingerprint, grid.n_tasks, path)
    else:
        record = CompletionRecord(array, fingerprint, grid.n_tasks)
        record.flush()
    job = dataclasses.replace(job, out=array, layout=layout, grid=grid)
    return job, record, array
