"""NumPy reference implementations of the native kernels.

These are the executable form of ``docs/contracts.md``: slow, per-patch loops written for
clarity. Tests compare every backend against them bit for bit (gather, crop and blend
stitching), and the benchmarks use them as the "naive loop" baseline. CAREamics' 1-D
tiling loop is transcribed here too (:func:`careamics_tile_axis`), once, for every test
that compares a tiling with CAREamics', and so is its tile-by-tile prediction path
(:func:`careamics_predict_reference`). The table columns are spelled out on purpose
(not read from :mod:`cupatch._layouts`), so a layout mistake cannot hide in both.
"""

from __future__ import annotations

import itertools

from collections.abc import Sequence

import numpy as np

__all__ = ["careamics_tile_axis", "gather_patches_reference", "stitch_blend_reference", "stitch_crop_reference"]


def careamics_tile_axis(n: int, p: int, o: int) -> list[tuple[int, int, int, int]]:
    """CAREamics' ``_compute_1d_coords`` for an axis of length ``n``, tile ``p``, overlap ``o``.

    A straight transcription of CAREamics 0.3.5's loop
    (``careamics/dataset/patching/tiled_patching.py``, ``TiledPatching._compute_1d_coords``):
    one ``(coords, crop_coords, crop_size, stitch_coords)`` row per tile.
    """
    out = []
    step = p - o
    prev_stitch, prev_size = 0, 1
    for i in range(0, max(1, n - o), step):
        if i == 0:
            tile = (0, 0, n if n <= p else p - o // 2, 0)
        elif i + p < n:
            tile = (i, o // 2, p - o, i + o // 2)
        else:
            prev_end = prev_stitch + prev_size
            coord = max(0, n - p)
            tile = (coord, prev_end - coord, n - prev_end, prev_end)
        out.append(tile)
        prev_stitch, prev_size = tile[3], tile[2]
    return out


def _padded_window(sample: np.ndarray, coords: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """Read ``sample[..., coords : coords + size]`` (C(Z)YX) with zero padding, as float32."""
    out = np.zeros((sample.shape[0], *size), dtype=np.float32)
    src, dst = [slice(None)], [slice(None)]
    for c, p, n in zip(coords, size, sample.shape[1:]):
        lo, hi = max(c, 0), min(c + p, n)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - c, hi - c))
    out[tuple(dst)] = sample[tuple(src)].astype(np.float32)
    return out


def careamics_predict_reference(model, image: np.ndarray, tile: Sequence[int], overlap: Sequence[int]) -> np.ndarray:
    """CAREamics' tile-by-tile prediction path on an SC(Z)YX image, crop mode.

    Every tile of :func:`careamics_tile_axis`'s tiling is read with zero padding, given to
    ``model`` alone as a (1, C, *tile) float32 batch, and its kept region copied into an
    output allocated from the first prediction's channel count (``stitch_prediction``).
    """
    spatial = image.shape[2:]
    per_axis = [careamics_tile_axis(n, p, o) for n, p, o in zip(spatial, tile, overlap)]
    out = None
    for s in range(image.shape[0]):
        for combo in itertools.product(*per_axis):
            patch = _padded_window(image[s], [c for c, _, _, _ in combo], tile)
            pred = np.asarray(model(patch[None]))[0]
            if out is None:
                out = np.zeros((image.shape[0], pred.shape[0], *spatial), dtype=np.float32)
            src = (slice(None),) + tuple(slice(cr, cr + sz) for _, cr, sz, _ in combo)
            dst = (s, slice(None)) + tuple(slice(sc, sc + sz) for _, _, sz, sc in combo)
            out[dst] = pred[src]
    return out


def gather_patches_reference(
    sources: Sequence[np.ndarray],
    specs: np.ndarray,
    patch_size: Sequence[int],
    *,
    channels: Sequence[int] | None = None,
    dtype=np.float32,
    scale: Sequence[float] | None = None,
    shift: Sequence[float] | None = None,
    flip_y: Sequence[bool] | None = None,
    flip_x: Sequence[bool] | None = None,
    rot90: Sequence[int] | None = None,
) -> np.ndarray:
    """Per-patch loop equivalent of :func:`cupatch.gather_patches` (NumPy in, NumPy out)."""
    specs = np.asarray(specs, dtype=np.int64)
    ndim = len(patch_size)
    n_ch = sources[0].shape[1] if channels is None else len(channels)
    chan = np.arange(sources[0].shape[1]) if channels is None else np.asarray(channels)
    sc = np.ones(n_ch, np.float32) if scale is None else np.asarray(scale, np.float32)
    sh = np.zeros(n_ch, np.float32) if shift is None else np.asarray(shift, np.float32)
    bcast = (slice(None),) + (None,) * ndim
    patches = []
    for b, row in enumerate(specs):
        data_idx, sample_idx, coords = int(row[0]), int(row[1]), [int(v) for v in row[2 : 2 + ndim]]
        sample = sources[data_idx][sample_idx][chan]
        p = _padded_window(sample, coords, patch_size)
        p = p * sc[bcast] + sh[bcast]
        if flip_y is not None and flip_y[b]:
            p = p[..., ::-1, :]
        if flip_x is not None and flip_x[b]:
            p = p[..., :, ::-1]
        if rot90 is not None and int(rot90[b]) % 4:
            p = np.rot90(p, k=int(rot90[b]) % 4, axes=(-2, -1))
        patches.append(np.ascontiguousarray(p))
    shape = (len(specs), n_ch, *patch_size)
    if not patches:
        return np.zeros(shape, dtype=dtype)
    return np.stack(patches).astype(dtype)


def _tile_fields(row: np.ndarray, ndim: int):
    row = [int(v) for v in row]
    coords = row[2 : 2 + ndim]
    crop = row[2 + ndim : 2 + 2 * ndim]
    size = row[2 + 2 * ndim : 2 + 3 * ndim]
    stitch = row[2 + 3 * ndim : 2 + 4 * ndim]
    return row[0], row[1], coords, crop, size, stitch


def stitch_crop_reference(tiles: np.ndarray, specs: np.ndarray, outputs: Sequence[np.ndarray]) -> None:
    """CAREamics overlap-crop stitching, in place on ``outputs`` (SC(Z)YX float32)."""
    ndim = tiles.ndim - 2
    for b, row in enumerate(np.asarray(specs, dtype=np.int64)):
        data_idx, sample_idx, _, crop, size, stitch = _tile_fields(row, ndim)
        src = (b, slice(None)) + tuple(slice(c, c + s) for c, s in zip(crop, size))
        dst = (sample_idx, slice(None)) + tuple(slice(t, t + s) for t, s in zip(stitch, size))
        outputs[data_idx][dst] = tiles[src]


def stitch_blend_reference(
    tiles: np.ndarray,
    specs: np.ndarray,
    outputs: Sequence[np.ndarray],
    weights: Sequence[np.ndarray],
    table: np.ndarray,
) -> None:
    """Weighted accumulation of one batch of tiles, in the exact order of the contract.

    ``outputs`` receive ``sum(w * tile)`` and ``weights`` receive ``sum(w)``; dividing the
    two afterwards gives the blended image.
    """
    ndim = tiles.ndim - 2
    tile_size = tiles.shape[2:]
    specs = np.asarray(specs, dtype=np.int64)
    # Per batch, each voxel's contributions are summed in ascending batch order before
    # being added to the running total: accumulate the batch into zeroed scratch buffers.
    batch_num = [np.zeros_like(o) for o in outputs]
    batch_den = [np.zeros_like(w) for w in weights]
    touched = [np.zeros(w.shape, dtype=bool) for w in weights]
    for b, row in enumerate(specs):
        data_idx, sample_idx, coords, *_ = _tile_fields(row, ndim)
        image_shape = outputs[data_idx].shape[2:]
        w = None
        src, dst = [], []
        for d in range(ndim):
            c, t, n = coords[d], tile_size[d], image_shape[d]
            flag = int(c <= 0) + 2 * int(c + t >= n)
            lo, hi = max(c, 0), min(c + t, n)
            if hi <= lo:
                break
            axis_w = table[d, flag, lo - c : hi - c].astype(np.float32)
            shape = [1] * ndim
            shape[d] = hi - lo
            axis_w = axis_w.reshape(shape)
            w = axis_w if w is None else (w * axis_w).astype(np.float32)
            src.append(slice(lo - c, hi - c))
            dst.append(slice(lo, hi))
        else:
            idx = (sample_idx, slice(None), *dst)
            batch_num[data_idx][idx] += w[None] * tiles[(b, slice(None), *src)]
            batch_den[data_idx][(sample_idx, 0, *dst)] += w
            touched[data_idx][(sample_idx, 0, *dst)] = True
    for o, wt, bn, bd, t in zip(outputs, weights, batch_num, batch_den, touched):
        o[...] = np.where(t, o + bn, o)
        wt[:, 0][t[:, 0]] += bd[:, 0][t[:, 0]]
