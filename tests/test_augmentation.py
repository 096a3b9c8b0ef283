"""Augmentation flags: CAREamics probabilities, counter-based determinism, kernel semantics."""

from __future__ import annotations

import numpy as np
import pytest

from cupatch._random import Stream, hash4, uniform01, uniform_int
from cupatch._reference import gather_patches_reference
from cupatch.augmentation import Augmentations, apply_augmentations


def test_flags_follow_the_counter_based_formula():
    aug = Augmentations(seed=7)
    idx = np.arange(50)
    flip_y, flip_x, rot = aug.draw(idx, epoch=3)
    for i in idx:
        flip = uniform01(hash4(7, 3, i, Stream.AUG_FLIP_APPLY))[0] < 0.5
        along_x = uniform_int(hash4(7, 3, i, Stream.AUG_FLIP_AXIS), 2)[0] == 1
        assert flip_y[i] == (flip and not along_x)
        assert flip_x[i] == (flip and along_x)
        turn = uniform01(hash4(7, 3, i, Stream.AUG_ROT_APPLY))[0] < 0.5
        k = 1 + uniform_int(hash4(7, 3, i, Stream.AUG_ROT_K), 3)[0]
        assert rot[i] == (k if turn else 0)
    assert flip_y.dtype == bool and rot.dtype == np.int32


def test_probabilities_and_distribution():
    aug = Augmentations(p_flip=0.3, p_rot90=0.8, seed=1)
    flip_y, flip_x, rot = aug.draw(np.arange(20000))
    assert not np.any(flip_y & flip_x)  # one axis per flip, like XYFlip
    assert abs((flip_y | flip_x).mean() - 0.3) < 0.02
    assert abs(flip_y.mean() - 0.15) < 0.015
    assert abs((rot > 0).mean() - 0.8) < 0.02
    counts = np.bincount(rot, minlength=4)[1:]
    assert np.all(np.abs(counts / counts.sum() - 1 / 3) < 0.02)


def test_determinism_and_epochs():
    a, b = Augmentations(seed=5), Augmentations(seed=5)
    idx = np.array([9, 3, 100, 7])
    for x, y in zip(a.draw(idx, 2), b.draw(idx, 2)):
        np.testing.assert_array_equal(x, y)
    # the same index gets the same flags whatever else is in the batch
    single = a.draw([100], 2)
    assert all(s[0] == full[2] for s, full in zip(single, a.draw(idx, 2)))
    # a new epoch changes the choices
    e0 = np.concatenate([np.ravel(f) for f in a.draw(np.arange(200), 0)])
    e1 = np.concatenate([np.ravel(f) for f in a.draw(np.arange(200), 1)])
    assert not np.array_equal(e0, e1)
    # seed=None is resolved once
    c = Augmentations()
    assert isinstance(c.seed, int)
    np.testing.assert_array_equal(c.draw(np.arange(30))[2], c.draw(np.arange(30))[2])


def test_disabled_and_single_axis():
    off = Augmentations(flip=False, rot90=False, seed=0)
    assert not off.enabled
    assert not any(np.any(f) for f in off.draw(np.arange(100)))
    only_x = Augmentations(rot90=False, flip_axes="X", p_flip=1.0, seed=0)
    flip_y, flip_x, rot = only_x.draw(np.arange(100))
    assert flip_x.all() and not flip_y.any() and not rot.any()


def test_errors():
    with pytest.raises(ValueError, match="p_flip must be a probability"):
        Augmentations(p_flip=1.5)
    with pytest.raises(ValueError, match="p_rot90 must be a probability"):
        Augmentations(p_rot90=-0.1)
    with pytest.raises(ValueError, match="flip_axes"):
        Augmentations(flip_axes="Z")
    with pytest.raises(TypeError, match="seed"):
        Augmentations(seed="abc")
    with pytest.raises(ValueError, match="square YX patch size"):
        Augmentations().check_patch_size((16, 8))
    Augmentations(rot90=False).check_patch_size((16, 8))
    Augmentations().check_patch_size((4, 8, 8))


def test_apply_matches_gather_semantics():
    rng = np.random.default_rng(0)
    src = rng.integers(0, 100, (1, 2, 6, 6)).astype(np.uint16)
    specs = np.array([[0, 0, 0, 0]])
    aug = Augmentations(p_flip=0.7, p_rot90=0.7, seed=11)
    for i in range(20):
        fy, fx, r = aug.draw([i])
        got = gather_patches_reference([src], specs, (6, 6), flip_y=fy, flip_x=fx, rot90=r)[0]
        expected = apply_augmentations(src[0].astype(np.float32), fy[0], fx[0], r[0])
        np.testing.assert_array_equal(got, expected)
        # an explicit definition: flip then np.rot90
        manual = src[0]
        manual = manual[:, ::-1] if fy[0] else manual
        manual = manual[:, :, ::-1] if fx[0] else manual
        np.testing.assert_array_equal(expected, np.rot90(manual, int(r[0]), axes=(1, 2)))
