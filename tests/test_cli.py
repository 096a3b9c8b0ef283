"""Tests of the ``cupatch`` command (``cupatch.cli.main`` and ``python -m cupatch``)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import cupatch
from cupatch.cli import load_model, main

PACKAGE_PARENT = str(Path(cupatch.__file__).resolve().parent.parent)


def run_module(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "cupatch", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_help_via_python_m():
    top = run_module("--help")
    assert top.returncode == 0, top.stderr
    assert "predict" in top.stdout and "info" in top.stdout
    sub = run_module("predict", "--help")
    assert sub.returncode == 0, sub.stderr
    for option in ("--axes", "--tile", "--overlap", "--blend", "--batch-size", "--model", "--out", "--overwrite"):
        assert option in sub.stdout


@pytest.mark.slow
def test_main_job_via_python_m():
    """The README's main job, in a fresh interpreter: built-in sample and model."""
    done = run_module("predict", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert re.search(r"tiles:\s+25 ", done.stdout)
    diff = float(re.search(r"max \|tiled - whole image\|: (\S+)", done.stdout).group(1))
    assert diff <= 1e-4  # exactly 0 on the CPU


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "predict" in capsys.readouterr().out


def test_predict_with_defaults(capsys):
    assert main(["predict", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"tiles:\s+25 ", out)  # 1024 px with tile 256 / overlap 32: 5 x 5 tiles
    assert "tiles/s" in out and "device:" in out and "wall time:" in out
    diff = float(re.search(r"max \|tiled - whole image\|: (\S+)", out).group(1))
    assert diff <= 1e-4


def test_predict_default_model_with_blend_reports_a_difference(capsys):
    assert main(["predict", "--no-progress", "--blend", "linear", "--tile", "512", "--overlap", "64"]) == 0
    out = capsys.readouterr().out
    assert "blend linear" in out
    assert float(re.search(r"max \|tiled - whole image\|: (\S+)", out).group(1)) > 0
    # what the number is, and why blending is not whole-image processing
    text = " ".join(out.split())
    assert "largest absolute difference, in the output's units" in text and "whole image at once" in text
    assert "pads with zeros" in text and "averages the overlapping predictions" in text
    assert "--blend crop is exact" in text


def test_crop_self_check_says_why_it_is_exact(capsys):
    assert main(["predict", "--no-progress"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "largest absolute difference, in the output's units" in text
    assert "keeps only the centre of each tile" in text and "receptive field fits in half the overlap" in text


def test_tiff_in_tiff_out(tmp_path, capsys):
    tifffile = pytest.importorskip("tifffile")

    rng = np.random.default_rng(0)
    image = rng.integers(0, 5000, size=(2, 90, 70), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", image)
    args = ["predict", str(tmp_path / "in.tif"), "--axes", "SYX", "--tile", "32", "--overlap", "8"]
    args += ["--out", str(tmp_path / "out.tif"), "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "out.tif" in out and "max |tiled - whole image|: 0" in out
    from cupatch._sample import default_model

    stored = tifffile.imread(tmp_path / "out.tif")
    expected = default_model(8)(image[:, None].astype(np.float32))[:, 0]
    np.testing.assert_allclose(stored, expected, rtol=1e-6, atol=1e-4)
    # The output exists now: refused without --overwrite, replaced with it.
    assert main(args) == 1
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_output_over_the_input_is_refused_even_with_overwrite(tmp_path, capsys):
    tifffile = pytest.importorskip("tifffile")

    image = np.arange(60 * 50, dtype=np.uint16).reshape(60, 50)
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, image)
    args = ["predict", str(path), "--tile", "32", "--overlap", "8", "--out", str(path), "--overwrite", "--no-progress"]
    assert main(args) == 1
    assert "would overwrite the input" in capsys.readouterr().err
    stored = tifffile.imread(path)
    assert stored.dtype == np.uint16
    np.testing.assert_array_equal(stored, image)


def test_npy_output_over_the_npy_input_is_refused(tmp_path, capsys):
    image = np.arange(60 * 50, dtype=np.float32).reshape(60, 50)
    path = tmp_path / "in.npy"
    np.save(path, image)
    args = ["predict", str(path), "--tile", "32", "--overlap", "8", "--out", str(path), "--overwrite", "--no-progress"]
    assert main(args) == 1
    assert "would overwrite the input" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(path), image)


def test_npy_in_zarr_out_with_user_model(tmp_path, capsys):
    zarr = pytest.importorskip("zarr")

    model_file = tmp_path / "mymodel.py"
    model_file.write_text(
        "import numpy as np\n"
        "def two_channels(x):\n"
        "    return np.concatenate([x, -x], axis=1)\n"
        "class Doubler:\n"
        "    def __call__(self, x):\n"
        "        return 2 * x\n"
    )
    image = np.arange(3 * 40 * 50, dtype=np.float32).reshape(3, 40, 50)
    np.save(tmp_path / "in.npy", image)
    args = ["predict", str(tmp_path / "in.npy"), "--axes", "ZYX", "--tile", "2", "16", "16", "--overlap", "0", "4", "4"]
    args += ["--model", f"{model_file}:two_channels", "--out", str(tmp_path / "out.zarr"), "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "whole image" not in out  # no whole-image check for user models
    stored = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[...]
    assert stored.shape == (2, 3, 40, 50)  # C inserted before the spatial axes
    np.testing.assert_array_equal(stored[0], image)
    np.testing.assert_array_equal(stored[1], -image)
    # A class is instantiated; blending works through the command too.
    args = ["predict", str(tmp_path / "in.npy"), "--axes", "ZYX", "--tile", "2", "16", "16", "--overlap", "0", "4", "4"]
    args += ["--model", f"{model_file}:Doubler", "--blend", "hann", "--out", str(tmp_path / "o.npy"), "--no-progress"]
    assert main(args) == 0
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), 2 * image, rtol=1e-5)


def test_skip_mask(tmp_path, capsys):
    image = np.random.default_rng(0).random((64, 64)).astype(np.float32) + 1
    np.save(tmp_path / "in.npy", image)
    mask = np.zeros((16, 16), np.uint8)  # a quarter of the resolution
    mask[:4, :4] = 1
    np.save(tmp_path / "mask.npy", mask)
    args = ["predict", str(tmp_path / "in.npy"), "--tile", "16", "--overlap", "4", "--no-progress"]
    args += ["--skip-mask", str(tmp_path / "mask.npy"), "--skip-value", "nan", "--out", str(tmp_path / "o.npy")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"tiles: +25 .*, 21 skipped", out) and "whole image" not in out
    stored = np.load(tmp_path / "o.npy")
    assert np.isfinite(stored[:16, :16]).all() and np.isnan(stored[-8:, -8:]).all()
    assert main([*args[:-2], "--skip-mask", str(tmp_path / "missing.npy")]) == 1
    assert "missing.npy" in capsys.readouterr().err


def test_model_from_module_name(tmp_path, monkeypatch):
    (tmp_path / "cli_test_models.py").write_text("def identity(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_model("cli_test_models:identity")(5) == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nocolon"], "module:callable"),
        (["--model", "no_such_module_xyz:f"], "no_such_module_xyz"),
        (["--model", "numpy:no_such_function"], "no_such_function"),
        (["--model", "numpy:pi"], "not a callable"),
        (["--axes", "ZYX"], "sample image is 2-D"),
        (["--out", "/nonexistent-dir/x.zarr"], "does not exist"),
        (["--out", "x.png"], "must end in"),
    ],
)
def test_predict_errors(args, message, capsys):
    assert main(["predict", "--no-progress", *args]) == 1
    err = capsys.readouterr().err
    assert "error" in err and message in err
    # raised by cupatch itself: one line, no traceback
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_missing_input_and_bad_axes(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "missing.tif"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "--axes" not in err
    image = np.zeros((4, 20, 20), np.uint16)
    np.save(tmp_path / "vol.npy", image)
    assert main(["predict", str(tmp_path / "vol.npy"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "3 dimensions" in err and "--axes" in err  # here the axes really are the problem
    assert main(["predict", str(tmp_path / "vol.npy"), "--axes", "ZYX", "--tile", "2", "8", "8", "--overlap", "0", "2", "2",
                 "--no-progress"]) == 0  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"\x00garbage that is not a .npy file" * 3, "not in the .npy format")],
    ids=["empty", "corrupt"],
)
def test_unreadable_npy_input_is_one_line_naming_the_file(tmp_path, capsys, content, message):
    path = tmp_path / "broken.npy"
    path.write_bytes(content)
    assert main(["predict", str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "broken.npy" in err and message in err
    assert "--axes" not in err  # no axes can help an unreadable file


def test_unsupported_or_unreadable_input_lists_the_kinds_without_an_axes_hint(tmp_path, capsys):
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    assert main(["predict", str(tmp_path / "image.png"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "image.png" in err and "--axes" not in err
    for kind in (".tif", ".zarr", ".npy"):
        assert kind in err
    pytest.importorskip("tifffile")
    (tmp_path / "fake.tif").write_bytes(b"not a tiff")
    assert main(["predict", str(tmp_path / "fake.tif"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "fake.tif" in err and "--axes" not in err and "Traceback" not in err


# --------------------------------------------------------------------------------------
# numeric options: usage errors (exit status 2) before anything is loaded or warmed up
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "option", "allowed"),
    [
        (["--tile", "-5"], "--tile", "positive integer"),
        (["--tile", "0"], "--tile", "positive integer"),
        (["--tile", "2.5"], "--tile", "positive integer"),
        (["--tile", "64", "x"], "--tile", "positive integer"),
        (["--overlap", "-2"], "--overlap", "non-negative integer"),
        (["--batch-size", "0"], "--batch-size", "positive integer"),
        (["--batch-size", "-3"], "--batch-size", "positive integer"),
        (["--channels", "-1"], "--channels", "non-negative integer"),
        (["--tile", "64", "64", "64"], "--tile", "one per spatial axis"),
        (["--overlap", "8", "8", "8"], "--overlap", "one per spatial axis"),
        (["--tile", "16", "--overlap", "16"], "--overlap", "smaller than --tile"),
        (["--tile", "64", "32", "--overlap", "40"], "--overlap", "smaller than --tile"),
        (["--tile", "16", "--overlap", "3"], "--overlap", "even"),
        (["--channels", "1"], "--channels", "0 to 0"),
    ],
)
def test_bad_numeric_options_are_usage_errors_before_any_work(args, option, allowed, capsys, monkeypatch):
    from cupatch import cli

    def must_not_run(*_args, **_kwargs):
        raise AssertionError("the model was built or warmed up before the options were checked")

    monkeypatch.setattr(cli, "_warm_up", must_not_run)
    monkeypatch.setattr(cli, "default_model", must_not_run)
    with pytest.raises(SystemExit) as info:
        main(["predict", "--no-progress", *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: " in err and allowed in err
    assert "Traceback" not in err and "negative dimensions" not in err


def test_tile_too_large_for_memory_names_the_option(capsys, monkeypatch):
    zeros = np.zeros

    def refusing_zeros(shape, *args, **kwargs):  # as NumPy does where memory is not overcommitted
        if int(np.prod(shape)) >= 10**10:
            raise MemoryError(f"Unable to allocate an array with shape {tuple(shape)}")
        return zeros(shape, *args, **kwargs)

    monkeypatch.setattr(np, "zeros", refusing_zeros)
    assert main(["predict", "--no-progress", "--tile", "100000"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--tile 100000x100000" in err and "smaller --tile" in err


def test_odd_overlap_is_fine_with_a_blend_window(capsys):
    assert main(["predict", "--no-progress", "--tile", "512", "--overlap", "3", "--blend", "hann"]) == 0


def test_unknown_blend_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["predict", "--blend", "max"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_info_prints_build_information(capsys):
    assert main(["info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert isinstance(info, dict) and info


# --------------------------------------------------------------------------------------
# errors in the user's code: their frames, cupatch's folded
# --------------------------------------------------------------------------------------

_FAILING_MODEL = """\
import numpy as np


def _normalise(x):
    return x / np.zeros(3)[7]


def model(x):
    return _normalise(x)


def interrupted(x):
    raise KeyboardInterrupt


def double(x):
    return 2 * x


class FailsLater:
    calls = 0

    def __call__(self, x):
        type(self).calls += 1
        if type(self).calls == 4:
            raise RuntimeError("the model gave up at batch 4")
        return 2 * x
"""


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "failing_model.py"
    path.write_text(_FAILING_MODEL)
    return path


def test_error_in_the_model_shows_its_frames_and_folds_cupatchs(model_file, capsys):
    assert main(["predict", "--no-progress", "--model", f"{model_file}:model"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last):" in err
    assert re.search(r"\.\.\. \d+ frames? in cupatch \.\.\.", err)
    assert f'File "{model_file}", line 9, in model' in err
    assert f'File "{model_file}", line 5, in _normalise' in err
    assert "return x / np.zeros(3)[7]" in err
    assert err.rstrip().endswith("IndexError: index 7 is out of bounds for axis 0 with size 3")
    assert "cupatch/inference" not in err and "cli.py" not in err  # cupatch's own frames are folded


def test_debug_shows_the_full_traceback(model_file, capsys):
    assert main(["predict", "--no-progress", "--debug", "--model", f"{model_file}:model"]) == 1
    err = capsys.readouterr().err
    assert "cli.py" in err and "driver.py" in err and "frames in cupatch" not in err
    assert "in _normalise" in err and "IndexError" in err


def test_syntax_error_in_the_model_file_names_file_and_line(tmp_path, capsys):
    path = tmp_path / "broken_model.py"
    path.write_text("import numpy as np\n\ndef model(x:\n    return x\n")
    assert main(["predict", "--no-progress", "--model", f"{path}:model"]) == 1
    err = capsys.readouterr().err
    assert f'File "{path}", line 3' in err and "def model(x:" in err
    assert "SyntaxError:" in err and "frames in importlib" in err
    assert "importlib/__init__.py" not in err and "cli.py" not in err


def test_import_error_inside_the_model_module_shows_the_import(tmp_path, capsys):
    path = tmp_path / "needs_more.py"
    path.write_text("import no_such_dependency_of_the_model\n\ndef model(x):\n    return x\n")
    assert main(["predict", "--no-progress", "--model", f"{path}:model"]) == 1
    err = capsys.readouterr().err
    assert f'File "{path}", line 1, in <module>' in err
    assert "ModuleNotFoundError: No module named 'no_such_dependency_of_the_model'" in err


def test_error_raised_by_cupatch_stays_one_line(capsys):
    assert main(["predict", "--no-progress", "--model", "numpy:pi"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cupatch predict: error: ") and "not a callable" in err


def test_error_mid_run_says_the_output_is_marked_and_a_rerun_replaces_it(model_file, tmp_path, capsys):
    image = np.ones((200, 40), np.float32)
    np.save(tmp_path / "in.npy", image)
    out = tmp_path / "out.npy"
    args = ["predict", str(tmp_path / "in.npy"), "--tile", "16", "--overlap", "4", "--batch-size", "2", "--no-progress"]
    assert main([*args, "--model", f"{model_file}:FailsLater", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: the model gave up at batch 4" in err
    assert f"the output {str(out)!r} is incomplete and marked so by {str(out) + '.incomplete'!r}" in err
    assert "without --overwrite" in err
    assert out.exists() and (tmp_path / "out.npy.incomplete").exists()
    # the next run replaces it without --overwrite
    assert main([*args, "--model", f"{model_file}:double", "--out", str(out)]) == 0
    assert not (tmp_path / "out.npy.incomplete").exists()
    np.testing.assert_array_equal(np.load(out), 2 * image)


def test_interrupt_inside_the_process_returns_130_with_one_line(model_file, tmp_path, capsys):
    out = tmp_path / "out.npy"
    assert main(["predict", "--no-progress", "--model", f"{model_file}:interrupted", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err and "Traceback" not in err
    assert "no output was written" in err and not out.exists()


# --------------------------------------------------------------------------------------
# Ctrl-C in a real process: exit status 130, one line, a marked output, a clean rerun
# --------------------------------------------------------------------------------------

_SLOW_MODEL = """\
import os
import time


def model(x):
    time.sleep(float(os.environ.get("SLOW_MODEL_SECONDS", "0")))
    return 2 * x
"""


def _start(args, slow_seconds):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    env["SLOW_MODEL_SECONDS"] = str(slow_seconds)
    return subprocess.Popen(
        [sys.executable, "-m", "cupatch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # as in a terminal: SIGINT raises KeyboardInterrupt (a parent may have ignored it)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
@pytest.mark.parametrize("suffix", [".npy", ".zarr"])
def test_ctrl_c_stops_cleanly_and_the_rerun_replaces_the_partial_output(tmp_path, suffix):
    if suffix == ".zarr":
        pytest.importorskip("zarr")
    (tmp_path / "slow_model.py").write_text(_SLOW_MODEL)
    image = np.arange(400 * 64, dtype=np.float32).reshape(400, 64)
    np.save(tmp_path / "in.npy", image)
    out = tmp_path / f"out{suffix}"
    marker = tmp_path / f"out{suffix}.incomplete"
    args = ["predict", str(tmp_path / "in.npy"), "--tile", "16", "--overlap", "4", "--batch-size", "2"]
    args += ["--model", f"{tmp_path / 'slow_model.py'}:model", "--out", str(out), "--no-progress"]

    child = _start(args, slow_seconds=0.2)  # 165 tiles, 83 batches: about 17 s if left alone
    deadline = time.monotonic() + 60
    while not marker.exists():  # the output exists and is being written
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the output was never created"
        time.sleep(0.05)
    time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=60)

    assert child.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("cupatch predict: interrupted (Ctrl-C)")
    assert f"the output {str(out)!r} is incomplete and marked so by {str(marker)!r}" in stderr
    assert out.exists() and marker.exists()
    assert "incomplete" in marker.read_text()

    # The rerun, without --overwrite, replaces the partial output and completes it.
    rerun = _start(args, slow_seconds=0)
    stdout, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    assert not marker.exists()
    if suffix == ".npy":
        stored = np.load(out)
    else:
        import zarr

        stored = zarr.open_array(str(out), mode="r")[...]
    np.testing.assert_array_equal(stored, 2 * image)
    # Complete now: a third run refuses to replace it without --overwrite.
    third = _start(args, slow_seconds=0)
    stdout, stderr = third.communicate(timeout=120)
    assert third.returncode == 1 and "already exists" in stderr


# --------------------------------------------------------------------------------------
# cupatch info: why there is no GPU
# --------------------------------------------------------------------------------------


def test_info_says_whether_the_gpu_is_usable_and_why_not(capsys):
    from cupatch._backend import gpu_available

    assert main(["info"]) == 0
    captured = capsys.readouterr()
    info = json.loads(captured.out)
    assert info["gpu_usable"] is gpu_available()
    if gpu_available():
        assert info["gpu_unavailable_reason"] is None
    else:
        assert info["gpu_unavailable_reason"]
        assert "no usable GPU" in captured.err and info["gpu_unavailable_reason"] in captured.err


def test_info_says_so_when_the_gpu_is_usable(capsys, monkeypatch):
    from cupatch import cli

    monkeypatch.setattr(cli, "gpu_unavailable_reasons", lambda info: [])
    assert main(["info"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["gpu_usable"] is True
    assert "usable CUDA device(s); cupatch runs on the GPU by default" in captured.err


class _FakeDriver:
    """Stands in for libcuda: driver version, cuInit result and device count."""

    def __init__(self, version=13000, init=0, count=0):
        self.version, self.init, self.count = version, init, count

    def cuDriverGetVersion(self, ref):  # noqa: N802 (the CUDA name)
        ref._obj.value = self.version
        return 0

    def cuInit(self, flags):  # noqa: N802
        return self.init

    def cuDeviceGetCount(self, ref):  # noqa: N802
        ref._obj.value = self.count
        return 0


@pytest.mark.parametrize(
    ("info", "driver", "env", "reason"),
    [
        ({"cuda_compiled": False}, None, None, "without CUDA"),
        ({}, None, None, "no NVIDIA driver"),
        ({}, _FakeDriver(init=100), None, "finds no GPU"),
        ({}, _FakeDriver(version=12020), None, "supports CUDA up to 12.2, older than the CUDA runtime"),
        ({}, _FakeDriver(init=0, count=0), None, "finds no GPU"),
        ({}, _FakeDriver(init=999), None, "cannot initialise CUDA"),
        ({}, _FakeDriver(), "", "CUDA_VISIBLE_DEVICES='' hides every GPU"),
        ({"cuda_devices": 1, "cupy_version": None}, None, None, "CuPy is not installed"),
        ({"cupy_version": None}, None, None, "no NVIDIA driver: "),
    ],
)
def test_info_names_the_reason_for_no_gpu(info, driver, env, reason, capsys, monkeypatch):
    from cupatch import _backend, cli

    base = {
        "version": "0", "cuda_compiled": True, "cuda_emulated": False, "cuda_devices": 0,
        "cuda_runtime_version": 13000, "cupy_version": "14.0.0", "cuda_architectures": "90", "cpu_threads": 1,
    }  # fmt: skip
    base.update(info)
    monkeypatch.setattr(cli, "build_info", lambda: dict(base))
    monkeypatch.setattr(_backend, "gpu_available", lambda: False)
    monkeypatch.setattr(_backend, "gpu_unavailable_reason", lambda: "cupatch was built without CUDA (CUPATCH_CUDA=OFF)")
    monkeypatch.setattr(_backend, "_load_cuda_driver", lambda: driver)
    if env is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", env)
    assert main(["info"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert printed["gpu_usable"] is False and reason in printed["gpu_unavailable_reason"]
    assert printed["cuda_devices"] == base["cuda_devices"]
    assert reason in captured.err


def test_info_says_an_emulated_device_is_not_a_gpu(capsys, monkeypatch):
    from cupatch import _backend, cli

    monkeypatch.setattr(cli, "build_info", lambda: {"cuda_compiled": True, "cuda_emulated": True, "cuda_devices": 1})
    monkeypatch.setattr(_backend, "gpu_available", lambda: True)
    assert main(["info"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["gpu_usable"] is True
    assert "emulates CUDA on the CPU" in captured.err and "not a GPU" in captured.err
