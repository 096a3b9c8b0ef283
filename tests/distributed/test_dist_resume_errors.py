"""Interrupted runs, resume=True, and the errors of cupatch.distributed.predict_tiled."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import cupatch
from cupatch.distributed import ModelFactoryError, predict_tiled, run_distributed
from cupatch.distributed.record import ATTRIBUTE, decode_ranges

dist_models = pytest.importorskip("dist_models")
client = pytest.importorskip("dist_cluster").client  # this module's cluster (a fixture)

ARGS = dict(axes="SYX", tile_size=32, overlaps=8, region_shape=24, chunks=24, progress=False)


@pytest.fixture
def source(tmp_path):
    image = np.random.default_rng(3).random((2, 70, 60), dtype=np.float32)
    zarr.create_array(store=str(tmp_path / "in.zarr"), data=image)
    return image, str(tmp_path / "in.zarr")


def test_resume_after_interrupted_run(client, tmp_path):
    image = np.random.default_rng(5).random((2, 70, 60), dtype=np.float32)
    image[1, -3, -3] = 9.0  # only the last region of the last sample reads it
    zarr.create_array(store=str(tmp_path / "in.zarr"), data=image)
    out_path = tmp_path / "out.zarr"
    with pytest.raises(RuntimeError, match="the run is stopped here") as info:
        run_distributed(dist_models.FailOnValue(9.0), str(tmp_path / "in.zarr"), out=out_path, retries=0, **ARGS)
    assert any("resume=True" in note for note in info.value.__notes__)
    record = dict(zarr.open_array(str(out_path)).attrs)[ATTRIBUTE]
    done = decode_ranges(record["done"])
    assert not record["complete"] and 0 < len(done) < record["n_tasks"]
    assert (tmp_path / "out.zarr.incomplete").exists()

    with pytest.raises(FileExistsError, match="resume=True"):
        run_distributed(dist_models.affine, str(tmp_path / "in.zarr"), out=out_path, **ARGS)
    out, stats = run_distributed(dist_models.affine, str(tmp_path / "in.zarr"), out=out_path, resume=True, **ARGS)
    assert stats.n_skipped == len(done) and stats.n_run == stats.n_tasks - len(done)
    reference = cupatch.predict_tiled(dist_models.affine, image, axes="SYX", tile_size=32, overlaps=8, progress=False)
    np.testing.assert_array_equal(out[...], reference)
    assert dict(out.attrs)[ATTRIBUTE]["complete"]
    assert not (tmp_path / "out.zarr.incomplete").exists()

    _, again = run_distributed(dist_models.affine, str(tmp_path / "in.zarr"), out=out_path, resume=True, **ARGS)
    assert again.n_run == 0 and again.n_skipped == again.n_tasks  # nothing left to do


def test_resume_refuses_other_settings(client, source, tmp_path):
    _, path = source
    run_distributed(dist_models.affine, path, out=tmp_path / "out.zarr", **ARGS)
    with pytest.raises(ValueError, match="different settings.*tile"):
        run_distributed(dist_models.affine, path, out=tmp_path / "out.zarr", resume=True, **{**ARGS, "tile_size": 40})


def test_out_missing(client, source):
    with pytest.raises(TypeError, match="out is required"):
        predict_tiled(dist_models.affine, source[1], **ARGS)


def test_out_not_zarr(client, source, tmp_path):
    with pytest.raises(ValueError, match="must be a .zarr path"):
        predict_tiled(dist_models.affine, source[1], out=tmp_path / "out.tif", **ARGS)


def test_out_exists_without_overwrite(client, source, tmp_path):
    (tmp_path / "out.zarr").mkdir()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        predict_tiled(dist_models.affine, source[1], out=tmp_path / "out.zarr", **ARGS)
    out = predict_tiled(dist_models.affine, source[1], out=tmp_path / "out.zarr", overwrite=True, **ARGS)
    assert out.shape == source[0].shape


def test_out_is_the_input(client, source):
    with pytest.raises(ValueError, match="would overwrite the input"):
        predict_tiled(dist_models.affine, source[1], out=source[1], overwrite=True, **ARGS)


def test_factory_failure_carries_worker_traceback(client, source, tmp_path):
    with pytest.raises(ModelFactoryError) as info:
        predict_tiled("dist_models:failing_factory", source[1], out=tmp_path / "out.zarr", retries=0, **ARGS)
    message = str(info.value)
    assert "failed on worker tcp://" in message and "Traceback" in message
    assert "boom: the weights file is missing" in message and "failing_factory" in message
    assert not (tmp_path / "out.zarr").exists()  # reported before any output was created


def test_factory_string_malformed(client, source, tmp_path):
    with pytest.raises(ValueError, match="module:callable"):
        predict_tiled("dist_models.failing_factory", source[1], out=tmp_path / "out.zarr", **ARGS)


def test_unpicklable_model_names_the_factory(client, source, tmp_path):
    with pytest.raises(TypeError, match="cannot be sent to the workers.*factory"):
        predict_tiled(dist_models.Unpicklable(), source[1], out=tmp_path / "out.zarr", **ARGS)


def test_numpy_data_is_refused_with_the_ways_to_send_it(client, source, tmp_path):
    with pytest.raises(TypeError, match=r"in-memory NumPy array.*zarr.*dask.array.from_array"):
        predict_tiled(dist_models.affine, source[0], out=tmp_path / "out.zarr", **ARGS)
    with pytest.raises(TypeError, match=r"data\[1\] is an in-memory NumPy"):
        predict_tiled(dist_models.affine, [source[1], source[0]], out=[tmp_path / "a.zarr", tmp_path / "b.zarr"], **ARGS)


def test_single_process_argument_checks_apply(client, source, tmp_path):
    with pytest.raises(ValueError, match="overlap"):
        predict_tiled(dist_models.affine, source[1], out=tmp_path / "o.zarr", **{**ARGS, "overlaps": 40})
    with pytest.raises(ValueError, match="blend"):
        predict_tiled(dist_models.affine, source[1], out=tmp_path / "o.zarr", blend="nope", **ARGS)
    with pytest.raises(ValueError, match="device"):
        predict_tiled(dist_models.affine, source[1], out=tmp_path / "o.zarr", device="tpu", **ARGS)
    with pytest.raises(ValueError, match="retries"):
        predict_tiled(dist_models.affine, source[1], out=tmp_path / "o.zarr", retries=-1, **ARGS)
    assert not (tmp_path / "o.zarr").exists()


def test_compression_and_unsupported_options(client, source, tmp_path):
    out = predict_tiled(dist_models.affine, source[1], out=tmp_path / "z.zarr", compression="zlib", **ARGS)
    assert "gzip" in str(out.compressors).lower()
    np.testing.assert_array_equal(out[...], source[0] * 2 + 1)
    with pytest.raises(NotImplementedError, match="skip= as a mask only"):
        predict_tiled(dist_models.affine, source[1], out=tmp_path / "s.zarr", skip=lambda t: t.max() < 0, **ARGS)
    with pytest.raises(NotImplementedError, match="OME-Zarr"):
        predict_tiled(dist_models.affine, source[1], out=tmp_path / "s.ome.zarr", **ARGS)
    assert not (tmp_path / "s.zarr").exists()
