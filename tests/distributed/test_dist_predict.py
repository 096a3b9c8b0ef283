"""cupatch.distributed.predict_tiled against single-process predict_tiled on a 2-worker cluster."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import cupatch
from cupatch.distributed import run_distributed
from cupatch.distributed.record import ATTRIBUTE, decode_ranges

dist_models = pytest.importorskip("dist_models")
client = pytest.importorskip("dist_cluster").client  # this module's cluster (a fixture)
da = pytest.importorskip("dask.array")

#: blend modes sum a voxel's tiles grouped by batch, and the task batches group them
#: differently from one process: float32 rounding of sums of a few terms
BLEND_RTOL = 1e-6


def _reference(model, image, **kwargs):
    return cupatch.predict_tiled(model, image, progress=False, **kwargs)


def _assert_blend_close(result, reference):
    scale = float(np.abs(reference).max())
    np.testing.assert_allclose(result, reference, rtol=BLEND_RTOL, atol=BLEND_RTOL * scale)


def _zarr(path, image, chunks=None):
    return zarr.create_array(store=str(path), data=image, chunks=chunks or image.shape)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(7)
    return {
        "2d": rng.random((3, 75, 93), dtype=np.float32),  # SYX, several samples
        "3d": rng.integers(0, 4000, (2, 2, 21, 38, 45), dtype=np.uint16),  # SCZYX
    }


def test_crop_2d_zarr_bit_identical(client, images, tmp_path):
    image = images["2d"]
    _zarr(tmp_path / "in.zarr", image, (1, 40, 40))
    args = dict(axes="SYX", tile_size=(32, 40), overlaps=(8, 10 + 2))
    out, stats = run_distributed(
        dist_models.affine, str(tmp_path / "in.zarr"), out=tmp_path / "out.zarr", region_shape=(24, 32),
        chunks=(24, 16), progress=False, **args,
    )  # fmt: skip
    reference = _reference(dist_models.affine, image, **args)
    assert stats.n_tasks == 3 * 4 * 3 and stats.n_run == stats.n_tasks
    assert stats.n_tiles_run > stats.n_tiles  # halo tiles were recomputed, not exchanged
    np.testing.assert_array_equal(out[...], reference)
    assert out.dtype == reference.dtype
    record = dict(out.attrs)[ATTRIBUTE]
    assert record["complete"] and decode_ranges(record["done"]) == set(range(stats.n_tasks))
    assert not (tmp_path / "out.zarr.incomplete").exists()


def test_blend_3d_channels_normalization(client, images, tmp_path):
    image = images["3d"]
    _zarr(tmp_path / "in.zarr", image, (1, 2, 8, 16, 16))
    norm = cupatch.MeanStdNormalization()  # fitted on the client by the distributed call, reused below
    args = dict(axes="SCZYX", tile_size=(12, 16, 16), overlaps=(4, 6, 4), blend="hann", channels=[1],
                normalization=norm, batch_size=5)  # fmt: skip
    out, stats = run_distributed(
        dist_models.two_channels, str(tmp_path / "in.zarr"), out=str(tmp_path / "out.zarr"),
        region_shape=(8, 16, 24), chunks=(8, 16, 12), progress=False, **args,
    )  # fmt: skip
    reference = _reference(dist_models.two_channels, image, **args)
    assert out.shape == reference.shape == (2, 2, 21, 38, 45)
    assert stats.n_tasks == 2 * 3 * 3 * 2
    _assert_blend_close(out[...], reference)


def test_dask_array_inputs_several_images(client, images, tmp_path):
    first = da.from_array(images["2d"], chunks=(1, 30, 50))  # chunks are storage only
    second = da.from_array(images["2d"][1, :50, :60], chunks=(20, 20))
    args = dict(tile_size=32, overlaps=8, blend="crop")
    outs, _ = run_distributed(
        dist_models.affine, [first, second[None]], axes="SYX", out=[tmp_path / "a.zarr", tmp_path / "b.zarr"],
        region_shape=24, chunks=24, progress=False, **args,
    )  # fmt: skip
    references = _reference(dist_models.affine, [images["2d"], images["2d"][1:2, :50, :60]], axes="SYX", **args)
    assert len(outs) == 2
    for out, reference in zip(outs, references):
        np.testing.assert_array_equal(out[...], reference)


def test_dask_array_blend(client, images, tmp_path):
    data = da.from_array(images["3d"][:, 0], chunks=(1, 7, 19, 45))  # SZYX
    args = dict(axes="SZYX", tile_size=(12, 16, 16), overlaps=(4, 4, 4), blend="linear")
    out, _ = run_distributed(dist_models.affine, data, out=tmp_path / "o.zarr", progress=False, **args)
    _assert_blend_close(out[...], _reference(dist_models.affine, images["3d"][:, 0], **args))


def test_tiff_input(client, images, tmp_path):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "in.tif", images["2d"], photometric="minisblack")
    args = dict(axes="SYX", tile_size=32, overlaps=8)
    out, _ = run_distributed(
        dist_models.affine, tmp_path / "in.tif", out=tmp_path / "out.zarr", region_shape=40, chunks=20,
        progress=False, **args,
    )  # fmt: skip
    np.testing.assert_array_equal(out[...], _reference(dist_models.affine, images["2d"], **args))


def test_torch_factory_string_built_once_per_worker(client, images, tmp_path):
    pytest.importorskip("torch")
    image = images["2d"]
    _zarr(tmp_path / "in.zarr", image)
    # batch_size=1: torch's CPU convolutions may round differently for batches of other sizes,
    # and the tasks' last batches are smaller than the single-process ones
    args = dict(axes="SYX", tile_size=32, overlaps=8, batch_size=1, device="cpu")  # a CPU torch model
    out, stats = run_distributed(
        "dist_models:build_conv", str(tmp_path / "in.zarr"), out=tmp_path / "out.zarr", region_shape=24, chunks=24,
        progress=False, **args,
    )  # fmt: skip
    reference = _reference(dist_models.build_conv(), image, **args)
    # crop mode: every voxel is copied from the same tile prediction as in one process
    np.testing.assert_array_equal(out[...], reference)
    assert stats.n_run > 4


def test_callable_factory_built_once_per_worker(client, images, tmp_path):
    log = tmp_path / "builds.txt"
    image = images["2d"]
    _zarr(tmp_path / "in.zarr", image)
    _, stats = run_distributed(
        dist_models.CountingFactory(str(log)), str(tmp_path / "in.zarr"), factory=True, out=tmp_path / "out.zarr",
        axes="SYX", tile_size=32, overlaps=8, region_shape=24, chunks=24, progress=False,
    )  # fmt: skip
    pids = dist_models.pids(str(log))
    assert stats.n_run >= 12
    assert len(pids) == len(set(pids)) <= 2  # once per worker process, not per task


def test_failed_task_is_retried(client, images, tmp_path):
    image = images["2d"]
    _zarr(tmp_path / "in.zarr", image)
    model = dist_models.FailOnce(str(tmp_path / "failed"))
    out, stats = run_distributed(
        model, str(tmp_path / "in.zarr"), out=tmp_path / "out.zarr", axes="SYX", tile_size=32, overlaps=8,
        region_shape=24, chunks=24, retries=2, progress=False,
    )  # fmt: skip
    assert (tmp_path / "failed").exists()  # it did fail once
    np.testing.assert_array_equal(out[...], _reference(dist_models.affine, image, axes="SYX", tile_size=32, overlaps=8))
    assert stats.n_run == stats.n_tasks


def test_killed_worker(client, images, tmp_path):
    image = images["2d"]
    _zarr(tmp_path / "in.zarr", image)
    model = dist_models.FailOnce(str(tmp_path / "killed"), kill=True)
    args = dict(axes="SYX", tile_size=32, overlaps=8, blend="gaussian")
    out, _ = run_distributed(
        model, str(tmp_path / "in.zarr"), out=tmp_path / "out.zarr", region_shape=24, chunks=24, progress=False, **args
    )
    assert (tmp_path / "killed").exists()
    _assert_blend_close(out[...], _reference(dist_models.affine, image, **args))
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the worker


def test_automatic_regions(client, tmp_path):
    image = np.random.default_rng(1).random((1200, 700), dtype=np.float32)
    _zarr(tmp_path / "in.zarr", image, (256, 256))
    args = dict(axes="YX", tile_size=64, overlaps=16, blend="hann")
    out, stats = run_distributed(
        dist_models.affine, str(tmp_path / "in.zarr"), out=tmp_path / "out.zarr", progress=False, **args
    )
    # chunks: the tile step (48) grown to >= 1 MiB; then at least two tasks per worker
    assert out.chunks == (384, 700) and stats.region_shapes == [(384, 700)] and stats.n_tasks == 4
    _assert_blend_close(out[...], _reference(dist_models.affine, image, **args))


def test_zarr_group_path_and_array_object(client, images, tmp_path):
    image = images["2d"]
    group = zarr.open_group(str(tmp_path / "group.zarr"), mode="w")
    array = group.create_array("raw", data=image, chunks=(1, 32, 32))
    args = dict(axes="SYX", tile_size=32, overlaps=8, blend="crop")
    reference = _reference(dist_models.affine, image, **args)
    for k, data in enumerate([str(tmp_path / "group.zarr"), array]):  # a group holding one array; the array
        out, _ = run_distributed(
            dist_models.affine, data, out=tmp_path / f"out{k}.zarr", region_shape=24, chunks=24, progress=False, **args
        )
        np.testing.assert_array_equal(out[...], reference)


@pytest.mark.parametrize("target_axes", [None, "SYXC"])
def test_output_channels_and_target_axes(client, images, tmp_path, target_axes):
    image = images["2d"]
    _zarr(tmp_path / "in.zarr", image)
    args = dict(axes="SYX", tile_size=32, overlaps=8, target_axes=target_axes, blend="crop")
    out, _ = run_distributed(
        dist_models.two_channels, str(tmp_path / "in.zarr"), out=tmp_path / "out.zarr", region_shape=24, chunks=24,
        progress=False, **args,
    )  # fmt: skip
    reference = _reference(dist_models.two_channels, image, **args)
    assert out.shape == reference.shape
    np.testing.assert_array_equal(out[...], reference)


@pytest.mark.parametrize(("blend", "skip_value"), [("crop", np.nan), ("hann", 0.0), ("crop", 0.0)])
def test_skip_mask_as_in_one_process(client, tmp_path, blend, skip_value):
    volume = np.random.default_rng(2).random((2, 40, 64, 64), dtype=np.float32)  # SZYX
    foreground = np.zeros_like(volume, dtype=bool)
    foreground[0, 5:20, 10:30, 8:40] = True  # sample 1 is all background: only its first tile runs
    _zarr(tmp_path / "in.zarr", volume)
    mask = foreground[:, ::4, ::4, ::4]  # at 1/4 resolution
    args = dict(axes="SZYX", tile_size=16, overlaps=4, blend=blend, skip=mask, skip_value=skip_value)
    out, stats = run_distributed(
        dist_models.affine, str(tmp_path / "in.zarr"), out=tmp_path / "out.zarr", region_shape=(12, 24, 24),
        chunks=12, progress=False, **args,
    )  # fmt: skip
    reference = _reference(dist_models.affine, volume, **args)
    assert stats.n_tiles_run < stats.n_tiles  # skipped tiles never reached the model
    if blend == "crop":
        np.testing.assert_array_equal(out[...], reference)
    else:
        _assert_blend_close(out[...], reference)
