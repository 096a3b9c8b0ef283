"""MaxPatchFilter: CAREamics' rule, batched on NumPy and CuPy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cupatch.filters import MaxPatchFilter

from ._careamics import CAREAMICS, careamics_filter, needs_careamics
from ._cases import adversarial_batch, check_batch, region_batches, thresholds_from

SPATIAL = [(16, 16), (8, 6, 10)]


@pytest.mark.parametrize("spatial", SPATIAL)
def test_batch_equals_per_region_at_ties(xp, spatial):
    batch = adversarial_batch(spatial)
    seen = set()
    for t in thresholds_from(batch)["value"]:
        for coverage in (0.0, 0.125, 0.25, 0.5, 1.0):
            seen.update(check_batch(MaxPatchFilter(t, coverage), batch, xp).tolist())
    assert seen == {True, False}  # the cases decide both ways


@settings(max_examples=60, deadline=None)
@given(batch=region_batches(), t=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 100.0]), cov=st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0]))
def test_batch_equals_per_region_random(batch, t, cov):
    check_batch(MaxPatchFilter(t, cov), batch)


@needs_careamics
@pytest.mark.parametrize("spatial", SPATIAL)
def test_filter_out_is_careamics(spatial):
    batch = adversarial_batch(spatial, seed=3)
    for t in thresholds_from(batch)["value"]:
        for coverage in (0.0, 0.25, 1.0):
            ours = MaxPatchFilter(t, coverage)
            theirs = careamics_filter(ours)
            assert [ours.filter_out(r) for r in batch] == [bool(theirs.filter_out(r)) for r in batch]


def test_regions_of_other_dtypes():
    rng = np.random.default_rng(1)
    for dtype in (np.uint8, np.uint16, np.float64, np.bool_):  # SciPy has no float16 max filter
        batch = (rng.random((5, 1, 6, 6)) * 4).astype(dtype)
        check_batch(MaxPatchFilter(1.0), batch)
        check_batch(MaxPatchFilter(0.5, 0.5), batch)


def test_checks():
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        MaxPatchFilter(float("nan"))
    with pytest.raises(ValueError, match="threshold"):
        MaxPatchFilter("1")
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"coverage must be a probability in \[0, 1\]"):
            MaxPatchFilter(1.0, bad)
    f = MaxPatchFilter(1.0)
    with pytest.raises(ValueError, match=r"regions must have shape \(B, 1, \*spatial\)"):
        f.filter_out_batch(np.zeros((2, 2, 4, 4)))
    with pytest.raises(ValueError, match="regions must have shape"):
        f.filter_out_batch(np.zeros((4, 4)))
    with pytest.raises(TypeError, match="regions must be a NumPy or CuPy array"):
        f.filter_out_batch([[[0.0]]])
    with pytest.raises(TypeError, match="regions must hold booleans or real numbers"):
        f.filter_out_batch(np.zeros((1, 1, 2, 2), dtype=complex))
    assert f.filter_out_batch(np.zeros((0, 1, 4, 4), np.float32)).shape == (0,)


@needs_careamics
@pytest.mark.parametrize("shape,patch", [((40, 52), (8, 8)), ((12, 20, 18), (4, 8, 8))])
@pytest.mark.parametrize("coverage", [None, 0.5])
def test_filter_map_is_careamics(shape, patch, coverage):
    image = (np.random.default_rng(2).random(shape) * 50).astype(np.float32)
    image[: shape[0] // 2] = 0
    ours = MaxPatchFilter.filter_map(image, patch, coverage)
    theirs = CAREAMICS["filters"].MaxPatchFilter.filter_map(image, patch, coverage)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(MaxPatchFilter.apply_filter(ours, 20.0), theirs > 20.0)


def test_negative_thresholds_count_the_zero_padding():
    """With a threshold below 0 the zeros beyond the region border exceed it (mode constant)."""
    rng = np.random.default_rng(6)
    batch = -rng.random((8, 1, 12, 12)).astype(np.float32) * 3
    batch[0] = -5.0
    batch[1, 0, 5, 5] = -0.25
    for t in (-4.0, -1.0, -0.25, -0.1, 0.0):
        for coverage in (0.1, 0.25, 0.5, 0.9):
            check_batch(MaxPatchFilter(t, coverage), batch)
