"""Build and environment reporting: works with or without CUDA, CuPy or a GPU."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import cupatch
from cupatch import _backend, _core


def test_build_info_keys_and_types():
    info = cupatch.build_info()
    assert isinstance(info["version"], str)
    assert isinstance(info["cuda_compiled"], bool)
    assert isinstance(info["cuda_emulated"], bool)
    assert isinstance(info["cuda_devices"], int) and info["cuda_devices"] >= 0
    assert isinstance(info["cpu_threads"], int) and info["cpu_threads"] >= 1
    assert info["cpu_parallel"] == _core.cpu_parallel_backend()
    assert info["cpu_parallel"] == "pool" or info["cpu_parallel"].startswith("openmp /")
    assert isinstance(info["cuda_architectures"], str)
    assert info["cupy_version"] is None or isinstance(info["cupy_version"], str)
    if info["cuda_emulated"]:
        assert info["cuda_compiled"] and info["cuda_architectures"] == "emulated"
        assert info["cuda_devices"] == 1 and info["cuda_runtime_version"] == 13000
    elif info["cuda_compiled"]:
        assert info["cuda_runtime_version"] >= 12000
        assert "90" in info["cuda_architectures"]
    else:
        assert info["cuda_runtime_version"] is None
        assert info["cuda_architectures"] == ""


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc on PATH: a CPU-only build is expected")
@pytest.mark.skipif(_core.cuda_build_mode == "OFF", reason="built with CUPATCH_CUDA=OFF on purpose")
def test_cuda_compiled_when_nvcc_present():
    assert cupatch.build_info()["cuda_compiled"] is True


def test_build_mode_is_reported():
    assert _core.cuda_build_mode in ("AUTO", "ON", "OFF", "EMULATE")
    assert _core.cuda_emulated == (_core.cuda_build_mode == "EMULATE")
    if _core.cuda_build_mode in ("ON", "EMULATE"):
        assert _core.built_with_cuda
    if _core.cuda_build_mode == "OFF":
        assert not _core.built_with_cuda


def test_device_count_never_raises():
    n = _core.cuda_device_count()
    assert n == cupatch.build_info()["cuda_devices"]
    # Calling again gives the same answer: a failed probe left no sticky error behind.
    assert _core.cuda_device_count() == n


def test_gpu_available_is_consistent_with_reason():
    assert isinstance(_backend.gpu_available(), bool)
    reason = _backend.gpu_unavailable_reason()
    assert (reason == "") == _backend.gpu_available()
    if not _core.built_with_cuda:
        assert not _backend.gpu_available()
        assert "without CUDA" in reason


def test_cpu_thread_setting_round_trips():
    before = _core.cpu_threads()
    try:
        _core.set_cpu_threads(1)
        assert _core.cpu_threads() == 1
        assert cupatch.build_info()["cpu_threads"] == 1
    finally:
        _core.set_cpu_threads(0)
    assert _core.cpu_threads() == before


def test_native_dtype_list_matches_python_tables():
    from cupatch import ops

    names = [d.name for d in ops.SOURCE_DTYPES]
    for required in ("uint8", "uint16", "int16", "int32", "float16", "float32", "float64"):
        assert required in names
    assert set(ops.OUTPUT_DTYPES) <= set(ops.SOURCE_DTYPES)
    assert np.dtype(np.float32) in ops.OUTPUT_DTYPES and np.dtype(np.float16) in ops.OUTPUT_DTYPES
