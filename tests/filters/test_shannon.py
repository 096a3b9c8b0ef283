"""ShannonPatchFilter: scikit-image's entropy rule, batched by sorting on NumPy and CuPy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.measure import shannon_entropy

from cupatch.filters import ShannonPatchFilter
from cupatch.filters.shannon import batch_entropy

from ._careamics import CAREAMICS, careamics_filter, needs_careamics
from ._cases import adversarial_batch, check_batch, region_batches, thresholds_from

SPATIAL = [(16, 16), (8, 6, 10)]


@pytest.mark.parametrize("spatial", SPATIAL)
def test_batch_equals_per_region_at_ties(xp, spatial):
    batch = adversarial_batch(spatial)
    seen = set()
    for t in thresholds_from(batch)["entropy"]:
        seen.update(check_batch(ShannonPatchFilter(t), batch, xp).tolist())
    assert seen == {True, False}


def test_entropy_values_match_scikit_image():
    batch = adversarial_batch((12, 12), seed=8)
    batch[2, 0, 0, :3] = np.nan  # NaNs form one histogram bin, as in numpy.unique
    batch[3, 0, 1, :4] = -0.0  # -0 and 0 are one value
    got = batch_entropy(batch.reshape(len(batch), -1), np)
    want = np.array([shannon_entropy(r) for r in batch])
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    check_batch(ShannonPatchFilter(float(want[2])), batch)


@settings(max_examples=60, deadline=None)
@given(batch=region_batches(), pick=st.integers(0, 5))
def test_batch_equals_per_region_random(batch, pick):
    check_batch(ShannonPatchFilter(float(shannon_entropy(batch[pick % len(batch)]))), batch)
    check_batch(ShannonPatchFilter(1.0), batch)


@needs_careamics
def test_filter_out_is_careamics():
    batch = adversarial_batch((10, 10), seed=3)
    for t in thresholds_from(batch)["entropy"]:
        ours = ShannonPatchFilter(t)
        theirs = careamics_filter(ours)
        assert [ours.filter_out(r) for r in batch] == [bool(theirs.filter_out(r)) for r in batch]


def test_checks():
    with pytest.raises(ValueError, match="threshold must be a finite number >= 0"):
        ShannonPatchFilter(-0.1)
    with pytest.raises(ValueError, match="threshold"):
        ShannonPatchFilter(float("inf"))


@needs_careamics
def test_filter_map_matches_careamics():
    image = np.random.default_rng(2).integers(0, 20, (40, 36)).astype(np.float32)
    image[:16] = 3.0
    ours = ShannonPatchFilter.filter_map(image, (8, 8))
    theirs = CAREAMICS["filters"].ShannonPatchFilter.filter_map(image, (8, 8))
    np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=1e-15)  # summation order only
