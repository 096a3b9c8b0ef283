"""Writers (:mod:`cupatch.inference.writers`): Zarr, ``.npy`` and TIFF outputs, chunk-aligned writes,
the background thread."""

from __future__ import annotations

import numpy as np
import pytest

from cupatch.inference import predict_tiled

from .helpers import content_dependent, identity, scaled


@pytest.mark.parametrize("blend", ["crop", "linear"])
def test_zarr_path_streams_equal_to_in_memory(tmp_path, blend):
    zarr = pytest.importorskip("zarr")

    rng = np.random.default_rng(9)
    image = rng.random((20, 45, 37, 2), dtype=np.float32)
    kwargs = dict(axes="ZYXC", tile_size=(8, 16, 16), overlaps=(2, 4, 4), blend=blend, batch_size=4, progress=False)
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

    from cupatch.inference import writers

    writes = []
    original = writers.ArrayWriter.write

    def recording(self, sample_idx, a, b, block):
        writes.append((sample_idx, a, b))
        return original(self, sample_idx, a, b, block)

    monkeypatch.setattr(writers.ArrayWriter, "write", recording)
    rng = np.random.default_rng(21)
    image = rng.random((2, 203, 50), dtype=np.float32)
    target = zarr.create_array(store=str(tmp_path / "c.zarr"), shape=image.shape, chunks=(1, 20, 50), dtype="float32")
    predict_tiled(scaled, image, axes="SYX", tile_size=32, overlaps=8, blend=blend, batch_size=3, out=target, progress=False)
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
    from cupatch.inference.writers import ZARR_CHUNK_BYTES, zarr_chunks

    assert zarr_chunks((8192, 8192), "YX", 224, "Y") == (224, 1024)
    chunks = zarr_chunks((2, 3, 256, 1024, 1024), "TCZYX", 24, "Z")
    assert chunks[:3] == (1, 3, 24)
    assert np.prod(chunks) * 4 <= ZARR_CHUNK_BYTES
    assert zarr_chunks((10, 20), "YX", 56, "Y") == (10, 20)


def test_zarr_array_out_uses_its_chunks(tmp_path):
    zarr = pytest.importorskip("zarr")

    rng = np.random.default_rng(10)
    image = rng.random((90, 40), dtype=np.float32)
    target = zarr.create_array(store=str(tmp_path / "given.zarr"), shape=(90, 40), chunks=(10, 40), dtype="float32")
    expected = predict_tiled(scaled, image, axes="YX", tile_size=32, overlaps=8, blend="hann", progress=False)
    predict_tiled(scaled, image, axes="YX", tile_size=32, overlaps=8, blend="hann", out=target, progress=False)
    np.testing.assert_array_equal(target[...], expected)


@pytest.mark.parametrize("suffix", [".tif", ".npy"])
def test_file_outputs(tmp_path, suffix):
    tifffile = pytest.importorskip("tifffile")

    rng = np.random.default_rng(11)
    image = rng.random((2, 40, 33), dtype=np.float32)
    expected = predict_tiled(scaled, image, axes="SYX", tile_size=16, overlaps=4, progress=False)
    path = tmp_path / f"pred{suffix}"
    predict_tiled(scaled, image, axes="SYX", tile_size=16, overlaps=4, out=path, progress=False)
    stored = tifffile.imread(path) if suffix == ".tif" else np.load(path)
    np.testing.assert_array_equal(stored, expected)


def test_write_error_in_the_background_is_raised(tmp_path, monkeypatch):
    from cupatch.inference import writers

    original = writers.ArrayWriter.write
    calls = []

    def failing(self, sample_idx, a, b, block):
        calls.append(a)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(self, sample_idx, a, b, block)

    monkeypatch.setattr(writers.ArrayWriter, "write", failing)
    image = np.zeros((300, 40), np.float32)
    path = tmp_path / "bg.zarr"
    with pytest.raises(OSError, match="disk full") as info:
        predict_tiled(identity, image, axes="YX", tile_size=16, overlaps=4, batch_size=2, out=path, progress=False)
    assert "bg.zarr" in " ".join(getattr(info.value, "__notes__", []))
    assert not any(t.name == "cupatch-writer" for t in __import__("threading").enumerate())


def test_every_output_suffix_has_a_writer():
    from cupatch.inference.destinations import OUT_SUFFIXES
    from cupatch.inference.writers import FILE_WRITERS

    assert sorted(FILE_WRITERS) == sorted(OUT_SUFFIXES)
