"""Tile skipping: which tiles of an image the model never sees, decided before batching.

``predict_tiled(skip=...)`` takes a mask, a callable or a filter object:

mask
    An array, stack or path with the input's axes (C optional; any channel counts), at
    the input's resolution or reduced by an integer divisor per axis (see
    :mod:`cupatch._resolution`). A tile is skipped when the mask is 0 over the whole
    output region of the tile: its kept region in crop mode, its read window clipped to
    the image in blend mode (where every voxel of the window gets a weight). So every
    voxel whose mask cell is non-zero is predicted exactly as without skipping.
callable
    ``skip(tiles) -> bool per tile`` on a batch ``(B, C, [Z,] Y, X)`` of raw input tiles
    (the model's input channels, float32, not normalised, zero padded past the image);
    True skips the tile. NumPy on the CPU, CuPy on the GPU.
filter object
    Anything with ``filter_out_batch(regions) -> bool per region`` (the patch filters of
    :mod:`cupatch.filters`): called on the first model input channel, ``(B, 1, ...)``.

The decision is one list per image of the tiles to run, in C order, which the driver cuts
into full batches; what fills the output where no run tile writes is the sinks' job
(``skip_value``). A callable or filter reads the input once more to decide.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import is_cupy_array
from .._resolution import cell_ranges, resolution_divisor
from .._validation import as_float
from ..patching.tiled import AXIS_COLUMNS
from ..stacks import BaseStack
from ..stacks import axes as axes_mod
from ..stacks.factory import is_npy_path, open_npy
from ..stacks.zarr_stack import is_zarr_source

__all__ = ["SkipMask", "SkipRule", "check_skip", "tiles_to_run"]

_COORDS, _CROP_SIZE, _STITCH = (AXIS_COLUMNS.index(c) for c in ("coords", "crop_size", "stitch_coords"))


@dataclass(frozen=True, eq=False)
class SkipMask:
    """One image's skip mask: SC(Z)YX samples read on demand, and its divisor per axis."""

    source: Any  # an SC(Z)YX array (NumPy, memory-mapped) or an ImageStack
    n_samples: int
    divisor: tuple[int, ...]

    def sample(self, s: int) -> np.ndarray:
        """The (Z)YX foreground of sample ``s`` (non-zero in any channel), bool, on the host."""
        s = 0 if self.n_samples == 1 else s
        if isinstance(self.source, BaseStack):
            block = self.source.read_sample(s)
        else:
            block = self.source[s]
        if is_cupy_array(block):
            block = block.get()
        return np.asarray(block).any(axis=0)


@dataclass(frozen=True, eq=False)
class SkipRule:
    """How ``skip=`` decides, and ``skip_value``."""

    value: float
    decide: Any = None  # tiles -> bool per tile (None: masks, on the ImagePlans)
    channel_one: bool = False  # a filter object: give it (B, 1, ...) of the first channel


def _is_mask_like(obj) -> bool:
    return (
        isinstance(obj, (np.ndarray, BaseStack, str, os.PathLike))
        or is_cupy_array(obj)
        or hasattr(obj, "__array__")
    )


def _open_mask(mask, axes: str, stack, k: int) -> SkipMask:
    name = "skip" if k < 0 else f"skip[{k}]"
    axes = getattr(stack, "original_axes", None) or axes  # the image's own axes
    image = f"data image {max(k, 0)}"
    if isinstance(mask, BaseStack):
        source = mask
        shape = mask.data_shape
    else:
        if isinstance(mask, (str, os.PathLike)):
            if not is_npy_path(mask):
                from ..stacks import as_stack

                try:  # TIFF, Zarr: read per sample, with or without the input's C axis
                    try:
                        opened = as_stack(mask, axes)
                    except ValueError:
                        if "C" not in axes:
                            raise
                        opened = as_stack(mask, axes.replace("C", ""))
                    return _open_mask(opened, axes, stack, k)
                except TypeError:  # a dtype stacks do not hold (a bool Zarr array): read it whole
                    if not is_zarr_source(mask):
                        raise
                    import zarr

                    mask = zarr.open_array(os.fspath(mask), mode="r")[...]
            else:
                mask = open_npy(mask)
        elif not is_cupy_array(mask):
            mask = np.asarray(mask)
        if mask.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a bool or numeric mask, got dtype {mask.dtype}")
        source = axes_mod.reshape_array(mask, _mask_axes(axes, mask.ndim, name))
        shape = tuple(source.shape)
    n = stack.data_shape[0]
    if shape[0] not in (1, n):
        raise ValueError(f"{name} has {shape[0]} samples but {image} has {n} (give one mask per sample, or one for all)")
    divisor = resolution_divisor(stack.data_shape[2:], shape[2:], f"{name} (SC(Z)YX shape {tuple(shape)})")
    return SkipMask(source, int(shape[0]), divisor)


def _mask_axes(axes: str, ndim: int | None, name: str) -> str:
    """The mask's axes: the input's, or the input's without C for a mask without channels."""
    if ndim is None or ndim == len(axes):
        return axes
    if "C" in axes and ndim == len(axes) - 1:
        return axes.replace("C", "")
    raise ValueError(f"{name} must have the input's axes {axes!r} (C optional), got {ndim} dimensions")


def check_skip(skip, skip_value, stacks, axes: str, is_list: bool) -> tuple[SkipRule | None, list]:
    """Check ``skip`` and ``skip_value`` against the opened images.

    Returns ``(rule, masks)``: the rule (None without skipping) and one :class:`SkipMask`
    or None per image.
    """
    none = [None] * len(stacks)
    value = _as_skip_value(skip_value)
    if skip is None:
        return None, none
    if hasattr(skip, "filter_out_batch"):
        if not callable(skip.filter_out_batch):
            raise TypeError(f"skip.filter_out_batch must be callable, got {type(skip.filter_out_batch).__name__}")
        return SkipRule(value, skip.filter_out_batch, channel_one=True), none
    if callable(skip) and not _is_mask_like(skip):
        return SkipRule(value, skip), none
    if isinstance(skip, (list, tuple)):
        if not is_list or len(skip) != len(stacks):
            raise ValueError(
                f"skip is a list of {len(skip)} masks but data is {'a list of ' + str(len(stacks)) if is_list else 'one'} "
                f"image(s): give one mask per image"
            )
        return SkipRule(value), [None if m is None else _open_mask(m, axes, s, k) for k, (m, s) in enumerate(zip(skip, stacks))]
    if not _is_mask_like(skip):
        raise TypeError(
            "skip must be a mask (array, stack or path), a callable on a batch of tiles, or an object with "
            f"filter_out_batch, got {type(skip).__name__}"
        )
    if len(stacks) != 1:
        raise ValueError(f"skip is one mask but data holds {len(stacks)} images: give a list with one mask per image")
    return SkipRule(value), [_open_mask(skip, axes, stacks[0], -1)]


def _as_skip_value(value) -> float:
    """``skip_value``: a finite number or NaN."""
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return math.nan
    return as_float(value, "skip_value", what="a finite number or nan")


def check_fill(value: float, dtype) -> None:
    """``skip_value`` must be storable in the output dtype (NaN needs floats)."""
    if math.isnan(value) and np.dtype(dtype).kind != "f":
        raise ValueError(
            f"skip_value=nan cannot be stored in the model's {np.dtype(dtype)} output; give a number as skip_value"
        )


def _regions(tiling, mode: str) -> list[np.ndarray]:
    """Per axis, the ``[lo, hi)`` output region of each tile position (crop: kept region;
    blend: read window clipped to the image)."""
    out = []
    for axis, t in enumerate(tiling.axis_tiles):
        if mode == "crop":
            lo = t[:, _STITCH]
            hi = lo + t[:, _CROP_SIZE]
        else:
            lo = np.maximum(t[:, _COORDS], 0)
            hi = np.minimum(t[:, _COORDS] + tiling.tile[axis], tiling.spatial[axis])
        out.append(np.stack([lo, hi], axis=1))
    return out


def _mask_keep(mask: SkipMask, tiling, mode: str) -> np.ndarray:
    """bool per tile of the image (C order): True where the mask has foreground in the
    tile's output region. One reduction per axis over the tile ranges along it."""
    regions = _regions(tiling, mode)
    keep, shared = [], None
    for s in range(tiling.n_samples):
        if mask.n_samples == 1 and shared is not None:  # one mask for every sample
            keep.append(shared)
            continue
        arr = mask.sample(s)
        for axis, (reg, d) in enumerate(zip(regions, mask.divisor)):
            lo, hi = cell_ranges(reg[:, 0], reg[:, 1], d)
            index = (slice(None),) * axis
            arr = np.stack([arr[index + (slice(a, b),)].any(axis=axis) for a, b in zip(lo.tolist(), hi.tolist())], axis=axis)
        shared = arr.reshape(-1)
        keep.append(shared)
    return np.concatenate(keep)


def _decide_keep(rule: SkipRule, plan, image, open_source) -> np.ndarray:
    """bool per tile: False where the rule's callable skips it (raw tiles, in batches)."""
    source = open_source(dataclasses.replace(plan, scale=None, shift=None), image)  # not normalised
    tiling = image.tiling
    keep = np.empty(tiling.n_tiles, dtype=bool)
    for begin in range(0, tiling.n_tiles, plan.batch_size):
        index = np.arange(begin, min(begin + plan.batch_size, tiling.n_tiles), dtype=np.int64)
        tiles = source.gather(np.ascontiguousarray(tiling.patching.spec_table(index), dtype=np.int64), index)
        out = rule.decide(tiles[:, :1] if rule.channel_one else tiles)
        if is_cupy_array(out):
            out = out.get()
        elif hasattr(out, "detach"):  # a torch tensor
            out = out.detach().cpu().numpy()
        out = np.asarray(out)
        if out.shape != (len(index),) or out.dtype.kind != "b":
            raise ValueError(
                f"skip must return one bool per tile: got {out.dtype} of shape {out.shape} for a batch of {len(index)} tiles"
            )
        keep[index] = ~out
    return keep


def tiles_to_run(plan, image, open_source) -> np.ndarray | None:
    """The int64 indices (C order) of the image's tiles that reach the model; None when
    nothing is skipped. At least one tile runs: with every tile skipped, the first runs, so
    that the output channels and dtype are known. ``open_source(plan, image)`` opens the
    source a callable's tiles are gathered from (:func:`~cupatch.inference.budget.open_source`)."""
    rule = getattr(plan, "skip", None)
    if rule is None:
        return None
    mask = getattr(image, "skip_mask", None)
    if rule.decide is None and mask is None:
        return None  # a list of masks with None for this image
    keep = _decide_keep(rule, plan, image, open_source) if rule.decide is not None else _mask_keep(mask, image.tiling, plan.mode)
    run = np.flatnonzero(keep).astype(np.int64)
    return run if len(run) else np.zeros(1, dtype=np.int64)
