"""RandomPatching / FixedRandomPatching: CAREamics counts, index mapping, counter-based coordinates."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cupatch._random import Stream, hash4, uniform_int
from cupatch.patching import FixedRandomPatching, RandomPatching
from cupatch.patching.random import _n_patches_per_sample, draw_int, stream_hashes


@pytest.mark.parametrize(
    "spatial,patch,expected",
    [((19, 37), (8, 8), 15), ((19, 37), (8, 5), 24), ((19, 37, 23), (8, 8, 8), 45), ((19, 37, 23), (8, 5, 7), 96)],
)
def test_n_patches_per_sample(spatial, patch, expected):
    """CAREamics test_n_patches."""
    assert _n_patches_per_sample(spatial, patch) == expected
    assert RandomPatching([(1, 1, *spatial)], patch, seed=0).n_patches == expected


@pytest.mark.parametrize(
    "shapes,patch,expected",
    [
        ([(2, 1, 32, 32), (1, 1, 19, 37), (3, 1, 14, 9)], (8, 8), 59),
        ([(2, 1, 32, 32), (1, 1, 19, 37), (3, 1, 14, 9)], (8, 5), 2 * 28 + 24 + 3 * 4),
        ([(2, 1, 32, 32, 32), (1, 1, 19, 37, 23), (3, 1, 14, 9, 12)], (8, 8, 8), 2 * 64 + 45 + 3 * 8),
    ],
)
def test_total_patches_and_bins(shapes, patch, expected):
    """CAREamics test_calc_patch_bins: totals, and the contiguous per-stack/per-sample mapping."""
    p = RandomPatching(shapes, patch, seed=0)
    assert p.n_patches == expected
    table = p.spec_table(np.arange(p.n_patches))
    # index order: stack by stack, sample by sample, the same number of patches per sample
    expected_pairs = []
    for k, s in enumerate(shapes):
        n = _n_patches_per_sample(s[2:], patch)
        expected_pairs += [(k, j) for j in range(s[0]) for _ in range(n)]
    assert [tuple(r) for r in table[:, :2].tolist()] == expected_pairs
    start = 0
    for k, s in enumerate(shapes):
        n = s[0] * _n_patches_per_sample(s[2:], patch)
        assert p.get_patch_indices(k) == list(range(start, start + n))
        start += n


def test_literal_index_mapping():
    p = RandomPatching([(2, 1, 32, 32), (1, 1, 19, 37), (3, 1, 14, 9)], (8, 8), seed=0)
    cases = {0: (0, 0), 15: (0, 0), 16: (0, 1), 31: (0, 1), 32: (1, 0), 46: (1, 0), 47: (2, 0), 51: (2, 1), 58: (2, 2)}
    for i, (d, s) in cases.items():
        spec = p.get_patch_spec(i)
        assert (spec["data_idx"], spec["sample_idx"]) == (d, s)


def test_coords_are_the_documented_hash():
    """coords = uniform_int(hash4(seed, epoch, index, COORD + axis), max(0, N - P) + 1)."""
    p = RandomPatching([(1, 1, 19, 37, 23), (2, 1, 5, 40, 9)], (8, 5, 7), seed=1234)
    p.set_epoch(6)
    idx = np.arange(p.n_patches)
    table = p.spec_table(idx)
    for axis in range(3):
        n = np.array([[19, 37, 23], [5, 40, 9]])[table[:, 0], axis]
        hi = np.maximum(0, n - (8, 5, 7)[axis])
        expected = uniform_int(hash4(1234, 6, idx, Stream.COORD + axis), hi + 1)
        np.testing.assert_array_equal(table[:, 2 + axis], expected)


@pytest.mark.parametrize("n", [1, 5, 16, 17, 100])  # scalar (Python int) and vectorised paths
def test_stream_hashes_equals_hash4(n):
    idx = np.concatenate([[0, 1, 2**40, 2**63 - 1], np.arange(5, 5 + n)])[:n].astype(np.int64)
    for seed, epoch in [(0, 0), (2**64 - 1, 3), (42, 2**32 + 5)]:
        got = stream_hashes(seed, epoch, idx, [0, 9, 12])
        for h, s in zip(got, [0, 9, 12]):
            assert h.dtype == np.uint64
            np.testing.assert_array_equal(h, hash4(seed, epoch, idx, s))


def test_draw_int_equals_uniform_int():
    h = hash4(3, 1, np.arange(1000), 0)
    n = np.arange(1, 1001)
    np.testing.assert_array_equal(draw_int(h, n), uniform_int(h, n))


def test_corners_beyond_2_32_are_drawn_on_long_axes():
    # On an axis longer than 2**32 the 64-bit product wrapped and no corner beyond 2**32 was
    # ever drawn; now the whole range is, on the table and the single-spec paths alike.
    n = 3 * 2**33
    p = RandomPatching([(1, 1, 1, n)], (1, 8), seed=9)
    idx = np.arange(0, p.n_patches, p.n_patches // 4000, dtype=np.int64)
    x = p.spec_table(idx)[:, 3]
    assert x.min() >= 0 and x.max() <= n - 8
    assert (x >= 2**32).mean() > 0.6  # two thirds of the range lies beyond 2**32
    assert x.max() > 0.99 * n
    np.testing.assert_array_equal(x, uniform_int(hash4(9, 0, idx, Stream.COORD + 1), n - 8 + 1))
    assert [p.get_patch_spec(int(i))["coords"][1] for i in idx[:20]] == x[:20].tolist()


def test_draw_int_equals_uniform_int_on_large_ranges():
    h = hash4(3, 1, np.arange(1000), 0)
    n = np.arange(1, 1001, dtype=np.int64) * 2**50
    np.testing.assert_array_equal(draw_int(h, n), uniform_int(h, n))


@pytest.mark.parametrize("shape", [(1, 1, 8, 8), (1, 1, 8, 8, 8)])
def test_random_coords_shape_equal_patch(shape):
    """CAREamics test_random_coords: in bounds, including image == patch."""
    patch = shape[2:]
    p = RandomPatching([shape], patch, seed=3)
    for epoch in range(5):
        p.set_epoch(epoch)
        assert (p.spec_table(np.arange(p.n_patches))[:, 2:] == 0).all()


def test_image_smaller_than_patch_gives_zero_coords():
    p = RandomPatching([(2, 1, 5, 40)], (8, 8), seed=3)
    table = p.spec_table(np.arange(p.n_patches))
    assert (table[:, 2] == 0).all()
    assert ((table[:, 3] >= 0) & (table[:, 3] <= 32)).all()


@pytest.mark.parametrize("cls", [RandomPatching, FixedRandomPatching])
def test_dimension_mismatch_raises(cls):
    """CAREamics test_n_patches_raises / test_random_coords_raises."""
    with pytest.raises(ValueError, match="patch_size must have 2 entries"):
        cls([(1, 1, 19, 37)], (8, 8, 8), seed=1)
    with pytest.raises(ValueError, match="patch_size must have 3 entries"):
        cls([(1, 1, 19, 37, 23)], (8, 8), seed=1)


@pytest.mark.parametrize("axis_size,patch", [(20, 8), (37, 5), (9, 9)])
def test_coordinates_uniform_chi_square(axis_size, patch):
    """Every valid corner is equally likely (fixed seed, chi-square over many epochs)."""
    p = RandomPatching([(50, 1, axis_size, 64)], (patch, 8), seed=2024)
    counts = np.zeros(axis_size - patch + 1, dtype=np.int64)
    idx = np.arange(p.n_patches)
    for epoch in range(40):
        p.set_epoch(epoch)
        counts += np.bincount(p.spec_table(idx)[:, 2], minlength=len(counts))
    assert counts.sum() == 40 * p.n_patches
    if len(counts) == 1:
        return
    result = stats.chisquare(counts)
    assert result.pvalue > 1e-3, (counts, result)


def test_coordinates_independent_between_axes():
    p = RandomPatching([(400, 1, 12, 12)], (8, 8), seed=5)  # 5 x 5 corners
    table = p.spec_table(np.arange(p.n_patches))
    joint = np.zeros((5, 5), dtype=np.int64)
    np.add.at(joint, (table[:, 2], table[:, 3]), 1)
    result = stats.chi2_contingency(joint)
    assert result.pvalue > 1e-3
    assert stats.chisquare(joint.ravel()).pvalue > 1e-3


def test_fixed_random_same_seed_identical():
    a = FixedRandomPatching([(3, 1, 40, 40)], (8, 8), seed=99)
    b = FixedRandomPatching([(3, 1, 40, 40)], (8, 8), seed=99)
    assert [a.get_patch_spec(i) for i in range(a.n_patches)] == [b.get_patch_spec(i) for i in range(b.n_patches)]
    assert a.get_patch_spec(4) == a.get_patch_spec(4)


def test_large_index_batches():
    p = RandomPatching([(1000, 1, 512, 512)], (64, 64), seed=0)
    idx = np.random.default_rng(0).integers(0, p.n_patches, 100_000)
    table = p.spec_table(idx)
    assert table.shape == (100_000, 4)
    assert table[:, 2:].max() <= 448 and table[:, 2:].min() >= 0


def test_coords_match_the_native_hash():
    """The C++ header hash (shared by the CPU and CUDA kernels) gives the same coordinates."""
    core = pytest.importorskip("cupatch._core", reason="native extension not built")
    p = RandomPatching([(3, 1, 50, 70), (2, 1, 20, 9)], (8, 8), seed=2**63 + 12345)
    p.set_epoch(17)
    idx = np.arange(p.n_patches, dtype=np.int64)
    table = p.spec_table(idx)
    for axis in range(2):
        n = np.array([[50, 70], [20, 9]])[table[:, 0], axis]
        native = np.asarray(core.hash4(p.seed, 17, idx, int(Stream.COORD) + axis), dtype=np.uint64)
        np.testing.assert_array_equal(native, hash4(p.seed, 17, idx, Stream.COORD + axis))
        np.testing.assert_array_equal(table[:, 2 + axis], uniform_int(native, np.maximum(0, n - 8) + 1))
