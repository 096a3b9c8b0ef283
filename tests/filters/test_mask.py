"""MaskPatchFilter: CAREamics' coverage rule, batched on NumPy and CuPy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cupatch.filters import MaskPatchFilter

from ._careamics import CAREAMICS, careamics_filter, needs_careamics
from ._cases import adversarial_batch, check_batch, region_batches, thresholds_from


@pytest.mark.parametrize("spatial", [(16, 16), (8, 6, 10)])
def test_batch_equals_per_region_at_ties(xp, spatial):
    batch = adversarial_batch(spatial)
    seen = set()
    for c in thresholds_from(batch)["coverage"]:
        seen.update(check_batch(MaskPatchFilter(c), batch, xp).tolist())
        seen.update(check_batch(MaskPatchFilter(c), batch != 0, xp).tolist())
    assert seen == {True, False}


@settings(max_examples=40, deadline=None)
@given(batch=region_batches(), cov=st.sampled_from([0.0, 0.125, 0.25, 1 / 3, 0.5, 1.0]))
def test_batch_equals_per_region_random(batch, cov):
    check_batch(MaskPatchFilter(cov), batch)


@needs_careamics
def test_filter_out_is_careamics():
    batch = adversarial_batch((10, 10), seed=3) != 0
    for c in thresholds_from(batch.astype(np.float32))["coverage"]:
        ours = MaskPatchFilter(c)
        theirs = careamics_filter(ours)
        assert [ours.filter_out(r) for r in batch] == [bool(theirs.filter_out(r)) for r in batch]


def test_checks():
    for bad in (-0.01, 1.01, float("nan"), "0.5"):
        with pytest.raises(ValueError, match="coverage must be a probability"):
            MaskPatchFilter(bad)


@needs_careamics
def test_filter_map_is_careamics():
    mask = np.zeros((40, 44), dtype=bool)
    mask[5:30, 10:20] = True
    ours = MaskPatchFilter.filter_map(mask, (8, 8))
    theirs = CAREAMICS["filters"].MaskPatchFilter.filter_map(mask, (8, 8))
    np.testing.assert_array_equal(ours, theirs)
