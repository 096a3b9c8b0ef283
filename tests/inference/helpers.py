"""Models and references shared by the tiled-inference tests."""

from __future__ import annotations

import numpy as np


BLEND_WINDOWS = ["linear", "hann", "gaussian", "uniform"]


def identity(x):
    return x


def scaled(x):
    return x * 2.0 + 1.0


# --------------------------------------------------------------------------------------
# CAREamics-style reference: per-tile NumPy extraction and stitch_prediction
# --------------------------------------------------------------------------------------


def careamics_1d(n: int, p: int, o: int):
    """CAREamics' ``_compute_1d_coords``: (coords, crop, crop_size, stitch) per tile."""
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


def careamics_predict(model, image: np.ndarray, tile, overlap) -> np.ndarray:
    """Tile-by-tile CAREamics path on an SC(Z)YX image: extract, predict, stitch (crop)."""
    import itertools

    spatial = image.shape[2:]
    per_axis = [careamics_1d(n, p, o) for n, p, o in zip(spatial, tile, overlap)]
    tiles = []
    for s in range(image.shape[0]):
        for combo in itertools.product(*per_axis):
            patch = np.zeros((image.shape[1], *tile), dtype=np.float32)
            src, dst = [slice(None)], [slice(None)]
            for (c, _, _, _), p, n in zip(combo, tile, spatial):
                lo, hi = max(c, 0), min(c + p, n)
                src.append(slice(lo, hi))
                dst.append(slice(lo - c, hi - c))
            patch[tuple(dst)] = image[s][tuple(src)]
            pred = np.asarray(model(patch[None]))[0]
            tiles.append((s, combo, pred))
    # stitch_prediction: allocate from the tile's channel count, copy each kept region.
    out = np.zeros((image.shape[0], tiles[0][2].shape[0], *spatial), dtype=np.float32)
    for s, combo, pred in tiles:
        src = (slice(None),) + tuple(slice(cr, cr + sz) for _, cr, sz, _ in combo)
        dst = (s, slice(None)) + tuple(slice(sc, sc + sz) for _, _, sz, sc in combo)
        out[dst] = pred[src]
    return out


def content_dependent(x):
    """A model whose output depends on the whole tile (padding included)."""
    axes = tuple(range(2, x.ndim))
    return x * 1.5 + x.mean(axis=axes, keepdims=True)


IMAGE = np.zeros((40, 40), np.float32)
