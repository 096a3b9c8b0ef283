"""The device-memory budget (:mod:`cupatch.inference.budget`): streaming when the output does not fit,
refusal when not even one batch does."""

from __future__ import annotations

import numpy as np
import pytest

from cupatch.inference import predict_tiled, run_prediction

from .helpers import IMAGE, identity, scaled


def test_small_budget_streams_to_host(tmp_path):
    rng = np.random.default_rng(12)
    image = rng.random((400, 64), dtype=np.float32)
    kwargs = dict(axes="YX", tile_size=32, overlaps=8, batch_size=2, progress=False, blend="hann")
    expected = predict_tiled(scaled, image, **kwargs)
    # Full output: 400*64*4*2 bytes (values + weights) ~ 205 kB; one slab is a few 10 kB.
    result, stats = run_prediction(scaled, image, max_gpu_bytes=120_000, **kwargs)
    assert stats.streamed == ["host"]
    np.testing.assert_array_equal(result, expected)


def test_budget_too_small_for_one_tile():
    with pytest.raises(ValueError, match=r"max_gpu_bytes.*batch_size|batch_size.*max_gpu_bytes"):
        predict_tiled(identity, IMAGE, axes="YX", tile_size=16, overlaps=4, max_gpu_bytes=100, progress=False)
    with pytest.raises(ValueError, match="max_gpu_bytes"):
        predict_tiled(identity, IMAGE, axes="YX", tile_size=16, overlaps=4, max_gpu_bytes=-1, progress=False)
