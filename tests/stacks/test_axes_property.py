"""Property test: reshape_array / restore_array round trips for random axes and shapes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hypothesis", reason="hypothesis is not installed")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from .test_axes import _reference_reshape  # noqa: E402

from cupatch.stacks.axes import reshape_array, restore_array, restored_shape  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(perm=st.permutations("STCZYX"), n=st.integers(2, 6), data=st.data())
def test_reshape_restore_property(perm, n, data):
    letters = [ax for ax in perm if ax in "YX"] + [ax for ax in perm if ax not in "YX"][: n - 2]
    axes = "".join(ax for ax in perm if ax in letters)
    shape = tuple(data.draw(st.integers(1, 3)) for _ in axes)
    a = np.arange(int(np.prod(shape))).reshape(shape)
    out = reshape_array(a, axes)
    np.testing.assert_array_equal(out, _reference_reshape(a, axes))
    assert restored_shape(out.shape, axes, shape) == shape
    np.testing.assert_array_equal(restore_array(out, axes, shape), a)
