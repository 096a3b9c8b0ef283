"""``filter_background``: CAREamics' background filtering of a ``StratifiedPatching``, batched.

For every sample and every grid cell ``g`` of the stratified grid, the 2P region at
``g * P`` (channel ``ref_channel``, zeros beyond the image, float32 as CAREamics' in-memory
stacks) is gathered with :func:`cupatch.gather_patches` in batches, the filter's
``filter_out_batch`` decides all of them at once, and the filtered cells get the relative
probability ``filtered_patch_prob`` (:meth:`StratifiedPatching.set_region_probs`). The
strategy ends up with exactly the region probabilities of CAREamics' ``filter_background``
(or ``filter_background_with_mask`` for a :class:`MaskPatchFilter` over masks).
"""

from __future__ import annotations

import logging

import numpy as np

from .._backend import is_cupy_array
from .._validation import as_bool, as_channels, as_int, as_probability
from .base import PatchFilter, host
from .maps import region_batches

__all__ = ["filter_background", "filter_dataset_background"]

logger = logging.getLogger("cupatch.filters")


def _as_source_list(data) -> list:
    """Boolean masks as uint8 (the gather kernels read no bools); everything else as given."""
    items = list(data) if isinstance(data, (list, tuple)) else [data]
    out = []
    for a in items:
        if isinstance(a, np.ndarray) and a.dtype == np.bool_:
            a = a.view(np.uint8)
        elif is_cupy_array(a) and a.dtype == np.bool_:
            a = a.astype(np.uint8)
        out.append(a)
    return out


def _check_shapes(stacks, strategy) -> None:
    shapes = strategy.data_shapes
    if len(stacks) != len(shapes):
        raise ValueError(f"data has {len(stacks)} stacks but the strategy was built for {len(shapes)} (data_shapes)")
    for k, (s, shape) in enumerate(zip(stacks, shapes)):
        if s.data_shape[0] != shape[0] or tuple(s.data_shape[2:]) != tuple(shape[2:]):
            raise ValueError(
                f"data[{k}] has SC(Z)YX shape {tuple(s.data_shape)} but the strategy's data_shapes[{k}] is "
                f"{tuple(shape)} (samples and spatial sizes must match)"
            )


def _stack_sources(stack, ref_channel: int):
    """``(source, sample_of)`` pairs: gather sources covering the stack's samples.

    A stack in memory (NumPy or CuPy) is gathered in place; a stack on disk is read one sample
    (channel ``ref_channel`` only) at a time.
    """
    if stack.array is not None:
        yield stack.array, None
        return
    spatial = tuple(stack.data_shape[2:])
    for s in range(stack.data_shape[0]):
        region = stack.read_region(s, (0,) * len(spatial), spatial, [ref_channel])
        yield region[None], s


def filter_background(
    strategy,
    data,
    patch_filter: PatchFilter,
    *,
    axes: str | None = None,
    ref_channel: int = 0,
    filtered_patch_prob: float = 0.1,
    batch_size: int | None = None,
    progress: bool = True,
) -> int:
    """Lower the sampling probability of background regions of a stratified strategy.

    Parameters
    ----------
    strategy : StratifiedPatching
        The strategy to modify in place (built on the shapes of ``data``).
    data : list of stacks, arrays or paths
        The images in the order of the strategy's ``data_idx`` (for a
        :class:`MaskPatchFilter`, the masks: non-zero = foreground; boolean arrays are
        accepted). Stacks from :func:`cupatch.as_stacks`, or anything ``as_stacks`` reads
        with ``axes``.
    patch_filter : PatchFilter
        A filter with ``filter_out_batch`` (:mod:`cupatch.filters`).
    axes : str, optional
        Axes of ``data`` when it is not stacks.
    ref_channel : int, default 0
        Channel whose regions are tested.
    filtered_patch_prob : float, default 0.1
        Relative probability given to filtered regions, in ``[0, 1]``; ``n_patches`` of a
        sample drops by ``(1 - p)`` for each.
    batch_size : int, optional
        Regions per batch (default: about 2**24 voxels per batch on the GPU, 2**18 on the CPU).
    progress : bool, default True
        Show a progress bar.

    Returns
    -------
    int
        The number of filtered regions.

    Notes
    -----
    Regions are evaluated where the stacks live: stacks held as CuPy arrays on the GPU,
    NumPy and disk stacks on the CPU (a disk stack is read one sample at a time).
    """
    from ..ops import SourceTable, gather_patches
    from ..patching import StratifiedPatching
    from ..stacks import as_stacks

    if not isinstance(strategy, StratifiedPatching):
        raise TypeError(
            f"strategy must be a StratifiedPatching (background filtering acts on its sampling regions), "
            f"got {type(strategy).__name__}"
        )
    if not callable(getattr(patch_filter, "filter_out_batch", None)):
        raise TypeError(
            "patch_filter must be a patch filter with filter_out_batch (MaxPatchFilter, MeanStdPatchFilter, "
            f"ShannonPatchFilter or MaskPatchFilter), got {type(patch_filter).__name__}"
        )
    prob = as_probability(filtered_patch_prob, "filtered_patch_prob")
    if batch_size is not None:
        batch_size = as_int(batch_size, "batch_size", minimum=1)
    progress = as_bool(progress, "progress")
    if isinstance(data, (list, tuple)) and not data:
        raise ValueError("data is empty: give one image (or mask) per data_idx of the strategy")
    stacks = as_stacks(_as_source_list(data), axes)
    _check_shapes(stacks, strategy)
    ref = as_channels([as_int(ref_channel, "ref_channel")], stacks[0].data_shape[1], "ref_channel")[0]

    patch = tuple(int(p) for p in strategy.patch_size)
    region = tuple(2 * p for p in patch)
    ndim = len(patch)
    n_total = sum(int(np.prod(strategy.grid_shape(k))) * s.data_shape[0] for k, s in enumerate(stacks))
    n_before = strategy.n_patches
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_total, desc=f"Filtering background ({type(patch_filter).__name__})", unit="region")
    n_filtered = 0
    try:
        for k, stack in enumerate(stacks):
            grid_shape = strategy.grid_shape(k)
            cells = np.stack(np.unravel_index(np.arange(int(np.prod(grid_shape))), grid_shape), axis=1)
            cells = cells.astype(np.int64).reshape(-1, ndim)
            for source, only in _stack_sources(stack, ref):
                samples = range(stack.data_shape[0]) if only is None else [only]
                specs = np.zeros((len(samples) * len(cells), 2 + ndim), dtype=np.int64)
                specs[:, 1] = np.repeat(np.arange(len(samples)) if only is not None else np.array(samples), len(cells))
                specs[:, 2:] = np.tile(cells * np.array(patch), (len(samples), 1))
                channels = [ref] if only is None else None
                decisions = np.empty(len(specs), dtype=bool)
                table = SourceTable([source])  # validated once, reused by every batch
                device = "gpu" if table.is_gpu else "cpu"
                buffer = None  # one output buffer for all batches (no allocation per batch)
                for sl in region_batches(len(specs), region, batch_size, device):
                    n = sl.stop - sl.start
                    if buffer is None or len(buffer) < n:
                        buffer = table.xp.empty((n, 1, *region), dtype=np.float32)
                    regions = gather_patches(table, specs[sl], region, channels=channels, out=buffer[:n])
                    decisions[sl] = host(patch_filter.filter_out_batch(regions))
                    if bar is not None:
                        bar.update(sl.stop - sl.start)
                for i, s in enumerate(samples):
                    out = cells[decisions[i * len(cells) : (i + 1) * len(cells)]]
                    if len(out):
                        strategy.set_region_probs(k, s, {tuple(c): prob for c in out.tolist()})
                        n_filtered += len(out)
    finally:
        if bar is not None:
            bar.close()
    logger.info(
        "Found %d background regions. Number of patches has been reduced to %d from %d.",
        n_filtered, strategy.n_patches, n_before,
    )
    return n_filtered


def filter_dataset_background(patching, stacks, patch_filter, masks, axes: str, progress: bool) -> None:
    """What ``PatchDataset(patch_filter=, masks=)`` does, in CAREamics' order.

    A filter other than :class:`MaskPatchFilter` is applied to the input ``stacks``; then,
    with ``masks``, a :class:`MaskPatchFilter` (the given one, else coverage
    ``0.5**ndim`` as CAREamics' default) to the masks. Both need a ``StratifiedPatching``.
    """
    from ..patching import StratifiedPatching
    from .mask import MaskPatchFilter

    if patch_filter is None and masks is None:
        return
    if not isinstance(patching, StratifiedPatching):
        raise TypeError(
            "patch_filter and masks (background filtering) need a StratifiedPatching, "
            f"got patching={type(patching).__name__}"
        )
    is_mask = isinstance(patch_filter, MaskPatchFilter)
    if is_mask and masks is None:
        raise ValueError("patch_filter=MaskPatchFilter(...) filters by masks: give masks= (one mask per input image)")
    if patch_filter is not None and not is_mask:
        filter_background(patching, stacks, patch_filter, progress=progress)
    if masks is not None:
        mask_filter = patch_filter if is_mask else MaskPatchFilter(0.5 ** len(patching.patch_size))
        filter_background(patching, [_mask_stack(m, axes) for m in _as_source_list(masks)], mask_filter,
                          progress=progress)  # fmt: skip


def _mask_stack(mask, axes: str):
    """A dataset's mask as a stack: with the input's ``axes``, else (a mask has no use for
    channels) with the axes its file names (OME-Zarr labels, OME/ImageJ TIFF, Zarr
    ``dimension_names``) or with the input's axes without C."""
    from ..stacks import as_stack
    from ..stacks.base import BaseStack
    from ..stacks.factory import source_axes

    if isinstance(mask, BaseStack):
        return mask
    try:
        return as_stack(mask, axes)
    except ValueError as first:
        error = first
    others = []
    try:
        others.append(source_axes(mask))
    except (TypeError, ValueError, OSError):
        pass
    others.append(axes.replace("C", "") if "C" in axes else None)
    for other in others:
        if other and other != axes:
            try:
                return as_stack(mask, other)
            except ValueError:
                continue
    raise error
