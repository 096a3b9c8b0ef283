"""``cupyx.scipy.ndimage`` of the stand-in CuPy: SciPy's filters on host copies (the Gaussian
filter of cupatch's built-in model, the maximum filter of ``MaxPatchFilter``)."""

from __future__ import annotations

import importlib

import numpy

# the stand-in CuPy next to this package (``cupy``, or another name when loaded as a copy)
_cupy = importlib.import_module(__name__.split(".")[0].replace("cupyx", "cupy", 1))


def gaussian_filter(input, sigma, order=0, output=None, mode="reflect", cval=0.0, truncate=4.0, radius=None, axes=None):
    """``scipy.ndimage.gaussian_filter`` of a device array, as a device array."""
    from scipy import ndimage  # noqa: PLC0415 - SciPy is only needed when the filter runs

    if not isinstance(input, _cupy.ndarray):
        raise TypeError(f"input must be a cupy.ndarray, got {type(input)}")
    target = output if isinstance(output, _cupy.ndarray) else None
    dtype = input.dtype if output is None or target is not None else numpy.dtype(output)
    with numpy.errstate(all="ignore"):
        result = ndimage.gaussian_filter(input.get(), sigma, order=order, output=dtype, mode=mode, cval=cval,
                                         truncate=truncate, radius=radius, axes=axes)
    if target is not None:
        target.set(result.astype(target.dtype, copy=False))
        return target
    return _cupy.asarray(result)


def maximum_filter(input, size=None, footprint=None, output=None, mode="reflect", cval=0.0, origin=0, axes=None):
    """``scipy.ndimage.maximum_filter`` of a device array, as a device array (no rounding: the
    result is CuPy's, whose filter has SciPy's window placement)."""
    from scipy import ndimage  # noqa: PLC0415 - SciPy is only needed when the filter runs

    if not isinstance(input, _cupy.ndarray):
        raise TypeError(f"input must be a cupy.ndarray, got {type(input)}")
    if footprint is not None and not isinstance(footprint, _cupy.ndarray):
        raise TypeError(f"footprint must be a cupy.ndarray, got {type(footprint)}")
    target = output if isinstance(output, _cupy.ndarray) else None
    dtype = input.dtype if output is None or target is not None else numpy.dtype(output)
    result = ndimage.maximum_filter(input.get(), size=size, footprint=None if footprint is None else footprint.get(),
                                    output=dtype, mode=mode, cval=cval, origin=origin, axes=axes)
    if target is not None:
        target.set(result.astype(target.dtype, copy=False))
        return target
    return _cupy.asarray(result)


__all__ = ["gaussian_filter", "maximum_filter"]
