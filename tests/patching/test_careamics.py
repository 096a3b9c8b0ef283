"""Spec-for-spec comparison with CAREamics' own strategies, where CAREamics can be imported.

CAREamics' patching modules only need NumPy. They are imported from an installed
``careamics``, or from an unpacked wheel named by ``CAREAMICS_PATH`` (a directory holding a
``careamics`` package, e.g. ``pip install --no-deps --target DIR careamics``) without
running the rest of CAREamics. Otherwise the tests are skipped with the reason.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cupatch.patching import (
    RandomPatching,
    SequentialPatching,
    StratifiedPatching,
    TiledPatching,
    WholeSamplePatching,
)


def _careamics_patching():
    try:
        importlib.import_module("careamics.dataset.patching")
    except Exception:
        path = os.environ.get("CAREAMICS_PATH")
        if not path or not (Path(path) / "careamics" / "dataset" / "patching").is_dir():
            return None
        for name, sub in [
            ("careamics", "careamics"),
            ("careamics.dataset", "careamics/dataset"),
            ("careamics.dataset.patching", "careamics/dataset/patching"),
        ]:
            if name not in sys.modules:
                stub = types.ModuleType(name)
                stub.__path__ = [str(Path(path) / sub)]
                sys.modules[name] = stub
    try:
        return {
            n: importlib.import_module(f"careamics.dataset.patching.{n}")
            for n in ("random_patching", "sequential_patching", "tiled_patching", "whole_sample_patching",
                      "stratified_patching")
        }
    except Exception:
        return None


CAREAMICS = _careamics_patching()
pytestmark = pytest.mark.skipif(
    CAREAMICS is None, reason="CAREamics patching modules not importable (install careamics or set CAREAMICS_PATH)"
)


def _plain(spec):
    return {k: tuple(int(x) for x in v) if isinstance(v, (list, tuple)) else int(v) for k, v in spec.items()}


@st.composite
def _setup(draw):
    nd = draw(st.sampled_from([2, 3]))
    shapes = [
        (draw(st.integers(1, 2)), 1, *[draw(st.integers(1, 60 if nd == 2 else 25)) for _ in range(nd)])
        for _ in range(draw(st.integers(1, 3)))
    ]
    patch = tuple(draw(st.integers(2, 20)) for _ in range(nd))
    overlaps = tuple(2 * draw(st.integers(0, (p - 1) // 2)) for p in patch)
    return shapes, patch, overlaps


@settings(max_examples=40, deadline=None)
@given(setup=_setup())
def test_deterministic_strategies_equal_careamics(setup):
    shapes, patch, overlaps = setup
    theirs = CAREAMICS["tiled_patching"].TiledPatching(shapes, patch, overlaps)
    ours = TiledPatching(shapes, patch, overlaps)
    assert ours.n_patches == theirs.n_patches
    assert [ours.get_patch_spec(i) for i in range(ours.n_patches)] == [
        _plain(theirs.get_patch_spec(i)) for i in range(theirs.n_patches)
    ]
    theirs = CAREAMICS["whole_sample_patching"].WholeSamplePatching(shapes)
    ours = WholeSamplePatching(shapes)
    assert [ours.get_patch_spec(i) for i in range(ours.n_patches)] == [
        _plain(theirs.get_patch_spec(i)) for i in range(theirs.n_patches)
    ]
    if all(n >= p for s in shapes for n, p in zip(s[2:], patch)):
        theirs = CAREAMICS["sequential_patching"].SequentialPatching(shapes, patch, overlaps)
        ours = SequentialPatching(shapes, patch, overlaps)
        assert [ours.get_patch_spec(i) for i in range(ours.n_patches)] == [
            _plain(theirs.get_patch_spec(i)) for i in range(theirs.n_patches)
        ]


@settings(max_examples=40, deadline=None)
@given(setup=_setup())
def test_random_strategies_counts_and_mapping_equal_careamics(setup):
    shapes, patch, _ = setup
    for ours, theirs in [
        (RandomPatching(shapes, patch, seed=1), CAREAMICS["random_patching"].RandomPatching(shapes, patch, seed=1)),
        (StratifiedPatching(shapes, patch, seed=1),
         CAREAMICS["stratified_patching"].StratifiedPatching(shapes, patch, seed=1)),
    ]:
        assert ours.n_patches == theirs.n_patches
        for k in range(len(shapes)):
            assert ours.get_patch_indices(k) == [int(i) for i in theirs.get_patch_indices(k)]
        table = ours.spec_table(np.arange(ours.n_patches))
        for i in range(ours.n_patches):
            spec = theirs.get_patch_spec(i)
            assert table[i, :2].tolist() == [int(spec["data_idx"]), int(spec["sample_idx"])]


def _check_draws_avoid(ours, shape, patch, excluded, probs):
    """Every drawn patch lies in the image and starts in a cell that can be drawn."""
    table = ours.spec_table(np.arange(ours.n_patches))
    corners = table[:, 2:]
    assert (corners >= 0).all() and (corners + np.asarray(patch) <= np.asarray(shape[2:])).all()
    barred = set(map(tuple, excluded)) | {cell for cell, p in probs.items() if p == 0.0}
    assert not {tuple(int(c) for c in row // np.asarray(patch)) for row in corners} & barred


@settings(max_examples=30, deadline=None)
@given(setup=_setup(), data=st.data())
def test_stratified_bookkeeping_equals_careamics(setup, data):
    """Region areas, n_patches and bin size after exclusions and probabilities."""
    shapes, patch, _ = setup
    shape = (1, 1, *shapes[0][2:])
    ours = StratifiedPatching([shape], patch, seed=0)
    theirs = CAREAMICS["stratified_patching"].StratifiedPatching([shape], patch, seed=0)
    cells = ours.get_all_grid_coords()[(0, 0)]
    probs = {}
    if cells:
        excluded = data.draw(st.lists(st.sampled_from(cells), max_size=max(1, len(cells) // 3), unique=True))
        probs = data.draw(st.dictionaries(st.sampled_from(cells), st.floats(0.0, 1.0), max_size=len(cells)))
        ours.exclude_patches(0, 0, excluded)
        theirs.exclude_patches(0, 0, excluded)
        ours.set_region_probs(0, 0, probs)
        try:
            theirs.set_region_probs(0, 0, probs)
        except (TypeError, RuntimeWarning):
            # CAREamics' own bin packing fails on these (a float growth added to an int array,
            # or a division by a zero bin size): cupatch must still draw valid patches
            _check_draws_avoid(ours, shape, patch, excluded, probs)
            return
    image = theirs.image_patching[0][0]
    areas = np.array([image.areas[i] for i in range(len(image.grid_coords))], dtype=np.int64)
    np.testing.assert_array_equal(ours.region_areas(0, 0).ravel(), areas)
    weights = np.ones(len(areas))
    for cell, p in probs.items():
        weights[np.ravel_multi_index(cell, ours.grid_shape(0))] = p
    if (areas * weights).sum() > 0 and theirs.n_patches >= 0:
        assert ours.n_patches == theirs.n_patches
        assert ours.bin_size_of(0, 0) == image.region_bins.bin_size
    else:  # documented difference: nothing selectable -> no patches (CAREamics cannot sample these)
        assert ours.n_patches == 0
