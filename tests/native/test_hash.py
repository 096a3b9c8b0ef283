"""The native counter-based hash (cpp/include/cupatch/random.h) equals cupatch._random."""

from __future__ import annotations

import numpy as np
import pytest

from cupatch import _core, _random

@pytest.mark.parametrize("stream", list(_random.Stream))
def test_native_hash4_matches_python_for_every_stream(stream):
    index = np.arange(-50, 1000, dtype=np.int64)
    for seed, epoch in [(0, 0), (1, 2), (2**64 - 1, 2**63), (12345, 7)]:
        np.testing.assert_array_equal(_core.hash4(seed, epoch, index, int(stream)), _random.hash4(seed, epoch, index, int(stream)))


def test_negative_counters_wrap_modulo_2_64():
    idx = np.array([[3, -4]], dtype=np.int64)
    np.testing.assert_array_equal(_core.hash4(-1, -2, idx, -3), _core.hash4(2**64 - 1, 2**64 - 2, idx, 2**64 - 3))
    assert _core.hash4(-1, -2, idx, -3).shape == (1, 2)


def test_known_value():
    # splitmix64 of 0 is the first output of the reference SplitMix64 generator seeded with 0
    h = _random.splitmix64(np.array([0], dtype=np.uint64))
    assert int(h[0]) == 0xE220A8397B1DCDAF
    assert int(_core.hash4(0, 0, np.array([0], np.int64), 0)[0]) == int(_random.hash4(0, 0, 0, 0)[0])
