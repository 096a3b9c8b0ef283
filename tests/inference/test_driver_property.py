"""Property tests of ``cupatch.predict_tiled`` (hypothesis: random shapes, tiles, overlaps)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hypothesis", reason="hypothesis is not installed")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cupatch.inference import predict_tiled  # noqa: E402

from .helpers import BLEND_WINDOWS, careamics_predict, content_dependent, identity  # noqa: E402


@st.composite
def tiling_case(draw):
    ndim = draw(st.sampled_from([2, 3]))
    hi = 40 if ndim == 2 else 18
    shape = tuple(draw(st.integers(1, hi)) for _ in range(ndim))
    tile = tuple(draw(st.integers(2, 16 if ndim == 2 else 8)) for _ in range(ndim))
    overlap = tuple(2 * draw(st.integers(0, (t - 1) // 2)) for t in tile)
    samples = draw(st.integers(1, 2))
    channels = draw(st.integers(1, 2))
    batch = draw(st.integers(1, 7))
    return shape, tile, overlap, samples, channels, batch


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=tiling_case(), seed=st.integers(0, 2**16))
def test_identity_crop_is_exact(case, seed):
    shape, tile, overlap, samples, channels, batch = case
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60000, size=(samples, channels, *shape)).astype(np.uint16)
    axes = "SC" + "ZYX"[3 - len(shape) :]
    result = predict_tiled(
        identity, image, axes=axes, tile_size=tile, overlaps=overlap, batch_size=batch, progress=False, device="cpu"
    )
    assert result.shape == image.shape
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, image.astype(np.float32))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=tiling_case(), window=st.sampled_from(BLEND_WINDOWS), seed=st.integers(0, 2**16))
def test_identity_blend_within_tolerance(case, window, seed):
    shape, tile, overlap, samples, channels, batch = case
    rng = np.random.default_rng(seed)
    image = rng.random((samples, channels, *shape), dtype=np.float32)
    axes = "SC" + "ZYX"[3 - len(shape) :]
    result = predict_tiled(
        identity, image, axes=axes, tile_size=tile, overlaps=overlap, batch_size=batch, blend=window,
        progress=False, device="cpu",
    )  # fmt: skip
    np.testing.assert_allclose(result, image, rtol=1e-5, atol=1e-6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=tiling_case(), seed=st.integers(0, 2**16))
def test_crop_matches_careamics_stitch_prediction(case, seed):
    shape, tile, overlap, samples, channels, batch = case
    rng = np.random.default_rng(seed)
    image = rng.random((samples, channels, *shape), dtype=np.float32)
    axes = "SC" + "ZYX"[3 - len(shape) :]
    expected = careamics_predict(content_dependent, image, tile, overlap)
    result = predict_tiled(
        content_dependent, image, axes=axes, tile_size=tile, overlaps=overlap, batch_size=batch,
        progress=False, device="cpu",
    )  # fmt: skip
    np.testing.assert_array_equal(result, expected)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=tiling_case(), blend=st.sampled_from(["crop", *BLEND_WINDOWS]), seed=st.integers(0, 2**16))
def test_streaming_equals_in_memory_for_random_tilings(case, blend, seed):
    shape, tile, overlap, samples, channels, batch = case
    rng = np.random.default_rng(seed)
    image = rng.random((samples, channels, *shape), dtype=np.float32)
    axes = "SC" + "ZYX"[3 - len(shape) :]
    kwargs = dict(axes=axes, tile_size=tile, overlaps=overlap, batch_size=batch, blend=blend, progress=False)
    expected = predict_tiled(content_dependent, image, **kwargs)
    out = np.full(image.shape, np.nan, np.float32)
    predict_tiled(content_dependent, image, out=out, **kwargs)
    np.testing.assert_array_equal(out, expected)
