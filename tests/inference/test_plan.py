"""Argument checks of ``predict_tiled`` (:mod:`cupatch.inference.plan`): all before any work."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import HAS_GPU

from cupatch.inference import predict_tiled

from .helpers import IMAGE, identity


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(tile_size=16, overlaps=16), ValueError, "overlap"),
        (dict(tile_size=16, overlaps=20), ValueError, "overlap"),
        (dict(tile_size=16, overlaps=3), ValueError, "even"),
        (dict(tile_size=16, overlaps=-2), ValueError, "overlap"),
        (dict(tile_size=0, overlaps=0), ValueError, "tile_size"),
        (dict(tile_size=(16, 16, 16), overlaps=4), ValueError, "tile_size"),
        (dict(tile_size=16, overlaps=(4,)), ValueError, "overlap"),
        (dict(tile_size=16.5, overlaps=4), TypeError, "tile_size"),
        (dict(tile_size=16, overlaps=4, blend="max"), ValueError, "blend"),
        (dict(tile_size=16, overlaps=4, window="hann"), ValueError, "window"),
        (dict(tile_size=16, overlaps=4, blend="linear", window="hann"), ValueError, "window"),
        (dict(tile_size=16, overlaps=4, batch_size=0), ValueError, "batch_size"),
        (dict(tile_size=16, overlaps=4, device="tpu"), ValueError, "device"),
        (dict(tile_size=16, overlaps=4, axes="YQ"), ValueError, "axes"),
        (dict(tile_size=16, overlaps=4, axes="ZYX"), ValueError, "axes"),
        (dict(tile_size=16, overlaps=4, channels=[1]), ValueError, "Channel index 1 in channels is out of bounds"),
        (dict(tile_size=16, overlaps=4, target_axes="ZYX"), ValueError, "target_axes"),
        (dict(tile_size=16, overlaps=4, out=42), TypeError, "out"),
        (dict(tile_size=16, overlaps=4, out=np.zeros((3, 3), np.float32)), ValueError, "shape"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    kwargs = {"axes": "YX", "progress": False, **kwargs}
    with pytest.raises(error, match=match):
        predict_tiled(identity, IMAGE, **kwargs)


def test_odd_overlap_is_fine_when_blending():
    rng = np.random.default_rng(15)
    image = rng.random((40, 40), dtype=np.float32)
    result = predict_tiled(identity, image, axes="YX", tile_size=16, overlaps=5, blend="hann", progress=False)
    np.testing.assert_allclose(result, image, rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(tile_size=True, overlaps=0), "tile_size"),
        (dict(tile_size=(16, True), overlaps=0), "tile_size"),
        (dict(tile_size=16, overlaps=False), "overlap"),
        (dict(tile_size=16, overlaps=4, channels=[0.7]), "channels"),
        (dict(tile_size=16, overlaps=4, channels=True), "channels"),
    ],
)
def test_bool_and_float_arguments_are_type_errors(kwargs, match):
    with pytest.raises(TypeError, match=match):
        predict_tiled(identity, IMAGE, axes="YX", progress=False, **kwargs)


@pytest.mark.skipif(HAS_GPU, reason="checks the error raised when no GPU is usable")
def test_gpu_requested_without_gpu():
    with pytest.raises(RuntimeError, match="GPU"):
        predict_tiled(identity, IMAGE, axes="YX", tile_size=16, overlaps=4, device="gpu", progress=False)


def test_deprecated_overlap_alias_warns_and_still_works():
    image = np.arange(32 * 32, dtype=np.float32).reshape(32, 32)
    with pytest.warns(DeprecationWarning, match=r"predict_tiled\(overlap=\.\.\.\) is deprecated.*use overlaps="):
        old = predict_tiled(lambda x: x, image, axes="YX", tile_size=16, overlap=4, progress=False)
    new = predict_tiled(lambda x: x, image, axes="YX", tile_size=16, overlaps=4, progress=False)
    np.testing.assert_array_equal(old, new)
