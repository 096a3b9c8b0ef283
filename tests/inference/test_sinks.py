"""Streaming through output slabs (:mod:`cupatch.inference.sinks`) gives the in-memory result exactly."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import requires_gpu

from cupatch.inference import predict_tiled, run_prediction

from .helpers import content_dependent, scaled


@pytest.mark.parametrize("blend", ["crop", "hann", "gaussian"])
@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_numpy_out_streams_equal_to_in_memory(blend, batch_size):
    rng = np.random.default_rng(8)
    image = rng.random((2, 70, 50), dtype=np.float32)
    kwargs = dict(axes="TYX", tile_size=(16, 24), overlap=(4, 8), blend=blend, batch_size=batch_size, progress=False)
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
    kwargs = dict(axes="YX", tile_size=32, overlap=8, blend=blend, batch_size=4, progress=False, device="gpu")
    expected = predict_tiled(scaled, image, **kwargs)
    # Full output 168 kB (crop) / 336 kB (blend) does not fit; batches plus a slab (<105 kB) do.
    small, stats = run_prediction(scaled, image, max_gpu_bytes=120_000, **kwargs)
    assert stats.streamed == ["host"]
    np.testing.assert_array_equal(small, expected)
    predict_tiled(scaled, image, out=tmp_path / "g.zarr", **kwargs)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "g.zarr"), mode="r")[...], expected)
