"""``MinMaxNormalization``: CAREamics' ``(x - min) / (max - min + 1e-8)`` per channel."""

from __future__ import annotations

from .._validation import as_bool
from .base import RangeNormalization, as_stat, check_range, fmt

__all__ = ["MinMaxNormalization"]


class MinMaxNormalization(RangeNormalization):
    """``(x - min) / (max - min + 1e-8)`` per channel (no clipping).

    Parameters
    ----------
    mins, maxes : float or sequence of float, optional
        Input range; computed by ``fit`` when None.
    target_mins, target_maxes : optional
        Target range; computed by ``fit`` from the targets when None.
    per_channel, skip_target : bool
        As in :class:`MeanStdNormalization`.
    """

    _wanted = {"moments": False, "extremes": True, "quantiles": None}

    def __init__(self, mins=None, maxes=None, target_mins=None, target_maxes=None, *, per_channel: bool = True,
                 skip_target: bool = False) -> None:
        self.mins, self.maxes = as_stat(mins, "mins"), as_stat(maxes, "maxes")
        self.target_mins, self.target_maxes = as_stat(target_mins, "target_mins"), as_stat(target_maxes, "target_maxes")
        check_range(self.mins, self.maxes, "mins", "maxes")
        check_range(self.target_mins, self.target_maxes, "target_mins", "target_maxes")
        self.per_channel, self.skip_target = as_bool(per_channel, "per_channel"), as_bool(skip_target, "skip_target")

    def _range(self, target):
        return (self.target_mins, self.target_maxes) if target else (self.mins, self.maxes)

    def _fit_from(self, input_stats, target_stats):
        if input_stats is not None:
            self.mins, self.maxes = input_stats["min"], input_stats["max"]
        if target_stats is not None:
            self.target_mins, self.target_maxes = target_stats["min"], target_stats["max"]

    def __repr__(self) -> str:
        return f"MinMaxNormalization(mins={fmt(self.mins)}, maxes={fmt(self.maxes)})"
