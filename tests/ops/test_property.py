"""Property tests (hypothesis) of the native ops against the NumPy reference.

Kept apart so the rest of the suite runs where hypothesis is not installed (the GPU
machine); here the whole module is skipped with that reason.
"""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from .test_gather import REQUIRED_SOURCE_DTYPES, bits, random_source  # noqa: E402
from .test_stitch import random_tiles, tile_table  # noqa: E402

from cupatch import _core, _random  # noqa: E402
from cupatch._reference import (  # noqa: E402
    gather_patches_reference,
    stitch_blend_reference,
    stitch_crop_reference,
)
from cupatch._windows import WINDOWS, window_table  # noqa: E402
from cupatch.ops import gather_patches, stitch_tiles  # noqa: E402

U64 = st.integers(0, 2**64 - 1)


@st.composite
def gather_cases(draw):
    ndim = draw(st.sampled_from([2, 3]))
    dtype = draw(st.sampled_from(REQUIRED_SOURCE_DTYPES))
    n_channels = draw(st.integers(1, 3))
    patch = tuple(draw(st.integers(1, 6)) for _ in range(ndim))
    square = draw(st.booleans())
    if square:
        patch = (*patch[:-1], patch[-2])
    shapes = [
        (draw(st.integers(1, 2)), n_channels, *(draw(st.integers(1, 9)) for _ in range(ndim)))
        for _ in range(draw(st.integers(1, 3)))
    ]
    n = draw(st.integers(0, 8))
    rows = []
    for _ in range(n):
        d = draw(st.integers(0, len(shapes) - 1))
        s = draw(st.integers(0, shapes[d][0] - 1))
        coords = [draw(st.integers(-p - 2, size + 2)) for p, size in zip(patch, shapes[d][2:])]
        rows.append([d, s, *coords])
    specs = np.array(rows, dtype=np.int64).reshape(n, 2 + ndim)
    channels = draw(st.one_of(st.none(), st.lists(st.integers(0, n_channels - 1), min_size=1, max_size=4)))
    n_out = n_channels if channels is None else len(channels)
    kwargs = {"channels": channels}
    if draw(st.booleans()):
        kwargs["scale"] = np.array(draw(st.lists(st.floats(-4, 4, width=32), min_size=n_out, max_size=n_out)), np.float32)
        kwargs["shift"] = np.array(draw(st.lists(st.floats(-4, 4, width=32), min_size=n_out, max_size=n_out)), np.float32)
    if draw(st.booleans()):
        kwargs["flip_y"] = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
        kwargs["flip_x"] = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    if draw(st.booleans()):
        turns = st.integers(0, 3) if patch[-1] == patch[-2] else st.sampled_from([0, 2])
        kwargs["rot90"] = np.array(draw(st.lists(turns, min_size=n, max_size=n)), np.int64)
    kwargs["dtype"] = draw(st.sampled_from([np.float32, np.float16]))
    seed = draw(st.integers(0, 2**32 - 1))
    return shapes, dtype, specs, patch, kwargs, seed, draw(st.booleans())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gather_cases())
def test_gather_property_matches_reference(case):
    shapes, dtype, specs, patch, kwargs, seed, strided = case
    rng = np.random.default_rng(seed)
    sources = []
    for shape in shapes:
        if strided:  # a non-contiguous view with a reversed axis
            big = random_source(rng, (shape[0], shape[1], *(2 * s for s in shape[2:])), dtype)
            sources.append(big[(slice(None), slice(None), *(slice(None, None, 2),) * (len(shape) - 3), slice(None, None, -2))])
        else:
            sources.append(random_source(rng, shape, dtype))
    with np.errstate(over="ignore", invalid="ignore"):
        expected = gather_patches_reference(sources, specs, patch, **kwargs)
        got = gather_patches(sources, specs, patch, **kwargs)
    np.testing.assert_array_equal(bits(got), bits(expected))


@st.composite
def tilings(draw):
    ndim = draw(st.sampled_from([2, 3]))
    tile = tuple(draw(st.integers(2, 7)) for _ in range(ndim))
    overlaps = tuple(2 * draw(st.integers(0, (t - 1) // 2)) for t in tile)
    shapes = [(draw(st.integers(1, 2)), draw(st.integers(1, 2)), *(draw(st.integers(1, 15)) for _ in range(ndim)))]
    channels = shapes[0][1]
    shapes += [(draw(st.integers(1, 2)), channels, *(draw(st.integers(1, 15)) for _ in range(ndim))) for _ in range(draw(st.integers(0, 1)))]
    window = draw(st.sampled_from(WINDOWS))
    return shapes, tile, overlaps, window, draw(st.integers(0, 2**32 - 1)), draw(st.integers(1, 3))


@settings(max_examples=30, deadline=None)
@given(tilings())
def test_stitch_property_matches_reference(case):
    shapes, tile, overlaps, window, seed, n_batches = case
    rng = np.random.default_rng(seed)
    specs = tile_table(shapes, tile, overlaps)
    specs = specs[rng.permutation(len(specs))]
    tiles = random_tiles(rng, len(specs), shapes[0][1], tile)
    table = window_table(tile, overlaps, window)
    crop_got, crop_exp = [np.zeros(s, np.float32) for s in shapes], [np.zeros(s, np.float32) for s in shapes]
    blend_got, blend_exp = [np.zeros(s, np.float32) for s in shapes], [np.zeros(s, np.float32) for s in shapes]
    w_got = [np.zeros((s[0], 1, *s[2:]), np.float32) for s in shapes]
    w_exp = [np.zeros((s[0], 1, *s[2:]), np.float32) for s in shapes]
    for part in np.array_split(np.arange(len(specs)), n_batches):
        stitch_tiles(tiles[part], specs[part], crop_got)
        stitch_crop_reference(tiles[part], specs[part], crop_exp)
        stitch_tiles(tiles[part], specs[part], blend_got, mode="blend", weights=w_got, window_table=table)
        stitch_blend_reference(tiles[part], specs[part], blend_exp, w_exp, table)
    for a, b in zip(crop_got + blend_got + w_got, crop_exp + blend_exp + w_exp):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=50, deadline=None)
@given(U64, U64, st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=20), U64)
def test_native_hash4_property(seed, epoch, index, stream):
    idx = np.array(index, dtype=np.int64)
    got = _core.hash4(seed, epoch, idx, stream)
    assert got.dtype == np.uint64 and got.shape == idx.shape
    np.testing.assert_array_equal(got, _random.hash4(seed, epoch, idx, stream))
