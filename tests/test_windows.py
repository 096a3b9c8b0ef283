"""Blend windows (:mod:`cupatch._windows`)."""

from __future__ import annotations

import numpy as np
import pytest

from cupatch._windows import WINDOWS, window_table


@pytest.mark.parametrize("window", WINDOWS)
def test_float_sizes_are_refused_not_truncated(window):
    # window_table((32.5, 32), ...) used to tabulate a 32-wide window
    with pytest.raises(TypeError, match=r"tile_size must contain only ints.*tile_size\[0\] is a float"):
        window_table((32.5, 32), (8, 8), window)
    for overlaps in ((8.5, 8), (8, 8.0), (8, False)):
        with pytest.raises(TypeError, match=r"overlaps must contain only ints"):
            window_table((32, 32), overlaps, window)
    for tile in ("32", 32):
        with pytest.raises(TypeError, match="tile_size must be a sequence of ints"):
            window_table(tile, (8, 8), window)


def test_numpy_integers_are_accepted():
    np.testing.assert_array_equal(
        window_table(np.array([16, 12]), (np.int32(4), np.int64(2)), "hann"), window_table((16, 12), (4, 2), "hann")
    )


def test_value_errors_keep_their_messages():
    with pytest.raises(ValueError, match="tile_size must be 2 or 3 positive ints"):
        window_table((32,), (8,))
    with pytest.raises(ValueError, match="tile_size must be 2 or 3 positive ints"):
        window_table((0, 32), (0, 8))
    with pytest.raises(ValueError, match="overlaps must have 2 entries"):
        window_table((32, 32), (8,))
    with pytest.raises(ValueError, match="overlaps must satisfy"):
        window_table((32, 32), (32, 8))
