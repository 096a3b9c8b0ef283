"""Data, sources and expected regions shared by the stack tests."""

from __future__ import annotations

import numpy as np
import tifffile
import zarr


SIZES = {"S": 3, "T": 2, "C": 3, "Z": 5, "Y": 11, "X": 13}

AXES_ORDERS = ["YX", "XYS", "SXYC", "CYXT", "CXYTS", "XCSYT", "ZYX", "TZCYX"]



def axes_data(axes, dtype=np.uint16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 60000, [SIZES[a] for a in axes]).astype(dtype)



def expected_region(sc, sample_idx, coords, size, channels=None):
    """reshape + slice + zero pad, written independently of the stack code."""
    sample = sc[sample_idx]
    if channels is not None:
        sample = sample[channels]
    out = np.zeros((sample.shape[0], *size), sc.dtype)
    for idx in np.ndindex(*size):
        src = tuple(c + i for c, i in zip(coords, idx))
        if all(0 <= s < n for s, n in zip(src, sample.shape[1:])):
            out[(slice(None), *idx)] = sample[(slice(None), *src)]
    return out



def regions_to_check(stack):
    ndim = len(stack.spatial_shape)
    size = (4,) * ndim
    coords_list = [(0,) * ndim, (2,) * ndim, tuple(n - 2 for n in stack.spatial_shape), (-2,) * ndim,
                   tuple(n + 3 for n in stack.spatial_shape)]
    return [(s, c, size) for s in {0, stack.n_samples - 1} for c in coords_list]



def make_source(kind, a, axes, tmp_path):
    if kind == "array":
        return a
    if kind == "tiff":
        path = tmp_path / "img.tif"
        tifffile.imwrite(path, a, photometric="minisblack")
        return path
    if kind == "tiff-zlib":
        path = tmp_path / "img.tiff"
        tifffile.imwrite(path, a, photometric="minisblack", compression="zlib", tile=(16, 16) if a.shape[-1] >= 16 else None)
        return path
    if kind == "zarr":
        path = tmp_path / "store.zarr"
        chunks = tuple(max(1, n // 2) for n in a.shape)
        arr = zarr.create_array(str(path), shape=a.shape, chunks=chunks, dtype=a.dtype)
        arr[...] = a
        return path
    raise AssertionError(kind)
