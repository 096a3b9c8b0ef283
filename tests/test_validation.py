"""The shared argument checks: one message shape per kind of mistake, naming the parameter."""

from __future__ import annotations

import numpy as np
import pytest

from cupatch._validation import (
    as_float,
    as_index,
    as_indices,
    as_int,
    as_int_tuple,
    as_probability,
    ensure_tuple_rep,
    is_int,
    look_up_option,
)


def test_is_int_refuses_bools_and_floats():
    assert is_int(3) and is_int(np.int16(3)) and is_int(np.uint64(3))
    assert not any(is_int(v) for v in (True, np.bool_(True), 3.0, "3", None))


def test_as_int_types_and_bounds():
    assert as_int(np.int32(4), "n") == 4 and type(as_int(np.int32(4), "n")) is int
    with pytest.raises(TypeError, match=r"n must be an integer, got 2\.5 \(float\)"):
        as_int(2.5, "n")
    with pytest.raises(TypeError, match="n must be an integer, got True"):
        as_int(True, "n")
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        as_int(0, "n", minimum=1)
    with pytest.raises(ValueError, match=r"rank must be in \[0, world_size=2\), got 2"):
        as_int(2, "rank", minimum=0, below=2, below_text="world_size=2")


def test_as_int_tuple_messages_name_the_entry():
    assert as_int_tuple(np.array([1, 2]), "size", length=2, minimum=1) == (1, 2)
    with pytest.raises(TypeError, match="size must be a sequence of ints"):
        as_int_tuple(4, "size")
    with pytest.raises(TypeError, match="size must be a sequence of ints"):
        as_int_tuple("44", "size")
    with pytest.raises(TypeError, match=r"size must contain only ints.*size\[1\] is a float"):
        as_int_tuple((4, 4.0), "size")
    with pytest.raises(ValueError, match="size must have 3 entries, got 2"):
        as_int_tuple((4, 4), "size", length=3)
    with pytest.raises(ValueError, match=r"size entries must be >= 1.*size\[0\] must be >= 1"):
        as_int_tuple((0, 4), "size", minimum=1)


def test_ensure_tuple_rep():
    assert ensure_tuple_rep(3, 2, "overlap") == (3, 3)
    assert ensure_tuple_rep([1, 2, 3], 3, "overlap") == (1, 2, 3)
    with pytest.raises(ValueError, match="overlap must have 2 entries"):
        ensure_tuple_rep([1, 2, 3], 2, "overlap")
    with pytest.raises(ValueError, match=r"overlap entries must be >= 0"):
        ensure_tuple_rep(-1, 2, "overlap", minimum=0)


def test_look_up_option_names_the_allowed_values():
    assert look_up_option("gpu", ("auto", "gpu", "cpu"), "device") == "gpu"
    with pytest.raises(ValueError, match='mode must be "crop" or "blend", got "mean"'):
        look_up_option("mean", ("crop", "blend"), "mode")
    with pytest.raises(ValueError, match='device must be one of "auto", "gpu", "cpu", got "tpu"'):
        look_up_option("tpu", ("auto", "gpu", "cpu"), "device")
    with pytest.raises(TypeError, match="dtype must be one of float32, float16, got int32"):
        look_up_option(np.dtype("int32"), (np.dtype("float32"), np.dtype("float16")), "dtype", error=TypeError)
    with pytest.raises(ValueError, match="must be one of"):
        look_up_option(np.zeros(2), ("a", "b", "c"), "x")  # arrays are never options


def test_finite_floats_and_probabilities():
    assert as_float(np.float32(0.5), "sigma", low=0.0) == 0.5
    for bad in (float("nan"), float("inf"), "1", True, None):
        with pytest.raises(ValueError, match="sigma must be a finite number"):
            as_float(bad, "sigma")
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got 1\.5"):
        as_probability(1.5, "p")
    assert as_probability(1, "p") == 1.0


def test_indices_in_range():
    assert as_index(np.int64(2), 3) == 2
    with pytest.raises(IndexError, match=r"index -1 out of range for 3 patches \(valid: 0 <= index < 3\)"):
        as_index(-1, 3)
    with pytest.raises(IndexError, match="data_idx 2 out of range for 2 image stacks"):
        as_index(2, 2, "data_idx", what="image stacks")
    np.testing.assert_array_equal(as_indices(1, 3), [1])
    assert as_indices([], 3).dtype == np.int64
    with pytest.raises(TypeError, match="indices must be integers, got dtype float64"):
        as_indices([0.0], 3)
    with pytest.raises(IndexError, match="indices contains 3, out of range for 3 patches"):
        as_indices([0, 3], 3)
    with pytest.raises(ValueError, match="indices must be a scalar or 1-D"):
        as_indices([[0]], 3)
