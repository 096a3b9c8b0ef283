"""Tests of ``cupatch.predict_tiled`` (tiled inference with crop and blend stitching)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from conftest import HAS_GPU, requires_gpu, to_numpy

from cupatch._sample import default_model, sample_image
from cupatch.inference import predict_tiled, run_prediction

BLEND_WINDOWS = ["linear", "hann", "gaussian", "uniform"]


def identity(x):
    return x


def scaled(x):
    return x * 2.0 + 1.0


# --------------------------------------------------------------------------------------
# CAREamics-style reference: per-tile NumPy extraction and stitch_prediction
# --------------------------------------------------------------------------------------


def careamics_1d(n: int, p: int, o: int):
    """CAREamics' ``_compute_1d_coords``: (coords, crop, crop_size, stitch) per tile."""
    out = []
    step = p - o
    prev_stitch, prev_size = 0, 1
    for i in range(0, max(1, n - o), step):
        if i == 0:
            tile = (0, 0, n if n <= p else p - o // 2, 0)
        elif i + p < n:
            tile = (i, o // 2, p - o, i + o // 2)
        else:
            prev_end = prev_stitch + prev_size
            coord = max(0, n - p)
            tile = (coord, prev_end - coord, n - prev_end, prev_end)
        out.append(tile)
        prev_stitch, prev_size = tile[3], tile[2]
    return out


def careamics_predict(model, image: np.ndarray, tile, overlap) -> np.ndarray:
    """Tile-by-tile CAREamics path on an SC(Z)YX image: extract, predict, stitch (crop)."""
    import itertools

    spatial = image.shape[2:]
    per_axis = [careamics_1d(n, p, o) for n, p, o in zip(spatial, tile, overlap)]
    tiles = []
    for s in range(image.shape[0]):
        for combo in itertools.product(*per_axis):
            patch = np.zeros((image.shape[1], *tile), dtype=np.float32)
            src, dst = [slice(None)], [slice(None)]
            for (c, _, _, _), p, n in zip(combo, tile, spatial):
                lo, hi = max(c, 0), min(c + p, n)
                src.append(slice(lo, hi))
                dst.append(slice(lo - c, hi - c))
            patch[tuple(dst)] = image[s][tuple(src)]
            pred = np.asarray(model(patch[None]))[0]
            tiles.append((s, combo, pred))
    # stitch_prediction: allocate from the tile's channel count, copy each kept region.
    out = np.zeros((image.shape[0], tiles[0][2].shape[0], *spatial), dtype=np.float32)
    for s, combo, pred in tiles:
        src = (slice(None),) + tuple(slice(cr, cr + sz) for _, cr, sz, _ in combo)
        dst = (s, slice(None)) + tuple(slice(sc, sc + sz) for _, _, sz, sc in combo)
        out[dst] = pred[src]
    return out


def content_dependent(x):
    """A model whose output depends on the whole tile (padding included)."""
    axes = tuple(range(2, x.ndim))
    return x * 1.5 + x.mean(axis=axes, keepdims=True)


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
    result = predict_tiled(identity, image, axes=axes, tile_size=tile, overlap=overlap, batch_size=batch, progress=False)
    np.testing.assert_array_equal(result, image.astype(np.float32))


@pytest.mark.parametrize("case", FIXED_CASES)
def test_crop_matches_careamics_stitch_prediction_fixed_cases(case):
    shape, tile, overlap, samples, channels, batch = case
    image = np.random.default_rng(1).random((samples, channels, *shape), dtype=np.float32)
    axes = "SC" + "ZYX"[3 - len(shape) :]
    expected = careamics_predict(content_dependent, image, tile, overlap)
    result = predict_tiled(content_dependent, image, axes=axes, tile_size=tile, overlap=overlap, batch_size=batch, progress=False)
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
    result = predict_tiled(content_dependent, image, axes="SCYX", tile_size=(32, 24), overlap=(8, 6), progress=False)
    np.testing.assert_array_equal(to_numpy(result), expected)


def test_default_model_tiled_equals_whole_image():
    image = sample_image((300, 260), seed=5)
    model = default_model(16)
    tiled = predict_tiled(model, image, axes="YX", tile_size=64, overlap=16, progress=False, device="cpu")
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
    tiled = predict_tiled(model, image, axes="YX", tile_size=48, overlap=16, progress=False, device="cpu")
    np.testing.assert_array_equal(tiled, whole[0, 0])


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
    result = predict_tiled(one_to_three, image, axes="YX", tile_size=32, overlap=8, blend=blend, progress=False)
    # C is inserted before the spatial axes when the input had none.
    assert result.shape == (3, 50, 60)
    for k in range(3):
        np.testing.assert_allclose(result[k], (k + 1) * image, rtol=1e-5)
    with_target = predict_tiled(
        one_to_three, image, axes="YX", tile_size=32, overlap=8, target_axes="YXC", progress=False
    )
    assert with_target.shape == (50, 60, 3)
    np.testing.assert_allclose(with_target[..., 2], 3 * image, rtol=1e-6)


def test_channel_changing_three_to_one():
    rng = np.random.default_rng(1)
    image = rng.random((40, 30, 3), dtype=np.float32)
    result = predict_tiled(three_to_one, image, axes="YXC", tile_size=16, overlap=4, progress=False)
    assert result.shape == (40, 30, 1)
    np.testing.assert_allclose(result[..., 0], image.sum(axis=-1), rtol=1e-6)
    dropped = predict_tiled(three_to_one, image, axes="YXC", tile_size=16, overlap=4, target_axes="YX", progress=False)
    assert dropped.shape == (40, 30)
    with pytest.raises(ValueError, match="Cannot drop C"):
        predict_tiled(identity, image, axes="YXC", tile_size=16, overlap=4, target_axes="YX", progress=False)


def test_output_dtype_follows_model():
    image = np.arange(40 * 50, dtype=np.uint16).reshape(40, 50) % 1000
    as_int = predict_tiled(
        lambda x: x.astype(np.int32), image, axes="YX", tile_size=16, overlap=4, progress=False
    )
    assert as_int.dtype == np.int32
    np.testing.assert_array_equal(as_int, image.astype(np.int32))
    as_half = predict_tiled(lambda x: x.astype(np.float16), image, axes="YX", tile_size=16, overlap=4, progress=False)
    assert as_half.dtype == np.float16


@pytest.mark.parametrize("blend", ["crop", "linear", "gaussian"])
def test_image_smaller_than_tile(blend):
    rng = np.random.default_rng(2)
    image = rng.random((13, 7), dtype=np.float32)
    result = predict_tiled(scaled, image, axes="YX", tile_size=(32, 16), overlap=(8, 4), blend=blend, progress=False)
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
    result = predict_tiled(scaled, image, axes=axes, tile_size=tile, overlap=overlap, progress=False, batch_size=5)
    assert result.shape == image.shape
    np.testing.assert_allclose(result, scaled(image), rtol=1e-6)


def test_several_images_return_a_list():
    rng = np.random.default_rng(5)
    images = [rng.random((2, 30, 40), dtype=np.float32), rng.random((1, 17, 55), dtype=np.float32)]
    results = predict_tiled(scaled, images, axes="SYX", tile_size=16, overlap=4, progress=False)
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
        spy, image, axes="CYX", tile_size=16, overlap=4, channels=[1], normalization=norm, progress=False
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
    result = predict_tiled(identity, image, axes="YX", tile_size=16, overlap=4, normalization=norm, progress=False)
    assert norm.fitted
    np.testing.assert_allclose(result, image, rtol=1e-5)


def test_progress_bar_reports_tiles(capsys):
    image = np.zeros((40, 40), np.float32)
    predict_tiled(identity, image, axes="YX", tile_size=16, overlap=4, progress=True)
    err = capsys.readouterr().err
    assert "tile" in err
    predict_tiled(identity, image, axes="YX", tile_size=16, overlap=4, progress=False)
    assert capsys.readouterr().err == ""


def test_stats_count_tiles():
    image = np.zeros((2, 100, 100), np.float32)
    _, stats = run_prediction(identity, image, axes="SYX", tile_size=32, overlap=8, progress=False, timing=True)
    assert stats.n_tiles == 2 * 16  # CAREamics worked example: 16 tiles per 100x100 sample
    assert stats.tiles_per_s > 0
    assert stats.device in ("cpu", "gpu")


# --------------------------------------------------------------------------------------
# streaming outputs
# --------------------------------------------------------------------------------------


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


@pytest.mark.parametrize("blend", ["crop", "linear"])
def test_zarr_path_streams_equal_to_in_memory(tmp_path, blend):
    zarr = pytest.importorskip("zarr")

    rng = np.random.default_rng(9)
    image = rng.random((20, 45, 37, 2), dtype=np.float32)
    kwargs = dict(axes="ZYXC", tile_size=(8, 16, 16), overlap=(2, 4, 4), blend=blend, batch_size=4, progress=False)
    expected = predict_tiled(content_dependent, image, **kwargs)
    path = tmp_path / "pred.zarr"
    result = predict_tiled(content_dependent, image, out=str(path), **kwargs)
    stored = zarr.open_array(str(path), mode="r")
    assert stored.shape == expected.shape
    # Chunks along the first spatial axis follow the tile step, so slab writes are aligned.
    assert stored.chunks[0] == 8 - 2
    np.testing.assert_array_equal(stored[...], expected)
    np.testing.assert_array_equal(result[...], expected)


@pytest.mark.parametrize("blend", ["crop", "hann"])
def test_zarr_writes_are_chunk_aligned(tmp_path, monkeypatch, blend):
    zarr = pytest.importorskip("zarr")

    from cupatch import inference

    writes = []
    original = inference._Writer.write

    def recording(self, sample_idx, a, b, block):
        writes.append((sample_idx, a, b))
        return original(self, sample_idx, a, b, block)

    monkeypatch.setattr(inference._Writer, "write", recording)
    rng = np.random.default_rng(21)
    image = rng.random((2, 203, 50), dtype=np.float32)
    target = zarr.create_array(store=str(tmp_path / "c.zarr"), shape=image.shape, chunks=(1, 20, 50), dtype="float32")
    predict_tiled(scaled, image, axes="SYX", tile_size=32, overlap=8, blend=blend, batch_size=3, out=target, progress=False)
    np.testing.assert_allclose(target[...], scaled(image), rtol=1e-5)
    assert writes
    for sample, a, b in writes:
        assert a % 20 == 0 and (b % 20 == 0 or b == 203), (sample, a, b)
    # Every row of every sample is written exactly once.
    for sample in range(2):
        spans = sorted((a, b) for s, a, b in writes if s == sample)
        assert spans[0][0] == 0 and spans[-1][1] == 203
        assert all(prev[1] == nxt[0] for prev, nxt in zip(spans, spans[1:]))


def test_created_zarr_chunks_follow_the_tile_step_and_stay_small():
    from cupatch.inference import _ZARR_CHUNK_BYTES, _zarr_chunks

    assert _zarr_chunks((8192, 8192), "YX", 224, "Y") == (224, 1024)
    chunks = _zarr_chunks((2, 3, 256, 1024, 1024), "TCZYX", 24, "Z")
    assert chunks[:3] == (1, 3, 24)
    assert np.prod(chunks) * 4 <= _ZARR_CHUNK_BYTES
    assert _zarr_chunks((10, 20), "YX", 56, "Y") == (10, 20)


def test_zarr_array_out_uses_its_chunks(tmp_path):
    zarr = pytest.importorskip("zarr")

    rng = np.random.default_rng(10)
    image = rng.random((90, 40), dtype=np.float32)
    target = zarr.create_array(store=str(tmp_path / "given.zarr"), shape=(90, 40), chunks=(10, 40), dtype="float32")
    expected = predict_tiled(scaled, image, axes="YX", tile_size=32, overlap=8, blend="hann", progress=False)
    predict_tiled(scaled, image, axes="YX", tile_size=32, overlap=8, blend="hann", out=target, progress=False)
    np.testing.assert_array_equal(target[...], expected)


@pytest.mark.parametrize("suffix", [".tif", ".npy"])
def test_file_outputs(tmp_path, suffix):
    tifffile = pytest.importorskip("tifffile")

    rng = np.random.default_rng(11)
    image = rng.random((2, 40, 33), dtype=np.float32)
    expected = predict_tiled(scaled, image, axes="SYX", tile_size=16, overlap=4, progress=False)
    path = tmp_path / f"pred{suffix}"
    predict_tiled(scaled, image, axes="SYX", tile_size=16, overlap=4, out=path, progress=False)
    stored = tifffile.imread(path) if suffix == ".tif" else np.load(path)
    np.testing.assert_array_equal(stored, expected)


def test_small_budget_streams_to_host(tmp_path):
    rng = np.random.default_rng(12)
    image = rng.random((400, 64), dtype=np.float32)
    kwargs = dict(axes="YX", tile_size=32, overlap=8, batch_size=2, progress=False, blend="hann")
    expected = predict_tiled(scaled, image, **kwargs)
    # Full output: 400*64*4*2 bytes (values + weights) ~ 205 kB; one slab is a few 10 kB.
    result, stats = run_prediction(scaled, image, max_gpu_bytes=120_000, **kwargs)
    assert stats.streamed == ["host"]
    np.testing.assert_array_equal(result, expected)


def test_list_of_outputs(tmp_path):
    rng = np.random.default_rng(13)
    images = [rng.random((30, 30), dtype=np.float32), rng.random((20, 50), dtype=np.float32)]
    outs = [np.zeros((30, 30), np.float32), tmp_path / "second.npy"]
    results = predict_tiled(scaled, images, axes="YX", tile_size=16, overlap=4, out=outs, progress=False)
    np.testing.assert_allclose(results[0], scaled(images[0]), rtol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "second.npy"), scaled(images[1]), rtol=1e-6)


def test_file_inputs(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    zarr = pytest.importorskip("zarr")

    rng = np.random.default_rng(14)
    image = rng.integers(0, 4000, size=(2, 50, 40), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", image)
    zarr.create_array(store=str(tmp_path / "in.zarr"), data=image, chunks=(1, 16, 16))
    np.save(tmp_path / "in.npy", image)
    for name in ("in.tif", "in.zarr", "in.npy"):
        result = predict_tiled(scaled, str(tmp_path / name), axes="SYX", tile_size=16, overlap=4, progress=False)
        np.testing.assert_allclose(result, scaled(image.astype(np.float32)), rtol=1e-6, err_msg=name)


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------

IMAGE = np.zeros((40, 40), np.float32)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(tile_size=16, overlap=16), ValueError, "overlap"),
        (dict(tile_size=16, overlap=20), ValueError, "overlap"),
        (dict(tile_size=16, overlap=3), ValueError, "even"),
        (dict(tile_size=16, overlap=-2), ValueError, "overlap"),
        (dict(tile_size=0, overlap=0), ValueError, "tile_size"),
        (dict(tile_size=(16, 16, 16), overlap=4), ValueError, "tile_size"),
        (dict(tile_size=16, overlap=(4,)), ValueError, "overlap"),
        (dict(tile_size=16.5, overlap=4), TypeError, "tile_size"),
        (dict(tile_size=16, overlap=4, blend="max"), ValueError, "blend"),
        (dict(tile_size=16, overlap=4, window="hann"), ValueError, "window"),
        (dict(tile_size=16, overlap=4, blend="linear", window="hann"), ValueError, "window"),
        (dict(tile_size=16, overlap=4, batch_size=0), ValueError, "batch_size"),
        (dict(tile_size=16, overlap=4, device="tpu"), ValueError, "device"),
        (dict(tile_size=16, overlap=4, axes="YQ"), ValueError, "axes"),
        (dict(tile_size=16, overlap=4, axes="ZYX"), ValueError, "axes"),
        (dict(tile_size=16, overlap=4, channels=[1]), (ValueError, IndexError), "channel"),
        (dict(tile_size=16, overlap=4, target_axes="ZYX"), ValueError, "target_axes"),
        (dict(tile_size=16, overlap=4, out=42), TypeError, "out"),
        (dict(tile_size=16, overlap=4, out=np.zeros((3, 3), np.float32)), ValueError, "shape"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    kwargs = {"axes": "YX", "progress": False, **kwargs}
    with pytest.raises(error, match=match):
        predict_tiled(identity, IMAGE, **kwargs)


def test_odd_overlap_is_fine_when_blending():
    rng = np.random.default_rng(15)
    image = rng.random((40, 40), dtype=np.float32)
    result = predict_tiled(identity, image, axes="YX", tile_size=16, overlap=5, blend="hann", progress=False)
    np.testing.assert_allclose(result, image, rtol=1e-5)


def test_model_with_wrong_batch_size():
    with pytest.raises(ValueError, match=r"batch size 1 .* 8 tiles"):
        predict_tiled(lambda x: x[:1], IMAGE, axes="YX", tile_size=16, overlap=4, progress=False)


def test_model_with_wrong_spatial_shape_names_model_and_shapes():
    def shrink(x):
        return x[..., 1:-1, 1:-1]

    with pytest.raises(ValueError, match=r"shrink.*\(16, 16\).*\(14, 14\)"):
        predict_tiled(shrink, IMAGE, axes="YX", tile_size=16, overlap=4, progress=False)


def test_model_returning_non_array():
    with pytest.raises(TypeError, match="returned"):
        predict_tiled(lambda x: {"y": x}, IMAGE, axes="YX", tile_size=16, overlap=4, progress=False)
    with pytest.raises(TypeError, match="callable"):
        predict_tiled("not a model", IMAGE, axes="YX", tile_size=16, overlap=4, progress=False)


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    path = tmp_path / "pred.npy"
    np.save(path, np.ones(3))
    with pytest.raises(FileExistsError, match="overwrite"):
        predict_tiled(identity, IMAGE, axes="YX", tile_size=16, overlap=4, out=path, progress=False)
    np.testing.assert_array_equal(np.load(path), np.ones(3))  # untouched
    predict_tiled(scaled, IMAGE, axes="YX", tile_size=16, overlap=4, out=path, overwrite=True, progress=False)
    np.testing.assert_array_equal(np.load(path), np.ones((40, 40)))


def test_output_may_not_be_the_input(tmp_path):
    zarr = pytest.importorskip("zarr")

    zarr.create_array(store=str(tmp_path / "in.zarr"), data=np.zeros((40, 40), np.float32))
    for out in (tmp_path / "in.zarr", str(tmp_path / "in.zarr")):
        with pytest.raises(ValueError, match="overwrite the input"):
            predict_tiled(
                identity, str(tmp_path / "in.zarr"), axes="YX", tile_size=16, overlap=4, out=out, overwrite=True,
                progress=False,
            )  # fmt: skip
    assert zarr.open_array(str(tmp_path / "in.zarr"), mode="r").shape == (40, 40)


def test_output_may_not_be_the_input_given_as_a_stack(tmp_path):
    # The command line passes an ImageStack, not the path: the input file must still be safe.
    tifffile = pytest.importorskip("tifffile")
    from cupatch.stacks import as_stack

    image = np.arange(40 * 40, dtype=np.float32).reshape(40, 40)
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, image)
    stack = as_stack(str(path), axes="YX")
    with pytest.raises(ValueError, match="overwrite the input"):
        predict_tiled(scaled, stack, axes="YX", tile_size=16, overlap=4, out=path, overwrite=True, progress=False)
    np.testing.assert_array_equal(tifffile.imread(path), image)


def test_output_may_not_be_a_memory_mapped_input(tmp_path):
    from cupatch.stacks import as_stack

    path = tmp_path / "in.npy"
    np.save(path, np.ones((40, 40), np.float32))
    mapped = np.load(path, mmap_mode="r")
    for data in (mapped, as_stack(mapped, "YX"), str(path)):
        with pytest.raises(ValueError, match="overwrite the input"):
            predict_tiled(scaled, data, axes="YX", tile_size=16, overlap=4, out=path, overwrite=True, progress=False)
    np.testing.assert_array_equal(np.load(path), np.ones((40, 40), np.float32))


def test_output_array_may_not_share_storage_with_the_input(tmp_path):
    image = np.arange(40 * 40, dtype=np.float32).reshape(40, 40)
    original = image.copy()
    for out in (image, image[:]):
        with pytest.raises(ValueError, match="shares memory or storage with an input"):
            predict_tiled(scaled, image, axes="YX", tile_size=16, overlap=4, out=out, progress=False)
    np.testing.assert_array_equal(image, original)
    zarr = pytest.importorskip("zarr")
    stored = zarr.create_array(store=str(tmp_path / "in.zarr"), data=original)
    reopened = zarr.open_array(str(tmp_path / "in.zarr"), mode="r+")
    for data in (stored, str(tmp_path / "in.zarr")):
        with pytest.raises(ValueError, match="shares memory or storage with an input|overwrite the input"):
            predict_tiled(scaled, data, axes="YX", tile_size=16, overlap=4, out=reopened, progress=False)
    np.testing.assert_array_equal(stored[:], original)


def test_same_destination_twice_is_refused_before_any_work(tmp_path):
    calls = []

    def counting(x):
        calls.append(1)
        return x

    images = [np.zeros((40, 40), np.float32), np.ones((40, 40), np.float32)]
    path = tmp_path / "pred.npy"
    for overwrite in (False, True):
        with pytest.raises(ValueError, match=r"out\[0\] and out\[1\] are the same destination"):
            predict_tiled(
                counting, images, axes="YX", tile_size=16, overlap=4, out=[path, tmp_path / "." / "pred.npy"],
                overwrite=overwrite, progress=False,
            )  # fmt: skip
    shared = np.zeros((40, 40), np.float32)
    with pytest.raises(ValueError, match="same destination"):
        predict_tiled(counting, images, axes="YX", tile_size=16, overlap=4, out=[shared, shared], progress=False)
    assert not calls and not path.exists()


def test_read_only_output_array_is_refused_before_any_work():
    out = np.zeros((40, 40), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is a read-only"):
        predict_tiled(identity, IMAGE, axes="YX", tile_size=16, overlap=4, out=out, progress=False)


def test_read_only_zarr_output_is_refused_before_any_work(tmp_path):
    zarr = pytest.importorskip("zarr")

    zarr.create_array(store=str(tmp_path / "out.zarr"), shape=(40, 40), dtype="float32")
    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    with pytest.raises(ValueError, match="out is a read-only Zarr array"):
        predict_tiled(identity, IMAGE, axes="YX", tile_size=16, overlap=4, out=out, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(tile_size=True, overlap=0), "tile_size"),
        (dict(tile_size=(16, True), overlap=0), "tile_size"),
        (dict(tile_size=16, overlap=False), "overlap"),
        (dict(tile_size=16, overlap=4, channels=[0.7]), "channels"),
        (dict(tile_size=16, overlap=4, channels=True), "channels"),
    ],
)
def test_bool_and_float_arguments_are_type_errors(kwargs, match):
    with pytest.raises(TypeError, match=match):
        predict_tiled(identity, IMAGE, axes="YX", progress=False, **kwargs)


def test_unwritable_or_unsupported_output(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        predict_tiled(identity, IMAGE, axes="YX", tile_size=16, overlap=4, out=tmp_path / "no" / "x.zarr", progress=False)
    with pytest.raises(ValueError, match="must end in"):
        predict_tiled(identity, IMAGE, axes="YX", tile_size=16, overlap=4, out=tmp_path / "x.png", progress=False)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into read-only directories")
def test_read_only_directory_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            predict_tiled(identity, IMAGE, axes="YX", tile_size=16, overlap=4, out=locked / "x.zarr", progress=False)
    finally:
        locked.chmod(0o700)


def test_unwritable_directory_is_refused_before_any_work(tmp_path, monkeypatch):
    from cupatch import inference

    calls = []
    monkeypatch.setattr(inference.os, "access", lambda path, mode: False)
    with pytest.raises(PermissionError, match="not writable"):
        predict_tiled(lambda x: calls.append(1) or x, IMAGE, axes="YX", tile_size=16, overlap=4, out=tmp_path / "x.npy", progress=False)
    assert not calls and not (tmp_path / "x.npy").exists()


def test_missing_input_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        predict_tiled(identity, str(tmp_path / "missing.tif"), axes="YX", tile_size=16, overlap=4, progress=False)


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
        predict_tiled(fails_late, image, axes="YX", tile_size=16, overlap=4, batch_size=2, out=path, progress=False)
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
        predict_tiled(fails_on_fourth_batch, images, axes="YX", tile_size=16, overlap=4, out=outs, progress=False)
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "second.npy" in notes and "incomplete" in notes
    assert "first.npy" not in notes


def test_write_error_in_the_background_is_raised(tmp_path, monkeypatch):
    from cupatch import inference

    original = inference._Writer.write
    calls = []

    def failing(self, sample_idx, a, b, block):
        calls.append(a)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(self, sample_idx, a, b, block)

    monkeypatch.setattr(inference._Writer, "write", failing)
    image = np.zeros((300, 40), np.float32)
    path = tmp_path / "bg.zarr"
    with pytest.raises(OSError, match="disk full") as info:
        predict_tiled(identity, image, axes="YX", tile_size=16, overlap=4, batch_size=2, out=path, progress=False)
    assert "bg.zarr" in " ".join(getattr(info.value, "__notes__", []))
    assert not any(t.name == "cupatch-writer" for t in __import__("threading").enumerate())


def test_budget_too_small_for_one_tile():
    with pytest.raises(ValueError, match=r"max_gpu_bytes.*batch_size|batch_size.*max_gpu_bytes"):
        predict_tiled(identity, IMAGE, axes="YX", tile_size=16, overlap=4, max_gpu_bytes=100, progress=False)
    with pytest.raises(ValueError, match="max_gpu_bytes"):
        predict_tiled(identity, IMAGE, axes="YX", tile_size=16, overlap=4, max_gpu_bytes=-1, progress=False)


def test_out_of_memory_is_reported_with_the_settings_to_change():
    class OutOfMemoryError(Exception):  # what CuPy and torch raise, by name
        pass

    def oom(x):
        raise OutOfMemoryError("out of memory allocating 1 GiB")

    with pytest.raises(MemoryError, match=r"batch_size \(=8\).*tile_size \(=\(16, 16\)\).*max_gpu_bytes"):
        predict_tiled(oom, IMAGE, axes="YX", tile_size=16, overlap=4, progress=False)


def test_failed_runtime_allocation_is_reported_as_out_of_memory():
    class CUDARuntimeError(RuntimeError):  # what CuPy raises when cudaMallocHost/cudaMalloc fail
        pass

    def oom(x):
        raise CUDARuntimeError("cudaErrorMemoryAllocation: out of memory")

    with pytest.raises(MemoryError, match=r"batch_size \(=8\).*max_gpu_bytes"):
        predict_tiled(oom, IMAGE, axes="YX", tile_size=16, overlap=4, progress=False)


def test_other_runtime_errors_are_not_reported_as_out_of_memory():
    def broken(x):
        raise RuntimeError("cudaErrorIllegalAddress: an illegal memory access was encountered")

    with pytest.raises(RuntimeError, match="cudaErrorIllegalAddress"):
        predict_tiled(broken, IMAGE, axes="YX", tile_size=16, overlap=4, progress=False)


@pytest.mark.skipif(HAS_GPU, reason="checks the error raised when no GPU is usable")
def test_gpu_requested_without_gpu():
    with pytest.raises(RuntimeError, match="GPU"):
        predict_tiled(identity, IMAGE, axes="YX", tile_size=16, overlap=4, device="gpu", progress=False)


def test_torch_is_not_imported_for_plain_models():
    import subprocess

    import cupatch

    code = (
        "import sys, numpy as np, cupatch\n"
        "cupatch.predict_tiled(lambda x: x, np.zeros((40, 40), np.float32), axes='YX', tile_size=16, overlap=4,"
        " progress=False)\n"
        "print('torch' in sys.modules)\n"
    )
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(cupatch.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# --------------------------------------------------------------------------------------
# torch and GPU
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("gpu", marks=[pytest.mark.gpu, requires_gpu, pytest.mark.real_gpu(reason="torch CUDA tensors: the emulated device is not a CUDA device torch can use")])]
)
def test_torch_module(device):
    torch = pytest.importorskip("torch", reason="torch is not installed")

    conv = torch.nn.Conv2d(1, 2, kernel_size=3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0
        conv.weight[1, 0, 1, 1] = -2.0
    if device == "gpu":
        conv = conv.cuda()
    rng = np.random.default_rng(16)
    image = rng.random((40, 50), dtype=np.float32)
    result = predict_tiled(conv, image, axes="YX", tile_size=16, overlap=4, device=device, progress=False)
    assert isinstance(result, np.ndarray) and result.shape == (2, 40, 50)
    np.testing.assert_allclose(result[0], image, rtol=1e-6)
    np.testing.assert_allclose(result[1], -2 * image, rtol=1e-6)


def test_torch_model_on_the_wrong_device():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    if not HAS_GPU:
        pytest.skip("needs a GPU to put the model on the other device than the data")
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)
    with pytest.raises(ValueError, match="model.to"):
        predict_tiled(conv, IMAGE, axes="YX", tile_size=16, overlap=4, device="gpu", progress=False)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("blend", ["crop", "hann"])
def test_gpu_matches_cpu(blend):
    import cupy

    rng = np.random.default_rng(17)
    image = rng.integers(0, 4000, size=(2, 70, 90), dtype=np.uint16)
    kwargs = dict(axes="SYX", tile_size=32, overlap=8, blend=blend, batch_size=3, progress=False)
    cpu = predict_tiled(content_dependent, image, device="cpu", **kwargs)
    gpu = predict_tiled(content_dependent, image, device="gpu", **kwargs)
    assert isinstance(gpu, np.ndarray)  # NumPy in, NumPy out
    np.testing.assert_allclose(gpu, cpu, rtol=1e-6, atol=1e-5)
    on_device = predict_tiled(content_dependent, cupy.asarray(image), device="gpu", **kwargs)
    assert isinstance(on_device, cupy.ndarray)  # CuPy in, CuPy out
    np.testing.assert_allclose(on_device.get(), cpu, rtol=1e-6, atol=1e-5)


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


@pytest.mark.gpu
@requires_gpu
def test_gpu_default_model_tiled_equals_whole_image():
    import cupy

    image = sample_image((256, 300), seed=2)
    model = default_model(32)
    tiled = predict_tiled(model, image, axes="YX", tile_size=96, overlap=32, device="gpu", progress=False)
    whole = model(cupy.asarray(image[None, None], dtype=cupy.float32))[0, 0].get()
    np.testing.assert_allclose(tiled, whole, rtol=1e-6, atol=1e-4)


def _fake_torch_and_cupy(torch_stream_ptr, cupy_stream_ptr, log):
    """Stand-ins for the parts of torch and cupy that ``_ModelRunner`` uses on the GPU; every
    torch operation logs the torch stream it was queued on."""
    import contextlib
    import types

    current = [torch_stream_ptr]

    class Tensor:
        def __init__(self, value, dtype="float32"):
            self.value, self.dtype = value, dtype

        def detach(self):
            return self

        def float(self):
            log.append(("cast", current[-1]))
            return Tensor(self.value)

    class TorchStream:
        def __init__(self, ptr):
            self.cuda_stream = ptr

    def external_stream(ptr, device=None):
        log.append(("external", ptr, device))
        return TorchStream(ptr)

    @contextlib.contextmanager
    def stream(s):
        current.append(s.cuda_stream)
        try:
            yield
        finally:
            current.pop()

    def from_dlpack(array):
        log.append(("torch.from_dlpack", current[-1]))
        return Tensor(array)

    torch = types.SimpleNamespace(
        Tensor=Tensor, bfloat16="bfloat16", no_grad=contextlib.nullcontext, from_dlpack=from_dlpack,
        cuda=types.SimpleNamespace(current_stream=lambda device=None: TorchStream(current[-1]),
                                   stream=stream, ExternalStream=external_stream),
    )
    cupy_stream = types.SimpleNamespace(ptr=cupy_stream_ptr)

    def cupy_from_dlpack(tensor):
        log.append(("cupy.from_dlpack", current[-1]))
        return tensor.value

    cupy = types.SimpleNamespace(
        ndarray=np.ndarray, from_dlpack=cupy_from_dlpack,
        cuda=types.SimpleNamespace(get_current_stream=lambda: cupy_stream, Device=lambda: types.SimpleNamespace(id=0)),
    )
    return torch, cupy, current


class _StandInModule:
    """Looks like a torch.nn.Module to ``_ModelRunner`` (checked by class name and module)."""

    def __init__(self, torch, log, current, out_dtype="float32"):
        self.torch, self.log, self.current, self.out_dtype = torch, log, current, out_dtype

    def parameters(self):
        return []

    def buffers(self):
        return []

    def __call__(self, x):
        self.log.append(("model", self.current[-1]))
        return self.torch.Tensor(x.value * 2, dtype=self.out_dtype)


_StandInModule.__name__ = "Module"
_StandInModule.__module__ = "torch.nn.modules.module"


@pytest.mark.parametrize("out_dtype", ["float32", "bfloat16"])
def test_torch_model_runs_on_cupys_stream(monkeypatch, out_dtype):
    """With torch's current stream different from CuPy's, the model (and the prediction's
    hand-back) must run on CuPy's stream: otherwise CuPy's pool reuses the batch and torch's
    allocator reuses the prediction while the other stream may still read them."""
    from cupatch.inference import _ModelRunner

    log = []
    torch, cupy, current = _fake_torch_and_cupy(torch_stream_ptr=111, cupy_stream_ptr=222, log=log)
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    runner = _ModelRunner(_StandInModule(torch, log, current, out_dtype), "gpu")
    out = runner(np.ones((2, 1, 4, 4), np.float32))
    np.testing.assert_array_equal(out, 2 * np.ones((2, 1, 4, 4)))
    assert log[0] == ("external", 222, 0)
    ops = [entry for entry in log if entry[0] != "external"]
    assert [entry[0] for entry in ops] == ["torch.from_dlpack", "model"] + (["cast"] if out_dtype == "bfloat16" else []) + [
        "cupy.from_dlpack"
    ]
    assert all(entry[1] == 222 for entry in ops), log
    assert current == [111]  # torch's own stream is current again afterwards


def test_torch_model_on_the_same_stream_needs_no_external_stream(monkeypatch):
    from cupatch.inference import _ModelRunner

    log = []
    torch, cupy, current = _fake_torch_and_cupy(torch_stream_ptr=0, cupy_stream_ptr=0, log=log)
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    runner = _ModelRunner(_StandInModule(torch, log, current), "gpu")
    runner(np.ones((1, 1, 2, 2), np.float32))
    assert [entry[0] for entry in log] == ["torch.from_dlpack", "model", "cupy.from_dlpack"]


@pytest.mark.gpu
@requires_gpu
@pytest.mark.real_gpu(reason="torch CUDA tensors: the emulated device is not a CUDA device torch can use")
def test_gpu_torch_model_on_another_torch_stream_equals_cpu():
    """A slow torch model while torch's current stream is not CuPy's: tiles must not be
    overwritten or reused while the other library still reads them."""
    torch = pytest.importorskip("torch", reason="torch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA support")

    class SlowScale(torch.nn.Module):
        def forward(self, x):
            busy = torch.zeros(1 << 22, device=x.device)
            for _ in range(10):  # delay the reads of x on whatever stream the model runs on
                busy = torch.sin(busy) + 1
            return x * 2.0 + 1.0 + 0.0 * busy[:1].reshape(1, 1, 1, 1)

    rng = np.random.default_rng(21)
    image = rng.random((2, 150, 130), dtype=np.float32)
    kwargs = dict(axes="SYX", tile_size=32, overlap=8, batch_size=3, progress=False)
    with torch.cuda.stream(torch.cuda.Stream()):
        for blend in ("crop", "hann"):
            expected = predict_tiled(scaled, image, device="cpu", blend=blend, **kwargs)
            got = predict_tiled(SlowScale().cuda(), image, device="gpu", blend=blend, **kwargs)
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
            # 180 kB: the 156 kB output (312 kB with blend weights) is streamed through slabs
            streamed, stats = run_prediction(SlowScale().cuda(), image, device="gpu", blend=blend,
                                             max_gpu_bytes=180_000, **kwargs)
            assert stats.streamed == ["host"]
            np.testing.assert_array_equal(streamed, got)


# --------------------------------------------------------------------------------------
# input sources
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [None, [1]])
def test_row_slab_source_matches_whole_source(channels):
    """Per-row input slabs (used for lazy files and for host arrays on the GPU) gather
    exactly what a gather from the whole resident array gives."""
    from cupatch.inference import _RowSource, _Tiling, _WholeSource
    from cupatch.patching.tiled import TiledPatching
    from cupatch.stacks import as_stack

    rng = np.random.default_rng(19)
    image = rng.integers(0, 1000, size=(2, 2, 21, 30), dtype=np.uint16)  # SCYX, smaller than a tile in Y
    tile, overlap = (32, 16), (8, 4)
    scale = np.array([0.5] * (2 if channels is None else 1), np.float32)
    shift = np.array([-3.0] * (2 if channels is None else 1), np.float32)
    for stack in (as_stack(image, "SCYX"), as_stack(image, "SCYX", placement="disk")):
        tiling = _Tiling(TiledPatching([image.shape], tile, overlap), image.shape, tile, overlap)
        whole = _WholeSource(image, tile, channels, scale, shift)
        rows = _RowSource(stack, np, tile, channels, scale, shift, tiling.row_coords, tiling.n_per_sample, tiling.row_size)
        for begin in range(0, tiling.n_tiles, 3):
            index = np.arange(begin, min(begin + 3, tiling.n_tiles))
            specs = tiling.patching.spec_table(index)
            np.testing.assert_array_equal(rows.gather(specs, index), whole.gather(specs, index))


def test_lazy_stack_input_streams_rows():
    from cupatch.stacks import as_stack

    rng = np.random.default_rng(20)
    image = rng.random((3, 70, 50), dtype=np.float32)
    lazy = as_stack(image, "ZYX", placement="disk")
    assert lazy.array is None
    result = predict_tiled(scaled, lazy, axes="ZYX", tile_size=(2, 32, 32), overlap=(0, 8, 8), progress=False)
    np.testing.assert_allclose(result, scaled(image), rtol=1e-6)
