"""Shared fixtures: array backends and the GPU skip rule.

A GPU case runs only when the build has CUDA compiled in, CuPy imports and a device is
usable; otherwise it is *skipped with the reason*, never silently dropped.

With the emulated CUDA build (``CUPATCH_CUDA=EMULATE``: the CUDA kernels run on the host and
device pointers are host addresses) the real CuPy cannot drive the kernels, so the
NumPy-backed CuPy stand-in in ``tests/_standin`` takes its place, before anything probes the
GPU. Tests marked ``real_gpu`` (timing, true asynchrony, torch CUDA tensors, ...) are skipped
there with their reason.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

STANDIN_DIR = Path(__file__).resolve().parent / "_standin"


def _install_cupy_standin():
    """Put the CuPy stand-in first on ``sys.path`` when the build is emulated (returns it,
    else None)."""
    try:
        from cupatch import _core
    except ImportError:  # the package itself failed to import: reported by _gpu_status
        return None
    if not getattr(_core, "cuda_emulated", False):
        return None
    # The real CuPy may be imported already without having touched a device (zarr's pytest
    # plugin imports it for its GPU buffers): its modules go, so that `import cupy` anywhere
    # from here on gets the stand-in.
    for name in [m for m in sys.modules if m.split(".")[0] in ("cupy", "cupyx", "cupy_backends")]:
        del sys.modules[name]
    sys.path.insert(0, str(STANDIN_DIR))
    # Subprocesses started by tests (the CLI, benchmarks) see the same CuPy.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(STANDIN_DIR), os.environ.get("PYTHONPATH")]))
    import cupy

    if Path(cupy.__file__).resolve().parent.parent != STANDIN_DIR:
        raise pytest.UsageError(f"expected the CuPy stand-in from {STANDIN_DIR}, imported {cupy.__file__}")
    if cupy.cuda.runtime._DEVICE_COUNT != _core.cuda_device_count():
        raise pytest.UsageError(
            f"the CuPy stand-in sees {cupy.cuda.runtime._DEVICE_COUNT} devices, the emulated build "
            f"{_core.cuda_device_count()} (CUPATCH_EMULATE_DEVICES)"
        )
    import emulated_kernels

    # cupatch's CUDA launches report what they read and write on which stream, so that the
    # stand-in's stream-order and address checks cover the kernels too
    emulated_kernels.install(_core, cupy)
    from cupatch import _backend

    _backend._gpu_status.cache_clear()  # nothing may have probed the GPU with the real CuPy
    return cupy


#: the CuPy stand-in (a module) in the emulated lane, else None
CUPY_STANDIN = _install_cupy_standin()


def _gpu_status() -> tuple[bool, str]:
    try:
        from cupatch._backend import gpu_available, gpu_unavailable_reason
    except ImportError as exc:  # the package itself failed to import
        return False, f"cupatch backend unavailable: {exc}"
    if gpu_available():
        return True, ""
    return False, gpu_unavailable_reason()


HAS_GPU, GPU_SKIP_REASON = _gpu_status()

#: Mark for GPU-only tests: ``@requires_gpu``.
requires_gpu = pytest.mark.skipif(not HAS_GPU, reason=f"no usable GPU: {GPU_SKIP_REASON}")

BACKENDS = [
    "numpy",
    pytest.param("cupy", marks=[pytest.mark.gpu, requires_gpu]),
]


@pytest.fixture(autouse=True)
def _emulated_device_idle():
    """Between tests the emulated device is idle: work a test left unsynchronised cannot be
    reported as racing with the next test's (the stand-in's stream-order checks)."""
    yield
    if CUPY_STANDIN:
        CUPY_STANDIN.cuda._ordering.host_sync_all()


def pytest_runtest_setup(item):
    """``@pytest.mark.real_gpu(reason)``: only meaningful on real hardware, skipped in the
    emulated build (and run as before everywhere else)."""
    marker = item.get_closest_marker("real_gpu")
    if marker is None or not CUPY_STANDIN:
        return
    why = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
    if not why:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.real_gpu needs a reason")
    pytest.skip(f"needs real GPU hardware, not the emulated CUDA build: {why}")


@pytest.fixture(params=BACKENDS)
def xp(request):
    """The array module of the backend under test (numpy, or cupy on a usable GPU)."""
    if request.param == "numpy":
        return np
    import cupy

    return cupy


def to_numpy(a):
    """Bring any backend's array to the host."""
    if hasattr(a, "get"):
        return a.get()
    return np.asarray(a)
