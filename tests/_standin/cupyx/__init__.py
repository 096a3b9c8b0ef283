"""``cupyx`` of the stand-in CuPy (see ``tests/_standin/cupy/__init__.py``): pinned host arrays
and the ``scipy.ndimage`` filter cupatch's built-in model uses."""

from __future__ import annotations

import importlib

import numpy

# the stand-in CuPy next to this package (``cupy``, or another name when loaded as a copy)
_cupy = importlib.import_module(__name__.split(".")[0].replace("cupyx", "cupy", 1))
_pinned = _cupy.cuda.pinned_memory

from . import scipy  # noqa: F401


def _pinned_array(shape, dtype, order):
    shape = (int(shape),) if numpy.isscalar(shape) else tuple(int(s) for s in shape)
    dtype = numpy.dtype(dtype)
    nbytes = dtype.itemsize
    for n in shape:
        nbytes *= n
    mem = _pinned.alloc_pinned_memory(nbytes)
    return numpy.ndarray(shape, dtype=dtype, buffer=mem._host_bytes()[:nbytes], order=order)


def empty_pinned(shape, dtype=float, order="C"):
    """A NumPy array in pinned host memory (uninitialised)."""
    return _pinned_array(shape, dtype, order)


def zeros_pinned(shape, dtype=float, order="C"):
    """A NumPy array in pinned host memory, zero-filled."""
    out = _pinned_array(shape, dtype, order)
    out[...] = 0
    return out


def empty_like_pinned(a, dtype=None, order="K", subok=None, shape=None):
    if subok is not None:
        raise TypeError("subok is not supported yet")
    if order not in ("C", "F"):
        order = "F" if numpy.asarray(a).flags.f_contiguous and not numpy.asarray(a).flags.c_contiguous else "C"
    return _pinned_array(a.shape if shape is None else shape, a.dtype if dtype is None else dtype, order)


def zeros_like_pinned(a, dtype=None, order="K", subok=None, shape=None):
    out = empty_like_pinned(a, dtype, order, subok, shape)
    out[...] = 0
    return out


__all__ = ["empty_like_pinned", "empty_pinned", "scipy", "zeros_like_pinned", "zeros_pinned"]
