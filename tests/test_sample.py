"""Tests of the built-in sample image and model (``cupatch._sample``)."""

from __future__ import annotations

import numpy as np
import pytest

from cupatch._sample import default_model, sample_image


def test_default_model_sigma_fits_the_overlap():
    for overlap in (0, 8, 16, 32, (16, 40), (8, 32, 32)):
        model = default_model(overlap)
        assert model.radius <= min(np.atleast_1d(overlap)) // 2
    with pytest.raises(ValueError, match="sigma"):
        from cupatch._sample import GaussianDenoiser

        GaussianDenoiser(-1)


def test_sample_image_is_deterministic_uint16():
    a = sample_image((128, 96))
    b = sample_image((128, 96))
    assert a.dtype == np.uint16 and a.shape == (128, 96)
    np.testing.assert_array_equal(a, b)
    assert a.std() > 10  # blobs and noise, not a constant
    assert not np.array_equal(a, sample_image((128, 96), seed=1))
    assert sample_image((8, 16, 16)).shape == (8, 16, 16)
    with pytest.raises(ValueError, match="shape"):
        sample_image((5,))


def test_float_sizes_are_refused_not_truncated():
    for overlap in (8.5, (16, 8.5), True):
        with pytest.raises(TypeError, match="overlap must"):
            default_model(overlap)
    with pytest.raises(TypeError, match="shape must contain only ints"):
        sample_image((128.5, 96))
    assert default_model(np.int64(8)).radius == default_model(8).radius
