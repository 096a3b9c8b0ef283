"""The normalisations: given statistics, broadcasting, range checks, targets, denormalize."""

from __future__ import annotations

import numpy as np
import pytest

from cupatch.normalization import (
    MeanStdNormalization,
    MinMaxNormalization,
    NoNormalization,
    QuantileNormalization,
)
from cupatch.stacks import as_stack

from .helpers import make_stacks, values_per_channel


def test_targets_and_denormalize_uses_target_stats():
    stacks, a, b = make_stacks(np)
    targets = [as_stack(a[:, :1] * 2, "SCYX"), as_stack(b[:, :1] * 2, "SCYX")]
    norm = MeanStdNormalization().fit(stacks, targets=targets, progress=False)
    t_values = np.concatenate([a[:, 0].ravel(), b[:, 0].ravel()]).astype(np.float64) * 2
    np.testing.assert_allclose(norm.target_means, [t_values.mean()])
    y = np.full((2, 1, 3, 3), 0.5, np.float32)
    np.testing.assert_allclose(norm.denormalize(y), 0.5 * (t_values.std() + 1e-6) + t_values.mean(), rtol=1e-6)
    skip = MeanStdNormalization(means=[1.0], stds=[2.0], skip_target=True)
    assert skip.denormalize(y) is y
    np.testing.assert_array_equal(skip.target_scale_shift(1)[0], [1.0])



def test_given_statistics_and_broadcasting():
    norm = MeanStdNormalization(means=[10.0], stds=[2.0])
    assert norm.fitted
    scale, shift = norm.input_scale_shift(3)
    np.testing.assert_array_equal(scale, np.full(3, np.float32(1 / (2 + 1e-6))))
    np.testing.assert_array_equal(shift, np.full(3, np.float32(-10 / (2 + 1e-6))))
    with pytest.raises(ValueError, match="has 2 entries but there are 3 channels"):
        MeanStdNormalization(means=[1, 2], stds=[1, 1]).input_scale_shift(3)
    with pytest.raises(ValueError, match="no target statistics"):
        norm.target_scale_shift(1)
    with pytest.raises(ValueError, match="not fitted"):
        MinMaxNormalization().input_scale_shift(1)
    with pytest.raises(ValueError, match="stds must be non-negative"):
        MeanStdNormalization(means=[0], stds=[-1])
    # lengths that disagree are refused at construction (they used to fail only on first use)
    with pytest.raises(ValueError, match=r"means \(2\) and stds \(3\) have different lengths"):
        MeanStdNormalization(means=[0.0, 1.0], stds=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"target_means \(3\) and target_stds \(2\) have different lengths"):
        MeanStdNormalization(target_means=[0.0, 1.0, 2.0], target_stds=[1.0, 1.0])
    assert MeanStdNormalization(means=[0.0, 1.0, 2.0], stds=2.0).input_scale_shift(3)[0].shape == (3,)
    with pytest.raises(ValueError, match="lower < upper"):
        QuantileNormalization(0.9, 0.1)
    # fit keeps given statistics and computes only the missing ones
    stacks, a, b = make_stacks(np)
    fitted = MinMaxNormalization(mins=[0, 0], maxes=[1, 1]).fit(stacks, targets=stacks, progress=False)
    np.testing.assert_array_equal(fitted.maxes, [1, 1])
    np.testing.assert_array_equal(fitted.target_maxes, values_per_channel(a, b).max(axis=1))



def test_swapped_ranges_and_non_stack_inputs_are_refused():
    with pytest.raises(ValueError, match="mins must not exceed maxes"):
        MinMaxNormalization(mins=[5.0], maxes=[1.0])
    with pytest.raises(ValueError, match="target_mins must not exceed target_maxes"):
        MinMaxNormalization(target_mins=[0.0, 9.0], target_maxes=[1.0, 2.0])
    with pytest.raises(ValueError, match="different lengths"):
        MinMaxNormalization(mins=[0.0, 0.0], maxes=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="lower_values must not exceed upper_values"):
        QuantileNormalization(lower_values=[3.0], upper_values=[2.0])
    assert MinMaxNormalization(mins=[1.0], maxes=[1.0]).fitted  # a constant channel is fine
    stacks, a, _ = make_stacks(np)
    for bad in (a, [a], "image.tif"):
        with pytest.raises(TypeError, match="as_stacks"):
            MeanStdNormalization().fit(bad, progress=False)
    with pytest.raises(TypeError, match="targets.*as_stacks"):
        MeanStdNormalization().fit(stacks, targets=a, progress=False)



def test_no_normalization():
    norm = NoNormalization()
    scale, shift = norm.input_scale_shift(2)
    np.testing.assert_array_equal(scale, [1, 1])
    np.testing.assert_array_equal(shift, [0, 0])
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(norm.denormalize(x), x)



def test_denormalize_torch():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    norm = MeanStdNormalization(means=[1.0, 2.0], stds=[3.0, 4.0])
    x = torch.ones((2, 2, 3, 3))
    out = norm.denormalize(x)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out[:, 0].numpy(), 1 * (3 + 1e-6) + 1, rtol=1e-6)
