"""The driver: ``predict_tiled`` checks its arguments into a plan and runs it.

Running a plan goes image by image and, within an image, batch by batch in C order: the
source gathers the batch, the model predicts it (denormalised when asked), and the sink
stitches it. The sink is chosen at the first batch, once the output channels and dtype are
known. Errors that stop a run name the output files left incomplete, and a GPU out-of-memory
error becomes a ``MemoryError`` that names the settings to change.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..stacks import axes as axes_mod
from .budget import open_sink, open_source, open_stream
from .model import check_prediction
from .plan import ImagePlan, Plan, output_axes
from .skip import tiles_to_run

__all__ = ["PredictionStats", "execute", "predict_tiled", "run_prediction"]


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
    n_skipped: int = 0  # tiles that never reached the model (``skip=``); n_tiles counts them too
    skip_s: float = 0.0  # deciding which tiles to skip

    @property
    def tiles_per_s(self) -> float:
        """All tiles, run and skipped, per second of wall time."""
        return self.n_tiles / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def n_run(self) -> int:
        """Tiles that went through the model."""
        return self.n_tiles - self.n_skipped


def predict_tiled(
    model,
    data,
    *,
    axes: str | None = None,
    tile_size,
    overlaps=None,
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
    compression: str | None = None,
    skip=None,
    skip_value: float = 0.0,
    overlap=None,
):
    """Run a model over images too large for it, tile by tile, and stitch the result.

    Parameters
    ----------
    model : callable or torch.nn.Module
        Maps a float32 batch ``(B, C_in, [Z,] Y, X)`` to ``(B, C_out, [Z,] Y, X)`` with the
        same spatial size. A plain callable gets CuPy arrays on the GPU and NumPy arrays on
        the CPU; a ``torch.nn.Module`` gets tensors (through DLPack on the GPU, no host round
        trip) on CuPy's current stream, where the batches are gathered and stitched. A
        torch model runs in ``eval()`` mode (each submodule's train/eval mode is restored
        after every batch) under ``torch.inference_mode()``, and gets the tiles in its
        parameters' dtype (a float64, float16 or bfloat16 model works as a float32 one);
        put it on the working device first. ``C_out`` and the output dtype may differ from the input's;
        they are taken from the first batch. Stitching accumulates in float32 and the result
        is cast to the model's dtype: integers are rounded and saturate at their type's range
        (float32 holds integers exactly up to 2**24; larger ones keep float32 precision).
        Complex and other non-real outputs are refused (TypeError naming the model).
    data : array, ImageStack, path, or list of them
        NumPy or CuPy array, ``ImageStack``, or a ``.tif/.tiff``, ``.zarr`` or ``.npy``
        path. A list predicts several images and returns a list.
    axes : str, optional
        Axes of ``data`` (e.g. ``"YX"``, ``"SZYX"``, ``"TYXC"``); S and T are samples.
        Optional for inputs that carry their axes (stacks, OME-Zarr images, OME/ImageJ
        TIFFs, Zarr arrays with ``dimension_names``), and checked against them when given.
    tile_size, overlaps : int or sequence of int
        Tile size and overlap per spatial axis, (Z)YX; one int means that value on every
        axis. ``overlaps < tile_size``; in crop mode the overlap must be even (half of it is
        cropped from each side). ``overlaps`` is required (it has a default only so that
        the deprecated spelling can be told apart).
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
        Destination. A ``.zarr``, ``.ome.zarr``, ``.tif/.tiff`` (``.ome.tif``) or ``.npy``
        path is created (refused if it exists unless ``overwrite``); arrays must have the
        restored output shape. With a destination the prediction streams into it and it is
        returned. Zarr outputs carry ``dimension_names``; ``.ome.zarr`` outputs are NGFF 0.5
        images (one level) with the axes, units and scale of an OME input; TIFF outputs
        carry their axes (ImageJ hyperstack, OME-TIFF or tifffile metadata, see the README)
        and are BigTIFF above 4 GB.
    device : {"auto", "gpu", "cpu"}, default "auto"
        ``"auto"`` uses the GPU when usable; ``"gpu"`` without a usable GPU is an error.
    progress : bool, default True
        Show a tqdm progress bar (tiles/s).
    overwrite : bool, default False
        Replace existing output paths.
    max_gpu_bytes : float, optional
        Working-memory budget on the device (default: half the free GPU memory; no limit
        on the CPU). If the full output would not fit, it is streamed to a host array.
    compression : {None, "zlib", "zstd"}, optional
        Compress a ``.tif``/``.tiff`` or ``.zarr`` output path (TIFF through tifffile and
        imagecodecs, the ``ome`` extra; Zarr outputs are zstd-compressed by default).
    skip : mask, callable, filter object, or list of masks, optional
        Tiles that never reach the model. A mask (array, ``ImageStack`` or path with the
        input's axes, C optional; at the input's resolution or reduced by an integer
        divisor per axis; one per image for a list) skips every tile whose output region
        (crop: its kept region; blend: its window inside the image) has no non-zero mask
        cell. A callable ``skip(tiles) -> bool per tile`` gets each batch of raw input
        tiles (model input channels, float32, not normalised) and returns True for tiles
        to skip; an object with ``filter_out_batch`` (a ``cupatch.filters`` patch filter)
        is called on their first channel ``(B, 1, ...)`` (a mask is given as the mask, not
        as a ``MaskPatchFilter``, which would see image tiles). The tiles that run are batched
        in full batches. If every tile of an image is skipped, its first tile runs (it
        gives the output channels and dtype).
    skip_value : float, default 0.0
        Output value where no tile that ran writes: the kept regions of skipped tiles in
        crop mode; in blend mode each voxel blends the run tiles covering it (weights
        renormalised over them) and gets ``skip_value`` only where none does. NaN needs a
        float model output.
    overlap : int or sequence of int, optional
        Deprecated alias of ``overlaps`` (a ``DeprecationWarning``; removed in the next
        release).

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
    plan = Plan.build(
        model, data, axes=axes, tile_size=tile_size, overlaps=overlaps, batch_size=batch_size, blend=blend,
        window=window, channels=channels, normalization=normalization, target_axes=target_axes, out=out,
        device=device, progress=progress, overwrite=overwrite, max_gpu_bytes=max_gpu_bytes,
        compression=compression, skip=skip, skip_value=skip_value, overlap=overlap,
    )  # fmt: skip
    return execute(plan)[0]


#: predict_tiled's arguments, their defaults and their order: the one place they are spelled.
_ARGUMENTS = inspect.signature(predict_tiled)


def run_prediction(model, data, *, timing: bool = False, **arguments) -> tuple[Any, PredictionStats]:
    """:func:`predict_tiled` (same arguments) returning ``(result, PredictionStats)``.

    With ``timing=True`` the device is synchronised after every phase so that the gather,
    model and stitch times in the stats are exact (slightly slower overall).
    """
    bound = _ARGUMENTS.bind(model, data, **arguments)
    bound.apply_defaults()
    return execute(Plan.build(**bound.arguments), timing=timing)


def execute(plan: Plan, *, timing: bool = False) -> tuple[Any, PredictionStats]:
    """Run a plan; returns ``(result, PredictionStats)`` (see :func:`run_prediction`)."""
    run = _Run(plan, timing, PredictionStats(n_images=len(plan.images), device=plan.device))
    run.bar = _progress_bar(plan.n_tiles, plan.progress)
    results = []
    start = time.perf_counter()
    finished: list[Path] = []  # output files completely written
    try:
        for image in plan.images:
            n_created = len(run.created)
            results.append(_predict_image(run, image))
            finished.extend(run.created[n_created:])
    except BaseException as exc:
        incomplete = [path for path in run.created if path not in finished]
        # CuPy and torch raise OutOfMemoryError; a failed pinned or runtime allocation comes
        # as a CUDA runtime error carrying cudaErrorMemoryAllocation.
        oom = type(exc).__name__ == "OutOfMemoryError" or "cudaErrorMemoryAllocation" in str(exc)
        if oom:
            new = MemoryError(
                f"the GPU ran out of memory during tiled inference ({exc}); lower batch_size "
                f"(={plan.batch_size}) or tile_size (={plan.tile}), or lower max_gpu_bytes (={plan.budget:.3g}) so "
                f"that the output is streamed in slabs"
            )
            for path in incomplete:
                new.add_note(f"predict_tiled: the output {str(path)!r} is incomplete (stopped by this error)")
            raise new from exc
        for path in incomplete:
            exc.add_note(f"predict_tiled: the output {str(path)!r} is incomplete (stopped by this error)")
        raise
    finally:
        run.bar.close()
    run.stats.wall_s = time.perf_counter() - start
    run.stats.n_tiles = plan.n_tiles
    return (results if plan.is_list else results[0]), run.stats


@dataclass
class _Run:
    """What one execution of a plan accumulates."""

    plan: Plan
    timing: bool  # synchronise the device after every phase (exact phase times)
    stats: PredictionStats
    bar: Any = None
    created: list[Path] = field(default_factory=list)  # output files made by this run


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
        from tqdm.auto import tqdm  # a dependency, but the package must still work without it
    except ImportError:
        return _NoProgress()
    return tqdm(total=total, desc="predict_tiled", unit="tile", dynamic_ncols=True)


def _predict_image(run: _Run, image: ImagePlan):
    plan, tiling, stats = run.plan, image.tiling, run.stats
    xp = plan.xp

    def phase_end() -> float:
        if run.timing and xp is not np:
            xp.cuda.get_current_stream().synchronize()
        return time.perf_counter()

    t_skip = time.perf_counter()
    run_tiles = tiles_to_run(plan, image, open_source)  # None: every tile, else the compacted list of tiles to run
    n_run = tiling.n_tiles if run_tiles is None else len(run_tiles)
    stats.skip_s += time.perf_counter() - t_skip
    stats.n_skipped += tiling.n_tiles - n_run
    if stats.n_skipped and hasattr(run.bar, "set_postfix"):
        run.bar.set_postfix(skipped=stats.n_skipped, refresh=False)  # the bar's tiles/s counts both
    source = open_source(plan, image)
    # every run tile's row of the tile table, made once: each batch takes a slice of it
    run_index = np.arange(n_run, dtype=np.int64) if run_tiles is None else np.asarray(run_tiles, dtype=np.int64)
    run_specs = np.ascontiguousarray(tiling.patching.spec_table(run_index), dtype=np.int64)
    sink = None
    done = 0  # tiles before the next one to run: stitched or skipped
    try:
        for begin in range(0, n_run, plan.batch_size):
            tile_index = run_index[begin : begin + plan.batch_size]
            end = begin + len(tile_index)
            next_tile = tiling.n_tiles if end == n_run else int(run_index[end])
            specs = run_specs[begin:end]
            t0 = time.perf_counter()
            batch = source.gather(specs, tile_index)
            t1 = phase_end()
            pred = plan.model(batch)
            check_prediction(
                pred, plan.model, tuple(batch.shape), tiling.tile, channels=None if sink is None else c_out,
                batch=begin // plan.batch_size,
            )
            if plan.normalization is not None:
                pred = plan.normalization.denormalize(pred)
            t2 = phase_end()
            if sink is None:
                writer = open_stream(plan, image, pred, source.resident_bytes)
                if writer is not None:
                    if writer.path is not None:
                        run.created.append(writer.path)
                    stats.streamed.append(writer.label)
                sink = open_sink(plan, image, pred, writer, run_specs)
                c_out = int(pred.shape[1])
            tiles = xp.ascontiguousarray(pred, dtype=np.float32)
            sink.add(tiles, specs, tile_index, next_tile)
            t3 = phase_end()
            stats.gather_s += t1 - t0
            stats.model_s += t2 - t1
            stats.stitch_s += t3 - t2
            run.bar.update(next_tile - done)  # the batch and the skipped tiles up to the next to run
            done = next_tile
        output = sink.finish()
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    if writer is not None:
        return output  # the destination
    out_axes = output_axes(image.axes, plan.target_axes, output.shape[1])
    output = axes_mod.restore_array(output, image.axes, image.shape, out_axes)
    if xp is not np and not image.on_gpu:
        return output.get()
    if xp is np and image.on_gpu:
        import cupy  # optional dependency, only for CuPy inputs

        return cupy.asarray(output)
    return xp.ascontiguousarray(output)
