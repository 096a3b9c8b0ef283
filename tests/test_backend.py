"""Backend detection and CUDA Array Interface handling (runs without a GPU, using fake
producers; GPU cases run where one exists)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from conftest import HAS_GPU, requires_gpu

from cupatch import _backend, _core
from cupatch._backend import array_module, is_gpu_array, parse_cuda_array_interface


class FakeCAI:
    def __init__(self, **cai):
        base = {"shape": (2, 3), "typestr": "<f4", "data": (4096, False), "version": 3}
        base.update(cai)
        self.__cuda_array_interface__ = base


class FakeDLPack:
    def __init__(self, device_type):
        self.device_type = device_type

    def __dlpack__(self, stream=None):  # pragma: no cover - never consumed here
        raise AssertionError("not consumed in these tests")

    def __dlpack_device__(self):
        return (self.device_type, 0)


class RaisingCAI:
    @property
    def __cuda_array_interface__(self):
        raise RuntimeError("host tensor")


def test_is_gpu_array():
    assert not is_gpu_array(np.zeros(3))
    assert not is_gpu_array([1, 2, 3])
    assert not is_gpu_array(3.0)
    assert is_gpu_array(FakeCAI())
    assert is_gpu_array(FakeDLPack(2))  # kDLCUDA
    assert is_gpu_array(FakeDLPack(13))  # kDLCUDAManaged
    assert not is_gpu_array(FakeDLPack(1))  # kDLCPU
    assert not is_gpu_array(RaisingCAI())


def test_array_module():
    assert array_module(np.zeros(2)) is np
    if HAS_GPU:
        import cupy

        assert array_module(FakeCAI()) is cupy
    else:
        with pytest.raises(RuntimeError, match="no GPU is usable"):
            array_module(FakeCAI())


def test_parse_contiguous_interface_computes_strides():
    info = parse_cuda_array_interface(FakeCAI(shape=(2, 3, 4), typestr="<u2", strides=None))
    assert info.strides == (24, 8, 2)
    assert info.dtype == np.uint16 and info.ptr == 4096 and not info.readonly and info.stream is None


def test_parse_strided_interface_and_flags():
    info = parse_cuda_array_interface(FakeCAI(strides=(4, 8), data=(1024, True), stream=7))
    assert info.strides == (4, 8) and info.readonly and info.stream == 7


def test_parse_v2_ignores_stream():
    assert parse_cuda_array_interface(FakeCAI(version=2, stream=5)).stream is None


def test_parse_zero_size():
    info = parse_cuda_array_interface(FakeCAI(shape=(0, 3), data=(0, False)))
    assert info.ptr == 0 and info.shape == (0, 3)


@pytest.mark.parametrize(
    ("cai", "exc", "match"),
    [
        (dict(version=1), TypeError, "version 1 is not supported"),
        (dict(mask=object()), TypeError, "masked"),
        (dict(strides=(3, 8)), ValueError, "not multiples of the item size"),
        (dict(strides=(4,)), ValueError, "do not match shape"),
        (dict(stream=0), ValueError, "stream 0 is forbidden"),
        (dict(typestr=np.dtype([("a", "<f4"), ("b", "<f4")])), TypeError, "structured"),
    ],
)
def test_parse_rejects_bad_interfaces(cai, exc, match):
    with pytest.raises(exc, match=match):
        parse_cuda_array_interface(FakeCAI(**cai), "x")


def test_parse_requires_the_interface():
    with pytest.raises(TypeError, match="does not expose __cuda_array_interface__"):
        parse_cuda_array_interface(np.zeros(2), "x")


def test_gpu_status_without_gpu_is_explained():
    if HAS_GPU:
        pytest.skip("a GPU is usable here")
    assert not _backend.gpu_available()
    assert _backend.gpu_unavailable_reason()
    with pytest.raises(RuntimeError, match="no GPU is usable"):
        _backend.require_gpu("x")
    with pytest.raises(RuntimeError, match="no GPU is usable"):
        _backend.as_cupy(FakeCAI(), "x")


@pytest.mark.parametrize(
    ("architectures", "capability", "covered"),
    [
        ("90-real,90-virtual", 90, True),
        ("90-real,90-virtual", 100, True),  # the PTX, compiled by the driver
        ("90-real,90-virtual", 80, False),
        ("90-real,90-virtual", 89, False),
        ("90-real", 100, False),
        ("80-real", 86, True),  # binary code runs on later minor versions of its major
        ("86-real", 80, False),
        ("80-real;90-real", 80, True),
        ("75-virtual", 120, True),
        ("90", 90, True),
        ("90", 80, False),
        ("90a-real", 90, True),
        ("90a-real", 91, False),
        ("100f-real", 103, True),
        ("90a-virtual", 100, False),
        ("native", 80, True),
        ("", 90, False),
    ],
)
def test_architectures_cover(architectures, capability, covered):
    assert _backend.architectures_cover(architectures, capability) is covered


class _FakeDevice:
    compute_capability = "80"


class _FakeCupy:
    class cuda:
        Device = _FakeDevice

        class runtime:
            @staticmethod
            def getDeviceCount():
                return 1


def test_gpu_of_an_architecture_the_build_lacks_is_not_usable(monkeypatch):
    monkeypatch.setattr(_core, "built_with_cuda", True)
    monkeypatch.setattr(_core, "cuda_emulated", False)
    monkeypatch.setattr(_core, "cuda_architectures", "90-real,90-virtual")
    monkeypatch.setattr(_core, "cuda_device_count", lambda: 1, raising=False)
    monkeypatch.setattr(_backend, "import_cupy", lambda: _FakeCupy)
    ok, reason = _backend._gpu_status.__wrapped__()
    assert not ok
    assert "compute capability 8.0" in reason and "90-real,90-virtual" in reason and 'CUDAARCHS="80-real"' in reason
    monkeypatch.setattr(_FakeDevice, "compute_capability", "90")
    assert _backend._gpu_status.__wrapped__() == (True, "")


@pytest.mark.skipif(not _core.built_with_cuda, reason="built without CUDA: no GPU entry points")
def test_cuda_entry_points_exist_when_compiled():
    for name in ("gather_cuda", "stitch_crop_cuda", "stitch_blend_cuda", "cuda_stream_wait"):
        assert callable(getattr(_core, name))


@pytest.mark.skipif(_core.built_with_cuda, reason="built with CUDA")
def test_no_cuda_entry_points_without_cuda():
    assert not hasattr(_core, "gather_cuda")


# ---------------------------------------------------------------------------------------
# GPU interop


class CAIWrapper:
    """A foreign producer: exposes a CuPy array only through its CAI (optionally a stream)."""

    def __init__(self, arr, stream=None, readonly=False):
        cai = dict(arr.__cuda_array_interface__)
        if stream is not None:
            cai["stream"] = stream
        cai["data"] = (cai["data"][0], readonly)
        self.__cuda_array_interface__ = cai
        self._keep = arr


@pytest.mark.gpu
@requires_gpu
def test_as_cupy_wraps_foreign_arrays_without_copy():
    import cupy

    base = cupy.arange(24, dtype=cupy.float32).reshape(2, 3, 4)[:, ::-1, 1:]
    view = _backend.as_cupy(CAIWrapper(base), "x")
    assert isinstance(view, cupy.ndarray)
    assert view.data.ptr == base.data.ptr and view.strides == base.strides
    cupy.testing.assert_array_equal(view, base)
    assert _backend.as_cupy(base) is base
    with pytest.raises(ValueError, match="read-only"):
        _backend.as_cupy(CAIWrapper(base, readonly=True), "out", writable=True)


class HostCAI:
    """A mistaken producer: a CUDA array interface over ordinary host memory."""

    def __init__(self, arr: np.ndarray):
        self.__cuda_array_interface__ = {
            "shape": arr.shape, "typestr": arr.dtype.str, "data": (arr.ctypes.data, False), "version": 3, "strides": None,
        }
        self._keep = arr


@pytest.mark.gpu
@requires_gpu
def test_as_cupy_refuses_host_memory_behind_a_cuda_interface():
    with pytest.raises(ValueError, match="x does not point at GPU memory"):
        _backend.as_cupy(HostCAI(np.zeros((4, 4), np.float32)), "x")


@pytest.mark.gpu
@requires_gpu
def test_foreign_producer_stream_is_waited_for():
    import cupy

    from cupatch.ops import gather_patches

    producer = cupy.cuda.Stream(non_blocking=True)
    with producer:
        data = cupy.arange(1 * 1 * 512 * 512, dtype=cupy.float32).reshape(1, 1, 512, 512)
        data *= 2  # queued on the producer stream
    src = CAIWrapper(data, stream=producer.ptr)
    got = gather_patches([src], np.array([[0, 0, 100, 200]]), (64, 64))
    expected = (np.arange(512 * 512, dtype=np.float32).reshape(512, 512) * 2)[100:164, 200:264]
    np.testing.assert_array_equal(got.get()[0, 0], expected)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.real_gpu(reason="torch CUDA tensors: the emulated device is not a CUDA device torch can use")
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_torch_cuda_tensors_in_cupy_out():
    import cupy
    import torch

    from cupatch.ops import gather_patches, stitch_tiles

    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")
    data = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32, device="cuda").reshape(2, 3, 16, 16)
    got = gather_patches([data], np.array([[0, 1, 2, 3]]), (4, 4))
    assert isinstance(got, cupy.ndarray)
    np.testing.assert_array_equal(got.get()[0], data[1, :, 2:6, 3:7].cpu().numpy())
    out = torch.zeros((1, 3, 4, 4), dtype=torch.float32, device="cuda")
    stitch_tiles(got, np.array([[0, 0, 0, 0, 0, 0, 4, 4, 0, 0]]), [out])
    torch.cuda.synchronize()
    np.testing.assert_array_equal(out.cpu().numpy()[0], got.get()[0])


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_torch_cpu_tensors_are_not_gpu_arrays():
    import torch

    assert not is_gpu_array(torch.zeros(3))
