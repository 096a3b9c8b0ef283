"""Counter-based randomness helpers: ranges and seed validation (native parity: test_ops_hash)."""

from __future__ import annotations

import numpy as np
import pytest

from cupatch._random import hash4, resolve_seed, uniform01, uniform_int


def test_uniform_int_range_and_rejects_bad_n():
    h = hash4(1, 2, np.arange(10_000), 0)
    values = uniform_int(h, 7)
    assert values.min() == 0 and values.max() == 6
    with pytest.raises(ValueError, match="1 <= n"):
        uniform_int(h, 0)


def test_uniform01_range():
    u = uniform01(hash4(3, 0, np.arange(10_000), 0))
    assert 0.0 <= u.min() and u.max() < 1.0


@pytest.mark.parametrize("seed", [-1, 2**64, 2**70])
def test_resolve_seed_rejects_out_of_range(seed):
    with pytest.raises(ValueError, match="seed must be in"):
        resolve_seed(seed)


@pytest.mark.parametrize("seed", [1.5, "3", True])
def test_resolve_seed_rejects_non_int(seed):
    with pytest.raises(TypeError, match="seed must be an int"):
        resolve_seed(seed)


def test_resolve_seed_none_is_fresh_and_in_range():
    a, b = resolve_seed(None), resolve_seed(None)
    assert 0 <= a < 2**64 and 0 <= b < 2**64
    assert a != b
