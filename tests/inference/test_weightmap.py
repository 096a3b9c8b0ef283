"""The geometry weight-sum map (:mod:`cupatch.inference.weightmap`): equal to the weights
the blend accumulates, and divided by the native kernel exactly as NumPy divides."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import requires_gpu

from cupatch import window_table
from cupatch.inference.plan import Tiling
from cupatch.inference.weightmap import WeightMap, _row_blocks
from cupatch.ops import stitch_tiles
from cupatch.patching.tiled import TiledPatching

GEOMETRIES = {
    "2d": ((1, 1, 70, 53), (16, 24), (4, 8)),
    "3d": ((1, 1, 19, 40, 33), (8, 16, 12), (2, 4, 6)),
    "3d-one-tile-axis": ((1, 1, 6, 40, 33), (8, 16, 12), (2, 4, 6)),
}


def weight_map(key, window="gaussian"):
    shape, tile, overlap = GEOMETRIES[key]
    tiling = Tiling(TiledPatching([shape], tile, overlap), shape, tile, overlap)
    table = window_table(tile, overlap, window)
    return WeightMap(tiling, table, np), tiling, table


def numpy_quotient(wm, values, lo=0):
    """What WeightMap.divide computes, written with NumPy: values / (first * rest)."""
    nd = wm.rest.ndim + 1
    rows = values.shape[-nd]
    w = wm.first[lo : lo + rows].reshape((rows,) + (1,) * (nd - 1)) * wm.rest
    return values / w


@pytest.mark.parametrize("window", ["gaussian", "hann", "linear"])
@pytest.mark.parametrize("key", list(GEOMETRIES))
def test_map_equals_the_accumulated_blend_weights(key, window):
    wm, tiling, table = weight_map(key, window)
    shape = tiling.data_shape
    specs = tiling.patching.spec_table(np.arange(tiling.n_tiles))
    tiles = np.ones((len(specs), 1, *tiling.tile), np.float32)
    out = [np.zeros(shape, np.float32)]
    weights = [np.zeros((shape[0], 1, *shape[2:]), np.float32)]
    stitch_tiles(tiles, specs, out, mode="blend", weights=weights, window_table=table)
    got = wm.first.reshape((-1,) + (1,) * wm.rest.ndim) * wm.rest
    np.testing.assert_allclose(got, weights[0][0, 0], rtol=1e-6)


@pytest.mark.parametrize("key", list(GEOMETRIES))
def test_native_divide_is_bit_identical_to_numpy(key):
    wm, tiling, _ = weight_map(key)
    rng = np.random.default_rng(3)
    values = rng.standard_normal((2, 3, *tiling.spatial), dtype=np.float32)
    expected = numpy_quotient(wm, values)
    assert _row_blocks(values, tiling.spatial[0], wm.rest.size) is not None  # the native path runs
    wm.divide(values)
    np.testing.assert_array_equal(values, expected)


@pytest.mark.parametrize("key", ["2d", "3d"])
def test_divide_of_a_slab_view_and_of_a_non_contiguous_array(key):
    wm, tiling, _ = weight_map(key)
    rng = np.random.default_rng(4)
    n0 = tiling.spatial[0]
    slab = rng.standard_normal((1, 2, n0, *tiling.spatial[1:]), dtype=np.float32)
    # rows [5, 11) of the image: a view whose channels are a row block apart (native path)
    view = slab[:, :, 5:11]
    expected = numpy_quotient(wm, view.copy(), lo=5)
    untouched = slab[:, :, 11:].copy()
    wm.divide(view, 5)
    np.testing.assert_array_equal(view, expected)
    np.testing.assert_array_equal(slab[:, :, 11:], untouched)  # nothing outside the view
    # every other column: rows are not contiguous, NumPy divides it
    strided = rng.standard_normal((1, 1, n0, *tiling.spatial[1:-1], 2 * tiling.spatial[-1]), dtype=np.float32)[..., ::2]
    assert _row_blocks(strided, n0, wm.rest.size) is None
    expected = numpy_quotient(wm, strided.copy())
    wm.divide(strided)
    np.testing.assert_array_equal(strided, expected)


def test_divide_keeps_infinities_nans_and_signed_zeros():
    wm, tiling, _ = weight_map("2d")
    values = np.zeros((1, 1, *tiling.spatial), np.float32)
    values.flat[:4] = [np.inf, -np.inf, np.nan, -0.0]
    expected = numpy_quotient(wm, values)
    wm.divide(values)
    np.testing.assert_array_equal(values, expected)
    assert np.signbit(values.flat[3])


def test_native_divide_refuses_bad_arrays():
    from cupatch import _core

    first, rest = np.ones(4, np.float32), np.ones(5, np.float32)
    with pytest.raises(ValueError, match="3-D"):
        _core.divide_by_weight_map_cpu(np.ones((4, 5), np.float32), first, rest)
    with pytest.raises(ValueError, match="one sum per row"):
        _core.divide_by_weight_map_cpu(np.ones((1, 3, 5), np.float32), first, rest)
    with pytest.raises(ValueError, match="one sum per row element"):
        _core.divide_by_weight_map_cpu(np.ones((1, 4, 6), np.float32), first, rest)
    with pytest.raises(ValueError, match="contiguous"):
        _core.divide_by_weight_map_cpu(np.ones((1, 4, 10), np.float32)[:, :, ::2], first, rest)
    read_only = np.ones((1, 4, 5), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _core.divide_by_weight_map_cpu(read_only, first, rest)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("key", ["2d", "3d"])
def test_gpu_divide_is_bit_identical_to_the_cpu(key):
    import cupy

    wm, tiling, table = weight_map(key)
    wm_gpu = WeightMap(tiling, cupy.asarray(table), cupy)
    values = np.random.default_rng(5).standard_normal((1, 2, *tiling.spatial), dtype=np.float32)
    on_gpu = cupy.asarray(values)
    wm.divide(values)
    wm_gpu.divide(on_gpu)
    np.testing.assert_array_equal(on_gpu.get(), values)
