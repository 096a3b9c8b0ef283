"""predict_tiled(skip=...): skipped tiles never reach the model, skip_value fills what they leave."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile
import zarr
from conftest import requires_gpu

from cupatch import MeanStdNormalization, TiledPatching, predict_tiled
from cupatch.inference import run_prediction

from .helpers import content_dependent, identity


class Counting:
    """A model that records the batch sizes it is called with."""

    def __init__(self, fn=content_dependent):
        self.fn, self.calls = fn, []

    def __call__(self, x):
        self.calls.append(len(x))
        return self.fn(x)


def _tiles(shape, tile, overlaps):
    """Per tile of one sample: read window and kept region as slices (CAREamics' tiling)."""
    strategy = TiledPatching([(1, 1, *shape)], tile, overlaps)
    out = []
    for i in range(strategy.n_patches):
        spec = strategy.get_patch_spec(i)
        window = tuple(slice(max(c, 0), min(c + t, n)) for c, t, n in zip(spec["coords"], tile, shape))
        kept = tuple(slice(s, s + z) for s, z in zip(spec["stitch_coords"], spec["crop_size"]))
        out.append((window, kept))
    return out


def _upsample(mask, shape):
    """A reduced mask at the image's resolution (each cell repeated over the voxels it covers)."""
    d = [-(-n // m) for n, m in zip(shape, mask.shape)]
    for axis, k in enumerate(d):
        mask = np.repeat(mask, k, axis=axis)
    return mask[tuple(slice(0, n) for n in shape)]


def _reference_run(mask_full, shape, tile, overlaps, blend):
    """Which tiles run: the mask has foreground in the tile's output region (brute force)."""
    return [bool(mask_full[kept if blend == "crop" else window].any()) for window, kept in _tiles(shape, tile, overlaps)]


CASES = [
    # image (S, spatial), tile, overlaps, mask shape (S?, reduced spatial)
    ((2, 37, 45), (16, 16), (4, 4), (2, 37, 45)),
    ((2, 37, 45), (16, 16), (4, 4), (2, 10, 9)),  # divisors (4, 5)
    ((1, 21, 26, 19), (8, 10, 8), (2, 4, 2), (1, 7, 13, 19)),  # 3-D, divisors (3, 2, 1)
]


def _mask(shape, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, dtype=bool)
    for s in range(shape[0]):
        corner = [int(rng.integers(0, n)) for n in shape[1:]]
        mask[(s, *(slice(c, c + max(1, n // 6)) for c, n in zip(corner, shape[1:])))] = True
    return mask


@pytest.mark.parametrize("blend", ["crop", "hann", "linear"])
@pytest.mark.parametrize("image_shape,tile,overlaps,mask_shape", CASES)
def test_skipped_tiles_never_run_and_the_rest_is_exact(image_shape, tile, overlaps, mask_shape, blend):
    image = np.random.default_rng(1).random(image_shape).astype(np.float32)
    axes = "S" + "ZYX"[3 - len(tile) :]
    mask = _mask(mask_shape)
    kwargs = dict(axes=axes, tile_size=tile, overlaps=overlaps, blend=blend, batch_size=3, progress=False)
    full = predict_tiled(content_dependent, image, **kwargs)
    model = Counting()
    out, stats = run_prediction(model, image, skip=mask, skip_value=-7.0, **kwargs)

    spatial = image_shape[1:]
    tiles = _tiles(spatial, tile, overlaps)
    runs = [_reference_run(_upsample(mask[s], spatial), spatial, tile, overlaps, blend) for s in range(image_shape[0])]
    n_run = sum(map(sum, runs))
    assert 0 < n_run < len(tiles) * image_shape[0]
    # the model saw only the tiles that run, in full batches but the last
    assert sum(model.calls) == n_run and model.calls[:-1] == [3] * (len(model.calls) - 1)
    assert stats.n_run == n_run and stats.n_skipped == stats.n_tiles - n_run
    for s in range(image_shape[0]):
        near_skipped = np.zeros(spatial, bool)  # output regions of skipped tiles
        covered = np.zeros(spatial, bool)  # output regions of run tiles
        for (window, kept), run in zip(tiles, runs[s]):
            (covered if run else near_skipped)[kept if blend == "crop" else window] = True
        exact = ~near_skipped
        np.testing.assert_allclose(out[s][exact], full[s][exact], rtol=1e-6, atol=1e-6)
        assert (out[s][~covered] == -7.0).all()
        # every masked voxel is predicted as without skipping
        fg = _upsample(mask[s], spatial)
        np.testing.assert_allclose(out[s][fg], full[s][fg], rtol=1e-6, atol=1e-6)
        if blend != "crop":
            assert (covered & near_skipped).any()  # the case the blend rule is about


@pytest.mark.parametrize("blend", ["hann", "gaussian"])
def test_blend_renormalises_over_the_tiles_that_run(blend):
    """Where run and skipped tiles overlap, the run tiles' weights are renormalised: an
    identity model gives the input back there (unnormalised weights would scale it down)."""
    image = np.random.default_rng(2).random((40, 50)).astype(np.float32) + 1
    mask = np.zeros((40, 50), bool)
    mask[18:22, 20:26] = True
    out = predict_tiled(identity, image, axes="YX", tile_size=16, overlaps=8, blend=blend, skip=mask,
                        skip_value=math.nan, progress=False)  # fmt: skip
    ran = ~np.isnan(out)
    assert 0.1 < ran.mean() < 0.9
    np.testing.assert_allclose(out[ran], image[ran], rtol=1e-5)


@pytest.mark.parametrize("blend", ["crop", "hann"])
@pytest.mark.parametrize("skip_value", [0.0, math.nan, 3.5])
def test_streaming_equals_in_memory(tmp_path, blend, skip_value):
    rng = np.random.default_rng(3)
    image = rng.random((5, 61, 47)).astype(np.float32)
    mask = np.zeros((5, 61, 47), bool)
    mask[0, 2:6, 3:9] = True  # sample 0: foreground in the first rows only
    mask[2, 40:50, 30:] = True  # samples 1, 3, 4 empty, sample 2 late rows
    mask[2, 5, 5] = True
    kwargs = dict(axes="SYX", tile_size=(12, 16), overlaps=(4, 4), blend=blend, batch_size=4, progress=False,
                  skip=mask, skip_value=skip_value)  # fmt: skip
    memory = predict_tiled(content_dependent, image, **kwargs)
    host = predict_tiled(content_dependent, image, out=np.full(image.shape, 99.0, np.float32), **kwargs)
    np.testing.assert_array_equal(host, memory)
    stored = predict_tiled(content_dependent, image, out=tmp_path / "out.zarr", **kwargs)
    np.testing.assert_array_equal(np.asarray(zarr.open_array(str(tmp_path / "out.zarr"))[:]), memory)
    assert stored is not None
    predict_tiled(content_dependent, image, out=tmp_path / "out.tif", **kwargs)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), memory)
    # streamed through slabs smaller than the image on the CPU as well
    _, stats = run_prediction(content_dependent, image, max_gpu_bytes=6e4, **kwargs)
    assert stats.streamed
    np.testing.assert_array_equal(run_prediction(content_dependent, image, max_gpu_bytes=6e4, **kwargs)[0], memory)


def test_integer_output_and_nan():
    image = np.random.default_rng(4).integers(0, 1000, (40, 40)).astype(np.uint16)
    mask = np.zeros((40, 40), bool)
    mask[:5, :5] = True
    to_uint16 = lambda x: x.astype(np.uint16)  # noqa: E731
    out = predict_tiled(to_uint16, image, axes="YX", tile_size=16, overlaps=4, skip=mask, skip_value=7, progress=False)
    assert out.dtype == np.uint16 and out[0, 0] == image[0, 0] and out[-1, -1] == 7
    with pytest.raises(ValueError, match="skip_value=nan cannot be stored in the model's uint16 output"):
        predict_tiled(to_uint16, image, axes="YX", tile_size=16, overlaps=4, skip=mask, skip_value=math.nan, progress=False)


def test_callable_gets_raw_tiles_and_decides():
    image = np.zeros((2, 48, 48), np.float32)
    image[1, 30:34, 10:14] = 500.0
    seen = []

    def empty(tiles):
        seen.append(tiles)
        return tiles.max(axis=(1, 2, 3)) == 0

    norm = MeanStdNormalization()
    model = Counting(identity)
    kwargs = dict(axes="SYX", tile_size=16, overlaps=4, normalization=norm, progress=False)
    out, stats = run_prediction(model, image, skip=empty, skip_value=-1.0, **kwargs)
    tiles = np.concatenate(seen)
    assert tiles.shape[1:] == (1, 16, 16) and len(tiles) == stats.n_tiles
    assert tiles.max() == 500.0  # not normalised
    assert stats.n_run == sum(model.calls) == int((tiles.max(axis=(1, 2, 3)) > 0).sum()) > 0
    full = predict_tiled(identity, image, **kwargs)
    near = np.abs(out - full) > 1e-3
    assert (out[near] == -1.0).all()
    np.testing.assert_allclose(out[1, 30:34, 10:14], 500.0, rtol=1e-5)
    assert (out[0] == -1.0).all()  # sample 0 is empty: all skipped


def test_filter_object_is_called_on_the_first_channel():
    class Filter:
        def __init__(self):
            self.shapes = []

        def filter_out_batch(self, regions):
            self.shapes.append(regions.shape)
            return regions.mean(axis=(1, 2, 3)) < 0.5

    image = np.zeros((2, 40, 40), np.float32)  # CYX
    image[0, :20] = 1.0
    image[1] = 1.0  # the second channel is ignored by the filter
    f = Filter()
    out, stats = run_prediction(identity, image, axes="CYX", tile_size=16, overlaps=4, skip=f, progress=False)
    assert all(s[1] == 1 for s in f.shapes)
    assert 0 < stats.n_skipped < stats.n_tiles
    assert (out[:, -4:] == 0).all() and (out[:, :8] == 1).all()


def test_filter_from_cupatch_filters():
    filters = pytest.importorskip("cupatch.filters")
    image = np.zeros((48, 48), np.float32)
    image[4:10, 4:10] = 100.0
    model = Counting(identity)
    out, stats = run_prediction(model, image, axes="YX", tile_size=16, overlaps=4,
                                skip=filters.MaxPatchFilter(threshold=50.0), progress=False)  # fmt: skip
    assert 0 < stats.n_run < stats.n_tiles and sum(model.calls) == stats.n_run
    np.testing.assert_array_equal(out[4:10, 4:10], 100.0)


def test_every_tile_skipped_runs_the_first():
    image = np.ones((40, 40), np.float32)
    model = Counting(identity)
    out, stats = run_prediction(model, image, axes="YX", tile_size=16, overlaps=4, skip=np.zeros((40, 40), bool),
                                skip_value=-2.0, progress=False)  # fmt: skip
    assert model.calls == [1] and stats.n_run == 1
    kept = _tiles((40, 40), (16, 16), (4, 4))[0][1]
    assert (out[kept] == 1).all() and (out == -2.0).sum() == out.size - out[kept].size


def test_masks_from_files_lists_and_channels(tmp_path):
    image = np.random.default_rng(5).random((40, 40, 2)).astype(np.float32)  # YXC
    mask = np.zeros((40, 40), np.uint8)
    mask[30:, 30:] = 1
    np.save(tmp_path / "mask.npy", mask)
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    zarr.create_array(str(tmp_path / "mask.zarr"), data=mask > 0)  # bool: read whole
    kwargs = dict(axes="YXC", tile_size=16, overlaps=4, progress=False)
    ref = predict_tiled(content_dependent, image, skip=mask, **kwargs)
    assert (ref[:8, :8] == 0).all() and (ref[-4:, -4:] != 0).all()
    files = (tmp_path / "mask.npy", str(tmp_path / "mask.tif"), tmp_path / "mask.zarr")
    for skip in (*files, mask[..., None].repeat(2, axis=2), mask > 0):
        np.testing.assert_array_equal(predict_tiled(content_dependent, image, skip=skip, **kwargs), ref)
    both = predict_tiled(content_dependent, [image, image], skip=[mask, None], **kwargs)
    np.testing.assert_array_equal(both[0], ref)
    np.testing.assert_array_equal(both[1], predict_tiled(content_dependent, image, **kwargs))


@pytest.mark.parametrize(
    "skip,kwargs,error,match",
    [
        (np.ones((40, 39), bool), {}, ValueError, "does not fit the image"),
        (np.ones((3, 40, 40), bool), {"axes": "SYX"}, ValueError, "axes"),
        (np.ones((2, 40, 40), bool), {"data": np.zeros((3, 40, 40), np.float32), "axes": "SYX"}, ValueError, "2 samples"),
        (np.ones((40, 40), object), {}, TypeError, "dtype"),
        (42, {}, TypeError, "skip must be a mask"),
        ([np.ones((40, 40), bool)] * 2, {}, ValueError, "one mask per image"),
        (lambda tiles: np.zeros(2, bool), {}, ValueError, "one bool per tile"),
        (lambda tiles: np.zeros(len(tiles)), {}, ValueError, "one bool per tile"),
        (np.ones((40, 40), bool), {"skip_value": math.inf}, ValueError, "skip_value must be a finite number or nan"),
        (np.ones((40, 40), bool), {"skip_value": "0"}, ValueError, "skip_value"),
        (np.ones((40, 40), bool), {"skip_value": True}, ValueError, "skip_value"),
        (None, {"skip_value": [0]}, ValueError, "skip_value"),
    ],
)
def test_errors(skip, kwargs, error, match):
    args = dict(data=np.zeros((40, 40), np.float32), axes="YX", tile_size=16, overlaps=4, progress=False)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        predict_tiled(identity, args.pop("data"), skip=skip, **args)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("blend", ["crop", "hann"])
def test_gpu_matches_cpu(tmp_path, blend):
    import cupy

    image = np.random.default_rng(6).random((2, 40, 52)).astype(np.float32)
    mask = _mask((2, 10, 13), seed=3)
    kwargs = dict(axes="SYX", tile_size=16, overlaps=4, blend=blend, skip=mask, skip_value=math.nan, progress=False)
    cpu = predict_tiled(content_dependent, image, device="cpu", **kwargs)
    gpu = predict_tiled(content_dependent, image, device="gpu", **kwargs)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-6, atol=1e-5, equal_nan=True)
    on_device = predict_tiled(content_dependent, cupy.asarray(image), device="gpu", skip=cupy.asarray(mask),
                              **{k: v for k, v in kwargs.items() if k != "skip"})  # fmt: skip
    np.testing.assert_allclose(on_device.get(), cpu, rtol=1e-6, atol=1e-5, equal_nan=True)
    streamed = predict_tiled(content_dependent, image, device="gpu", out=tmp_path / "o.zarr", **kwargs)
    np.testing.assert_allclose(np.asarray(streamed[:]), cpu, rtol=1e-6, atol=1e-5, equal_nan=True)
    # a callable on the GPU gets CuPy tiles
    kinds = []

    def empty(tiles):
        kinds.append(type(tiles).__module__.split(".")[0])
        return tiles.max(axis=(1, 2, 3)) < 0.99

    predict_tiled(content_dependent, image, device="gpu", **{**kwargs, "skip": empty})
    assert set(kinds) == {"cupy"}
    filters = pytest.importorskip("cupatch.filters")
    by_filter = {**kwargs, "skip": filters.MaxPatchFilter(threshold=0.99)}
    _, cpu_stats = run_prediction(content_dependent, image, device="cpu", **by_filter)
    gpu_out, gpu_stats = run_prediction(content_dependent, image, device="gpu", **by_filter)
    assert gpu_stats.n_skipped == cpu_stats.n_skipped > 0
