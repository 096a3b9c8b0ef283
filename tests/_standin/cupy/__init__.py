"""A NumPy-backed stand-in for CuPy, for cupatch's emulated CUDA build (``CUPATCH_CUDA=EMULATE``).

In that build the CUDA kernels run on the host, so a "device pointer" is a host address.
This package provides the part of CuPy's API that cupatch and its tests use, with CuPy's
signatures and behaviour, on host memory: arrays expose ``__cuda_array_interface__`` (v3)
with the host address of their data, so the emulated kernels read and write them in place.
``tests/conftest.py`` puts it first on ``sys.path`` only when ``cupatch._core.cuda_emulated``
is true; ``tests/test_cupy_standin.py`` checks every name it provides against the real CuPy.

It is not CuPy and does not pretend to be more than its registry: ``ndarray`` is not a
``numpy.ndarray``, ``numpy.asarray`` of one raises TypeError, NumPy arrays are refused as
operands of device computations, and there is no catch-all attribute lookup.

What the emulated device cannot show by itself, it checks: launches run at once there, so
work on two streams can never race, and a missing event wait would pass unnoticed.
``cuda/_ordering.py`` keeps the order a GPU guarantees (per-stream clocks, events, host
synchronisation, the legacy default stream's implicit waits, CuPy's stream-ordered pool) and
raises ``StreamOrderError`` for accesses that could race on a GPU, both for the stand-in's own
operations and for cupatch's CUDA launches (``tests/_standin/emulated_kernels.py``).
"""

from __future__ import annotations

__version__ = "14.2.0+standin"  # the CuPy release whose API is mirrored, marked as a stand-in

from . import cuda  # noqa: E402
from . import _functions  # noqa: E402
from . import testing  # noqa: E402,F401
from ._core.core import ndarray, ufunc  # noqa: E402

globals().update(_functions._EXPORTS)


def is_available():
    """The emulated device is always available."""
    return True


__all__ = sorted({"cuda", "testing", "ndarray", "ufunc", "is_available", *_functions._EXPORTS})
