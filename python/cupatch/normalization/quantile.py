"""``QuantileNormalization``: ``(x - q_lower) / (q_upper - q_lower + 1e-8)`` per channel.

The quantile values come from ``fit`` (exact or estimated, see
:mod:`cupatch.normalization.statistics`) or are given.
"""

from __future__ import annotations

from .._validation import as_bool, as_probability
from .base import RangeNormalization, as_stat, check_range, fmt

__all__ = ["QuantileNormalization"]


class QuantileNormalization(RangeNormalization):
    """``(x - q_lower) / (q_upper - q_lower + 1e-8)`` per channel, quantiles from ``fit``.

    Parameters
    ----------
    lower, upper : float
        Quantile levels in [0, 1], ``lower < upper``.
    lower_values, upper_values : optional
        Precomputed input quantile values (skip the statistics pass).
    target_lower_values, target_upper_values : optional
        Precomputed target quantile values.
    per_channel, skip_target : bool
        As in :class:`MeanStdNormalization`.
    """

    def __init__(self, lower: float = 0.01, upper: float = 0.99, *, lower_values=None, upper_values=None,
                 target_lower_values=None, target_upper_values=None, per_channel: bool = True,
                 skip_target: bool = False) -> None:
        self.lower, self.upper = as_probability(lower, "lower"), as_probability(upper, "upper")
        if not self.lower < self.upper:
            raise ValueError(f"quantile levels need 0 <= lower < upper <= 1, got lower={lower}, upper={upper}")
        self.lower_values, self.upper_values = as_stat(lower_values, "lower_values"), as_stat(upper_values, "upper_values")
        self.target_lower_values = as_stat(target_lower_values, "target_lower_values")
        self.target_upper_values = as_stat(target_upper_values, "target_upper_values")
        check_range(self.lower_values, self.upper_values, "lower_values", "upper_values")
        check_range(self.target_lower_values, self.target_upper_values, "target_lower_values", "target_upper_values")
        self.per_channel, self.skip_target = as_bool(per_channel, "per_channel"), as_bool(skip_target, "skip_target")
        self._wanted = {"moments": False, "extremes": False, "quantiles": (self.lower, self.upper)}

    def _range(self, target):
        if target:
            return self.target_lower_values, self.target_upper_values
        return self.lower_values, self.upper_values

    def _fit_from(self, input_stats, target_stats):
        if input_stats is not None:
            q = input_stats["quantiles"]
            self.lower_values, self.upper_values = q[:, 0], q[:, 1]
        if target_stats is not None:
            q = target_stats["quantiles"]
            self.target_lower_values, self.target_upper_values = q[:, 0], q[:, 1]

    def __repr__(self) -> str:
        return (f"QuantileNormalization(lower={self.lower}, upper={self.upper}, "
                f"lower_values={fmt(self.lower_values)}, upper_values={fmt(self.upper_values)})")
