"""Blend windows for tiled stitching.

Windows are separable and tabulated here once, in NumPy, so that every backend multiplies
exactly the same float32 numbers (``docs/contracts.md``, *Stitch*).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._validation import as_int_tuple, as_patch_size, ensure_tuple_rep, is_int, look_up_option

__all__ = ["WINDOWS", "window_table"]

#: Window names accepted by ``window_table`` and the blend stitchers.
WINDOWS = ("linear", "hann", "gaussian", "uniform")


def _taper(width: int, window: str) -> np.ndarray:
    """Rising edge of length ``width`` (strictly positive, < 1), float64."""
    k = np.arange(width, dtype=np.float64)
    t = (k + 1.0) / (width + 1.0)
    if window == "linear":
        return t
    if window == "hann":
        return np.sin(0.5 * np.pi * t) ** 2
    raise AssertionError(window)


def _axis_windows(size: int, overlap: int, window: str) -> np.ndarray:
    """The four border variants ``(4, size)`` of one axis, float64.

    Variant ``f = left_border + 2 * right_border``: a side that touches the image border
    is not tapered, so every voxel of the image keeps a positive weight.
    """
    out = np.ones((4, size), dtype=np.float64)
    if window == "uniform":
        return out
    if window == "gaussian":
        centre = (size - 1) / 2.0
        sigma = size / 8.0
        pos = np.arange(size, dtype=np.float64)
        g = np.exp(-0.5 * ((pos - centre) / sigma) ** 2)
        g /= g.max()
        for f in range(4):
            w = g.copy()
            if f & 1:
                w[pos <= centre] = 1.0
            if f & 2:
                w[pos >= centre] = 1.0
            out[f] = w
        return out
    ramp = _taper(overlap, window)
    for f in range(4):
        if not f & 1:
            out[f, :overlap] = np.minimum(out[f, :overlap], ramp)
        if not f & 2:
            out[f, size - overlap :] = np.minimum(out[f, size - overlap :], ramp[::-1])
    return out


def window_table(
    tile_size: Sequence[int], overlaps: Sequence[int] | None, window: str = "hann"
) -> np.ndarray:
    """Tabulate a separable blend window.

    Parameters
    ----------
    tile_size : sequence of int
        Tile size per spatial axis, (Z)YX.
    overlaps : int, sequence of int or None
        Width of the taper per axis (one int: the same on every axis) (normally the tiling overlap); required for
        ``"linear"`` and ``"hann"``, ignored by ``"gaussian"`` and ``"uniform"``.
        Each must satisfy ``0 <= overlap < tile``.
    window : {"linear", "hann", "gaussian", "uniform"}
        ``linear``/``hann`` taper over the overlap and sum to one across a regular
        overlap; ``gaussian`` is nnU-Net's importance map (sigma = tile / 8);
        ``uniform`` is plain averaging.

    Returns
    -------
    numpy.ndarray
        float32 array ``(ndim, 4, max(tile_size))``; entry ``[d, f, p]`` is the weight of
        position ``p`` along axis ``d`` for border flag ``f`` (unused tail entries are 0).

    Raises
    ------
    TypeError
        If ``tile_size`` or ``overlaps`` holds a float or a bool (never truncated).
    ValueError
        For a wrong number of entries or values out of range, or an unknown ``window``.
    """
    look_up_option(window, WINDOWS, "window")
    if is_int(tile_size):  # not repeated: one int cannot say whether the tile is 2-D or 3-D
        raise TypeError(
            f"tile_size must be a sequence of ints, one per spatial axis ((Y, X) or (Z, Y, X)), got {tile_size!r}; "
            f"window_table cannot tell 2-D from 3-D from one int"
        )
    tile = as_int_tuple(tile_size, "tile_size")  # floats and bools are refused, never truncated
    if len(tile) not in (2, 3) or any(t < 1 for t in tile):
        raise ValueError(f"tile_size must be 2 or 3 positive ints, got {tile}")
    as_patch_size(tile, len(tile), "tile_size")  # the documented 2**60 / 2**30 (X) limits
    if overlaps is None:
        if window in ("linear", "hann"):
            raise ValueError(f"overlaps is required for window={window!r}")
        ovl = [0] * len(tile)
    else:
        ovl = ensure_tuple_rep(overlaps, len(tile), "overlaps") if is_int(overlaps) else as_int_tuple(overlaps, "overlaps")
        if len(ovl) != len(tile):
            raise ValueError(f"overlaps must have {len(tile)} entries like tile_size, got {ovl}")
        for o, t in zip(ovl, tile):
            if not 0 <= o < t:
                raise ValueError(f"overlaps must satisfy 0 <= overlap < tile, got {tuple(ovl)} for tile {tuple(tile)}")
    table = np.zeros((len(tile), 4, max(tile)), dtype=np.float32)
    for d, (t, o) in enumerate(zip(tile, ovl)):
        table[d, :, :t] = _axis_windows(t, o, window).astype(np.float32)
    return table
