"""Counter-based randomness helpers: ranges and seed validation (native parity: test_ops_hash)."""

from __future__ import annotations

import numpy as np
import pytest

from cupatch._random import UNIFORM_INT_MAX, hash4, resolve_seed, uniform01, uniform_int, uniform_int_scalar


def test_uniform_int_range_and_rejects_bad_n():
    h = hash4(1, 2, np.arange(10_000), 0)
    values = uniform_int(h, 7)
    assert values.min() == 0 and values.max() == 6
    with pytest.raises(ValueError, match="1 <= n"):
        uniform_int(h, 0)


def test_uniform_int_ranges_beyond_2_32_reach_every_part_of_the_range():
    # n >= 2**32 used to wrap the 64-bit product: no value beyond 2**32 was ever drawn
    h = hash4(5, 0, np.arange(20_000), 0)
    for n in (2**32, 2**32 + 1, 3 * 2**33 + 7, 2**40, 2**60, UNIFORM_INT_MAX):
        values = uniform_int(h, n)
        assert values.dtype == np.int64 and values.min() >= 0 and values.max() < n
        assert values.max() > n * 0.99 and values.min() < n * 0.01  # the whole range, not [0, 2**32)
        counts = np.bincount((values // (n // 8 + 1)).astype(np.int64), minlength=8)
        assert counts.min() > 20_000 / 8 * 0.9  # roughly uniform over eighths


def test_uniform_int_is_floor_of_the_128_bit_product_above_2_32():
    rng = np.random.default_rng(0)
    edges = np.array([0, 2**64 - 1, 2**63, 2**32 - 1], dtype=np.uint64)
    h = np.concatenate([rng.integers(0, 2**64 - 1, 2000, dtype=np.uint64, endpoint=True), edges])
    ns = [2**32, 2**32 + 1, 2**33 - 1, 2**47 + 12345, 2**61 + 3, 2**62]
    for n in ns:
        expected = [(int(x) * n) >> 64 for x in h]
        np.testing.assert_array_equal(uniform_int(h, n), expected)
        assert [uniform_int_scalar(int(x), n) for x in h] == expected
    # below 2**32 the draw is unchanged: the top 32 bits scaled (existing seeds keep their patches)
    for n in (1, 2, 3, 7, 2**31, 2**32 - 1):
        expected = [((int(x) >> 32) * n) >> 32 for x in h]
        np.testing.assert_array_equal(uniform_int(h, n), expected)
        assert [uniform_int_scalar(int(x), n) for x in h] == expected
    # mixed small and large n in one call
    n = np.array([7, 2**40] * (len(h) // 2), dtype=np.int64)
    np.testing.assert_array_equal(uniform_int(h, n), [uniform_int_scalar(int(x), int(m)) for x, m in zip(h, n)])


def test_uniform_int_refuses_ranges_it_cannot_draw():
    h = hash4(1, 2, np.arange(4), 0)
    for bad in (0, -3, UNIFORM_INT_MAX + 1, np.array([5, 2**63], np.uint64)):
        with pytest.raises(ValueError, match=r"1 <= n <= 2\*\*62"):
            uniform_int(h, bad)
    with pytest.raises(TypeError, match="integer n"):
        uniform_int(h, 2.0**40)


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


@pytest.mark.parametrize("seed", [0, 7, 2**63 + 5, -3])
def test_hash4_indices_is_hash4(seed):
    """The native batch hash used by the augmentation and random patching draws."""
    from cupatch._random import hash4_indices

    idx = np.arange(-5, 300, dtype=np.int64)
    np.testing.assert_array_equal(hash4_indices(seed, 4, idx, 17), hash4(seed, 4, idx, 17))
