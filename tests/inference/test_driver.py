"""End-to-end tests of ``cupatch.predict_tiled`` (:mod:`cupatch.inference.driver`): exactness,
channels, axes, several images, statistics, errors that stop a run, the GPU."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import requires_gpu, to_numpy

from cupatch._sample import default_model, sample_image
from cupatch.inference import predict_tiled, run_prediction

from .helpers import IMAGE, careamics_predict, content_dependent, identity, scaled


# --------------------------------------------------------------------------------------
# exactness and equivalence
# --------------------------------------------------------------------------------------


FIXED_CASES = [
    # (spatial shape, tile, overlap, samples, channels, batch size)
    ((100, 100), (32, 32), (8, 8), 2, 1, 5),
    ((57, 33), (32, 16), (8, 4), 1, 2, 3),
    ((20, 7), (32, 16), (8, 4), 1, 1, 8),
    ((17, 40, 29), (8, 16, 16), (2, 4, 6), 2, 1, 7),
    ((5, 9, 70), (8, 8, 16), (0, 2, 4), 1, 2, 1),
]


@pytest.mark.parametrize("case", FIXED_CASES)
def test_identity_crop_is_exact_fixed_cases(case):
    shape, tile, overlap, samples, channels, batch = case
    image = np.random.default_rng(0).integers(0, 60000, size=(samples, channels, *shape)).astype(np.uint16)
    axes = "SC" + "ZYX"[3 - len(shape) :]
    result = predict_tiled(identity, image, axes=axes, tile_size=tile, overlaps=overlap, batch_size=batch, progress=False)
    np.testing.assert_array_equal(result, image.astype(np.float32))


@pytest.mark.parametrize("case", FIXED_CASES)
def test_crop_matches_careamics_stitch_prediction_fixed_cases(case):
    shape, tile, overlap, samples, channels, batch = case
    image = np.random.default_rng(1).random((samples, channels, *shape), dtype=np.float32)
    axes = "SC" + "ZYX"[3 - len(shape) :]
    expected = careamics_predict(content_dependent, image, tile, overlap)
    result = predict_tiled(content_dependent, image, axes=axes, tile_size=tile, overlaps=overlap, batch_size=batch, progress=False)
    np.testing.assert_array_equal(result, expected)


def test_crop_matches_reference_stitcher():
    from cupatch._reference import stitch_crop_reference
    from cupatch.patching.tiled import TiledPatching

    rng = np.random.default_rng(3)
    image = rng.random((2, 1, 70, 45), dtype=np.float32)
    tiling = TiledPatching([image.shape], (32, 24), (8, 6))
    table = tiling.spec_table(np.arange(tiling.total_tiles(0)))
    from cupatch._reference import gather_patches_reference

    tiles = content_dependent(gather_patches_reference([image], table[:, :4], (32, 24)))
    expected = np.zeros_like(image)
    stitch_crop_reference(tiles, table, [expected])
    result = predict_tiled(content_dependent, image, axes="SCYX", tile_size=(32, 24), overlaps=(8, 6), progress=False)
    np.testing.assert_array_equal(to_numpy(result), expected)


def test_default_model_tiled_equals_whole_image():
    image = sample_image((300, 260), seed=5)
    model = default_model(16)
    tiled = predict_tiled(model, image, axes="YX", tile_size=64, overlaps=16, progress=False, device="cpu")
    whole = model(image[None, None].astype(np.float32))[0, 0]
    np.testing.assert_array_equal(tiled, whole)


def test_default_model_without_scipy(monkeypatch):
    """A fresh install has no SciPy: the NumPy fallback filter keeps tiling exact."""
    from cupatch import _sample

    image = sample_image((150, 140), seed=6)
    batch = image[None, None].astype(np.float32)
    with_scipy = default_model(16)(batch)
    monkeypatch.setitem(sys.modules, "scipy", None)  # makes "from scipy import ndimage" fail
    model = default_model(16)
    whole = model(batch)
    np.testing.assert_array_equal(whole, _sample._gaussian_filter_numpy(batch, (0, 0, 2.0, 2.0)))
    np.testing.assert_allclose(whole, with_scipy, rtol=1e-5, atol=1e-3)
    tiled = predict_tiled(model, image, axes="YX", tile_size=48, overlaps=16, progress=False, device="cpu")
    np.testing.assert_array_equal(tiled, whole[0, 0])


# --------------------------------------------------------------------------------------
# channels, shapes, axes, several images
# --------------------------------------------------------------------------------------


def one_to_three(x):
    return np.concatenate([x, 2 * x, 3 * x], axis=1)


def three_to_one(x):
    return x.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("blend", ["crop", "hann"])
def test_channel_changing_one_to_three(blend):
    rng = np.random.default_rng(0)
    image = rng.random((50, 60), dtype=np.float32)
    result = predict_tiled(one_to_three, image, axes="YX", tile_size=32, overlaps=8, blend=blend, progress=False)
    # C is inserted before the spatial axes when the input had none.
    assert result.shape == (3, 50, 60)
    for k in range(3):
        np.testing.assert_allclose(result[k], (k + 1) * image, rtol=1e-5)
    with_target = predict_tiled(
        one_to_three, image, axes="YX", tile_size=32, overlaps=8, target_axes="YXC", progress=False
    )
    assert with_target.shape == (50, 60, 3)
    np.testing.assert_allclose(with_target[..., 2], 3 * image, rtol=1e-6)


def test_channel_changing_three_to_one():
    rng = np.random.default_rng(1)
    image = rng.random((40, 30, 3), dtype=np.float32)
    result = predict_tiled(three_to_one, image, axes="YXC", tile_size=16, overlaps=4, progress=False)
    assert result.shape == (40, 30, 1)
    np.testing.assert_allclose(result[..., 0], image.sum(axis=-1), rtol=1e-6)
    dropped = predict_tiled(three_to_one, image, axes="YXC", tile_size=16, overlaps=4, target_axes="YX", progress=False)
    assert dropped.shape == (40, 30)
    with pytest.raises(ValueError, match="Cannot drop C"):
        predict_tiled(identity, image, axes="YXC", tile_size=16, overlaps=4, target_axes="YX", progress=False)


def test_output_dtype_follows_model():
    image = np.arange(40 * 50, dtype=np.uint16).reshape(40, 50) % 1000
    as_int = predict_tiled(
        lambda x: x.astype(np.int32), image, axes="YX", tile_size=16, overlaps=4, progress=False
    )
    assert as_int.dtype == np.int32
    np.testing.assert_array_equal(as_int, image.astype(np.int32))
    as_half = predict_tiled(lambda x: x.astype(np.float16), image, axes="YX", tile_size=16, overlaps=4, progress=False)
    assert as_half.dtype == np.float16


@pytest.mark.parametrize("blend", ["crop", "linear", "gaussian"])
def test_image_smaller_than_tile(blend):
    rng = np.random.default_rng(2)
    image = rng.random((13, 7), dtype=np.float32)
    result = predict_tiled(scaled, image, axes="YX", tile_size=(32, 16), overlaps=(8, 4), blend=blend, progress=False)
    np.testing.assert_allclose(result, scaled(image), rtol=1e-6)


@pytest.mark.parametrize(
    ("axes", "shape"),
    [
        ("YXC", (30, 40, 2)),
        ("ZYX", (9, 30, 20)),
        ("TYX", (3, 30, 20)),
        ("STYX", (2, 3, 20, 25)),
        ("XYS", (20, 30, 2)),
        ("CZYX", (2, 6, 20, 20)),
        ("TZCYX", (2, 5, 2, 16, 18)),
    ],
)
def test_axes_are_restored(axes, shape):
    rng = np.random.default_rng(4)
    image = rng.random(shape, dtype=np.float32)
    ndim = 3 if "Z" in axes else 2
    tile = (4, 8, 8)[3 - ndim :]
    overlap = (2, 2, 2)[3 - ndim :]
    result = predict_tiled(scaled, image, axes=axes, tile_size=tile, overlaps=overlap, progress=False, batch_size=5)
    assert result.shape == image.shape
    np.testing.assert_allclose(result, scaled(image), rtol=1e-6)


def test_several_images_return_a_list():
    rng = np.random.default_rng(5)
    images = [rng.random((2, 30, 40), dtype=np.float32), rng.random((1, 17, 55), dtype=np.float32)]
    results = predict_tiled(scaled, images, axes="SYX", tile_size=16, overlaps=4, progress=False)
    assert isinstance(results, list) and len(results) == 2
    for image, result in zip(images, results):
        np.testing.assert_allclose(result, scaled(image), rtol=1e-6)


def test_channel_subset_and_normalization():
    from cupatch.normalization import MeanStdNormalization

    rng = np.random.default_rng(6)
    image = (rng.random((3, 40, 40)) * 100 + 50).astype(np.float32)
    seen = {}

    def spy(x):
        seen["shape"] = x.shape
        seen["mean"] = float(x.mean())
        return x

    norm = MeanStdNormalization(means=[80.0], stds=[20.0])
    result = predict_tiled(
        spy, image, axes="CYX", tile_size=16, overlaps=4, channels=[1], normalization=norm, progress=False
    )
    assert seen["shape"][1] == 1
    assert abs(seen["mean"]) < 2  # normalised inputs reach the model
    assert result.shape == (1, 40, 40)
    np.testing.assert_allclose(result[0], image[1], rtol=1e-5)


def test_unfitted_normalization_is_fitted_on_the_data():
    from cupatch.normalization import MeanStdNormalization

    rng = np.random.default_rng(7)
    image = (rng.random((40, 30)) * 10 + 5).astype(np.float32)
    norm = MeanStdNormalization()
    result = predict_tiled(identity, image, axes="YX", tile_size=16, overlaps=4, normalization=norm, progress=False)
    assert norm.fitted
    np.testing.assert_allclose(result, image, rtol=1e-5)


def test_progress_bar_reports_tiles(capsys):
    image = np.zeros((40, 40), np.float32)
    predict_tiled(identity, image, axes="YX", tile_size=16, overlaps=4, progress=True)
    err = capsys.readouterr().err
    assert "tile" in err
    predict_tiled(identity, image, axes="YX", tile_size=16, overlaps=4, progress=False)
    assert capsys.readouterr().err == ""


def test_stats_count_tiles():
    image = np.zeros((2, 100, 100), np.float32)
    _, stats = run_prediction(identity, image, axes="SYX", tile_size=32, overlaps=8, progress=False, timing=True)
    assert stats.n_tiles == 2 * 16  # CAREamics worked example: 16 tiles per 100x100 sample
    assert stats.tiles_per_s > 0
    assert stats.device in ("cpu", "gpu")


def test_list_of_outputs(tmp_path):
    rng = np.random.default_rng(13)
    images = [rng.random((30, 30), dtype=np.float32), rng.random((20, 50), dtype=np.float32)]
    outs = [np.zeros((30, 30), np.float32), tmp_path / "second.npy"]
    results = predict_tiled(scaled, images, axes="YX", tile_size=16, overlaps=4, out=outs, progress=False)
    np.testing.assert_allclose(results[0], scaled(images[0]), rtol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "second.npy"), scaled(images[1]), rtol=1e-6)


# --------------------------------------------------------------------------------------
# errors that stop a run
# --------------------------------------------------------------------------------------


def test_error_half_way_names_the_partial_output(tmp_path):
    calls = []

    def fails_late(x):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("model crashed")
        return x

    image = np.zeros((200, 40), np.float32)
    path = tmp_path / "partial.zarr"
    with pytest.raises(RuntimeError, match="model crashed") as info:
        predict_tiled(fails_late, image, axes="YX", tile_size=16, overlaps=4, batch_size=2, out=path, progress=False)
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "partial.zarr" in notes and "incomplete" in notes


def test_only_unfinished_outputs_are_reported_incomplete(tmp_path):
    calls = []

    def fails_on_fourth_batch(x):
        calls.append(1)
        if len(calls) == 4:  # second batch of the second image (9 tiles = 2 batches each)
            raise RuntimeError("model crashed")
        return x

    images = [np.zeros((40, 40), np.float32), np.zeros((40, 40), np.float32)]
    outs = [tmp_path / "first.npy", tmp_path / "second.npy"]
    with pytest.raises(RuntimeError, match="model crashed") as info:
        predict_tiled(fails_on_fourth_batch, images, axes="YX", tile_size=16, overlaps=4, out=outs, progress=False)
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "second.npy" in notes and "incomplete" in notes
    assert "first.npy" not in notes


def test_out_of_memory_is_reported_with_the_settings_to_change():
    class OutOfMemoryError(Exception):  # what CuPy and torch raise, by name
        pass

    def oom(x):
        raise OutOfMemoryError("out of memory allocating 1 GiB")

    with pytest.raises(MemoryError, match=r"batch_size \(=8\).*tile_size \(=\(16, 16\)\).*max_gpu_bytes"):
        predict_tiled(oom, IMAGE, axes="YX", tile_size=16, overlaps=4, progress=False)


def test_failed_runtime_allocation_is_reported_as_out_of_memory():
    class CUDARuntimeError(RuntimeError):  # what CuPy raises when cudaMallocHost/cudaMalloc fail
        pass

    def oom(x):
        raise CUDARuntimeError("cudaErrorMemoryAllocation: out of memory")

    with pytest.raises(MemoryError, match=r"batch_size \(=8\).*max_gpu_bytes"):
        predict_tiled(oom, IMAGE, axes="YX", tile_size=16, overlaps=4, progress=False)


def test_other_runtime_errors_are_not_reported_as_out_of_memory():
    def broken(x):
        raise RuntimeError("cudaErrorIllegalAddress: an illegal memory access was encountered")

    with pytest.raises(RuntimeError, match="cudaErrorIllegalAddress"):
        predict_tiled(broken, IMAGE, axes="YX", tile_size=16, overlaps=4, progress=False)


# --------------------------------------------------------------------------------------
# GPU
# --------------------------------------------------------------------------------------


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("blend", ["crop", "hann"])
def test_gpu_matches_cpu(blend):
    import cupy

    rng = np.random.default_rng(17)
    image = rng.integers(0, 4000, size=(2, 70, 90), dtype=np.uint16)
    kwargs = dict(axes="SYX", tile_size=32, overlaps=8, blend=blend, batch_size=3, progress=False)
    cpu = predict_tiled(content_dependent, image, device="cpu", **kwargs)
    gpu = predict_tiled(content_dependent, image, device="gpu", **kwargs)
    assert isinstance(gpu, np.ndarray)  # NumPy in, NumPy out
    np.testing.assert_allclose(gpu, cpu, rtol=1e-6, atol=1e-5)
    on_device = predict_tiled(content_dependent, cupy.asarray(image), device="gpu", **kwargs)
    assert isinstance(on_device, cupy.ndarray)  # CuPy in, CuPy out
    np.testing.assert_allclose(on_device.get(), cpu, rtol=1e-6, atol=1e-5)


@pytest.mark.gpu
@requires_gpu
def test_gpu_default_model_tiled_equals_whole_image():
    import cupy

    image = sample_image((256, 300), seed=2)
    model = default_model(32)
    tiled = predict_tiled(model, image, axes="YX", tile_size=96, overlaps=32, device="gpu", progress=False)
    whole = model(cupy.asarray(image[None, None], dtype=cupy.float32))[0, 0].get()
    np.testing.assert_allclose(tiled, whole, rtol=1e-6, atol=1e-4)
