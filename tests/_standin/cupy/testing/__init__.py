"""``cupy.testing`` of the stand-in: NumPy's assertions on host copies of the arrays."""

from __future__ import annotations

import numpy
import numpy.testing as _npt

from .._functions import asnumpy as _asnumpy


def _host(x):
    return _asnumpy(x)


def assert_array_equal(actual, desired, err_msg="", verbose=True, *, strict=False, strides_check=False):
    if strides_check:
        if actual.strides != desired.strides:
            raise AssertionError(f"strides are not equal:\n actual {actual.strides}\n desired {desired.strides}")
    _npt.assert_array_equal(_host(actual), _host(desired), err_msg=err_msg, verbose=verbose, strict=strict)


def assert_allclose(actual, desired, rtol=1e-07, atol=0, equal_nan=True, err_msg="", verbose=True, *, strict=False):
    _npt.assert_allclose(_host(actual), _host(desired), rtol=rtol, atol=atol, equal_nan=equal_nan, err_msg=err_msg,
                         verbose=verbose, strict=strict)


def assert_array_almost_equal(actual, desired, decimal=6, err_msg="", verbose=True):
    _npt.assert_array_almost_equal(_host(actual), _host(desired), decimal=decimal, err_msg=err_msg, verbose=verbose)


def assert_array_less(x, y, err_msg="", verbose=True):
    _npt.assert_array_less(_host(x), _host(y), err_msg=err_msg, verbose=verbose)


__all__ = ["assert_allclose", "assert_array_almost_equal", "assert_array_equal", "assert_array_less"]
del numpy
