"""Checks that apply to every patching strategy (CAREamics checklist §6 plus cupatch additions)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cupatch.patching import (
    FixedPatching,
    FixedRandomPatching,
    Patching,
    RandomPatching,
    SequentialPatching,
    StratifiedPatching,
    TiledPatching,
    WeightedPatching,
    WholeSamplePatching,
    is_tile_specs,
)

SHAPES_2D = [(2, 1, 32, 32), (1, 1, 19, 37), (3, 1, 14, 9)]
SHAPES_3D = [(2, 1, 16, 32, 32), (1, 1, 19, 37, 23), (3, 1, 14, 9, 12)]
SEQ_SHAPES_2D = [(2, 1, 32, 32), (1, 1, 19, 37), (3, 1, 14, 9)]


def _fixed_specs(ndim: int):
    p = (8,) * ndim
    return [
        {"data_idx": 0, "sample_idx": 1, "coords": (0,) * ndim, "patch_size": p},
        {"data_idx": 2, "sample_idx": 0, "coords": (1,) * ndim, "patch_size": p},
        {"data_idx": 0, "sample_idx": 0, "coords": (2,) * ndim, "patch_size": p},
    ]


def make(name: str, shapes, patch):
    """Every strategy with CAREamics' test arguments (overlap 2 for sequential/tiled)."""
    nd = len(patch)
    if name == "random":
        return RandomPatching(shapes, patch, seed=42)
    if name == "fixed_random":
        return FixedRandomPatching(shapes, patch, seed=42)
    if name == "sequential":
        small = [tuple(s[:2]) + tuple(max(n, p) for n, p in zip(s[2:], patch)) for s in shapes]
        return SequentialPatching(small, patch, overlaps=(2,) * nd)
    if name == "tiled":
        return TiledPatching(shapes, patch, overlaps=(2,) * nd)
    if name == "whole":
        return WholeSamplePatching(shapes)
    if name == "stratified":
        return StratifiedPatching(shapes, patch, seed=42)
    if name == "fixed":
        return FixedPatching(_fixed_specs(nd))
    if name == "weighted":  # a positive map at half resolution, so that every voxel can be a centre
        maps = [np.random.default_rng(k).random((s[0], *(-(-n // 2) for n in s[2:]))) + 0.1 for k, s in enumerate(shapes)]
        return WeightedPatching(shapes, patch, maps, seed=42)
    raise AssertionError(name)


STRATEGIES = ["random", "fixed_random", "sequential", "tiled", "whole", "stratified", "fixed", "weighted"]
CASES = [(SHAPES_2D, (8, 8)), (SHAPES_2D, (8, 5)), (SHAPES_3D, (8, 8, 8)), (SHAPES_3D, (8, 5, 7))]


def _shapes_of(strategy, shapes):
    return getattr(strategy, "data_shapes", shapes)


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("shapes,patch", CASES)
def test_all_get_patch_spec_in_bounds(name, shapes, patch):
    """CAREamics test_all_get_patch_spec: 0 <= coords and coords + patch <= spatial.

    Tiles are the exception CAREamics also makes: a tile larger than the image reads past
    it (zero padded) but its kept region lies inside.
    """
    strategy = make(name, shapes, patch)
    data_shapes = _shapes_of(strategy, shapes)
    assert isinstance(strategy, Patching)
    for i in range(strategy.n_patches):
        spec = strategy.get_patch_spec(i)
        spatial = data_shapes[spec["data_idx"]][2:]
        assert spec["sample_idx"] < data_shapes[spec["data_idx"]][0]
        for c, p, n in zip(spec["coords"], spec["patch_size"], spatial):
            assert c >= 0
            if is_tile_specs(spec) or p > n:  # patch larger than image: padded read
                assert c == 0 or c + p <= n
            else:
                assert c + p <= n


@pytest.mark.parametrize("name", [s for s in STRATEGIES if s != "fixed"])  # fixed covers what its specs say
@pytest.mark.parametrize("shapes,patch", CASES)
def test_patches_cover_50_percent(name, shapes, patch):
    strategy = make(name, shapes, patch)
    data_shapes = _shapes_of(strategy, shapes)
    covered = [np.zeros((s[0], *s[2:]), dtype=bool) for s in data_shapes]
    epochs = 3 if name in ("random", "stratified", "weighted") else 1
    for epoch in range(epochs):
        strategy.set_epoch(epoch)
        for i in range(strategy.n_patches):
            s = strategy.get_patch_spec(i)
            window = tuple(slice(c, c + p) for c, p in zip(s["coords"], s["patch_size"]))
            covered[s["data_idx"]][(s["sample_idx"], *window)] = True
    total = sum(c.size for c in covered)
    assert sum(c.sum() for c in covered) / total > 0.5


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("shapes,patch", CASES[::2])
def test_get_patch_indices(name, shapes, patch):
    strategy = make(name, shapes, patch)
    seen = []
    for data_idx in range(3):
        indices = strategy.get_patch_indices(data_idx)
        assert isinstance(indices, list)
        for i in indices:
            assert isinstance(i, int)
            assert strategy.get_patch_spec(i)["data_idx"] == data_idx
        seen.extend(indices)
    assert sorted(seen) == list(range(strategy.n_patches))


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("shapes,patch", CASES)
def test_spec_table_equals_get_patch_spec(name, shapes, patch):
    strategy = make(name, shapes, patch)
    strategy.set_epoch(3)
    nd = len(patch)
    idx = np.arange(strategy.n_patches)
    table = strategy.spec_table(idx)
    assert table.dtype == np.int64 and table.flags.c_contiguous
    tiles = name == "tiled"
    assert table.shape == (len(idx), 2 + (4 if tiles else 1) * nd)
    # shuffled and repeated indices give the same rows
    perm = np.random.default_rng(0).permutation(np.repeat(idx, 2))
    np.testing.assert_array_equal(strategy.spec_table(perm), table[perm])
    for i, row in zip(idx.tolist(), table.tolist()):
        spec = strategy.get_patch_spec(i)
        expected = [spec["data_idx"], spec["sample_idx"], *spec["coords"]]
        if tiles:
            expected += [*spec["crop_coords"], *spec["crop_size"], *spec["stitch_coords"]]
        assert row == expected


@pytest.mark.parametrize("name", STRATEGIES)
def test_specs_are_plain_python(name):
    strategy = make(name, SHAPES_2D, (8, 8))
    for i in (0, strategy.n_patches - 1):
        spec = strategy.get_patch_spec(i)
        for key, value in spec.items():
            if isinstance(value, tuple):
                assert all(type(v) is int for v in value), key
            else:
                assert type(value) is int, key
        assert isinstance(spec["patch_size"], tuple)


@pytest.mark.parametrize("name", STRATEGIES)
def test_index_errors(name):
    strategy = make(name, SHAPES_2D, (8, 8))
    n = strategy.n_patches
    for bad in (n, n + 10, -1):
        with pytest.raises(IndexError, match="index"):
            strategy.get_patch_spec(bad)
    with pytest.raises(IndexError, match="indices"):
        strategy.spec_table([0, n])
    with pytest.raises(IndexError):
        strategy.spec_table(np.array([-1]))
    with pytest.raises(TypeError, match="index"):
        strategy.get_patch_spec(1.0)
    with pytest.raises(TypeError, match="index"):
        strategy.get_patch_spec(True)
    with pytest.raises(TypeError, match="indices"):
        strategy.spec_table(np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="indices"):
        strategy.spec_table(np.array([True]))
    assert strategy.spec_table([]).shape[0] == 0
    with pytest.raises(TypeError, match="epoch"):
        strategy.set_epoch(1.5)
    with pytest.raises(ValueError, match="epoch"):
        strategy.set_epoch(-1)
    with pytest.raises(ValueError, match="epoch"):
        strategy.set_epoch(2**63)
    strategy.set_epoch(2**63 - 1)  # the largest epoch works on both the table and the single-spec path
    spec = strategy.get_patch_spec(0)
    row = strategy.spec_table([0])[0].tolist()
    assert row[: 2 + strategy.ndim] == [spec["data_idx"], spec["sample_idx"], *spec["coords"]]


@pytest.mark.parametrize("cls", [RandomPatching, FixedRandomPatching, StratifiedPatching, "weighted"])
def test_same_seed_same_specs(cls):
    if cls == "weighted":
        maps = [np.ones((s[0], *s[2:])) for s in SHAPES_2D]
        cls = lambda shapes, patch, seed: WeightedPatching(shapes, patch, maps, seed=seed)  # noqa: E731
    a, b = cls(SHAPES_2D, (8, 8), seed=7), cls(SHAPES_2D, (8, 8), seed=7)
    other = cls(SHAPES_2D, (8, 8), seed=8)
    idx = np.arange(a.n_patches)
    for epoch in (0, 5):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        other.set_epoch(epoch)
        np.testing.assert_array_equal(a.spec_table(idx), b.spec_table(idx))
        assert [a.get_patch_spec(i) for i in idx] == [b.get_patch_spec(i) for i in idx]
        assert not np.array_equal(a.spec_table(idx), other.spec_table(idx))
    # calling again, in a different order, gives the same patches (no hidden RNG state)
    np.testing.assert_array_equal(a.spec_table(idx[::-1])[::-1], a.spec_table(idx))


@pytest.mark.parametrize("cls", [RandomPatching, StratifiedPatching])
def test_set_epoch_changes_coords(cls):
    p = cls([(4, 1, 64, 64)], (8, 8), seed=3)
    idx = np.arange(p.n_patches)
    t0 = p.spec_table(idx)
    p.set_epoch(1)
    t1 = p.spec_table(idx)
    np.testing.assert_array_equal(t0[:, :2], t1[:, :2])  # index -> (data_idx, sample_idx) fixed
    assert (t0[:, 2:] != t1[:, 2:]).any(axis=1).mean() > 0.9
    p.set_epoch(0)
    np.testing.assert_array_equal(p.spec_table(idx), t0)


def test_fixed_random_ignores_epoch_and_matches_random_epoch0():
    fixed = FixedRandomPatching(SHAPES_2D, (8, 8), seed=11)
    rand = RandomPatching(SHAPES_2D, (8, 8), seed=11)
    idx = np.arange(fixed.n_patches)
    t0 = fixed.spec_table(idx)
    fixed.set_epoch(9)
    np.testing.assert_array_equal(fixed.spec_table(idx), t0)
    np.testing.assert_array_equal(rand.spec_table(idx), t0)


def test_seed_none_is_fixed_for_the_object():
    p = RandomPatching(SHAPES_2D, (8, 8))
    assert isinstance(p.seed, int)
    np.testing.assert_array_equal(p.spec_table(np.arange(20)), p.spec_table(np.arange(20)))


# ----------------------------------------------------------------------------- validation
ALL_CTORS = {
    "random": lambda s, p: RandomPatching(s, p, seed=1),
    "fixed_random": lambda s, p: FixedRandomPatching(s, p, seed=1),
    "sequential": lambda s, p: SequentialPatching(s, p),
    "tiled": lambda s, p: TiledPatching(s, p, 0),
    "stratified": lambda s, p: StratifiedPatching(s, p, seed=1),
}


@pytest.mark.parametrize("name", list(ALL_CTORS))
def test_validation_patch_size(name):
    ctor = ALL_CTORS[name]
    with pytest.raises(ValueError, match="patch_size"):
        ctor([(1, 1, 32, 32)], (8, 8, 8))
    with pytest.raises(ValueError, match="patch_size"):
        ctor([(1, 1, 8, 32, 32)], (8, 8))
    with pytest.raises(ValueError, match=r"patch_size\[1\]"):
        ctor([(1, 1, 32, 32)], (8, 0))
    with pytest.raises(ValueError, match=r"patch_size\[0\]"):
        ctor([(1, 1, 32, 32)], (-8, 8))
    with pytest.raises(TypeError, match=r"patch_size\[0\]"):
        ctor([(1, 1, 32, 32)], (8.0, 8))
    with pytest.raises(TypeError, match=r"patch_size\[1\]"):
        ctor([(1, 1, 32, 32)], (8, True))
    # one int is that size on every axis, as predict_tiled's tile_size
    assert ctor([(1, 1, 32, 32)], 8).patch_size == (8, 8)
    assert ctor([(1, 1, 4, 32, 32)], 4).patch_size == (4, 4, 4)


@pytest.mark.parametrize("name", [*ALL_CTORS, "whole"])
def test_validation_data_shapes(name):
    def ctor(shapes):
        if name == "whole":
            return WholeSamplePatching(shapes)
        return ALL_CTORS[name](shapes, (4, 4))

    with pytest.raises(ValueError, match="data_shapes must not be empty"):
        ctor([])
    with pytest.raises(ValueError, match="same number of spatial"):
        ctor([(1, 1, 32, 32), (1, 1, 8, 32, 32)])
    with pytest.raises(ValueError, match=r"data_shapes\[0\]"):
        ctor([(1, 32, 32)])
    with pytest.raises(ValueError, match=r"data_shapes\[1\]\[0\]"):
        ctor([(1, 1, 32, 32), (0, 1, 32, 32)])
    with pytest.raises(ValueError, match=r"data_shapes\[0\]\[2\]"):
        ctor([(1, 1, -3, 32)])
    with pytest.raises(TypeError, match=r"data_shapes\[0\]\[3\]"):
        ctor([(1, 1, 32, 32.0)])
    with pytest.raises(TypeError, match="data_shapes"):
        ctor("1,1,32,32")


@pytest.mark.parametrize("cls", [SequentialPatching, TiledPatching])
def test_validation_overlaps(cls):
    with pytest.raises(ValueError, match=r"overlaps\[1\] must be smaller"):
        cls([(1, 1, 64, 64)], (16, 16), (4, 16))
    with pytest.raises(ValueError, match=r"overlaps\[0\] must be >= 0"):
        cls([(1, 1, 64, 64)], (16, 16), (-2, 4))
    with pytest.raises(ValueError, match="overlaps must have 2 entries"):
        cls([(1, 1, 64, 64)], (16, 16), (4,))
    with pytest.raises(TypeError, match=r"overlaps\[0\]"):
        cls([(1, 1, 64, 64)], (16, 16), (4.0, 4))


def test_tiled_overlaps_required():
    with pytest.raises(TypeError, match="overlaps"):
        TiledPatching([(1, 1, 64, 64)], (16, 16), None)


def test_sequential_image_smaller_than_patch():
    with pytest.raises(ValueError, match=r"patch_size\[0\].*larger"):
        SequentialPatching([(1, 1, 6, 64)], (8, 8))


def test_seed_validation():
    with pytest.raises(TypeError, match="seed"):
        RandomPatching(SHAPES_2D, (8, 8), seed=1.5)
    with pytest.raises(TypeError, match="seed"):
        StratifiedPatching(SHAPES_2D, (8, 8), seed="1")


def test_data_idx_validation():
    p = RandomPatching(SHAPES_2D, (8, 8), seed=1)
    with pytest.raises(IndexError, match="data_idx"):
        p.get_patch_indices(3)
    with pytest.raises(IndexError, match="data_idx"):
        p.get_patch_indices(-1)
    t = TiledPatching(SHAPES_2D, (8, 8), (2, 2))
    with pytest.raises(IndexError, match="data_idx"):
        t.axis_tiles(5)
    with pytest.raises(TypeError, match="data_idx"):
        t.total_tiles(0.0)


def _index_methods(strategy):
    """Every public method whose first parameters are data_idx (and sample_idx)."""
    import inspect

    for name, _ in inspect.getmembers(type(strategy), inspect.isfunction):
        if name.startswith("_"):
            continue
        method = getattr(strategy, name)
        params = list(inspect.signature(method).parameters)
        if params[:1] == ["data_idx"]:
            yield name, method, params


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_per_stack_method_refuses_negative_and_too_large_indices(name):
    # WholeSamplePatching.patch_size_of(-1) used to wrap to the last stack.
    strategy = make(name, SHAPES_2D, (8, 8))
    extra = {"grid_coords": [(0, 0)], "probs": {(0, 0): 0.5}}
    n_stacks = len(SHAPES_2D)
    found = []
    for method_name, method, params in _index_methods(strategy):
        found.append(method_name)
        rest = [extra[p] for p in params[2 if params[1:2] == ["sample_idx"] else 1 :] if p in extra]
        bad_stacks = (-1, -n_stacks) if name == "fixed" else (-1, -n_stacks, n_stacks)  # fixed: stacks unknown
        for bad in bad_stacks:
            args = (bad, 0) if params[1:2] == ["sample_idx"] else (bad,)
            with pytest.raises(IndexError, match=rf"data_idx {bad}\b|data_idx must be >= 0"):
                method(*args, *rest)
        if params[1:2] == ["sample_idx"]:
            for bad in (-1, SHAPES_2D[0][0]):
                with pytest.raises(IndexError, match=rf"sample_idx {bad} out of range"):
                    method(0, bad, *rest)
    assert "get_patch_indices" in found
    if name == "whole":
        assert "patch_size_of" in found
        assert strategy.patch_size_of(n_stacks - 1) == SHAPES_2D[-1][2:]


# ----------------------------------------------------------------------------- whole / fixed
def test_whole_sample_patching():
    p = WholeSamplePatching(SHAPES_2D)
    assert p.n_patches == 6
    assert p.patch_size is None
    specs = [p.get_patch_spec(i) for i in range(6)]
    assert [(s["data_idx"], s["sample_idx"]) for s in specs] == [(0, 0), (0, 1), (1, 0), (2, 0), (2, 1), (2, 2)]
    assert all(s["coords"] == (0, 0) for s in specs)
    assert [s["patch_size"] for s in specs] == [(32, 32)] * 2 + [(19, 37)] + [(14, 9)] * 3
    assert p.get_patch_indices(2) == [3, 4, 5]


def test_fixed_patching():
    specs = _fixed_specs(2)
    p = FixedPatching(specs)
    assert p.n_patches == 3
    assert p.get_patch_spec(1) == specs[1] and p.get_patch_spec(1) == p.get_patch_spec(1)
    assert p.get_patch_indices(0) == [0, 2]
    assert p.get_patch_indices(1) == []
    np.testing.assert_array_equal(p.spec_table([2, 0]), [[0, 0, 2, 2], [0, 1, 0, 0]])
    with pytest.raises(ValueError, match="must not be empty"):
        FixedPatching([])
    with pytest.raises(ValueError, match="share one patch size"):
        FixedPatching([specs[0], {**specs[1], "patch_size": (4, 4)}])
    with pytest.raises(ValueError, match="lacks"):
        FixedPatching([{"data_idx": 0, "sample_idx": 0, "coords": (0, 0)}])


def test_fixed_patching_of_tiles_keeps_tile_fields():
    tiled = TiledPatching([(2, 1, 40, 50)], (16, 16), (4, 4))
    specs = [tiled.get_patch_spec(i) for i in range(tiled.n_patches)]
    fixed = FixedPatching(specs)
    assert [fixed.get_patch_spec(i) for i in range(fixed.n_patches)] == specs
    np.testing.assert_array_equal(fixed.spec_table(np.arange(5)), tiled.spec_table(np.arange(5)))


@pytest.mark.parametrize(
    "spec,expected",
    [
        ({"data_idx": 0, "sample_idx": 0, "coords": (0, 0), "patch_size": (8, 8)}, False),
        ({"crop_coords": (0, 0), "crop_size": (8, 8), "stitch_coords": (0, 0)}, True),
        ({"crop_coords": (0, 0), "crop_size": (8, 8), "stitch_coords": (0, 0), "total_tiles": 4}, True),
        ({"crop_coords": (0, 0), "crop_size": (8, 8)}, False),
        ({"crop_coords": (0, 0), "stitch_coords": (0, 0)}, False),
        ({"crop_size": (8, 8), "stitch_coords": (0, 0)}, False),
    ],
)
def test_is_tile_specs(spec, expected):
    assert is_tile_specs(spec) is expected


def test_top_level_exports():
    import cupatch

    for name in ["PatchSpecs", "TileSpecs", "is_tile_specs", "Patching", "RandomPatching", "FixedRandomPatching",
                 "SequentialPatching", "TiledPatching", "WholeSamplePatching", "StratifiedPatching", "FixedPatching",
                 "ImageRegionData", "collate_regions", "decollate_regions"]:
        assert getattr(cupatch, name) is not None


@settings(max_examples=30, deadline=None)
@given(
    shapes=st.lists(
        st.tuples(st.integers(1, 3), st.just(1), st.integers(1, 40), st.integers(1, 40)), min_size=1, max_size=3
    ),
    patch=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    seed=st.integers(0, 2**64 - 1),
    epoch=st.integers(0, 1000),
)
def test_random_spec_table_matches_specs_hypothesis(shapes, patch, seed, epoch):
    for cls in (RandomPatching, StratifiedPatching):
        p = cls(shapes, patch, seed=seed)
        p.set_epoch(epoch)
        if p.n_patches == 0:
            continue
        idx = np.arange(p.n_patches)
        table = p.spec_table(idx)
        for i in itertools.islice(idx.tolist(), 0, None, max(1, len(idx) // 20)):
            s = p.get_patch_spec(i)
            assert table[i].tolist() == [s["data_idx"], s["sample_idx"], *s["coords"]]
        # corners inside the image whenever the patch fits
        n = np.array([shapes[d][2:] for d in table[:, 0]])
        fits = n >= np.array(patch)
        coords = table[:, 2:]
        assert (coords >= 0).all()
        assert (np.where(fits, coords + np.array(patch) <= n, coords == 0)).all()


def test_fixed_patching_has_no_data_shapes_and_says_why():
    from cupatch import FixedPatching

    fixed = FixedPatching([{"data_idx": 0, "sample_idx": 0, "coords": (0, 0), "patch_size": (4, 4)}])
    with pytest.raises(AttributeError, match="FixedPatching has no data_shapes: its patches are given explicitly"):
        fixed.data_shapes  # noqa: B018
    assert not hasattr(fixed, "data_shapes")
