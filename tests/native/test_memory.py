"""``_core.prefault_for_writing``: maps an array's pages now and leaves its contents alone."""

from __future__ import annotations

import numpy as np
import pytest

from cupatch import _core


@pytest.mark.parametrize("nbytes", [0, 1, 4095, 4096, 3 << 20, (5 << 20) + 123])
def test_contents_are_left_as_they_are(nbytes):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=nbytes, dtype=np.uint8)
    expected = data.copy()
    _core.prefault_for_writing(data)
    np.testing.assert_array_equal(data, expected)


def test_a_fresh_zeros_array_stays_zero_and_is_writable_after():
    out = np.zeros((3, 1, 70, 1000), np.float32)  # large enough to be mapped lazily
    _core.prefault_for_writing(out)
    assert not out.any()
    out[1, 0, 5, 7] = 2.5
    assert out.sum() == 2.5


def test_a_view_inside_a_larger_array_touches_nothing_outside_it():
    base = np.arange(1 << 20, dtype=np.float32)
    view = base[1000 : 300_000]
    _core.prefault_for_writing(view)
    np.testing.assert_array_equal(base, np.arange(1 << 20, dtype=np.float32))


def test_refuses_read_only_and_non_contiguous_arrays():
    read_only = np.zeros(10, np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _core.prefault_for_writing(read_only)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.prefault_for_writing(np.zeros((10, 10), np.float32)[:, ::2])
