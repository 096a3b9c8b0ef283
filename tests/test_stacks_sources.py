"""Image stacks: in-memory, TIFF and Zarr sources, placement and region reads."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr
from conftest import HAS_GPU, requires_gpu, to_numpy

from cupatch.stacks import (
    ArrayStack,
    LazyArrayStack,
    TiffStack,
    ZarrStack,
    as_stack,
    as_stacks,
    reshape_array,
)

SIZES = {"S": 3, "T": 2, "C": 3, "Z": 5, "Y": 11, "X": 13}
AXES_ORDERS = ["YX", "XYS", "SXYC", "CYXT", "CXYTS", "XCSYT", "ZYX", "TZCYX"]


def _data(axes, dtype=np.uint16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 60000, [SIZES[a] for a in axes]).astype(dtype)


def _expected_region(sc, sample_idx, coords, size, channels=None):
    """reshape + slice + zero pad, written independently of the stack code."""
    sample = sc[sample_idx]
    if channels is not None:
        sample = sample[channels]
    out = np.zeros((sample.shape[0], *size), sc.dtype)
    for idx in np.ndindex(*size):
        src = tuple(c + i for c, i in zip(coords, idx))
        if all(0 <= s < n for s, n in zip(src, sample.shape[1:])):
            out[(slice(None), *idx)] = sample[(slice(None), *src)]
    return out


def _regions_to_check(stack):
    ndim = len(stack.spatial_shape)
    size = (4,) * ndim
    coords_list = [(0,) * ndim, (2,) * ndim, tuple(n - 2 for n in stack.spatial_shape), (-2,) * ndim,
                   tuple(n + 3 for n in stack.spatial_shape)]
    return [(s, c, size) for s in {0, stack.n_samples - 1} for c in coords_list]


def _make_source(kind, a, axes, tmp_path):
    if kind == "array":
        return a
    if kind == "tiff":
        path = tmp_path / "img.tif"
        tifffile.imwrite(path, a, photometric="minisblack")
        return path
    if kind == "tiff-zlib":
        path = tmp_path / "img.tiff"
        tifffile.imwrite(path, a, photometric="minisblack", compression="zlib", tile=(16, 16) if a.shape[-1] >= 16 else None)
        return path
    if kind == "zarr":
        path = tmp_path / "store.zarr"
        chunks = tuple(max(1, n // 2) for n in a.shape)
        arr = zarr.create_array(str(path), shape=a.shape, chunks=chunks, dtype=a.dtype)
        arr[...] = a
        return path
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["array", "tiff", "tiff-zlib", "zarr"])
@pytest.mark.parametrize("axes", AXES_ORDERS)
def test_round_trip_any_axis_order(kind, axes, tmp_path):
    a = _data(axes)
    stack = as_stack(_make_source(kind, a, axes, tmp_path), axes)
    sc = reshape_array(a, axes)
    assert stack.data_shape == sc.shape
    assert stack.original_axes == axes and stack.original_data_shape == a.shape
    assert stack.dtype == np.uint16
    for sample_idx, coords, size in _regions_to_check(stack):
        got = stack.read_region(sample_idx, coords, size)
        np.testing.assert_array_equal(got, _expected_region(sc, sample_idx, coords, size))
        if stack.n_channels > 1:
            got = stack.read_region(sample_idx, coords, size, channels=[2, 0])
            np.testing.assert_array_equal(got, _expected_region(sc, sample_idx, coords, size, [2, 0]))
    # placing the stack in memory keeps the stored dtype and gives the reshaped data
    host = stack.to_device("cpu")
    assert host.array.dtype == np.uint16
    np.testing.assert_array_equal(np.asarray(host.array), sc)


def test_sources_and_metadata(tmp_path):
    a = _data("SYX")
    assert as_stack(a, "SYX").source == "array"
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, a, photometric="minisblack")
    assert as_stack(path, "SYX").source == str(path)
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    arr = group.create_array("b", shape=a.shape, chunks=(1, 8, 8), shards=(1, 16, 16), dtype=a.dtype)
    arr[...] = a
    group.create_array("a", shape=(6, 6), chunks=(3, 3), dtype="float32")
    stack = ZarrStack(arr, "SYX")
    assert stack.source == f"file://{tmp_path / 'g.zarr'}/b"
    assert stack.additional_metadata == {"chunks": (1, 8, 8), "shards": (1, 16, 16)}
    unsharded = as_stacks(tmp_path / "g.zarr" / "a", "YX")[0]
    assert unsharded.additional_metadata == {"chunks": (3, 3)}


def test_zarr_group_expands_sorted_and_uri(tmp_path):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    for name, value in [("b", 2), ("a", 1), ("c", 3)]:
        group.create_array(name, shape=(8, 9), chunks=(4, 4), dtype="uint8")[...] = value
    for src in [tmp_path / "g.zarr", f"file://{tmp_path}/g.zarr", group]:
        stacks = as_stacks(src, "YX")
        assert [s.source.rsplit("/", 1)[-1] for s in stacks] == ["a", "b", "c"]
        assert [int(s.read_region(0, (0, 0), (1, 1))[0, 0, 0]) for s in stacks] == [1, 2, 3]
    single = as_stacks(f"file://{tmp_path}/g.zarr/c", "YX")
    assert len(single) == 1 and int(single[0].read_sample(0).max()) == 3
    with pytest.raises(ValueError, match=r"holds 3 Zarr arrays \(a, b, c\); name one \(e.g. '.*g.zarr/a'\) or use as_stacks"):
        as_stack(tmp_path / "g.zarr", "YX")
    assert as_stacks([tmp_path / "g.zarr", np.zeros((8, 9), np.uint8)], "YX")[3].source == "array"


class _CountingArray:
    """Array-like that records which index tuples were read."""

    def __init__(self, array):
        self._array, self.reads = array, []
        self.shape, self.dtype = array.shape, array.dtype

    def __getitem__(self, index):
        self.reads.append(index)
        return self._array[index]


def test_zarr_reads_only_touched_chunks(tmp_path):
    a = _data("ZYX")
    arr = zarr.create_array(str(tmp_path / "z.zarr"), shape=a.shape, chunks=(1, 4, 4), dtype=a.dtype)
    arr[...] = a
    stack = as_stack(tmp_path / "z.zarr", "ZYX")
    # count chunk keys fetched from the store
    fetched = []
    store = arr.store
    original_get = type(store).get

    async def counting_get(self, key, *args, **kwargs):
        if "/c/" in key or key.startswith("c/"):
            fetched.append(key)
        return await original_get(self, key, *args, **kwargs)

    try:
        type(store).get = counting_get
        stack.read_region(0, (1, 1, 3), (2, 3, 3))
    finally:
        type(store).get = original_get
    # z 1..2 (2 chunks), y 1..3 (1 chunk), x 3..5 (2 chunks) -> 4 of the 60 chunks
    assert len(set(fetched)) == 4


def test_lazy_array_stack_reads_in_original_order():
    a = _data("XCSYT")
    counting = _CountingArray(a)
    stack = LazyArrayStack(counting, "XCSYT")
    got = stack.read_region(3, (1, 2), (3, 4), channels=[1])
    np.testing.assert_array_equal(got, _expected_region(reshape_array(a, "XCSYT"), 3, (1, 2), (3, 4), [1]))
    (index,) = counting.reads
    assert index[2] == 1 and index[4] == 1  # S = 3 // 2, T = 3 % 2
    assert index[0] == slice(2, 6) and index[3] == slice(1, 4)


def test_placement_auto_and_disk(tmp_path):
    a = _data("TYX")
    assert isinstance(as_stack(a, "TYX"), ArrayStack)
    assert as_stack(a, "TYX").array.base is not None or np.shares_memory(as_stack(a, "TYX").array, a)
    disk = as_stack(a, "TYX", placement="disk")
    assert disk.placement == "disk" and disk.array is None
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, a, photometric="minisblack")
    mapped = as_stack(path, "TYX")
    assert mapped.placement == "cpu" and isinstance(mapped.array, np.memmap)
    assert as_stack(path, "TYX", placement="disk").placement == "disk"
    cpath = tmp_path / "c.tif"
    tifffile.imwrite(cpath, a, photometric="minisblack", compression="zlib")
    lazy = as_stack(cpath, "TYX")
    assert isinstance(lazy, TiffStack) and lazy.placement == "disk" and not lazy.memory_mapped
    loaded = as_stack(cpath, "TYX", placement="cpu")
    np.testing.assert_array_equal(loaded.array, reshape_array(a, "TYX"))


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        as_stack(tmp_path / "missing.tif", "YX")
    with pytest.raises(FileNotFoundError, match="missing.zarr"):
        as_stack(tmp_path / "missing.zarr", "YX")
    with pytest.raises(ValueError, match="unsupported URI scheme 's3'"):
        as_stack("s3://bucket/data.zarr", "YX")  # used to report a mangled local path as missing
    with pytest.raises(FileNotFoundError, match="nothing.png"):
        as_stack(tmp_path / "nothing.png", "YX")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"this is not a tiff file at all")
    with pytest.raises(ValueError, match="cannot read TIFF file .*bad.tif"):
        as_stack(bad, "YX")
    png = tmp_path / "x.png"
    png.write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported file type"):
        as_stack(png, "YX")
    with pytest.raises(TypeError, match="unsupported dtype complex64"):
        as_stack(np.zeros((4, 4), np.complex64), "YX")
    with pytest.raises(TypeError, match="unsupported dtype bool"):
        as_stack(np.zeros((4, 4), bool), "YX")
    with pytest.raises(ValueError, match="unknown axis"):
        as_stack(np.zeros((4, 4)), "YQ")
    with pytest.raises(ValueError, match="3 letters but the data has 2"):
        as_stack(np.zeros((4, 4)), "SYX")
    with pytest.raises(TypeError, match="cannot build an image stack from dict"):
        as_stack({}, "YX")
    with pytest.raises(ValueError, match="placement must be one of"):
        as_stack(np.zeros((4, 4)), "YX", placement="ram")
    stack = as_stack(np.zeros((2, 3, 4, 4), np.float32), "SCYX")
    with pytest.raises(ValueError, match="Channel index 3 .* out of bounds"):
        stack.read_region(0, (0, 0), (2, 2), channels=[0, 3])
    with pytest.raises(ValueError, match="must not be empty"):
        stack.read_region(0, (0, 0), (2, 2), channels=[])
    with pytest.raises(IndexError, match="sample_idx 2"):
        stack.read_region(2, (0, 0), (2, 2))
    with pytest.raises(ValueError, match="must both have 2 entries"):
        stack.read_region(0, (0, 0, 0), (2, 2, 2))
    with pytest.raises(ValueError, match="do not match"):
        as_stack(stack, "CSYX")


def test_read_region_refuses_floats_and_bools():
    stack = as_stack(np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4), "SCYX")
    with pytest.raises(TypeError, match="coords must contain ints"):
        stack.read_region(0, (0.5, 0), (2, 2))
    with pytest.raises(TypeError, match="size must contain ints"):
        stack.read_region(0, (0, 0), (2.9, 2))
    with pytest.raises(TypeError, match="sample_idx must be an integer"):
        stack.read_region(1.0, (0, 0), (2, 2))
    with pytest.raises(TypeError, match="sample_idx must be an integer"):
        stack.read_region(True, (0, 0), (2, 2))
    for channels in ([1.0], [True], 1.5):
        with pytest.raises(TypeError, match="channels must"):
            stack.read_region(0, (0, 0), (2, 2), channels=channels)
    row = np.array([1, 0, 1, 2], np.int64)  # a spec-table row, as the dataset passes it
    np.testing.assert_array_equal(stack.read_region(row[0], row[2:], (2, 2)), stack.array[1, :, 1:3, 2:4])


@pytest.mark.skipif(HAS_GPU, reason="checks the error raised when no GPU is usable")
def test_gpu_placement_without_gpu():
    with pytest.raises(RuntimeError, match="GPU was requested but none is usable"):
        as_stack(np.zeros((4, 4), np.uint16), "YX", placement="gpu")


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("axes", ["SYX", "CYXT", "XCSYT"])
def test_gpu_placement_keeps_dtype(axes, tmp_path):
    import cupy

    a = _data(axes)
    for src in [a, _make_source("zarr", a, axes, tmp_path)]:
        stack = as_stack(src, axes, placement="gpu")
        assert isinstance(stack.array, cupy.ndarray) and stack.array.dtype == np.uint16
        np.testing.assert_array_equal(to_numpy(stack.array), reshape_array(a, axes))
        got = stack.read_region(0, (-1, 2), (4, 4), channels=[0])
        assert isinstance(got, np.ndarray)
        np.testing.assert_array_equal(got, _expected_region(reshape_array(a, axes), 0, (-1, 2), (4, 4), [0]))
        assert stack.to_device("cpu").array.dtype == np.uint16


def _count_chunk_fetches(store, action):
    fetched = []
    original_get = type(store).get

    async def counting_get(self, key, *args, **kwargs):
        if "/c/" in key or key.startswith("c/"):
            fetched.append(key)
        return await original_get(self, key, *args, **kwargs)

    type(store).get = counting_get
    try:
        action()
    finally:
        type(store).get = original_get
    return fetched


def test_zarr_chunk_cache(tmp_path, monkeypatch):
    from cupatch.stacks import zarr_stack

    monkeypatch.setattr(zarr_stack, "chunk_cache", zarr_stack.ChunkCache(max_bytes=3 * 4 * 4 * 2))
    a = _data("ZYX")
    arr = zarr.create_array(str(tmp_path / "z.zarr"), shape=a.shape, chunks=(1, 4, 4), dtype=a.dtype)
    arr[...] = a
    stack = as_stack(tmp_path / "z.zarr", "ZYX")
    sc = reshape_array(a, "ZYX")
    # first read: 2 chunks (x 2..5 spans chunks 0 and 1); the same read again: none
    first = _count_chunk_fetches(arr.store, lambda: stack.read_region(0, (0, 0, 2), (1, 4, 4)))
    again = _count_chunk_fetches(arr.store, lambda: stack.read_region(0, (0, 0, 2), (1, 4, 4)))
    assert len(first) == 2 and again == []
    # the cache never holds more than max_bytes (3 chunks of 4x4 uint16): older chunks go
    stack.read_region(0, (1, 0, 0), (1, 11, 13))
    assert zarr_stack.chunk_cache.nbytes <= 3 * 4 * 4 * 2
    assert len(_count_chunk_fetches(arr.store, lambda: stack.read_region(0, (0, 0, 2), (1, 4, 4)))) == 2
    for coords in [(0, 0, 0), (2, 3, 5), (4, 9, 11), (-1, -2, 10)]:
        np.testing.assert_array_equal(stack.read_region(0, coords, (3, 5, 6)), _expected_region(sc, 0, coords, (3, 5, 6)))
    # disabled cache: every read goes to the store, same values
    monkeypatch.setattr(zarr_stack, "chunk_cache", zarr_stack.ChunkCache(max_bytes=0))
    twice = _count_chunk_fetches(arr.store, lambda: [stack.read_region(0, (0, 0, 2), (1, 4, 4)) for _ in range(2)])
    assert len(twice) == 4
    np.testing.assert_array_equal(stack.read_region(0, (2, 3, 5), (3, 5, 6)), _expected_region(sc, 0, (2, 3, 5), (3, 5, 6)))


def test_gpu_upload_copies_from_pageable_memory_on_the_current_stream(monkeypatch):
    """Uploads go straight from the host array, on CuPy's current stream: ``cupy.asarray``
    would stage the whole stack through CuPy's pinned pool, which keeps it cached."""
    import sys
    import types

    import cupatch.stacks.placement as placement
    from cupatch.stacks import as_stack

    stream = object()
    copies = []

    class DeviceArray:
        __module__ = "cupy.stand_in"

        def __init__(self, shape, dtype):
            self.shape, self.dtype, self.data = tuple(shape), np.dtype(dtype), None
            self.ndim = len(self.shape)

        def set(self, host, stream=None):
            assert isinstance(host, np.ndarray) and host.flags.c_contiguous
            copies.append(stream)
            self.data = host.copy()

    def asarray(*args, **kwargs):
        raise AssertionError("cupy.asarray stages through the pinned memory pool")

    fake = types.SimpleNamespace(
        empty=DeviceArray, asarray=asarray, cuda=types.SimpleNamespace(get_current_stream=lambda: stream)
    )
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(placement, "require_gpu", lambda: None)
    host = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 4, 5, 3)  # SYXC: the SC(Z)YX view is strided
    stack = as_stack(host, "SYXC")
    on_gpu = stack.to_device("gpu")
    assert copies == [stream]
    np.testing.assert_array_equal(on_gpu.array.data, np.moveaxis(host, -1, 1))
    assert on_gpu.array.dtype == np.uint16
    empty = placement.upload_to_gpu(np.zeros((0, 3), np.float32))
    assert empty.shape == (0, 3) and copies == [stream]  # nothing to copy


@pytest.mark.gpu
@requires_gpu
def test_gpu_upload_is_ordered_on_the_current_stream():
    import cupy

    from cupatch.stacks.placement import upload_to_gpu

    host = np.random.default_rng(3).integers(0, 60000, (3, 5, 64, 48), dtype=np.uint16)
    expected = host[:, :, ::2].copy()
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        busy = cupy.zeros((1 << 22,), dtype=cupy.float32)
        for _ in range(20):  # the upload queues behind this work
            busy = cupy.sin(busy) + 1
        device_array = upload_to_gpu(host[:, :, ::2])  # strided source
        host[...] = 0  # the source may change once the call returned
        got = device_array.get()  # on the same stream: after the upload
    np.testing.assert_array_equal(got, expected)
    assert device_array.flags.c_contiguous and device_array.dtype == np.uint16
