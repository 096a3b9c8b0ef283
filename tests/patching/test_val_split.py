"""create_val_split: CAREamics' validation split, draw for draw, on cupatch's StratifiedPatching."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cupatch import FixedPatching, MaxPatchFilter, StratifiedPatching, create_val_split, filter_background
from cupatch._sample import sample_image
from filters._careamics import CAREAMICS, needs_careamics


def _plain(spec):
    return {k: tuple(int(x) for x in v) if isinstance(v, (list, tuple, np.ndarray)) else int(v) for k, v in spec.items()}


def _specs(strategy):
    return [_plain(strategy.get_patch_spec(i)) for i in range(strategy.n_patches)]


@st.composite
def _setup(draw):
    nd = draw(st.sampled_from([2, 3]))
    patch = tuple(draw(st.integers(2, 8)) for _ in range(nd))
    shapes = [
        (draw(st.integers(1, 3)), 1, *[draw(st.integers(p, 5 * p)) for p in patch]) for _ in range(draw(st.integers(1, 3)))
    ]
    return shapes, patch


@needs_careamics
@settings(max_examples=40, deadline=None)
@given(setup=_setup(), seed=st.integers(0, 2**32 - 1), frac=st.floats(0.0, 0.9))
def test_same_split_as_careamics(setup, seed, frac):
    shapes, patch = setup
    ours = StratifiedPatching(shapes, patch, seed=0)
    theirs = CAREAMICS["patching"].StratifiedPatching(shapes, patch, seed=0)
    n_val = max(1, int(frac * ours.n_patches))
    if n_val >= ours.n_patches:
        with pytest.raises(ValueError, match="n_val_patches must be below the number of training patches"):
            create_val_split(ours, n_val, seed)
        return
    try:
        with warnings.catch_warnings():  # CAREamics divides by a zero bin size for samples left without regions
            warnings.simplefilter("ignore", RuntimeWarning)
            t_train, t_val = CAREAMICS["val_split"].create_val_split(theirs, n_val, rng=np.random.default_rng(seed))
    except ValueError:  # more patches drawn from a sample than it has cells
        before = _specs(ours)
        with pytest.raises(ValueError, match="which has only"):
            create_val_split(ours, n_val, seed)
        assert _specs(ours) == before  # left unchanged
        return
    train, val = create_val_split(ours, n_val, seed)
    assert train is ours and isinstance(val, FixedPatching)
    assert _specs(val) == _specs(t_val)
    assert train.n_patches == t_train.n_patches
    included, t_included = train.get_included_grid_coords(), t_train.get_included_grid_coords()
    assert {k: sorted(v) for k, v in included.items()} == {k: sorted(v) for k, v in t_included.items()}


@needs_careamics
def test_after_background_filtering_as_careamics():
    image = sample_image((96, 80), seed=2).astype(np.float32)
    image[:48] = 0
    ours = StratifiedPatching([(1, 1, 96, 80)], (16, 16), seed=0)
    filter_background(ours, [image], MaxPatchFilter(300.0), axes="YX", progress=False)
    cm = CAREAMICS
    extractor = cm["extractor"].PatchExtractor(cm["loader"].load_arrays([image], "YX"))
    theirs = cm["patching"].StratifiedPatching(extractor.shapes, (16, 16), seed=0)
    cm["filter_bg"].filter_background(cm["config"].MaxPatchFilterConfig(threshold=300.0), theirs, extractor)
    assert ours.n_patches == theirs.n_patches < 30
    _, val = create_val_split(ours, 5, 7)
    _, t_val = cm["val_split"].create_val_split(theirs, 5, rng=np.random.default_rng(7))
    assert _specs(val) == _specs(t_val)
    assert ours.n_patches == theirs.n_patches


def test_training_patches_never_overlap_validation_patches():
    shapes = [(2, 1, 70, 64), (1, 1, 33, 90)]
    train, val = create_val_split(StratifiedPatching(shapes, (16, 16), seed=3), 6, seed=11)
    boxes = {}
    for spec in _specs(val):
        boxes.setdefault((spec["data_idx"], spec["sample_idx"]), []).append(np.array(spec["coords"]))
    for epoch in range(20):
        train.set_epoch(epoch)
        table = train.spec_table(np.arange(train.n_patches))
        for row in table:
            for corner in boxes.get((int(row[0]), int(row[1])), []):
                assert np.any(np.abs(row[2:4] - corner) >= 16), (row, corner)


def test_reproducible_from_the_seed():
    def split(seed):
        train, val = create_val_split(StratifiedPatching([(3, 1, 64, 64)], (8, 8), seed=0), 10, seed)
        return _specs(val), train.n_patches

    assert split(5) == split(5)
    assert split(5) != split(6)
    assert split(5)[1] == 3 * 64 - 10
    rng = np.random.default_rng(5)  # a generator, as CAREamics takes, gives the seed's split
    assert _specs(create_val_split(StratifiedPatching([(3, 1, 64, 64)], (8, 8), seed=0), 10, rng)[1]) == split(5)[0]
