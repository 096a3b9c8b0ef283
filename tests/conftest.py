"""Shared fixtures: array backends and the GPU skip rule.

A GPU case runs only when the build has CUDA compiled in, CuPy imports and a device is
usable; otherwise it is *skipped with the reason*, never silently dropped.
"""

from __future__ import annotations

import numpy as np
import pytest


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
