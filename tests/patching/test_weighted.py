"""WeightedPatching: the target distribution, determinism, placement and the errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cupatch import PatchDataset, WeightedPatching
from cupatch.loader import BatchLoader
from cupatch.patching import Patching
from cupatch.patching.weighted import balanced_label_weights


def _expected_corners(weights: np.ndarray, n: tuple[int, ...], p: tuple[int, ...], d: tuple[int, ...]) -> np.ndarray:
    """Probability of every top-left corner, by brute force over every voxel of the image."""
    cell = tuple(np.indices(n) // np.array(d).reshape(-1, *([1] * len(n))))  # cell of every voxel
    sizes = np.zeros(weights.shape)
    np.add.at(sizes, cell, 1.0)
    per_voxel = weights[cell] / sizes[cell]  # a cell's weight spread evenly over its voxels
    corners = np.zeros(tuple(max(1, m - q + 1) for m, q in zip(n, p)))
    for voxel in zip(*np.nonzero(per_voxel)):
        corner = tuple(min(max(v - q // 2, 0), max(0, m - q)) for v, q, m in zip(voxel, p, n))
        corners[corner] += per_voxel[voxel]
    return corners / corners.sum()


def _chi_square(strategy: WeightedPatching, expected: np.ndarray, n_draws: int) -> float:
    """p-value of the observed corners of ``n_draws`` indices (over several epochs) against ``expected``."""
    observed = np.zeros(expected.shape)
    per_epoch = strategy.n_patches
    for epoch in range(-(-n_draws // per_epoch)):
        strategy.set_epoch(epoch)
        coords = strategy.spec_table(np.arange(per_epoch))[:, 2:]
        np.add.at(observed, tuple(coords.T), 1)
    keep = expected > 0
    assert observed[~keep].sum() == 0, "a corner of probability 0 was drawn"
    return stats.chisquare(observed[keep], expected[keep] * observed.sum()).pvalue


@pytest.mark.parametrize(
    "n,p,shape",
    [
        ((20, 24), (6, 8), (20, 24)),  # full resolution, patches clamped at every border
        ((21, 24), (4, 4), (6, 8)),  # reduced by (4, 3), last Y cell cut short by the border
        ((9, 10, 11), (3, 4, 5), (3, 5, 11)),  # 3-D, divisors (3, 2, 1)
    ],
)
def test_corners_follow_the_weights(n, p, shape):
    rng = np.random.default_rng(0)
    weights = rng.random(shape) * (rng.random(shape) < 0.6)
    strategy = WeightedPatching([(1, 1, *n)], p, weights, seed=3, n_patches=5000)
    d = strategy.divisor[0]
    assert _chi_square(strategy, _expected_corners(weights, n, p, d), 60_000) > 1e-3


def test_chi_square_detects_a_wrong_distribution():
    """The test above can fail: the same draws against a uniform target are rejected."""
    weights = np.zeros((16, 16))
    weights[:4] = 1.0
    weights[4:] = 0.05
    strategy = WeightedPatching([(1, 1, 16, 16)], (1, 1), weights, seed=3, n_patches=4000)
    assert _chi_square(strategy, _expected_corners(weights, (16, 16), (1, 1), (1, 1)), 40_000) > 1e-3
    uniform = np.full((16, 16), 1 / 256)
    assert _chi_square(strategy, uniform, 40_000) < 1e-6


def test_centres_lie_on_positive_voxels_and_inside_the_patch():
    mask = np.zeros((2, 40, 30), dtype=bool)
    mask[0, 0, 0] = mask[0, 39, 29] = mask[1, 17, 3:9] = True
    strategy = WeightedPatching([(2, 1, 40, 30)], (8, 6), mask, seed=1)
    idx = np.arange(strategy.n_patches)
    table = strategy.spec_table(idx)
    centres = strategy.centres(idx)
    assert mask[table[:, 1], centres[:, 0], centres[:, 1]].all()
    corners = table[:, 2:]
    assert ((corners <= centres) & (centres < corners + np.array([8, 6]))).all()
    assert (corners >= 0).all() and (corners + np.array([8, 6]) <= np.array([40, 30])).all()
    # a centre away from the border is the patch's voxel P // 2
    inner = (centres[:, 0] == 17)
    np.testing.assert_array_equal(corners[inner], centres[inner] - np.array([4, 3]))


def test_label_balanced_gives_every_class_the_same_probability():
    labels = np.zeros((30, 30), dtype=np.uint8)
    labels[:2, :2] = 1  # 4 voxels
    labels[10:20, 10:20] = 2  # 100 voxels
    w = balanced_label_weights(labels)
    for value in (0, 1, 2):
        assert w[labels == value].sum() == pytest.approx(1 / 3)
    strategy = WeightedPatching([(1, 1, 30, 30)], (4, 4), labels, seed=5, n_patches=30_000, label_balanced=True)
    centres = strategy.centres(np.arange(strategy.n_patches))
    counts = np.bincount(labels[centres[:, 0], centres[:, 1]], minlength=3)
    assert stats.chisquare(counts).pvalue > 1e-3
    with pytest.raises(TypeError, match="label_balanced"):
        WeightedPatching([(1, 1, 30, 30)], (4, 4), labels.astype(float), label_balanced=True)


def test_n_patches_split_by_weight_and_zero_samples_get_none():
    w = np.zeros((3, 8, 8))
    w[0, 0, 0] = 1.0
    w[2] = 3.0 / 64  # total 3
    strategy = WeightedPatching([(3, 1, 8, 8)], (4, 4), w, seed=0, n_patches=10)
    assert strategy.n_patches == 10
    samples = strategy.spec_table(np.arange(10))[:, 1]
    np.testing.assert_array_equal(np.bincount(samples, minlength=3), [3, 0, 7])  # 2.5 -> 3, 7.5 -> 7 (ties: lower)
    default = WeightedPatching([(3, 1, 8, 8)], (4, 4), w, seed=0)
    assert default.n_patches == 2 * 4  # prod(ceil(N / P)) per sample with weight
    assert default.get_patch_indices(0) == list(range(8))


def test_several_stacks_and_shared_maps():
    shapes = [(2, 1, 16, 16), (1, 2, 9, 12)]
    strategy = WeightedPatching(shapes, (4, 4), [np.ones((4, 4)), np.ones((1, 9, 12), dtype=np.uint8)], seed=2)
    assert isinstance(strategy, Patching)
    assert strategy.divisor == ((4, 4), (1, 1))
    assert len(strategy._cum) == 16 + 9 * 12  # the first stack's map is kept once for both samples
    assert strategy.data_shapes == tuple(shapes)
    for i in range(strategy.n_patches):
        spec = strategy.get_patch_spec(i)
        row = strategy.spec_table([i])[0].tolist()
        assert row == [spec["data_idx"], spec["sample_idx"], *spec["coords"]]
        assert all(type(v) is int for v in spec["coords"])


def test_pure_function_of_seed_epoch_index():
    w = np.random.default_rng(1).random((3, 20, 20))
    a = WeightedPatching([(3, 1, 40, 40)], (8, 8), w, seed=7)
    b = WeightedPatching([(3, 1, 40, 40)], (8, 8), w, seed=7)
    idx = np.arange(a.n_patches)
    full = a.spec_table(idx)
    # any batching, order or repetition of the indices gives the same rows
    perm = np.random.default_rng(0).permutation(np.repeat(idx, 2))
    np.testing.assert_array_equal(b.spec_table(perm), full[perm])
    np.testing.assert_array_equal(np.concatenate([a.spec_table(c) for c in np.array_split(idx, 7)]), full)
    a.set_epoch(1)
    assert not np.array_equal(a.spec_table(idx), full)
    a.set_epoch(0)
    np.testing.assert_array_equal(a.spec_table(idx), full)
    other = WeightedPatching([(3, 1, 40, 40)], (8, 8), w, seed=8)
    assert not np.array_equal(other.spec_table(idx), full)


def _patches_by_index(loader):
    out = {}
    for (x,), idx in zip(loader, loader.batches()):  # no targets: the loader yields (input,)
        for i, patch in zip(idx.tolist(), np.asarray(x)):
            out[i] = patch
    return out


def test_same_patches_whatever_the_world_size_and_workers():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 1000, (4, 32, 32)).astype(np.uint16)
    mask = a > 700
    ds = PatchDataset(a, lambda s: WeightedPatching(s, (8, 8), mask, seed=3), axes="SYX", device="cpu", progress=False)
    single = _patches_by_index(BatchLoader(ds, 5, seed=3))
    sharded = {}
    for rank in range(3):
        sharded.update(_patches_by_index(BatchLoader(ds, 4, seed=3, rank=rank, world_size=3)))
    assert set(sharded) == set(single) == set(range(len(ds)))
    for i in single:
        np.testing.assert_array_equal(single[i], sharded[i])
    # a DataLoader worker holds a pickled copy of the strategy: it draws the same patches
    import pickle

    copy = pickle.loads(pickle.dumps(ds.patching))
    idx = np.arange(len(ds))
    np.testing.assert_array_equal(copy.spec_table(idx), ds.patching.spec_table(idx))


@pytest.mark.parametrize(
    "weights,kwargs,error,match",
    [
        (np.zeros((8, 8)), {}, ValueError, "0 everywhere"),
        (np.zeros((8, 8), dtype=bool), {}, ValueError, "0 everywhere"),
        (np.ones((7, 8)), {}, ValueError, "does not fit"),
        (np.ones((3, 8, 8)), {}, ValueError, "samples"),
        (np.ones((8,)), {}, ValueError, "shape"),
        (np.ones((2, 2, 8, 8)), {}, ValueError, "shape"),
        (-np.ones((8, 8)), {}, ValueError, ">= 0"),
        (np.full((8, 8), np.nan), {}, ValueError, "finite"),
        (np.full((8, 8), np.inf), {}, ValueError, "finite"),
        (np.ones((8, 8)), {"divisor": 4}, ValueError, "divisor"),
        (np.ones((4, 4)), {"divisor": (2, 3)}, ValueError, "divisor"),
        (np.ones((4, 4)), {"divisor": 0}, ValueError, "divisor"),
        (np.ones((8, 8)), {"n_patches": 0}, ValueError, "n_patches"),
        (np.ones((8, 8)), {"n_patches": 2.5}, TypeError, "n_patches"),
        (np.ones((8, 8)), {"label_balanced": "yes"}, TypeError, "label_balanced"),
        (np.array([["a"] * 8] * 8), {}, TypeError, "dtype"),
        ("mask.npy", {}, TypeError, "weights"),
        ([np.ones((8, 8))] * 2, {}, ValueError, "one array per image stack"),
    ],
)
def test_errors(weights, kwargs, error, match):
    with pytest.raises(error, match=match):
        WeightedPatching([(2, 1, 16, 16)], (4, 4), weights, seed=0, **kwargs)


def test_given_divisor_is_used():
    # (10, 10) at divisor 10 or 11 fits an image of 100: the inferred one is the smallest
    assert WeightedPatching([(1, 1, 100, 100)], (4, 4), np.ones((10, 10))).divisor == ((10, 10),)
    assert WeightedPatching([(1, 1, 100, 100)], (4, 4), np.ones((10, 10)), divisor=11).divisor == ((11, 11),)
