"""CAREamics normalisation configs (``MeanStdConfig``, ``MinMaxConfig``, ``QuantileConfig``,
``NoNormConfig``) turned into cupatch normalisations, field by field.

CAREamics names the input statistics ``input_means``, ``input_stds``, ``input_mins``,
``input_maxes``, ``input_lower_quantile_values``, ...; the constructors accept the first
four directly, and :func:`config_fields` turns a whole config (the pydantic model itself or its
``model_dump()`` dict; CAREamics is never imported) into constructor arguments, for
:func:`~cupatch.normalization.from_careamics_config` and the ``from_careamics_config``
class methods.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["config_fields"]

# Per CAREamics config name: its fields and the constructor argument each becomes.
_FIELDS = {
    "mean_std": {
        "input_means": "input_means",
        "input_stds": "input_stds",
        "target_means": "target_means",
        "target_stds": "target_stds",
    },
    "min_max": {
        "input_mins": "input_mins",
        "input_maxes": "input_maxes",
        "target_mins": "target_mins",
        "target_maxes": "target_maxes",
    },
    "quantile": {
        "lower_quantiles": "lower",
        "upper_quantiles": "upper",
        "input_lower_quantile_values": "lower_values",
        "input_upper_quantile_values": "upper_values",
        "target_lower_quantile_values": "target_lower_values",
        "target_upper_quantile_values": "target_upper_values",
    },
    "none": {},
}
_COMMON = ("per_channel", "skip_target")


def _as_dict(config, owner: str) -> dict:
    if hasattr(config, "model_dump"):  # a CAREamics (pydantic) config
        config = config.model_dump()
    if not isinstance(config, Mapping):
        raise TypeError(
            f"{owner}: config must be a CAREamics normalization config or its model_dump() dict, got "
            f"{type(config).__name__}"
        )
    return dict(config)


def _one_level(values, name: str):
    """CAREamics allows one quantile level per channel; cupatch uses one level for all."""
    if isinstance(values, (list, tuple)):
        levels = {float(v) for v in values}
        if len(levels) != 1:
            raise ValueError(
                f"{name} {list(values)}: QuantileNormalization uses one quantile level for every channel; give "
                f"equal levels"
            )
        return levels.pop()
    return values


def config_fields(config, name: str | None, owner: str) -> dict:
    """Constructor arguments for the normalisation a CAREamics config describes.

    ``name`` is the config name the caller accepts (None: any); the config's own ``name``
    field, when present, must agree.
    """
    fields = _as_dict(config, owner)
    given = fields.pop("name", name)
    if given not in _FIELDS:
        raise ValueError(f"{owner}: config name must be one of {', '.join(map(repr, _FIELDS))}, got {given!r}")
    if name is not None and given != name:
        raise ValueError(f"{owner}: a {given!r} config describes another normalisation; {owner} takes {name!r}")
    mapping = _FIELDS[given]
    unknown = sorted(set(fields) - set(mapping) - set(_COMMON))
    if unknown:
        raise ValueError(
            f"{owner}: unknown fields {unknown} in a {given!r} config; expected {sorted({*mapping, *_COMMON})}"
        )
    out = {mapping.get(key, key): value for key, value in fields.items() if value is not None}
    if given == "quantile":
        for key, level in (("lower", "lower_quantiles"), ("upper", "upper_quantiles")):
            if key in out:
                out[key] = _one_level(out[key], level)
    if given == "none":
        out.pop("per_channel", None)
        out.pop("skip_target", None)
    return out
