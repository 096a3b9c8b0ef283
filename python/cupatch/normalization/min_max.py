"""``MinMaxNormalization``: CAREamics' ``(x - min) / (max - min + 1e-8)`` per channel."""

from __future__ import annotations

from .._validation import as_bool
from .base import RangeNormalization, as_stat, careamics_alias, check_range, fmt
from .careamics import config_fields

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
    input_mins, input_maxes : float or sequence of float, optional
        CAREamics' names for ``mins`` and ``maxes`` (give one spelling, not both);
        :meth:`from_careamics_config` takes a whole CAREamics ``MinMaxConfig``.
    """

    _wanted = {"moments": False, "extremes": True, "quantiles": None}

    def __init__(self, mins=None, maxes=None, target_mins=None, target_maxes=None, *, per_channel: bool = True,
                 skip_target: bool = False, input_mins=None, input_maxes=None) -> None:
        mins = careamics_alias(mins, input_mins, "mins", "input_mins", "MinMaxNormalization")
        maxes = careamics_alias(maxes, input_maxes, "maxes", "input_maxes", "MinMaxNormalization")
        self.mins, self.maxes = as_stat(mins, "mins"), as_stat(maxes, "maxes")
        self.target_mins, self.target_maxes = as_stat(target_mins, "target_mins"), as_stat(target_maxes, "target_maxes")
        check_range(self.mins, self.maxes, "mins", "maxes")
        check_range(self.target_mins, self.target_maxes, "target_mins", "target_maxes")
        self.per_channel, self.skip_target = as_bool(per_channel, "per_channel"), as_bool(skip_target, "skip_target")

    @classmethod
    def from_careamics_config(cls, config) -> MinMaxNormalization:
        """The normalisation a CAREamics ``MinMaxConfig`` (or its ``model_dump()`` dict) describes."""
        return cls(**config_fields(config, "min_max", cls.__name__))

    def _range(self, target):
        return (self.target_mins, self.target_maxes) if target else (self.mins, self.maxes)

    def _fit_from(self, input_stats, target_stats):
        if input_stats is not None:
            self.mins, self.maxes = input_stats["min"], input_stats["max"]
        if target_stats is not None:
            self.target_mins, self.target_maxes = target_stats["min"], target_stats["max"]

    def __repr__(self) -> str:
        return f"MinMaxNormalization(mins={fmt(self.mins)}, maxes={fmt(self.maxes)})"
