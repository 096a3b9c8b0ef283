"""``from_careamics_config``: the cupatch normalisation for any CAREamics normalization config."""

from __future__ import annotations

from .base import NoNormalization
from .careamics import _as_dict, config_fields
from .mean_std import MeanStdNormalization
from .min_max import MinMaxNormalization
from .quantile import QuantileNormalization

__all__ = ["from_careamics_config"]


def from_careamics_config(config):
    """The cupatch normalisation for a CAREamics normalization config.

    Parameters
    ----------
    config : CAREamics ``MeanStdConfig``, ``MinMaxConfig``, ``QuantileConfig``, ``NoNormConfig``, or dict
        The config, or its ``model_dump()``; ``name`` picks the normalisation
        (``"mean_std"``, ``"min_max"``, ``"quantile"``, ``"none"``). Statistics left None are
        computed by ``fit``.

    Returns
    -------
    Normalization
        :class:`MeanStdNormalization`, :class:`MinMaxNormalization`,
        :class:`QuantileNormalization` or :class:`NoNormalization`.

    Raises
    ------
    TypeError
        ``config`` is neither a config nor a mapping.
    ValueError
        Unknown ``name`` or fields, or per-channel quantile levels that differ.
    """
    classes = {
        "mean_std": MeanStdNormalization,
        "min_max": MinMaxNormalization,
        "quantile": QuantileNormalization,
        "none": NoNormalization,
    }
    name = _as_dict(config, "from_careamics_config").get("name")
    if name not in classes:
        raise ValueError(f"from_careamics_config: config name must be one of {', '.join(map(repr, classes))}, got {name!r}")
    return classes[name](**config_fields(config, name, "from_careamics_config"))
