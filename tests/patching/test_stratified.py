"""StratifiedPatching: CAREamics' regions, counts, bin packing, exclusion and probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cupatch.patching import StratifiedPatching
from cupatch.patching.stratified import region_bin_packing


def test_regions_100x100():
    """CAREamics 0.3.5 StratifiedPatching on this case: grid 3x3, areas 1024 / 160 / 25, union 69x69, n_patches 10."""
    sp = StratifiedPatching([(1, 1, 100, 100)], (32, 32), seed=0)
    assert sp.grid_shape(0) == (3, 3)
    np.testing.assert_array_equal(sp.region_areas(0, 0), [[1024, 1024, 160], [1024, 1024, 160], [160, 160, 25]])
    assert sp.region_areas(0, 0).sum() == 69 * 69
    assert sp.n_patches == 10  # ceil(100*100/32**2) = ceil(9.77), RandomPatching would give 16
    assert sp.bin_size_of(0, 0) == 1024


def test_regions_64x64():
    sp = StratifiedPatching([(1, 1, 64, 64)], (32, 32), seed=0)
    assert sp.grid_shape(0) == (2, 2)
    np.testing.assert_array_equal(sp.region_areas(0, 0), [[1024, 32], [32, 1]])
    assert sp.n_patches == 4


def test_image_smaller_than_patch_has_no_patches():
    sp = StratifiedPatching([(2, 1, 20, 64), (1, 1, 64, 64)], (32, 32), seed=0)
    assert sp.n_patches_of(0, 0) == sp.n_patches_of(0, 1) == 0
    assert sp.get_patch_indices(0) == []
    assert sp.n_patches == 4
    assert {sp.get_patch_spec(i)["data_idx"] for i in range(sp.n_patches)} == {1}


@pytest.mark.parametrize("n_bins,expected", [(12, 2048), (8, 2048), (7, 1096 + 1024), (0, 0)])
def test_region_bin_packing(n_bins, expected):
    """CAREamics test_region_bin_packing: 10 areas into 12/8/7/0 bins."""
    areas = [2048, 2048, 2048, 1096, 1096, 1096, 1024, 1024, 1024, 1024]
    bin_size, bin_of = region_bin_packing(areas, n_bins)
    assert bin_size == expected
    if n_bins == 0:
        assert (bin_of == -1).all()
        return
    assert bin_of.min() >= 0 and bin_of.max() < n_bins
    loads = np.bincount(bin_of, weights=areas, minlength=n_bins)
    assert loads.max() <= bin_size


def test_region_bin_packing_fills_every_bin_within_capacity():
    rng = np.random.default_rng(0)
    areas = rng.uniform(0, 1000, 200)
    bin_size, bin_of = region_bin_packing(areas, 37)
    loads = np.bincount(bin_of, weights=areas, minlength=37)
    assert loads.max() <= bin_size + 1e-9
    assert bin_size >= areas.sum() / 37


@pytest.mark.parametrize(
    "shapes", [[(1, 1, 512, 512), (2, 1, 531, 591)], [(1, 1, 128, 128, 128), (2, 1, 131, 191, 154)]]
)
@pytest.mark.parametrize("rand_seed", [42, 666, 1])
def test_set_region_probs_reduces_n_patches(shapes, rand_seed):
    """CAREamics test_set_region_probs: n_patches drops by sum(1 - p) within < 1."""
    patch = (64,) * (len(shapes[0]) - 2) if len(shapes[0]) == 4 else (32,) * 3
    sp = StratifiedPatching(shapes, patch, seed=42)
    n_patches = sp.n_patches
    rng = np.random.default_rng(rand_seed)
    reduction = 0.0
    for (data_idx, sample_idx), coords in sp.get_all_grid_coords().items():
        probs = rng.random(len(coords))
        reduction += np.sum(1 - probs)
        sp.set_region_probs(data_idx, sample_idx, dict(zip(coords, probs)))
    assert abs(sp.n_patches - (n_patches - reduction)) < len(sp.get_all_grid_coords())
    for (data_idx, sample_idx), coords in sp.get_all_grid_coords().items():
        assert sp.n_patches_of(data_idx, sample_idx) >= 0


def test_set_region_probs_single_sample_within_one():
    sp = StratifiedPatching([(1, 1, 531, 591)], (64, 64), seed=3)
    n = sp.n_patches
    grid = sp.grid_shape(0)
    probs = np.random.default_rng(0).random(grid)
    sp.set_region_probs(0, 0, probs)
    assert abs(sp.n_patches - (n - np.sum(1 - probs))) < 1
    # dict and array forms agree
    other = StratifiedPatching([(1, 1, 531, 591)], (64, 64), seed=3)
    other.set_region_probs(0, 0, {tuple(c): float(probs[tuple(c)]) for c in np.ndindex(*grid)})
    np.testing.assert_array_equal(other.spec_table(np.arange(other.n_patches)), sp.spec_table(np.arange(sp.n_patches)))


def _coverage(table: np.ndarray, shape: tuple[int, ...], patch: tuple[int, int]) -> np.ndarray:
    """Per-pixel count of patches covering it (2-D), via a difference array."""
    s, h, w = shape
    diff = np.zeros((s, h + patch[0] + 1, w + patch[1] + 1), dtype=np.int64)
    si, y, x = table[:, 1], table[:, 2], table[:, 3]
    np.add.at(diff, (si, y, x), 1)
    np.add.at(diff, (si, y + patch[0], x), -1)
    np.add.at(diff, (si, y, x + patch[1]), -1)
    np.add.at(diff, (si, y + patch[0], x + patch[1]), 1)
    return diff.cumsum(axis=1).cumsum(axis=2)[:, :h, :w]


def test_reduced_probability_selection_rate():
    """CAREamics functional test_reduced_probability: rate ~0.1 on the down-weighted sample."""
    shape, patch = (3, 1, 256, 256), (16, 16)
    sp = StratifiedPatching([shape], patch, seed=12)
    sp.set_region_probs(0, 0, np.full(sp.grid_shape(0), 0.1))
    cover = np.zeros((3, 256, 256), dtype=np.int64)
    epochs = 100
    idx = np.arange(sp.n_patches)
    for epoch in range(epochs):
        sp.set_epoch(epoch)
        cover += _coverage(sp.spec_table(idx), (3, 256, 256), patch)
    rate = cover.reshape(3, -1).mean(axis=1) / epochs
    np.testing.assert_allclose(rate, [0.1, 1.0, 1.0], rtol=0.1)


def test_excluded_patches_never_selected():
    """CAREamics functional test: no sampled patch ever overlaps an excluded grid cell."""
    shapes, patch = [(2, 1, 128, 160), (1, 1, 100, 90)], (16, 16)
    sp = StratifiedPatching(shapes, patch, seed=5)
    rng = np.random.default_rng(0)
    excluded = {}
    before = sp.n_patches
    n_excluded = 0
    for (d, s), cells in sp.get_all_grid_coords().items():
        pick = rng.choice(len(cells), size=len(cells) // 8, replace=False)
        chosen = [cells[i] for i in pick]
        excluded[(d, s)] = chosen
        n_excluded += len(chosen)
        sp.exclude_patches(d, s, chosen)
    assert before - sp.n_patches in range(n_excluded - 3, n_excluded + 4)
    included = sp.get_included_grid_coords()
    for key, chosen in excluded.items():
        assert set(included[key]).isdisjoint(chosen)
        assert len(included[key]) + len(chosen) == len(sp.get_all_grid_coords()[key])
    masks = [np.zeros((s[0], *s[2:]), dtype=bool) for s in shapes]
    for (d, s), chosen in excluded.items():
        for gy, gx in chosen:
            masks[d][s, gy * 16 : gy * 16 + 16, gx * 16 : gx * 16 + 16] = True
    idx = np.arange(sp.n_patches)
    for epoch in range(5):
        sp.set_epoch(epoch)
        for d, s, y, x in sp.spec_table(idx).tolist():
            assert y + 16 <= shapes[d][2] and x + 16 <= shapes[d][3]
            assert not masks[d][s, y : y + 16, x : x + 16].any()


def test_exclude_all_cells_removes_the_sample():
    sp = StratifiedPatching([(2, 1, 64, 64)], (32, 32), seed=1)
    sp.exclude_patches(0, 0, sp.get_all_grid_coords()[(0, 0)])
    assert sp.n_patches_of(0, 0) == 0
    assert sp.n_patches == 4
    assert all(sp.get_patch_spec(i)["sample_idx"] == 1 for i in range(sp.n_patches))
    assert sp.get_included_grid_coords()[(0, 0)] == []


def test_exclusion_orthants_3d():
    sp = StratifiedPatching([(1, 1, 64, 64, 64)], (16, 16, 16), seed=1)
    full = sp.region_areas(0, 0).copy()
    sp.exclude_patches(0, 0, [(2, 2, 2)])
    areas = sp.region_areas(0, 0)
    assert areas[2, 2, 2] == 0
    # region (1,1,1) keeps only sub-boxes that start on the lower split on some axis
    assert areas[1, 1, 1] == 16**3 - 15**3
    assert areas[1, 2, 2] == 16 * 16 * 1
    assert areas[0, 0, 0] == full[0, 0, 0]
    table = sp.spec_table(np.arange(sp.n_patches))
    for epoch in range(3):
        sp.set_epoch(epoch)
        table = sp.spec_table(np.arange(sp.n_patches))
        inside = ((table[:, 2:] + 16 > 32) & (table[:, 2:] < 48)).all(axis=1)
        assert not inside.any()


def test_marginal_corners_uniform_chi_square():
    """Over indices and epochs, every selectable corner is equally likely (fixed seed)."""
    sp = StratifiedPatching([(1, 1, 100, 100)], (32, 32), seed=2024)
    idx = np.arange(sp.n_patches)
    tables = []
    for epoch in range(3000):
        sp.set_epoch(epoch)
        tables.append(sp.spec_table(idx))
    coords = np.concatenate(tables)[:, 2:]
    assert coords.max() <= 68 and coords.min() >= 0
    for axis in range(2):
        counts = np.bincount(coords[:, axis], minlength=69)
        assert stats.chisquare(counts).pvalue > 1e-3


def test_same_index_prefers_its_region():
    """A full interior bin (probability 1) always yields a patch from its own region."""
    sp = StratifiedPatching([(1, 1, 100, 100)], (32, 32), seed=1)
    for epoch in range(50):
        sp.set_epoch(epoch)
        y, x = sp.get_patch_spec(0)["coords"]  # bin 0 = region (0, 0), area 1024 = bin size
        assert 0 <= y < 32 and 0 <= x < 32


def test_grid_coords_dicts():
    sp = StratifiedPatching([(2, 1, 64, 100)], (32, 32), seed=1)
    all_coords = sp.get_all_grid_coords()
    assert set(all_coords) == {(0, 0), (0, 1)}
    assert all_coords[(0, 0)] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    sp.exclude_patches(0, 1, [(1, 2)])
    assert sp.get_included_grid_coords()[(0, 1)] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert sp.get_included_grid_coords()[(0, 0)] == all_coords[(0, 0)]


def test_validation():
    sp = StratifiedPatching([(2, 1, 64, 100)], (32, 32), seed=1)
    with pytest.raises(ValueError, match="outside the grid"):
        sp.exclude_patches(0, 0, [(2, 0)])
    with pytest.raises(ValueError, match="outside the grid"):
        sp.exclude_patches(0, 0, [(-1, 0)])
    with pytest.raises(TypeError, match="grid_coords"):
        sp.exclude_patches(0, 0, [(0.5, 0)])
    with pytest.raises(IndexError, match="sample_idx"):
        sp.exclude_patches(0, 2, [(0, 0)])
    with pytest.raises(IndexError, match="data_idx"):
        sp.set_region_probs(1, 0, {(0, 0): 0.5})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sp.set_region_probs(0, 0, {(0, 0): 1.5})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sp.set_region_probs(0, 0, {(0, 0): float("nan")})
    with pytest.raises(ValueError, match="grid shape"):
        sp.set_region_probs(0, 0, np.ones((3, 3)))
    with pytest.raises(ValueError, match="outside the grid"):
        sp.set_region_probs(0, 0, {(5, 5): 0.5})
    sp.exclude_patches(0, 0, [])  # nothing to do
    assert sp.n_patches == 2 * 7


def test_zero_probability_everywhere_gives_no_patches():
    sp = StratifiedPatching([(1, 1, 100, 100), (1, 1, 64, 64)], (32, 32), seed=1)
    sp.set_region_probs(0, 0, np.zeros((3, 3)))
    assert sp.n_patches_of(0, 0) == 0
    assert sp.n_patches == 4


def test_large_construction():
    """10^5 patches: array bookkeeping, vectorised sampling of every index."""
    sp = StratifiedPatching([(100, 1, 1024, 1024)], (32, 32), seed=1)
    assert sp.n_patches == 100 * 1024
    table = sp.spec_table(np.arange(sp.n_patches))
    assert table[:, 2:].max() <= 1024 - 32
    sp.exclude_patches(0, 7, [(i, i) for i in range(32)])
    assert sp.n_patches == 100 * 1024 - 32
