"""The plan of one ``predict_tiled`` call: every argument checked once, and what follows.

``predict_tiled`` takes sixteen loosely typed arguments (an int or one per axis, mode
names, paths or arrays). :meth:`Plan.build` checks them all before any work, in one place,
and turns them into a frozen :class:`Plan` with one :class:`ImagePlan` (stack, tiling,
destination) per image. The later stages read the plan instead of receiving the
arguments again, so none of them re-checks or relays an argument.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._backend import gpu_available, gpu_unavailable_reason, is_cupy_array
from .._validation import as_bool, as_channels, as_int, as_patch_size, deprecated_alias, ensure_tuple_rep, look_up_option
from .._windows import WINDOWS, window_table
from ..normalization import check_normalization
from ..patching import TiledPatching
from ..patching.tiled import AXIS_COLUMNS
from ..stacks import axes as axes_mod
from .destinations import check_compression, check_out_axes, check_outputs, normalise_out
from .model import ModelRunner
from .skip import check_skip
from .sources import open_images

__all__ = [
    "BLEND_MODES",
    "DEVICES",
    "ImagePlan",
    "Plan",
    "Tiling",
    "output_axes",
    "resolve_blend",
    "resolve_device",
]

#: Values accepted by ``predict_tiled(blend=...)``: overlap cropping or a blend window.
BLEND_MODES = ("crop", "blend", *WINDOWS)

#: Values accepted by ``predict_tiled(device=...)``.
DEVICES = ("auto", "cpu", "gpu")

#: Share of the free device memory used when ``max_gpu_bytes`` is not given.
DEFAULT_GPU_FRACTION = 0.5

# Columns of the per-axis tilings (``TiledPatching.axis_tiles``).
_COORDS, _CROP_SIZE, _STITCH = (AXIS_COLUMNS.index(c) for c in ("coords", "crop_size", "stitch_coords"))


# --------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------


def resolve_blend(blend: str, window: str | None) -> tuple[str, str | None]:
    """Return ``(mode, window)`` with mode ``"crop"`` or ``"blend"``."""
    look_up_option(blend, BLEND_MODES, "blend")
    look_up_option(window, (*WINDOWS, None), "window")
    if blend == "crop":
        if window is not None:
            raise ValueError(f"window={window!r} needs a blended mode, but blend='crop'")
        return "crop", None
    if blend == "blend":
        return "blend", window or "hann"
    if window is not None and window != blend:
        raise ValueError(f"blend={blend!r} and window={window!r} disagree; give one of them")
    return "blend", blend


def resolve_device(device: str) -> str:
    """The working device, ``"gpu"`` or ``"cpu"``, for ``device`` in :data:`DEVICES`."""
    look_up_option(device, DEVICES, "device")
    if device == "cpu":
        return "cpu"
    if gpu_available():
        return "gpu"
    if device == "gpu":
        raise RuntimeError(f"device='gpu' was requested but no GPU is usable: {gpu_unavailable_reason()}")
    return "cpu"


def output_axes(axes: str, target_axes: str | None, c_out: int) -> str:
    """Axes of the restored output; C is added when the model makes channels and ``axes`` has none."""
    if target_axes is not None:
        return axes_mod.validate_axes(target_axes, "target_axes")
    if "C" in axes or c_out == 1:
        return axes
    first_spatial = min(axes.index(a) for a in "ZYX" if a in axes)
    return axes[:first_spatial] + "C" + axes[first_spatial:]


def _check_tiling(tile: tuple[int, ...], overlap: tuple[int, ...], mode: str) -> None:
    if any(t < 1 for t in tile):
        raise ValueError(f"tile_size must be positive, got {tile}")
    as_patch_size(tile, len(tile), "tile_size")  # the documented 2**60 / 2**30 (X) limits
    if any(o < 0 for o in overlap):
        raise ValueError(f"overlaps must be non-negative, got {overlap}")
    if any(o >= t for o, t in zip(overlap, tile)):
        raise ValueError(f"overlaps {overlap} must be smaller than tile_size {tile} on every axis")
    if mode == "crop" and any(o % 2 for o in overlap):
        # CAREamics forbids odd overlaps: the first two crops would overlap by one pixel.
        raise ValueError(f"overlaps must be even in crop mode (half is cropped from each side), got {overlap}")


def _check_channels(channels, n_channels: int) -> tuple[int, ...] | None:
    values = as_channels(channels, n_channels)
    return None if values is None else tuple(values)


def _gpu_budget(max_gpu_bytes, device: str) -> float:
    if max_gpu_bytes is not None:
        # not as_float: an infinite budget (never stream) is allowed
        if isinstance(max_gpu_bytes, (bool, np.bool_)) or not isinstance(max_gpu_bytes, (numbers.Real, np.number)):
            raise TypeError(
                f"max_gpu_bytes must be a number of bytes (or inf: never stream), got {max_gpu_bytes!r} "
                f"({type(max_gpu_bytes).__name__})"
            )
        value = float(max_gpu_bytes)
        if not value > 0:
            raise ValueError(f"max_gpu_bytes must be positive, got {max_gpu_bytes!r}")
        return value
    if device == "gpu":
        import cupy  # optional dependency, only on the GPU

        free, _total = cupy.cuda.runtime.memGetInfo()
        return DEFAULT_GPU_FRACTION * (free + cupy.get_default_memory_pool().free_bytes())
    return math.inf


# --------------------------------------------------------------------------------------
# the plan
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Tiling:
    """The tiles of one image, and the per-row facts streaming needs.

    Tiles come in C order, so the tiles sharing a position along the first spatial axis
    form a *row* (``row_size`` tiles; ``n_per_sample`` tiles per sample), and rows finish
    one after the other. ``crop_range`` / ``blend_range`` give, per row, the extent
    ``[lo, hi)`` along the first spatial axis that the row writes in each mode.
    """

    patching: Any
    data_shape: tuple[int, ...]
    tile: tuple[int, ...]
    overlap: tuple[int, ...]
    axis_tiles: list = field(init=False)  # TiledPatching.axis_tiles: AXIS_COLUMNS per tile
    n_samples: int = field(init=False)
    spatial: tuple[int, ...] = field(init=False)
    row_size: int = field(init=False)
    n_per_sample: int = field(init=False)
    n_tiles: int = field(init=False)
    row_coords: np.ndarray = field(init=False)  # start of each row's read window
    crop_range: np.ndarray = field(init=False)
    blend_range: np.ndarray = field(init=False)

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        axis_tiles = [np.asarray(t, dtype=np.int64) for t in self.patching.axis_tiles(0)]
        spatial = tuple(self.data_shape[2:])
        row_size = int(np.prod([len(t) for t in axis_tiles[1:]]))
        rows = axis_tiles[0]
        n0, t0 = spatial[0], self.tile[0]
        put("axis_tiles", axis_tiles)
        put("n_samples", self.data_shape[0])
        put("spatial", spatial)
        put("row_size", row_size)
        put("n_per_sample", len(rows) * row_size)
        put("n_tiles", self.n_samples * self.n_per_sample)
        put("row_coords", rows[:, _COORDS])
        stitch, size, coords = rows[:, _STITCH], rows[:, _CROP_SIZE], rows[:, _COORDS]
        put("crop_range", np.stack([stitch, stitch + size], axis=1))
        put("blend_range", np.stack([np.maximum(coords, 0), np.minimum(coords + t0, n0)], axis=1))


@dataclass(frozen=True, eq=False)
class ImagePlan:
    """One image of a run: where it is read from, how it is tiled, where it goes."""

    stack: Any  # ImageStack, SC(Z)YX
    tiling: Tiling
    out: Any  # destination: None, a Path, a NumPy array or a Zarr array
    axes: str  # the image's own axes, which the output is restored to ...
    shape: tuple[int, ...]  # ... with its shape in them
    on_gpu: bool  # the input is a CuPy array (the result is one too)
    skip_mask: Any = None  # skip.SkipMask: the tiles it leaves empty never reach the model


@dataclass(frozen=True, eq=False)
class Plan:
    """Everything one ``predict_tiled`` call does, checked, before any work.

    Built by :meth:`build` from the arguments of :func:`~cupatch.predict_tiled`, whose
    docstring gives their meaning; read, never changed, by the stages that follow.
    """

    model: ModelRunner
    images: tuple[ImagePlan, ...]
    is_list: bool  # data was a list: return a list
    device: str  # working device, "gpu" or "cpu"
    xp: Any  # its array module, cupy or numpy
    mode: str  # "crop" or "blend"
    window: str | None  # blend window name
    window_table: np.ndarray | None  # its per-axis weights (blend only)
    tile: tuple[int, ...]
    overlap: tuple[int, ...]
    batch_size: int
    channels: tuple[int, ...] | None  # input channels fed to the model (None: all)
    scale: np.ndarray | None  # normalisation fused into the gather, per model input channel
    shift: np.ndarray | None
    normalization: Any  # denormalises the predictions (None: not at all)
    target_axes: str | None
    budget: float  # working-memory budget on the device, bytes
    overwrite: bool
    progress: bool
    skip: Any = None  # skip.SkipRule (None: every tile runs)
    compression: str | None = None  # of created .tif/.zarr outputs

    @property
    def n_tiles(self) -> int:
        return sum(image.tiling.n_tiles for image in self.images)

    @classmethod
    def build(
        cls, model, data, *, axes, tile_size, overlaps, batch_size, blend, window, channels, normalization,
        target_axes, out, device, progress, overwrite, max_gpu_bytes, overlap=None, skip=None, skip_value=0.0,
        compression=None,
    ) -> Plan:  # fmt: skip
        """Check ``predict_tiled``'s arguments (all of them, no defaults) and plan the run.

        Fits ``normalization`` on the data when it is not fitted yet. ``overlap`` is the
        deprecated alias of ``overlaps``.
        """
        overlaps = deprecated_alias(overlaps, overlap, "overlaps", "overlap", "predict_tiled", stacklevel=4)
        mode, window_name = resolve_blend(blend, window)
        batch_size = as_int(batch_size, "batch_size", minimum=1)
        check_normalization(normalization)
        progress, overwrite = as_bool(progress, "progress"), as_bool(overwrite, "overwrite")
        axes = None if axes is None else axes_mod.validate_axes(axes)  # None: each input's own
        if target_axes is not None:
            target_axes = axes_mod.validate_axes(target_axes, "target_axes")
        working = resolve_device(device)
        stacks, is_list = open_images(data, axes)
        outs = normalise_out(out, len(stacks), is_list)
        check_outputs(outs, data, stacks, overwrite)
        compression = check_compression(compression, outs)
        check_out_axes(outs, stacks, target_axes)
        budget = _gpu_budget(max_gpu_bytes, working)

        ndim = len(stacks[0].data_shape) - 2
        # the types of both first, then their values
        tile = ensure_tuple_rep(tile_size, ndim, "tile_size")
        ovl = ensure_tuple_rep(overlaps, ndim, "overlaps")
        _check_tiling(tile, ovl, mode)
        table = window_table(tile, ovl, window_name) if mode == "blend" else None

        tilings = []
        for k, stack in enumerate(stacks):
            shape = tuple(int(s) for s in stack.data_shape)
            if len(shape) - 2 != ndim:
                raise ValueError(f"all images must have the same number of spatial axes; image {k} has shape {shape}")
            if 0 in shape:
                raise ValueError(
                    f"data image {k} is empty: its SC(Z)YX shape {shape} (original shape "
                    f"{tuple(stack.original_data_shape)}) has an axis of length 0"
                )
            tilings.append(Tiling(TiledPatching([shape], tile, ovl), shape, tile, ovl))
        skip_rule, skip_masks = check_skip(skip, skip_value, stacks, axes, is_list)

        n_in = stacks[0].data_shape[1]
        chans = _check_channels(channels, n_in)
        for k, stack in enumerate(stacks):
            if stack.data_shape[1] != n_in:
                raise ValueError(
                    f"all images must have the same channel count; image 0 has {n_in}, image {k} has {stack.data_shape[1]}"
                )
        scale = shift = None
        if normalization is not None:
            if not getattr(normalization, "fitted", True):
                normalization.fit(stacks, channels=None if chans is None else list(chans), progress=progress)
            scale, shift = normalization.input_scale_shift(n_in if chans is None else len(chans))
            scale = np.asarray(scale, dtype=np.float32)
            shift = np.asarray(shift, dtype=np.float32)

        runner = ModelRunner(model, working)
        xp = np
        if working == "gpu":
            import cupy as xp  # optional dependency, only on the GPU

        images = tuple(
            ImagePlan(
                stack=stack,
                tiling=tiling,
                out=dest,
                axes=getattr(stack, "original_axes", axes) or axes,
                shape=tuple(getattr(stack, "original_data_shape", None) or stack.data_shape),
                on_gpu=is_cupy_array(stack.array) if stack.array is not None else False,
                skip_mask=mask,
            )
            for stack, tiling, dest, mask in zip(stacks, tilings, outs, skip_masks)
        )
        return cls(
            model=runner, images=images, is_list=is_list, device=working, xp=xp, mode=mode, window=window_name,
            window_table=table, tile=tile, overlap=ovl, batch_size=batch_size, channels=chans, scale=scale,
            shift=shift, normalization=normalization, target_axes=target_axes, budget=budget,
            overwrite=overwrite, progress=progress, skip=skip_rule, compression=compression,
        )  # fmt: skip
