"""``MeanStdNormalization``: CAREamics' ``(x - mean) / (std + 1e-6)`` per channel."""

from __future__ import annotations

import numpy as np

from .._validation import as_bool
from .base import STD_EPS, Normalization, as_stat, careamics_alias, check_lengths, fmt
from .careamics import config_fields

__all__ = ["MeanStdNormalization"]


class MeanStdNormalization(Normalization):
    """``(x - mean) / (std + 1e-6)`` per channel.

    Parameters
    ----------
    means, stds : float or sequence of float, optional
        Input statistics (one value broadcasts to every channel); computed by ``fit`` when None.
        Given together, they need the same length (or one of them a single value).
    target_means, target_stds : optional
        Target statistics; computed by ``fit`` from the targets when None.
    per_channel : bool
        Per-channel statistics (default) or one pooled value for all channels.
    skip_target : bool
        Leave targets unnormalised.
    input_means, input_stds : float or sequence of float, optional
        CAREamics' names for ``means`` and ``stds`` (give one spelling, not both);
        :meth:`from_careamics_config` takes a whole CAREamics ``MeanStdConfig``.
    """

    _wanted = {"moments": True, "extremes": False, "quantiles": None}

    def __init__(self, means=None, stds=None, target_means=None, target_stds=None, *, per_channel: bool = True,
                 skip_target: bool = False, input_means=None, input_stds=None) -> None:
        means = careamics_alias(means, input_means, "means", "input_means", "MeanStdNormalization")
        stds = careamics_alias(stds, input_stds, "stds", "input_stds", "MeanStdNormalization")
        self.means, self.stds = as_stat(means, "means"), as_stat(stds, "stds")
        self.target_means, self.target_stds = as_stat(target_means, "target_means"), as_stat(target_stds, "target_stds")
        for name in ("stds", "target_stds"):
            value = getattr(self, name)
            if value is not None and np.any(value < 0):
                raise ValueError(f"{name} must be non-negative, got {value.tolist()}")
        check_lengths(self.means, self.stds, "means", "stds")  # at construction, not at first use
        check_lengths(self.target_means, self.target_stds, "target_means", "target_stds")
        self.per_channel, self.skip_target = as_bool(per_channel, "per_channel"), as_bool(skip_target, "skip_target")

    @classmethod
    def from_careamics_config(cls, config) -> MeanStdNormalization:
        """The normalisation a CAREamics ``MeanStdConfig`` (or its ``model_dump()`` dict) describes."""
        fields = config_fields(config, "mean_std", cls.__name__)
        return cls(**fields)

    @staticmethod
    def _affine_of(means, stds):
        if means is None or stds is None:
            return None
        if means.size != stds.size and 1 not in (means.size, stds.size):
            raise ValueError(f"means ({means.size}) and stds ({stds.size}) have different lengths")
        scale = 1.0 / (stds + STD_EPS)
        return scale * np.ones_like(means), -means * scale

    def _input_affine(self):
        return self._affine_of(self.means, self.stds)

    def _target_affine(self):
        return self._affine_of(self.target_means, self.target_stds)

    def _fit_from(self, input_stats, target_stats):
        if input_stats is not None:
            self.means, self.stds = input_stats["mean"], input_stats["std"]
        if target_stats is not None:
            self.target_means, self.target_stds = target_stats["mean"], target_stats["std"]

    def __repr__(self) -> str:
        return f"MeanStdNormalization(means={fmt(self.means)}, stds={fmt(self.stds)})"
