"""Filter maps for choosing a threshold by eye (CAREamics' ``create_filter_map``), batched.

Every stratified sampling region (the 2P box at ``g * P``, zero-padded) gets one value; the
value is painted on the region's ``2**ndim`` cells, one map per cell offset, and a pixel
takes the largest (``"greater"``) or smallest (``"less"``) value over the maps, as CAREamics
does (a map that no region paints at a pixel holds 0 there).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

from .._validation import as_int_tuple, look_up_option

__all__ = ["create_filter_map", "plot_filter_map", "region_batches"]

#: Voxels gathered per batch of regions when no batch size is given: 64 MiB of float32 on
#: the GPU (few, large launches), 1 MiB on the CPU (the reductions stay in cache).
BATCH_VOXELS = {"gpu": 1 << 24, "cpu": 1 << 18}


def region_batches(n_regions: int, region_size: Sequence[int], batch_size: int | None, device: str = "cpu"):
    """``range`` slices of at most ``batch_size`` regions (default: :data:`BATCH_VOXELS` voxels)."""
    if batch_size is None:
        batch_size = max(1, BATCH_VOXELS[device] // int(np.prod(region_size)))
    for start in range(0, n_regions, batch_size):
        yield slice(start, min(start + batch_size, n_regions))


def _as_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be a 2-D (YX) or 3-D (ZYX) array without channels, got shape {image.shape}")
    if image.dtype == np.bool_:
        image = image.view(np.uint8)
    return image


def create_filter_map(
    image: np.ndarray,
    values: Callable[[np.ndarray], np.ndarray],
    patch_size: Sequence[int],
    direction: str = "greater",
) -> np.ndarray:
    """Per-pixel map of a per-region value.

    Parameters
    ----------
    image : numpy.ndarray
        YX or ZYX image (no channel axis).
    values : callable
        ``(B, 1, *2P) float32 regions -> (B,)`` values.
    patch_size : sequence of int
        Training patch size P, one entry per image axis.
    direction : {"greater", "less"}
        Keep the largest or the smallest value of the regions covering each pixel.

    Returns
    -------
    numpy.ndarray
        float64 map of ``image.shape``.
    """
    from ..ops import gather_patches  # the ops layer loads the native core
    from ..patching import StratifiedPatching

    image = _as_image(image)
    ndim = image.ndim
    patch = as_int_tuple(patch_size, "patch_size", length=ndim, minimum=1)
    look_up_option(direction, ("greater", "less"), "direction")
    grid_shape = StratifiedPatching([(1, 1, *image.shape)], patch).grid_shape(0)
    cells = np.stack(np.unravel_index(np.arange(int(np.prod(grid_shape))), grid_shape), axis=1).astype(np.int64)
    specs = np.zeros((len(cells), 2 + ndim), dtype=np.int64)
    specs[:, 2:] = cells * np.array(patch)
    region = tuple(2 * p for p in patch)
    source = [np.ascontiguousarray(image)[None, None]]
    vals = np.empty(len(cells), dtype=np.float64)
    for sl in region_batches(len(cells), region, None):
        vals[sl] = np.asarray(values(gather_patches(source, specs[sl], region)), dtype=np.float64)
    vals = vals.reshape(grid_shape)
    # one map per cell offset q: region g paints the cell g + q (P voxels per axis)
    up = vals
    for a, p in enumerate(patch):
        up = np.repeat(up, p, axis=a)
    maps = []
    for q in itertools.product((0, 1), repeat=ndim):
        m = np.zeros(image.shape, dtype=np.float64)
        dst = tuple(slice(qa * p, None) for qa, p in zip(q, patch))
        view = m[dst]
        common = tuple(slice(0, min(v, u)) for v, u in zip(view.shape, up.shape))
        view[common] = up[common]
        maps.append(m)
    stacked = np.stack(maps)
    return stacked.max(axis=0) if direction == "greater" else stacked.min(axis=0)


def plot_filter_map(
    image: np.ndarray,
    filter_map: np.ndarray,
    z_idx: int | None = None,
    *,
    title: str = "Filter Map",
    label: str | Sequence[str] = "threshold",
    panel_titles: Sequence[str] | None = None,
):
    """Plot a filter map (or a stack of maps, one panel each) over the image.

    Parameters
    ----------
    image : numpy.ndarray
        The YX or ZYX image the map was computed on.
    filter_map : numpy.ndarray
        A map of the image's shape, or a stack of maps (``(k, *image.shape)``, e.g. the
        mean and std maps of :meth:`MeanStdPatchFilter.filter_map`).
    z_idx : int, optional
        Slice of 3-D data to show (default: the central slice).
    title, label, panel_titles : str
        Figure title, colour-bar label(s) and per-panel titles.

    Returns
    -------
    matplotlib.figure.Figure
    """
    try:
        import matplotlib.pyplot as plt  # optional dependency (the plot extra)
    except ImportError as exc:  # pragma: no cover - matplotlib is in the plot extra
        raise ImportError("plot_filter_map needs matplotlib: pip install 'cupatch[plot]'") from exc
    image, maps = np.asarray(image), np.asarray(filter_map)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be YX or ZYX, got shape {image.shape}")
    if maps.shape == image.shape:
        maps = maps[None]
    elif maps.shape[1:] != image.shape:
        raise ValueError(f"filter_map must have the image's shape {image.shape} (or (k, *shape)), got {maps.shape}")
    if image.ndim == 3:
        z = image.shape[0] // 2 if z_idx is None else z_idx
        if not (isinstance(z, (int, np.integer)) and 0 <= z < image.shape[0]):
            raise ValueError(f"z_idx must be an int in [0, {image.shape[0]}), got {z_idx!r}")
        image, maps = image[z], maps[:, z]
    labels = [label] * len(maps) if isinstance(label, str) else list(label)
    fig, axes = plt.subplots(1, len(maps), figsize=(8 * len(maps), 8), constrained_layout=True, squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(image, "gray")
        m = ax.imshow(maps[i], "magma", alpha=0.5)
        fig.colorbar(m, ax=ax).ax.set_ylabel(labels[i])
        if panel_titles is not None:
            ax.set_title(panel_titles[i])
    fig.suptitle(title)
    return fig


class ThresholdMapMixin:
    """CAREamics' ``apply_filter``/``plot_filter_map`` of a filter whose map holds one value
    per pixel (max, mask, Shannon); the filter names its plot with ``_map_title`` and
    ``_map_label``."""

    _map_title = "Filter Map"
    _map_label = "threshold"

    @staticmethod
    def apply_filter(filter_map: np.ndarray, threshold: float) -> np.ndarray:
        """True where the map exceeds ``threshold``: the pixels kept for training."""
        return np.asarray(filter_map) > threshold

    @classmethod
    def plot_filter_map(cls, image: np.ndarray, filter_map: np.ndarray, z_idx: int | None = None):
        """The map over the image (matplotlib figure); ``z_idx`` picks the slice of 3-D data."""
        return plot_filter_map(image, filter_map, z_idx, title=cls._map_title, label=cls._map_label)
