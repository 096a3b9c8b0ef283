"""CAREamics' statistic names and configs (:mod:`cupatch.normalization.careamics`, :mod:`cupatch.normalization.from_config`).

The configs are CAREamics' own pydantic models, loaded from ``CAREAMICS_PATH`` (its
``normalization_config.py`` needs only pydantic); the dict forms run everywhere.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from cupatch.normalization import (
    MeanStdNormalization,
    MinMaxNormalization,
    NoNormalization,
    QuantileNormalization,
    from_careamics_config,
)


def _careamics_configs():
    path = Path(os.environ.get("CAREAMICS_PATH", "")) / "careamics" / "config" / "data" / "normalization_config.py"
    if not path.is_file() or importlib.util.find_spec("pydantic") is None:
        return None
    spec = importlib.util.spec_from_file_location("_careamics_normalization_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONFIGS = _careamics_configs()
needs_careamics = pytest.mark.skipif(CONFIGS is None, reason="CAREamics not found (set CAREAMICS_PATH) or no pydantic")


def _affine(norm, n=2):
    return tuple(np.asarray(v).tolist() for v in norm.input_scale_shift(n))


def test_constructor_accepts_careamics_names():
    assert _affine(MeanStdNormalization(input_means=[1.0, 2.0], input_stds=[3.0, 4.0])) == _affine(
        MeanStdNormalization([1.0, 2.0], [3.0, 4.0])
    )
    assert _affine(MinMaxNormalization(input_mins=[0.0, 1.0], input_maxes=[2.0, 5.0])) == _affine(
        MinMaxNormalization([0.0, 1.0], [2.0, 5.0])
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MeanStdNormalization(means=[1.0], input_means=[1.0]), "got both 'means' and 'input_means'"),
        (lambda: MinMaxNormalization(maxes=[1.0], input_maxes=[1.0]), "got both 'maxes' and 'input_maxes'"),
    ],
)
def test_both_spellings_at_once_are_refused(make, message):
    with pytest.raises(TypeError, match=message):
        make()


def test_dict_configs():
    norm = from_careamics_config({"name": "mean_std", "input_means": [10.0], "input_stds": [2.0], "target_means": [1.0],
                                  "target_stds": [0.5], "per_channel": False, "skip_target": False})
    assert isinstance(norm, MeanStdNormalization) and norm.per_channel is False
    assert norm.target_means.tolist() == [1.0] and norm.means.tolist() == [10.0]
    quantile = from_careamics_config({"name": "quantile", "lower_quantiles": [0.02, 0.02], "upper_quantiles": [0.98, 0.98]})
    assert isinstance(quantile, QuantileNormalization) and (quantile.lower, quantile.upper) == (0.02, 0.98)
    assert isinstance(from_careamics_config({"name": "none"}), NoNormalization)
    unfitted = MinMaxNormalization.from_careamics_config({"name": "min_max"})
    assert not unfitted.fitted


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        ({"name": "zscore"}, ValueError, "config name must be one of"),
        ({"name": "mean_std", "means": [1.0]}, ValueError, r"unknown fields \['means'\]"),
        ({"name": "quantile", "lower_quantiles": [0.01, 0.05]}, ValueError, "one quantile level for every channel"),
        ([1, 2], TypeError, "config must be a CAREamics normalization config"),
    ],
)
def test_bad_configs(config, error, message):
    with pytest.raises(error, match=message):
        from_careamics_config(config)


def test_config_of_another_kind_is_refused_by_a_class():
    with pytest.raises(ValueError, match="MeanStdNormalization takes 'mean_std'"):
        MeanStdNormalization.from_careamics_config({"name": "min_max"})


@needs_careamics
def test_careamics_models():
    mean_std = CONFIGS.MeanStdConfig(input_means=[431.0], input_stds=[87.5], skip_target=True)
    norm = MeanStdNormalization.from_careamics_config(mean_std)
    assert norm.skip_target and _affine(norm, 1) == _affine(MeanStdNormalization(431.0, 87.5), 1)
    min_max = from_careamics_config(CONFIGS.MinMaxConfig(input_mins=[0.0], input_maxes=[4095.0]))
    assert _affine(min_max, 1) == _affine(MinMaxNormalization(0.0, 4095.0), 1)
    quantile = from_careamics_config(CONFIGS.QuantileConfig())
    assert (quantile.lower, quantile.upper) == (0.01, 0.99) and not quantile.fitted
    assert isinstance(from_careamics_config(CONFIGS.NoNormConfig()), NoNormalization)
