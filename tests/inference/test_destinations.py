"""Destination safety (:mod:`cupatch.inference.destinations`): outputs that would lose data or cannot
be written are refused before any work."""

from __future__ import annotations

import os

import numpy as np
import pytest

from cupatch.inference import predict_tiled

from .helpers import IMAGE, identity, scaled


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    path = tmp_path / "pred.npy"
    np.save(path, np.ones(3))
    with pytest.raises(FileExistsError, match="overwrite"):
        predict_tiled(identity, IMAGE, axes="YX", tile_size=16, overlaps=4, out=path, progress=False)
    np.testing.assert_array_equal(np.load(path), np.ones(3))  # untouched
    predict_tiled(scaled, IMAGE, axes="YX", tile_size=16, overlaps=4, out=path, overwrite=True, progress=False)
    np.testing.assert_array_equal(np.load(path), np.ones((40, 40)))


def test_output_may_not_be_the_input(tmp_path):
    zarr = pytest.importorskip("zarr")

    zarr.create_array(store=str(tmp_path / "in.zarr"), data=np.zeros((40, 40), np.float32))
    for out in (tmp_path / "in.zarr", str(tmp_path / "in.zarr")):
        with pytest.raises(ValueError, match="overwrite the input"):
            predict_tiled(
                identity, str(tmp_path / "in.zarr"), axes="YX", tile_size=16, overlaps=4, out=out, overwrite=True,
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
        predict_tiled(scaled, stack, axes="YX", tile_size=16, overlaps=4, out=path, overwrite=True, progress=False)
    np.testing.assert_array_equal(tifffile.imread(path), image)


def test_output_may_not_be_a_memory_mapped_input(tmp_path):
    from cupatch.stacks import as_stack

    path = tmp_path / "in.npy"
    np.save(path, np.ones((40, 40), np.float32))
    mapped = np.load(path, mmap_mode="r")
    for data in (mapped, as_stack(mapped, "YX"), str(path)):
        with pytest.raises(ValueError, match="overwrite the input"):
            predict_tiled(scaled, data, axes="YX", tile_size=16, overlaps=4, out=path, overwrite=True, progress=False)
    np.testing.assert_array_equal(np.load(path), np.ones((40, 40), np.float32))


def test_output_array_may_not_share_storage_with_the_input(tmp_path):
    image = np.arange(40 * 40, dtype=np.float32).reshape(40, 40)
    original = image.copy()
    for out in (image, image[:]):
        with pytest.raises(ValueError, match="shares memory or storage with an input"):
            predict_tiled(scaled, image, axes="YX", tile_size=16, overlaps=4, out=out, progress=False)
    np.testing.assert_array_equal(image, original)
    zarr = pytest.importorskip("zarr")
    stored = zarr.create_array(store=str(tmp_path / "in.zarr"), data=original)
    reopened = zarr.open_array(str(tmp_path / "in.zarr"), mode="r+")
    for data in (stored, str(tmp_path / "in.zarr")):
        with pytest.raises(ValueError, match="shares memory or storage with an input|overwrite the input"):
            predict_tiled(scaled, data, axes="YX", tile_size=16, overlaps=4, out=reopened, progress=False)
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
                counting, images, axes="YX", tile_size=16, overlaps=4, out=[path, tmp_path / "." / "pred.npy"],
                overwrite=overwrite, progress=False,
            )  # fmt: skip
    shared = np.zeros((40, 40), np.float32)
    with pytest.raises(ValueError, match="same destination"):
        predict_tiled(counting, images, axes="YX", tile_size=16, overlaps=4, out=[shared, shared], progress=False)
    assert not calls and not path.exists()


def test_read_only_output_array_is_refused_before_any_work():
    out = np.zeros((40, 40), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is a read-only"):
        predict_tiled(identity, IMAGE, axes="YX", tile_size=16, overlaps=4, out=out, progress=False)


def test_read_only_zarr_output_is_refused_before_any_work(tmp_path):
    zarr = pytest.importorskip("zarr")

    zarr.create_array(store=str(tmp_path / "out.zarr"), shape=(40, 40), dtype="float32")
    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    with pytest.raises(ValueError, match="out is a read-only Zarr array"):
        predict_tiled(identity, IMAGE, axes="YX", tile_size=16, overlaps=4, out=out, progress=False)


def test_unwritable_or_unsupported_output(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        predict_tiled(identity, IMAGE, axes="YX", tile_size=16, overlaps=4, out=tmp_path / "no" / "x.zarr", progress=False)
    with pytest.raises(ValueError, match="must end in"):
        predict_tiled(identity, IMAGE, axes="YX", tile_size=16, overlaps=4, out=tmp_path / "x.png", progress=False)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into read-only directories")
def test_read_only_directory_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            predict_tiled(identity, IMAGE, axes="YX", tile_size=16, overlaps=4, out=locked / "x.zarr", progress=False)
    finally:
        locked.chmod(0o700)


def test_unwritable_directory_is_refused_before_any_work(tmp_path, monkeypatch):
    from cupatch.inference import destinations

    calls = []
    monkeypatch.setattr(destinations.os, "access", lambda path, mode: False)
    with pytest.raises(PermissionError, match="not writable"):
        predict_tiled(lambda x: calls.append(1) or x, IMAGE, axes="YX", tile_size=16, overlaps=4, out=tmp_path / "x.npy", progress=False)
    assert not calls and not (tmp_path / "x.npy").exists()


def _saved_image(tmp_path):
    image = np.arange(40 * 40, dtype=np.float32).reshape(40, 40)
    path = tmp_path / "in.npy"
    np.save(path, image)
    return image, path


def test_output_memory_map_of_the_input_file_is_refused(tmp_path):
    # out maps the very file being read: refused by file identity, however it is spelled or held
    image, path = _saved_image(tmp_path)
    (tmp_path / "link.npy").symlink_to(path)
    os.link(path, tmp_path / "hard.npy")
    spellings = (str(path), path, tmp_path / "link.npy", str(tmp_path / "hard.npy"), tmp_path / "." / "in.npy")
    for data in (*spellings, np.load(path, mmap_mode="r"), [np.load(path, mmap_mode="r")]):
        for out in (
            np.load(path, mmap_mode="r+"),
            np.asarray(np.load(path, mmap_mode="r+")),  # a plain-ndarray view of the map
            np.load(tmp_path / "link.npy", mmap_mode="r+")[:, :],
        ):
            outs = [out] if isinstance(data, list) else out
            with pytest.raises(ValueError, match="shares memory or storage with an input"):
                predict_tiled(scaled, data, axes="YX", tile_size=16, overlaps=4, out=outs, progress=False)
    np.testing.assert_array_equal(np.load(path), image)


def test_output_memory_map_of_the_input_tiff_is_refused(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    from cupatch.stacks import as_stack

    image = np.arange(40 * 40, dtype=np.float32).reshape(40, 40)
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, image)
    for data in (str(path), as_stack(str(path), axes="YX"), as_stack(str(path), axes="YX", placement="disk")):
        with pytest.raises(ValueError, match=r"shares memory or storage with an input \(.*in\.tif"):
            predict_tiled(
                scaled, data, axes="YX", tile_size=16, overlaps=4, out=tifffile.memmap(path, mode="r+"), progress=False
            )
    np.testing.assert_array_equal(tifffile.imread(path), image)


def test_output_path_that_is_a_hard_link_to_the_input_is_refused(tmp_path):
    image, path = _saved_image(tmp_path)
    os.link(path, tmp_path / "hard.npy")
    with pytest.raises(ValueError, match="would overwrite the input"):
        predict_tiled(
            scaled, str(path), axes="YX", tile_size=16, overlaps=4, out=tmp_path / "hard.npy", overwrite=True,
            progress=False,
        )  # fmt: skip
    np.testing.assert_array_equal(np.load(path), image)


def test_output_zarr_array_on_the_input_store_is_refused(tmp_path):
    zarr = pytest.importorskip("zarr")
    from zarr.storage import MemoryStore

    image = np.arange(40 * 40, dtype=np.float32).reshape(40, 40)
    store = tmp_path / "in.zarr"
    zarr.create_array(store=str(store), name="g/x", data=image)
    (tmp_path / "alias.zarr").symlink_to(store)
    reopened = zarr.open_array(str(tmp_path / "alias.zarr"), path="g/x", mode="r+")
    for data in (str(store / "g" / "x"), f"file://{store}/g/x", zarr.open_array(str(store), path="g/x", mode="r")):
        with pytest.raises(ValueError, match="shares memory or storage with an input"):
            predict_tiled(scaled, data, axes="YX", tile_size=16, overlaps=4, out=reopened, progress=False)
    np.testing.assert_array_equal(zarr.open_array(str(store), path="g/x", mode="r")[:], image)
    # two MemoryStore objects over one dict are one store
    shared: dict = {}
    source = zarr.create_array(store=MemoryStore(shared), name="x", data=image)
    with pytest.raises(ValueError, match="shares memory or storage with an input"):
        out = zarr.open_array(store=MemoryStore(shared), path="x", mode="r+")
        predict_tiled(scaled, source, axes="YX", tile_size=16, overlaps=4, out=out, progress=False)
    np.testing.assert_array_equal(source[:], image)
    # a different array of the same store is a different destination
    other = zarr.create_array(store=MemoryStore(shared), name="y", shape=(40, 40), dtype="float32")
    predict_tiled(scaled, source, axes="YX", tile_size=16, overlaps=4, out=other, progress=False)
    np.testing.assert_array_equal(other[:], image * 2 + 1)


def test_output_memory_maps_of_one_file_for_two_images_are_refused(tmp_path):
    _, path = _saved_image(tmp_path)
    images = [np.zeros((40, 40), np.float32), np.ones((40, 40), np.float32)]
    outs = [np.load(path, mmap_mode="r+"), np.load(tmp_path / "." / "in.npy", mmap_mode="r+")]
    with pytest.raises(ValueError, match=r"out\[0\] and out\[1\] are the same destination"):
        predict_tiled(scaled, images, axes="YX", tile_size=16, overlaps=4, out=outs, progress=False)


def test_separate_output_memory_map_is_accepted(tmp_path):
    image, path = _saved_image(tmp_path)
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.float32, shape=(40, 40))
    predict_tiled(scaled, str(path), axes="YX", tile_size=16, overlaps=4, out=out, progress=False)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), image * 2 + 1)
    np.testing.assert_array_equal(np.load(path), image)


# --------------------------------------------------------------------------------------
# incomplete outputs: marked while written, replaced by the next run without overwrite
# --------------------------------------------------------------------------------------


class _StopAfter:
    """A model that raises ``error`` at its ``n``-th call (after writing has started)."""

    def __init__(self, n: int, error: BaseException):
        self.n, self.error, self.calls = n, error, 0

    def __call__(self, x):
        self.calls += 1
        if self.calls == self.n:
            raise self.error
        return x * 2.0 + 1.0


_TALL = np.zeros((200, 40), np.float32)  # 17 rows of tiles: streams over many batches


def _stop_run(path, error):
    return predict_tiled(
        _StopAfter(6, error), _TALL, axes="YX", tile_size=16, overlaps=4, batch_size=2, out=path, progress=False
    )


@pytest.mark.parametrize("suffix", [".npy", ".tif", ".zarr"])
@pytest.mark.parametrize("error", [KeyboardInterrupt(), ValueError("model failed")], ids=["interrupt", "error"])
def test_stopped_run_leaves_a_marked_output_that_the_next_run_replaces(tmp_path, suffix, error):
    from cupatch.inference.destinations import incomplete_marker, is_own_incomplete

    if suffix == ".tif":
        pytest.importorskip("tifffile")
    if suffix == ".zarr":
        pytest.importorskip("zarr")
    path = tmp_path / f"pred{suffix}"
    with pytest.raises(type(error)):
        _stop_run(path, error)
    marker = incomplete_marker(path)
    assert path.exists() and marker.is_file()
    assert is_own_incomplete(path)
    assert "incomplete" in marker.read_text() and path.name in marker.read_text()
    # The next run replaces it without overwrite=True, and leaves no marker.
    predict_tiled(scaled, _TALL, axes="YX", tile_size=16, overlaps=4, out=path, progress=False)
    assert not marker.exists() and not is_own_incomplete(path)
    # Now it is complete: refused again without overwrite.
    with pytest.raises(FileExistsError, match="overwrite"):
        predict_tiled(scaled, _TALL, axes="YX", tile_size=16, overlaps=4, out=path, progress=False)


def test_completed_output_has_no_marker(tmp_path):
    from cupatch.inference.destinations import incomplete_marker

    path = tmp_path / "pred.npy"
    predict_tiled(scaled, IMAGE, axes="YX", tile_size=16, overlaps=4, out=path, progress=False)
    assert not incomplete_marker(path).exists()
    np.testing.assert_array_equal(np.load(path), np.ones((40, 40)))


def test_file_that_replaced_a_marked_output_is_not_replaced_without_overwrite(tmp_path):
    from cupatch.inference.destinations import incomplete_marker, is_own_incomplete

    path = tmp_path / "pred.npy"
    with pytest.raises(KeyboardInterrupt):
        _stop_run(path, KeyboardInterrupt())
    path.unlink()
    np.save(path, np.full(3, 7.0))  # the user's own file, with our stale marker beside it
    assert incomplete_marker(path).exists() and not is_own_incomplete(path)
    with pytest.raises(FileExistsError, match="overwrite"):
        predict_tiled(scaled, IMAGE, axes="YX", tile_size=16, overlaps=4, out=path, progress=False)
    np.testing.assert_array_equal(np.load(path), np.full(3, 7.0))
    predict_tiled(scaled, IMAGE, axes="YX", tile_size=16, overlaps=4, out=path, overwrite=True, progress=False)
    assert not incomplete_marker(path).exists()  # the stale marker went with the old file


def test_a_users_file_named_like_a_marker_is_not_a_marker(tmp_path):
    from cupatch.inference.destinations import incomplete_marker, is_own_incomplete

    path = tmp_path / "pred.npy"
    np.save(path, np.full(3, 7.0))
    fake = incomplete_marker(path)
    fake.write_text("output: pred.npy\nmy notes\n")
    assert not is_own_incomplete(path)
    with pytest.raises(FileExistsError, match="overwrite"):
        predict_tiled(scaled, IMAGE, axes="YX", tile_size=16, overlaps=4, out=path, progress=False)
    # Where the marker would go is someone else's file: refused before any work, even with
    # overwrite, and both files are left as they were.
    with pytest.raises(FileExistsError, match="not a cupatch marker"):
        predict_tiled(scaled, IMAGE, axes="YX", tile_size=16, overlaps=4, out=path, overwrite=True, progress=False)
    path.unlink()
    with pytest.raises(FileExistsError, match="not a cupatch marker"):
        predict_tiled(scaled, IMAGE, axes="YX", tile_size=16, overlaps=4, out=path, progress=False)
    assert fake.read_text() == "output: pred.npy\nmy notes\n" and not path.exists()
