"""Streaming through output slabs (:mod:`cupatch.inference.sinks`) gives the in-memory result exactly."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import requires_gpu, to_numpy

from cupatch.inference import predict_tiled, run_prediction

from .helpers import content_dependent, scaled


@pytest.mark.parametrize("blend", ["crop", "hann", "gaussian"])
@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_numpy_out_streams_equal_to_in_memory(blend, batch_size):
    rng = np.random.default_rng(8)
    image = rng.random((2, 70, 50), dtype=np.float32)
    kwargs = dict(axes="TYX", tile_size=(16, 24), overlaps=(4, 8), blend=blend, batch_size=batch_size, progress=False)
    expected = predict_tiled(content_dependent, image, **kwargs)
    out = np.full(image.shape, np.nan, np.float32)
    result, stats = run_prediction(content_dependent, image, out=out, **kwargs)
    assert result is out
    assert stats.streamed == ["numpy"]
    np.testing.assert_array_equal(out, expected)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("blend", ["crop", "linear"])
def test_gpu_streaming_equals_in_memory(tmp_path, blend):
    zarr = pytest.importorskip("zarr")

    rng = np.random.default_rng(18)
    image = rng.random((600, 70), dtype=np.float32)
    kwargs = dict(axes="YX", tile_size=32, overlaps=8, blend=blend, batch_size=4, progress=False, device="gpu")
    expected = predict_tiled(scaled, image, **kwargs)
    # Full output 168 kB (crop) / 336 kB (blend) does not fit; batches plus a slab (<105 kB) do.
    small, stats = run_prediction(scaled, image, max_gpu_bytes=120_000, **kwargs)
    assert stats.streamed == ["host"]
    np.testing.assert_array_equal(small, expected)
    predict_tiled(scaled, image, out=tmp_path / "g.zarr", **kwargs)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "g.zarr"), mode="r")[...], expected)


INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_integer_outputs_saturate_at_their_extremes(dtype):
    # float32(INT32_MAX) rounds up to 2**31, and the cast wrapped it to INT32_MIN (INT64 alike)
    info = np.iinfo(dtype)
    image = np.zeros((40, 40), np.float32)
    image[:, 20:] = 1

    def extremes(x):
        return np.where(x > 0.5, info.max, info.min).astype(dtype)

    expected = np.where(image > 0.5, info.max, info.min).astype(dtype)
    for out in (None, np.zeros((40, 40), dtype)):
        got = predict_tiled(extremes, image, axes="YX", tile_size=16, overlaps=4, out=out, progress=False)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, expected)
    blended = predict_tiled(extremes, image, axes="YX", tile_size=16, overlaps=4, blend="hann", progress=False)
    assert blended.dtype == dtype
    # blending in float32 may move a value by float32 rounding, never wrap it to the other end
    top = blended[:, 24:].astype(np.float64)
    assert (top >= float(np.float32(info.max)) * (1 - 2**-20)).all() and (top <= info.max).all()
    bottom = blended[:, :16].astype(np.float64)
    assert (bottom <= float(np.float32(info.min)) * (1 - 2**-20)).all() and (bottom >= info.min).all()


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_cast_saturates_out_of_range_floats(xp, dtype):
    from cupatch.inference.sinks import cast

    info = np.iinfo(dtype)
    block = np.array([-1e30, float(info.min) - 1e6, float(info.min), -0.4, 0.5, 1.5, float(info.max), 1e30], np.float32)
    got = to_numpy(cast(xp.asarray(block), np.dtype(dtype), xp))
    assert got.dtype == dtype
    high = np.float32(info.max)
    assert got[0] == info.min and got[1] == info.min and got[2] == info.min
    assert got[-1] == info.max and got[-2] == info.max  # float32(max) (maybe rounded up) saturates exactly
    assert got[4] == 0 and got[5] == (2 if info.max >= 2 else 1)  # rounding half to even
    just_below = np.nextafter(high, np.float32(0)) if int(high) > info.max else high
    assert int(to_numpy(cast(xp.asarray(np.array([just_below], np.float32)), np.dtype(dtype), xp))[0]) == int(just_below)
