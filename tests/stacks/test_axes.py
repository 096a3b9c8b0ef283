"""Axes validation, reshaping to SC(Z)YX and restoring (CAREamics semantics)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import to_numpy

from cupatch.stacks.axes import (
    reshape_array,
    reshaped_shape,
    restore_array,
    sample_index,
    validate_axes,
)


@pytest.mark.parametrize("axes", ["YX", "XY", "SYX", "yx", "STCZYX", "XCSYT", "CYXT"])
def test_validate_axes_accepts(axes):
    assert validate_axes(axes) == axes.upper()


@pytest.mark.parametrize(
    "axes, match",
    [
        ("", "2 to 6"),
        ("Y", "2 to 6"),
        ("STCZYXS", "2 to 6"),
        ("YXA", "unknown axis"),
        ("YYX", "repeats"),
        ("SZX", "must contain both"),
        ("CY", "must contain both"),
    ],
)
def test_validate_axes_rejects(axes, match):
    with pytest.raises(ValueError, match=match):
        validate_axes(axes)


def test_validate_axes_type():
    with pytest.raises(TypeError, match="axes must be a string"):
        validate_axes(["Y", "X"])


def _reference_reshape(a: np.ndarray, axes: str) -> np.ndarray:
    """Explicit loop version: out[s*T + t, c, z, y, x] = a[...]."""
    size = dict(zip(axes, a.shape))
    n_s, n_t, n_c = size.get("S", 1), size.get("T", 1), size.get("C", 1)
    spatial = [ax for ax in "ZYX" if ax in axes]
    out = np.empty((n_s * n_t, n_c, *[size[ax] for ax in spatial]), a.dtype)
    for s, t, c in itertools.product(range(n_s), range(n_t), range(n_c)):
        index = []
        for ax in axes:
            index.append({"S": s, "T": t, "C": c}.get(ax, slice(None)))
        sub = a[tuple(index)]
        # remaining dims of sub are spatial dims in the user order
        order = [ax for ax in axes if ax in "ZYX"]
        sub = np.transpose(sub, [order.index(ax) for ax in spatial])
        out[s * n_t + t, c] = sub
    return out


AXES_CASES = ["YX", "XY", "SYX", "TYX", "CYX", "YXC", "STYX", "TSYX", "ZYX", "SCZYX", "XYS",
              "SXYC", "CYXT", "CXYTS", "XCSYT", "TZCYX", "YXZ"]


@pytest.mark.parametrize("axes", AXES_CASES)
def test_reshape_matches_loop(xp, axes):
    rng = np.random.default_rng(len(axes))
    sizes = {"S": 3, "T": 2, "C": 4, "Z": 5, "Y": 6, "X": 7}
    a = rng.integers(0, 1000, [sizes[ax] for ax in axes]).astype(np.uint16)
    out = reshape_array(xp.asarray(a), axes)
    assert type(out) is type(xp.asarray(a))
    np.testing.assert_array_equal(to_numpy(out), _reference_reshape(a, axes))
    assert out.shape == reshaped_shape(a.shape, axes)


def test_reshape_is_view_when_possible():
    a = np.zeros((3, 8, 9), np.float32)
    out = reshape_array(a, "SYX")
    assert np.shares_memory(out, a) and out.shape == (3, 1, 8, 9)
    b = np.zeros((8, 9, 2), np.float32)
    assert np.shares_memory(reshape_array(b, "YXC"), b)


def test_reshape_shape_mismatch():
    with pytest.raises(ValueError, match="3 letters but the data has 2"):
        reshape_array(np.zeros((4, 4)), "SYX")


@pytest.mark.parametrize("axes", AXES_CASES)
def test_restore_round_trip(xp, axes):
    sizes = {"S": 3, "T": 2, "C": 4, "Z": 5, "Y": 6, "X": 7}
    a = np.arange(np.prod([sizes[ax] for ax in axes])).reshape([sizes[ax] for ax in axes])
    restored = restore_array(reshape_array(xp.asarray(a), axes), axes, a.shape)
    np.testing.assert_array_equal(to_numpy(restored), a)


def test_restore_other_target_order_and_channels():
    a = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)  # T Y X C
    sc = reshape_array(a, "TYXC")  # (2, 5, 3, 4)
    out = restore_array(sc, "TYXC", a.shape, target_axes="TCYX")
    np.testing.assert_array_equal(out, np.moveaxis(a, -1, 1))
    # channel count from the restored array, not from the original shape
    pred = np.ones((2, 2, 3, 4))
    assert restore_array(pred, "TYXC", a.shape).shape == (2, 3, 4, 2)
    # single channel may be dropped, several may not
    assert restore_array(pred[:, :1], "TYXC", a.shape, target_axes="TYX").shape == (2, 3, 4)
    with pytest.raises(ValueError, match="Cannot drop C"):
        restore_array(pred, "TYXC", a.shape, target_axes="TYX")
    # C may be added when the original had none
    b = np.zeros((3, 4))
    assert restore_array(reshape_array(b, "YX"), "YX", b.shape, target_axes="CYX").shape == (1, 3, 4)


def test_restore_errors():
    with pytest.raises(ValueError, match="Expected 4D"):
        restore_array(np.zeros((4, 4)), "YX", (4, 4))
    with pytest.raises(ValueError, match="same sample axes"):
        restore_array(np.zeros((2, 1, 4, 4)), "SYX", (2, 4, 4), target_axes="YX")
    with pytest.raises(ValueError, match="same spatial axes"):
        restore_array(np.zeros((2, 1, 4, 4)), "SYX", (2, 4, 4), target_axes="SZYX")
    with pytest.raises(ValueError, match="samples"):
        restore_array(np.zeros((3, 1, 4, 4)), "SYX", (2, 4, 4))
    with pytest.raises(ValueError, match="5-D"):
        restore_array(np.zeros((2, 1, 4, 4)), "SZYX", (2, 3, 4, 4))


def test_sample_index():
    assert sample_index(5, "STYX", (3, 2, 4, 4)) == {"S": 2, "T": 1}
    assert sample_index(1, "TYX", (2, 4, 4)) == {"T": 1}
    assert sample_index(0, "YX", (4, 4)) == {}
    with pytest.raises(IndexError, match="out of range"):
        sample_index(6, "STYX", (3, 2, 4, 4))
