"""MeanStdPatchFilter: CAREamics' rule, batched on NumPy and CuPy (float64 bound + exact ties)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cupatch.filters import MeanStdPatchFilter

from ._careamics import CAREAMICS, careamics_filter, needs_careamics
from ._cases import adversarial_batch, check_batch, region_batches, thresholds_from

SPATIAL = [(16, 16), (8, 6, 10)]


def _filters(batch):
    t = thresholds_from(batch)
    for m in t["mean"]:
        yield MeanStdPatchFilter(m)
    for s in t["std"]:
        yield MeanStdPatchFilter(0.0, s)
        yield MeanStdPatchFilter(0.5, s)


@pytest.mark.parametrize("spatial", SPATIAL)
def test_batch_equals_per_region_at_ties(xp, spatial):
    batch = adversarial_batch(spatial)
    seen = set()
    for f in _filters(batch):
        seen.update(check_batch(f, batch, xp).tolist())
    assert seen == {True, False}


@pytest.mark.parametrize("spatial", SPATIAL)
def test_bounded_path_equals_per_region_on_the_cpu(spatial):
    """The GPU's float64-and-bound path, run on NumPy: ties at the threshold are re-decided."""
    batch = adversarial_batch(spatial, seed=5)
    for f in _filters(batch):
        want = np.array([f.filter_out(r) for r in batch])
        np.testing.assert_array_equal(f.bounded_decisions(batch, np), want)


@settings(max_examples=60, deadline=None)
@given(batch=region_batches(), pick=st.integers(0, 5), use_std=st.booleans())
def test_batch_equals_per_region_random(batch, pick, use_std):
    region = batch[pick % len(batch)]
    f = MeanStdPatchFilter(float(np.mean(region)), float(np.std(region)) if use_std else None)
    check_batch(f, batch)
    np.testing.assert_array_equal(f.bounded_decisions(batch, np), [f.filter_out(r) for r in batch])


def test_integer_and_double_regions():
    rng = np.random.default_rng(4)
    for dtype in (np.uint8, np.uint16, np.float64):
        batch = (rng.random((6, 1, 5, 7)) * 9).astype(dtype)
        for f in _filters(batch):
            check_batch(f, batch)
            np.testing.assert_array_equal(f.bounded_decisions(batch, np), [f.filter_out(r) for r in batch])


@needs_careamics
@pytest.mark.parametrize("spatial", SPATIAL)
def test_filter_out_is_careamics(spatial):
    batch = adversarial_batch(spatial, seed=3)
    for ours in _filters(batch):
        theirs = careamics_filter(ours)
        assert [ours.filter_out(r) for r in batch] == [bool(theirs.filter_out(r)) for r in batch]


def test_checks():
    with pytest.raises(ValueError, match="mean_threshold must be a finite number >= 0"):
        MeanStdPatchFilter(-1.0)
    with pytest.raises(ValueError, match="std_threshold must be a finite number >= 0"):
        MeanStdPatchFilter(1.0, -0.5)
    with pytest.raises(ValueError, match="mean_threshold"):
        MeanStdPatchFilter(None)


@needs_careamics
def test_filter_map_is_careamics():
    image = (np.random.default_rng(2).random((40, 52)) * 50).astype(np.float32)
    image[:, :20] = 1.0
    ours = MeanStdPatchFilter.filter_map(image, (8, 8))
    theirs = CAREAMICS["filters"].MeanStdPatchFilter.filter_map(image, (8, 8))
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(
        MeanStdPatchFilter.apply_filter(ours, 20.0, 5.0), CAREAMICS["filters"].MeanStdPatchFilter.apply_filter(theirs, 20.0, 5.0)
    )


def test_strided_regions():
    """A channel of a multi-channel batch is a strided view: still filter_out's decisions."""
    rng = np.random.default_rng(9)
    tiles = rng.random((6, 2, 9, 11)).astype(np.float32)
    tiles[2, 0] = 0.5
    view = tiles[:, :1]
    assert not view.flags.c_contiguous
    for f in [MeanStdPatchFilter(float(np.mean(view[1]))), MeanStdPatchFilter(0.0, float(np.std(view[3]))),
              MeanStdPatchFilter(0.5, 0.0)]:
        check_batch(f, view)
