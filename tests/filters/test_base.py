"""The filter protocol and the shared batch helpers."""

from __future__ import annotations

import numpy as np
import pytest

from cupatch.filters import MaskPatchFilter, MaxPatchFilter, MeanStdPatchFilter, PatchFilter, ShannonPatchFilter
from cupatch.filters.base import compare_dtype, refine, region_batch


def test_every_filter_is_a_patch_filter():
    for f in (MaxPatchFilter(1.0), MeanStdPatchFilter(1.0), ShannonPatchFilter(1.0), MaskPatchFilter(0.5)):
        assert isinstance(f, PatchFilter)
        assert repr(f).startswith(type(f).__name__ + "(")
    assert not isinstance(object(), PatchFilter)


def test_compare_dtype_is_numpy_promotion():
    # float32 regions compare with a Python float in float32, as np.max(patch) < threshold does
    assert compare_dtype(np.float32, 0.1) == np.float32
    assert compare_dtype(np.uint16, 0.1) == np.float64
    x = np.float32(0.1)
    assert bool(x < 0.1) == bool(x < compare_dtype(np.float32, 0.1).type(0.1))


def test_refine_re_decides_only_the_uncertain_rows():
    regions = np.zeros((4, 1, 2, 2), np.float32)
    calls = []

    def exact(r):
        calls.append(r.shape)
        return True

    out = refine(np.zeros(4, bool), np.array([False, True, False, True]), regions, exact, np)
    assert out.tolist() == [False, True, False, True] and calls == [(1, 2, 2)] * 2
    same = np.zeros(4, bool)
    assert refine(same, np.zeros(4, bool), regions, exact, np) is same


def test_region_batch_accepts_any_spatial_rank():
    for shape in [(3, 1, 5), (3, 1, 4, 5), (3, 1, 2, 4, 5)]:
        xp, x = region_batch(np.zeros(shape))
        assert xp is np and x.shape == shape
    with pytest.raises(ValueError, match=r"regions must have shape \(B, 1, \*spatial\)"):
        region_batch(np.zeros((3, 1)))
