"""Region reads: only the touched chunks, the original axis order, the chunk cache, argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from cupatch.stacks import LazyArrayStack, as_stack, reshape_array

from .helpers import axes_data, expected_region


class _CountingArray:
    """Array-like that records which index tuples were read."""

    def __init__(self, array):
        self._array, self.reads = array, []
        self.shape, self.dtype = array.shape, array.dtype

    def __getitem__(self, index):
        self.reads.append(index)
        return self._array[index]



def test_zarr_reads_only_touched_chunks(tmp_path):
    a = axes_data("ZYX")
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
    a = axes_data("XCSYT")
    counting = _CountingArray(a)
    stack = LazyArrayStack(counting, "XCSYT")
    got = stack.read_region(3, (1, 2), (3, 4), channels=[1])
    np.testing.assert_array_equal(got, expected_region(reshape_array(a, "XCSYT"), 3, (1, 2), (3, 4), [1]))
    (index,) = counting.reads
    assert index[2] == 1 and index[4] == 1  # S = 3 // 2, T = 3 % 2
    assert index[0] == slice(2, 6) and index[3] == slice(1, 4)



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
    a = axes_data("ZYX")
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
        np.testing.assert_array_equal(stack.read_region(0, coords, (3, 5, 6)), expected_region(sc, 0, coords, (3, 5, 6)))
    # disabled cache: every read goes to the store, same values
    monkeypatch.setattr(zarr_stack, "chunk_cache", zarr_stack.ChunkCache(max_bytes=0))
    twice = _count_chunk_fetches(arr.store, lambda: [stack.read_region(0, (0, 0, 2), (1, 4, 4)) for _ in range(2)])
    assert len(twice) == 4
    np.testing.assert_array_equal(stack.read_region(0, (2, 3, 5), (3, 5, 6)), expected_region(sc, 0, (2, 3, 5), (3, 5, 6)))
