"""Placement: auto / disk / cpu / gpu, the stored dtype kept, stream-ordered uploads from pageable memory."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from conftest import HAS_GPU, requires_gpu, to_numpy

from cupatch.stacks import ArrayStack, TiffStack, as_stack, reshape_array

from .helpers import axes_data, expected_region, make_source


def test_placement_auto_and_disk(tmp_path):
    a = axes_data("TYX")
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



@pytest.mark.skipif(HAS_GPU, reason="checks the error raised when no GPU is usable")
def test_gpu_placement_without_gpu():
    with pytest.raises(RuntimeError, match="GPU was requested but none is usable"):
        as_stack(np.zeros((4, 4), np.uint16), "YX", placement="gpu")



@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("axes", ["SYX", "CYXT", "XCSYT"])
def test_gpu_placement_keeps_dtype(axes, tmp_path):
    import cupy

    a = axes_data(axes)
    for src in [a, make_source("zarr", a, axes, tmp_path)]:
        stack = as_stack(src, axes, placement="gpu")
        assert isinstance(stack.array, cupy.ndarray) and stack.array.dtype == np.uint16
        np.testing.assert_array_equal(to_numpy(stack.array), reshape_array(a, axes))
        got = stack.read_region(0, (-1, 2), (4, 4), channels=[0])
        assert isinstance(got, np.ndarray)
        np.testing.assert_array_equal(got, expected_region(reshape_array(a, axes), 0, (-1, 2), (4, 4), [0]))
        assert stack.to_device("cpu").array.dtype == np.uint16



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
