"""The model runner (:mod:`cupatch.inference.model`): plain callables, torch modules and their streams,
and the checks of what a model returns."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from conftest import HAS_GPU, requires_gpu

from cupatch.inference import predict_tiled, run_prediction

from .helpers import IMAGE, scaled


# --------------------------------------------------------------------------------------
# model outputs
# --------------------------------------------------------------------------------------


def test_model_with_wrong_batch_size():
    with pytest.raises(ValueError, match=r"batch size 1 .* 8 tiles"):
        predict_tiled(lambda x: x[:1], IMAGE, axes="YX", tile_size=16, overlaps=4, progress=False)


def test_model_with_wrong_spatial_shape_names_model_and_shapes():
    def shrink(x):
        return x[..., 1:-1, 1:-1]

    with pytest.raises(ValueError, match=r"shrink.*\(16, 16\).*\(14, 14\)"):
        predict_tiled(shrink, IMAGE, axes="YX", tile_size=16, overlaps=4, progress=False)


def test_model_returning_non_array():
    with pytest.raises(TypeError, match="returned"):
        predict_tiled(lambda x: {"y": x}, IMAGE, axes="YX", tile_size=16, overlaps=4, progress=False)
    with pytest.raises(TypeError, match="callable"):
        predict_tiled("not a model", IMAGE, axes="YX", tile_size=16, overlaps=4, progress=False)


def test_complex_model_output_is_refused_naming_the_model_and_dtype(tmp_path):
    # the imaginary part used to be dropped while the result claimed complex64
    def spectral(x):
        return (x + 1j * x).astype(np.complex64)

    def spectral128(x):
        return x.astype(np.float64) + 1j * x

    for model, dtype in ((spectral, "complex64"), (spectral128, "complex128")):
        with pytest.raises(TypeError, match=rf"model .*{model.__name__} returned complex values \(dtype {dtype}\)"):
            predict_tiled(model, IMAGE, axes="YX", tile_size=16, overlaps=4, progress=False)
    with pytest.raises(TypeError, match="spectral.*complex"):
        predict_tiled(spectral, IMAGE, axes="YX", tile_size=16, overlaps=4, out=tmp_path / "x.npy", progress=False)
    assert not (tmp_path / "x.npy").exists()
    calls = []

    def later_complex(x):  # a later batch turning complex is refused too
        calls.append(1)
        return x if len(calls) == 1 else x.astype(np.complex64)

    with pytest.raises(TypeError, match="later_complex.*complex"):
        predict_tiled(later_complex, IMAGE, axes="YX", tile_size=16, overlaps=4, batch_size=1, progress=False)
    with pytest.raises(TypeError, match=r"returned dtype <U1"):
        predict_tiled(lambda x: np.full(x.shape, "a"), IMAGE, axes="YX", tile_size=16, overlaps=4, progress=False)


# --------------------------------------------------------------------------------------
# torch
# --------------------------------------------------------------------------------------


def test_torch_is_not_imported_for_plain_models():
    import subprocess

    import cupatch

    code = (
        "import sys, numpy as np, cupatch\n"
        "cupatch.predict_tiled(lambda x: x, np.zeros((40, 40), np.float32), axes='YX', tile_size=16, overlaps=4,"
        " progress=False)\n"
        "print('torch' in sys.modules)\n"
    )
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(cupatch.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("gpu", marks=[pytest.mark.gpu, requires_gpu, pytest.mark.real_gpu(reason="torch CUDA tensors: the emulated device is not a CUDA device torch can use")])]
)
def test_torch_module(device):
    torch = pytest.importorskip("torch", reason="torch is not installed")

    conv = torch.nn.Conv2d(1, 2, kernel_size=3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0
        conv.weight[1, 0, 1, 1] = -2.0
    if device == "gpu":
        conv = conv.cuda()
    rng = np.random.default_rng(16)
    image = rng.random((40, 50), dtype=np.float32)
    result = predict_tiled(conv, image, axes="YX", tile_size=16, overlaps=4, device=device, progress=False)
    assert isinstance(result, np.ndarray) and result.shape == (2, 40, 50)
    np.testing.assert_allclose(result[0], image, rtol=1e-6)
    np.testing.assert_allclose(result[1], -2 * image, rtol=1e-6)


def test_torch_model_on_the_wrong_device():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    if not HAS_GPU:
        pytest.skip("needs a GPU to put the model on the other device than the data")
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)
    with pytest.raises(ValueError, match="model.to"):
        predict_tiled(conv, IMAGE, axes="YX", tile_size=16, overlaps=4, device="gpu", progress=False)


def _fake_torch_and_cupy(torch_stream_ptr, cupy_stream_ptr, log):
    """Stand-ins for the parts of torch and cupy that ``ModelRunner`` uses on the GPU; every
    torch operation logs the torch stream it was queued on."""
    import contextlib
    import types

    current = [torch_stream_ptr]

    class Tensor:
        def __init__(self, value, dtype="float32"):
            self.value, self.dtype = value, dtype

        def detach(self):
            return self

        def float(self):
            log.append(("cast", current[-1]))
            return Tensor(self.value)

    class TorchStream:
        def __init__(self, ptr):
            self.cuda_stream = ptr

    def external_stream(ptr, device=None):
        log.append(("external", ptr, device))
        return TorchStream(ptr)

    @contextlib.contextmanager
    def stream(s):
        current.append(s.cuda_stream)
        try:
            yield
        finally:
            current.pop()

    def from_dlpack(array):
        log.append(("torch.from_dlpack", current[-1]))
        return Tensor(array)

    torch = types.SimpleNamespace(
        Tensor=Tensor, bfloat16="bfloat16", float32="float32", no_grad=contextlib.nullcontext,
        inference_mode=contextlib.nullcontext, from_dlpack=from_dlpack,
        cuda=types.SimpleNamespace(current_stream=lambda device=None: TorchStream(current[-1]),
                                   stream=stream, ExternalStream=external_stream),
    )
    cupy_stream = types.SimpleNamespace(ptr=cupy_stream_ptr)

    def cupy_from_dlpack(tensor):
        log.append(("cupy.from_dlpack", current[-1]))
        return tensor.value

    cupy = types.SimpleNamespace(
        ndarray=np.ndarray, from_dlpack=cupy_from_dlpack,
        cuda=types.SimpleNamespace(get_current_stream=lambda: cupy_stream, Device=lambda: types.SimpleNamespace(id=0)),
    )
    return torch, cupy, current


class _StandInModule:
    """Looks like a torch.nn.Module to ``ModelRunner`` (checked by class name and module)."""

    def __init__(self, torch, log, current, out_dtype="float32"):
        self.torch, self.log, self.current, self.out_dtype = torch, log, current, out_dtype

    def parameters(self):
        return []

    def buffers(self):
        return []

    training = False

    def modules(self):
        return [self]

    def eval(self):
        self.training = False
        return self

    def __call__(self, x):
        self.log.append(("model", self.current[-1]))
        return self.torch.Tensor(x.value * 2, dtype=self.out_dtype)


_StandInModule.__name__ = "Module"
_StandInModule.__module__ = "torch.nn.modules.module"


@pytest.mark.parametrize("out_dtype", ["float32", "bfloat16"])
def test_torch_model_runs_on_cupys_stream(monkeypatch, out_dtype):
    """With torch's current stream different from CuPy's, the model (and the prediction's
    hand-back) must run on CuPy's stream: otherwise CuPy's pool reuses the batch and torch's
    allocator reuses the prediction while the other stream may still read them."""
    from cupatch.inference.model import ModelRunner

    log = []
    torch, cupy, current = _fake_torch_and_cupy(torch_stream_ptr=111, cupy_stream_ptr=222, log=log)
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    runner = ModelRunner(_StandInModule(torch, log, current, out_dtype), "gpu")
    out = runner(np.ones((2, 1, 4, 4), np.float32))
    np.testing.assert_array_equal(out, 2 * np.ones((2, 1, 4, 4)))
    assert log[0] == ("external", 222, 0)
    ops = [entry for entry in log if entry[0] != "external"]
    assert [entry[0] for entry in ops] == ["torch.from_dlpack", "model"] + (["cast"] if out_dtype == "bfloat16" else []) + [
        "cupy.from_dlpack"
    ]
    assert all(entry[1] == 222 for entry in ops), log
    assert current == [111]  # torch's own stream is current again afterwards


def test_torch_model_on_the_same_stream_needs_no_external_stream(monkeypatch):
    from cupatch.inference.model import ModelRunner

    log = []
    torch, cupy, current = _fake_torch_and_cupy(torch_stream_ptr=0, cupy_stream_ptr=0, log=log)
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    runner = ModelRunner(_StandInModule(torch, log, current), "gpu")
    runner(np.ones((1, 1, 2, 2), np.float32))
    assert [entry[0] for entry in log] == ["torch.from_dlpack", "model", "cupy.from_dlpack"]


@pytest.mark.gpu
@requires_gpu
@pytest.mark.real_gpu(reason="torch CUDA tensors: the emulated device is not a CUDA device torch can use")
def test_gpu_torch_model_on_another_torch_stream_equals_cpu():
    """A slow torch model while torch's current stream is not CuPy's: tiles must not be
    overwritten or reused while the other library still reads them."""
    torch = pytest.importorskip("torch", reason="torch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA support")

    class SlowScale(torch.nn.Module):
        def forward(self, x):
            busy = torch.zeros(1 << 22, device=x.device)
            for _ in range(10):  # delay the reads of x on whatever stream the model runs on
                busy = torch.sin(busy) + 1
            return x * 2.0 + 1.0 + 0.0 * busy[:1].reshape(1, 1, 1, 1)

    rng = np.random.default_rng(21)
    image = rng.random((2, 150, 130), dtype=np.float32)
    kwargs = dict(axes="SYX", tile_size=32, overlaps=8, batch_size=3, progress=False)
    with torch.cuda.stream(torch.cuda.Stream()):
        for blend in ("crop", "hann"):
            expected = predict_tiled(scaled, image, device="cpu", blend=blend, **kwargs)
            got = predict_tiled(SlowScale().cuda(), image, device="gpu", blend=blend, **kwargs)
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
            # 180 kB: the 156 kB output (312 kB with blend weights) is streamed through slabs
            streamed, stats = run_prediction(SlowScale().cuda(), image, device="gpu", blend=blend,
                                             max_gpu_bytes=180_000, **kwargs)
            assert stats.streamed == ["host"]
            np.testing.assert_array_equal(streamed, got)


# --------------------------------------------------------------------------------------
# torch: eval mode, inference mode and the model's dtype
# --------------------------------------------------------------------------------------


def _torch():
    return pytest.importorskip("torch", reason="torch is not installed")


def test_torch_model_in_train_mode_is_predicted_in_eval_mode_and_restored():
    torch = _torch()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Dropout(0.5), torch.nn.BatchNorm2d(4),
                                torch.nn.Conv2d(4, 1, 1))
    image = np.random.default_rng(0).random((48, 48)).astype(np.float32)
    model.train()
    model[2].eval()  # a mixed state (frozen batch norm) is restored as it was, module by module
    seen = []
    model.register_forward_hook(lambda m, args, out: seen.append((m.training, torch.is_inference_mode_enabled())))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    got = predict_tiled(model, image, axes="YX", tile_size=16, overlaps=4, batch_size=4, device="cpu", progress=False)
    assert seen and all(s == (False, True) for s in seen)  # eval mode, under torch.inference_mode()
    assert [m.training for m in model.modules()] == [True, True, True, False, True]
    for key, value in model.state_dict().items():  # batch-norm running statistics untouched
        assert torch.equal(value, before[key]), key
    model.eval()
    with torch.no_grad():
        expected = predict_tiled(model, image, axes="YX", tile_size=16, overlaps=4, batch_size=4, device="cpu", progress=False)
    np.testing.assert_array_equal(got, expected)  # dropout off: the same as a model in eval()


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_torch_model_of_another_float_dtype_gets_tiles_in_its_dtype(dtype):
    torch = _torch()
    torch_dtype = getattr(torch, dtype)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1, bias=True)
    with torch.no_grad():
        conv.weight.fill_(0.0)
        conv.weight[0, 0, 1, 1] = 2.0
        conv.bias.fill_(1.0)
    model = conv.to(torch_dtype)
    image = (np.arange(40 * 40, dtype=np.float32).reshape(40, 40) % 17) / 4
    got = predict_tiled(model, image, axes="YX", tile_size=16, overlaps=4, device="cpu", progress=False)
    # float64 and float16 come back in the model's dtype; bfloat16 (unknown to NumPy) as float32
    assert got.dtype == (np.float32 if dtype == "bfloat16" else np.dtype(dtype))
    np.testing.assert_allclose(got.astype(np.float64), 2 * image + 1, rtol=1e-2 if dtype != "float64" else 0)

