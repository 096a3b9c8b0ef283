"""The GPU dispatch path of cupatch.ops, exercised on the CPU.

A stand-in for CuPy (host arrays posing as device arrays) and stand-ins for the CUDA entry
points (which find the arrays behind the pointers they receive and run the CPU kernels)
check that the Python layer hands the native GPU functions consistent pointers, shapes,
dtype codes, streams and devices, and that results match the reference. The real kernels
are covered by the GPU tests where a GPU exists.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from cupatch import _backend, _core, ops
from cupatch._reference import gather_patches_reference, stitch_blend_reference, stitch_crop_reference
from cupatch._windows import window_table

STREAM_PTR = 0xC0FFEE


class FakeDeviceArray(np.ndarray):
    """Host memory posing as a CuPy array."""

    @property
    def device(self):
        return types.SimpleNamespace(id=0)


def _fake_cupy(registry, allocated_on, current):
    def track(a):
        a = np.asarray(a).view(FakeDeviceArray)
        ptr = a.__array_interface__["data"][0]
        registry[ptr] = a
        allocated_on[ptr] = current.ptr  # like CuPy: allocated and filled on the current stream
        return a

    cuda = types.SimpleNamespace(Device=lambda *a: types.SimpleNamespace(id=0), get_current_stream=lambda: current)
    mod = types.SimpleNamespace(
        __name__="fakecupy",
        cuda=cuda,
        ndarray=FakeDeviceArray,
        float32=np.float32,
        asarray=lambda a, dtype=None: track(np.array(a, dtype=dtype)),
        ascontiguousarray=lambda a, dtype=None: track(np.ascontiguousarray(a, dtype=dtype)),
        empty=lambda shape, dtype=np.float32: track(np.empty(shape, dtype)),
        zeros=lambda shape, dtype=np.float32: track(np.zeros(shape, dtype)),
        ones=lambda shape, dtype=np.float32: track(np.ones(shape, dtype)),
        stack=lambda arrays: track(np.stack([np.asarray(a) for a in arrays])),
        where=lambda *a: track(np.where(*a)),
    )
    return mod


@pytest.fixture
def fake_gpu(monkeypatch):
    registry: dict[int, np.ndarray] = {}
    allocated_on: dict[int, int] = {}
    waits = []  # (waiting stream, stream the event was recorded on)

    class FakeStream:
        ptr = STREAM_PTR

        def record(self):
            return ("event", self.ptr)

        def wait_event(self, event):
            waits.append((self.ptr, event[1]))

    current = FakeStream()
    cupy = _fake_cupy(registry, allocated_on, current)
    calls = []

    def internal(ptr, stream):
        """A table ops.py uploads itself must have been uploaded on the launch stream."""
        assert allocated_on[ptr] == stream, "an internal device table uploaded on another stream was passed"
        return lookup(ptr)

    def lookup(ptr):
        assert ptr in registry, "a pointer that does not belong to a device array was passed"
        return registry[ptr].view(np.ndarray)

    def gather_cuda(sources, n_sources, source_dtype, specs, n_patches, spec_cols, ndim, patch, channels, n_channels,
                    affine, aug, out, out_dtype, stream, device):
        assert stream == current.ptr and device == 0
        table = internal(sources, stream)
        assert table.shape == (n_sources, _core.SOURCE_FIELDS)
        spec_arr = lookup(specs)
        assert spec_arr.shape == (n_patches, spec_cols) and spec_arr.dtype == np.int64 and spec_arr.flags.c_contiguous
        chan = internal(channels, stream)
        assert chan.shape == (n_channels,) and chan.dtype == np.int64
        aff = None if affine == 0 else lookup(affine)
        assert aff is None or (aff.shape == (2, n_channels) and aff.dtype == np.float32 and aff.flags.c_contiguous)
        flags = None if aug == 0 else lookup(aug)
        assert flags is None or (flags.shape == (n_patches,) and flags.dtype == np.uint8)
        calls.append("gather")
        _core.gather_cpu(table, source_dtype, spec_arr, ndim, patch, chan, aff, flags, lookup(out), out_dtype)

    def stitch_cuda(blend):
        def launch(tiles, n_tiles, channels, tile, specs, spec_cols, ndim, outputs, n_outputs, window, window_len, stream,
                   device):
            assert stream == current.ptr and device == 0
            tile_arr = lookup(tiles)
            assert tile_arr.shape[:2] == (n_tiles, channels) and tuple(tile) == ((1,) * (3 - ndim) + tile_arr.shape[2:])
            spec_arr = lookup(specs)
            assert spec_arr.shape == (n_tiles, spec_cols) and spec_arr.dtype == np.int64
            table = internal(outputs, stream)
            assert table.shape == (n_outputs, _core.OUTPUT_FIELDS)
            calls.append("blend" if blend else "crop")
            if blend:
                win = lookup(window)
                assert win.shape[2] == window_len
                _core.stitch_blend_cpu(tile_arr, spec_arr, table, win)
            else:
                assert window == 0
                _core.stitch_crop_cpu(tile_arr, spec_arr, table)

        return launch

    monkeypatch.setattr(_backend, "require_gpu", lambda what="": cupy)
    monkeypatch.setattr(_backend, "is_gpu_array", lambda x: isinstance(x, FakeDeviceArray))
    monkeypatch.setattr(_backend, "as_cupy", lambda x, name="array", writable=False: x)
    monkeypatch.setattr(_core, "gather_cuda", gather_cuda, raising=False)
    monkeypatch.setattr(_core, "stitch_crop_cuda", stitch_cuda(False), raising=False)
    monkeypatch.setattr(_core, "stitch_blend_cuda", stitch_cuda(True), raising=False)
    monkeypatch.setattr(ops.stitch, "_OUTPUT_TABLES", {})
    return types.SimpleNamespace(cupy=cupy, calls=calls, current=current, waits=waits)


@pytest.mark.parametrize("device_args", [False, True], ids=["host-args", "device-args"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_gather_gpu_dispatch(fake_gpu, ndim, device_args):
    cupy = fake_gpu.cupy
    rng = np.random.default_rng(ndim)
    image = (5, 9, 11) if ndim == 3 else (9, 11)
    patch = (3, 4, 4) if ndim == 3 else (4, 4)
    host = [rng.integers(0, 1000, (2, 3, *image)).astype(np.uint16), rng.integers(0, 1000, (1, 3, *image)).astype(np.uint16)]
    n = 12
    specs = np.stack([rng.integers(0, 2, n), np.zeros(n, int), *(rng.integers(-3, s, n) for s in image)], 1)
    kwargs = dict(channels=[2, 0], scale=np.float32([0.5, 2.0]), shift=np.float32([1.0, -1.0]),
                  flip_y=rng.integers(0, 2, n).astype(bool), flip_x=rng.integers(0, 2, n).astype(bool), rot90=rng.integers(0, 4, n))
    expected = gather_patches_reference(host, specs, patch, dtype=np.float16, **kwargs)
    if device_args:
        kwargs = {k: (cupy.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
        specs = cupy.asarray(specs)
    sources = [cupy.asarray(h) for h in host]
    got = ops.gather_patches(sources, specs, patch, dtype=np.float16, **kwargs)
    assert isinstance(got, FakeDeviceArray) and fake_gpu.calls == ["gather"]
    np.testing.assert_array_equal(np.asarray(got).view(np.uint16), expected.view(np.uint16))
    table = ops.SourceTable(sources)
    out = cupy.empty(expected.shape, dtype=np.float16)
    assert ops.gather_patches(table, specs, patch, dtype=np.float16, out=out, **kwargs) is out
    np.testing.assert_array_equal(np.asarray(out).view(np.uint16), expected.view(np.uint16))


def _tiles_and_specs(rng):
    specs = np.array([[0, 0, 0, 0, 0, 0, 6, 5, 0, 0], [0, 0, 0, 3, 0, 2, 6, 4, 0, 5], [1, 0, -2, 0, 2, 0, 4, 6, 0, 0]])
    return rng.standard_normal((3, 2, 6, 6)).astype(np.float32), specs


def test_stitch_gpu_dispatch(fake_gpu):
    cupy = fake_gpu.cupy
    rng = np.random.default_rng(0)
    tiles, specs = _tiles_and_specs(rng)
    shapes = [(1, 2, 6, 9), (1, 2, 4, 6)]
    expected = [np.zeros(s, np.float32) for s in shapes]
    stitch_crop_reference(tiles, specs, expected)
    outputs = [cupy.zeros(s, dtype=np.float32) for s in shapes]
    ops.stitch_tiles(cupy.asarray(tiles), specs, outputs)
    for got, exp in zip(outputs, expected):
        np.testing.assert_array_equal(np.asarray(got), exp)

    table = window_table((6, 6), (2, 2), "hann")
    exp_o, exp_w = [np.zeros(s, np.float32) for s in shapes], [np.zeros((s[0], 1, *s[2:]), np.float32) for s in shapes]
    stitch_blend_reference(tiles, specs, exp_o, exp_w, table)
    acc = ops.BlendAccumulator(shapes, (6, 6), (2, 2), array_module=cupy)
    acc.add(cupy.asarray(tiles), cupy.asarray(specs))
    for got, exp in zip(acc.weights, exp_w):
        np.testing.assert_array_equal(np.asarray(got), exp)
    for got, o, w in zip(acc.finalize(), exp_o, exp_w):
        np.testing.assert_allclose(np.asarray(got), o / np.where(w > 0, w, 1), rtol=1e-6)
    assert fake_gpu.calls == ["crop", "blend"]


def test_mixed_backends_are_rejected(fake_gpu):
    cupy = fake_gpu.cupy
    with pytest.raises(TypeError, match=r"sources\[1\] must be a GPU array"):
        ops.gather_patches([cupy.zeros((1, 1, 4, 4)), np.zeros((1, 1, 4, 4), np.float32)], np.array([[0, 0, 0, 0]]), (2, 2))
    with pytest.raises(TypeError, match=r"outputs\[0\] must be a GPU array"):
        ops.stitch_tiles(cupy.zeros((1, 1, 4, 4)), np.array([[0, 0, 0, 0, 0, 0, 4, 4, 0, 0]]), [np.zeros((1, 1, 4, 4), np.float32)])


def test_cached_device_tables_are_per_stream(fake_gpu):
    """A SourceTable built (and output tables first uploaded) on one stream and then used on
    another must not hand the kernel a table whose asynchronous upload was queued on the
    first stream (the kernel could read it before it lands)."""
    cupy = fake_gpu.cupy
    rng = np.random.default_rng(3)
    host = [rng.random((1, 2, 8, 8)).astype(np.float32)]
    sources = [cupy.asarray(h) for h in host]
    specs = np.array([[0, 0, 1, 2], [0, 0, -1, 5]])
    table = ops.SourceTable(sources)  # uploaded on STREAM_PTR
    tiles, tile_specs = _tiles_and_specs(rng)
    shapes = [(1, 2, 6, 9), (1, 2, 4, 6)]
    outputs = [cupy.zeros(s, dtype=np.float32) for s in shapes]
    for stream in (STREAM_PTR, STREAM_PTR + 1, STREAM_PTR):
        fake_gpu.current.ptr = stream
        got = ops.gather_patches(table, specs, (4, 4), channels=[1], scale=[2.0])
        np.testing.assert_array_equal(np.asarray(got), gather_patches_reference(host, specs, (4, 4), channels=[1], scale=[2.0]))
        ops.stitch_tiles(cupy.asarray(tiles), tile_specs, outputs)
    assert fake_gpu.calls == ["gather", "crop"] * 3
    # Launching on the other stream first waited for the point where the sources were ready.
    assert fake_gpu.waits == [(STREAM_PTR + 1, STREAM_PTR)]
