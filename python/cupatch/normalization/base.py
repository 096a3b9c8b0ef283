"""The ``Normalization`` interface: an affine per-channel map for inputs and targets.

A normalisation is ``x * scale + shift`` per channel, derived from statistics that are given
or computed by :meth:`Normalization.fit`; :meth:`Normalization.denormalize` inverts it.
:class:`NoNormalization` (the float cast only) lives here too: it is the default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .._backend import array_module, is_gpu_array
from .._validation import as_bool, as_float_array, as_int, look_up_option
from ..stacks.base import check_channels
from .statistics import NAN_POLICIES, stats_pass

__all__ = [
    "RANGE_EPS",
    "STD_EPS",
    "NoNormalization",
    "Normalization",
    "RangeNormalization",
    "careamics_alias",
    "check_lengths",
    "check_normalization",
    "check_range",
]

STD_EPS = 1e-6
RANGE_EPS = 1e-8


def as_stat(values, name: str) -> np.ndarray | None:
    """Given statistics as a float64 array (``None`` stays None: computed by ``fit``)."""
    if values is None:
        return None
    return as_float_array(values, name)


#: More channels than any image has: a larger count is a mistake (it would allocate that
#: many per-channel statistics), refused with a message instead of NumPy's memory error.
MAX_CHANNELS = 1 << 24


def as_channel_count(n_channels, name: str = "n_channels") -> int:
    return as_int(n_channels, name, minimum=1, below=MAX_CHANNELS + 1, below_text=f"2**24 + 1 = {MAX_CHANNELS + 1}")


def broadcast(values: np.ndarray, n_channels: int, name: str) -> np.ndarray:
    if values.size == 1:
        return np.repeat(values, n_channels)
    if values.size != n_channels:
        raise ValueError(f"{name} has {values.size} entries but there are {n_channels} channels (give 1 or {n_channels})")
    return values


def _as_stack_list(stacks, name: str) -> list:
    """``stacks`` as a list, refusing anything that is not a list of image stacks."""
    if (
        isinstance(stacks, (np.ndarray, str, bytes, Mapping))
        or is_gpu_array(stacks)
        or not isinstance(stacks, Iterable)
    ):
        raise TypeError(
            f"{name} must be a list of image stacks, got {type(stacks).__name__}; wrap data with "
            f"cupatch.stacks.as_stacks(data, axes)"
        )
    items = list(stacks)
    for k, item in enumerate(items):
        if not hasattr(item, "data_shape") or not hasattr(item, "read_region"):
            raise TypeError(
                f"{name}[{k}] is a {type(item).__name__}, not an image stack; wrap data with "
                f"cupatch.stacks.as_stacks(data, axes)"
            )
    return items


def careamics_alias(ours, theirs, name: str, careamics_name: str, owner: str):
    """A statistic given under our name or under CAREamics' (``input_means`` ...), not both."""
    if theirs is None:
        return ours
    if ours is not None:
        raise TypeError(f"{owner} got both {name!r} and {careamics_name!r} (CAREamics' name for it); give one of them")
    return theirs


def check_lengths(first, second, first_name: str, second_name: str) -> None:
    """Refuse two given statistics of different lengths (one value broadcasts to any length)."""
    if first is None or second is None:
        return
    if first.size != second.size and 1 not in (first.size, second.size):
        raise ValueError(f"{first_name} ({first.size}) and {second_name} ({second.size}) have different lengths")


def check_range(lows, highs, low_name: str, high_name: str) -> None:
    """Refuse given ranges whose lengths disagree or whose low end lies above the high end."""
    if lows is None or highs is None:
        return
    check_lengths(lows, highs, low_name, high_name)
    if np.any(lows > highs):
        raise ValueError(f"{low_name} must not exceed {high_name}, got {lows.tolist()} and {highs.tolist()}")


def fmt(values) -> str:
    return "None" if values is None else str([round(float(v), 6) for v in values])


class Normalization:
    """Base class: an affine per-channel map ``x * scale + shift`` for inputs and targets.

    Subclasses define the statistics. ``skip_target=True`` leaves targets unnormalised and
    makes :meth:`denormalize` a no-op (CAREamics' ``skip_target``).
    """

    per_channel: bool = True
    skip_target: bool = False

    # -- implemented by subclasses -------------------------------------------------------------
    def _input_affine(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(scale, shift) float64 per statistic entry, or None when not fitted."""
        raise NotImplementedError

    def _target_affine(self) -> tuple[np.ndarray, np.ndarray] | None:
        raise NotImplementedError

    def _fit_from(self, input_stats: dict | None, target_stats: dict | None) -> None:
        raise NotImplementedError

    _wanted: dict[str, Any] = {}

    # -- public API ------------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        """True when the input statistics are known."""
        return self._input_affine() is not None

    def fit(self, stacks, *, targets=None, channels: Sequence[int] | None = None, progress: bool = True,
            nan_policy: str = "raise"):
        """Compute the missing statistics in one pass over ``stacks`` (and ``targets``).

        Parameters
        ----------
        stacks : list of ImageStack
            Input stacks (see :func:`cupatch.stacks.as_stacks`).
        targets : list of ImageStack, optional
            Target stacks; target statistics are computed from them (all channels).
        channels : sequence of int, optional
            Input channel subset the statistics are for.
        progress : bool
            Show a tqdm progress bar.
        nan_policy : {"raise", "omit"}
            What NaN values in float data do. ``"raise"`` (default): a ValueError naming the
            stack (``stacks[k]`` / ``targets[k]`` and its source), the sample and the channel,
            since NaN statistics would make every normalised batch NaN. ``"omit"``: the
            statistics are computed from the other values (a channel with no other value is
            still refused). To fit this way for :class:`~cupatch.PatchDataset` or
            :func:`~cupatch.predict_tiled`, call ``fit`` first and pass the fitted object.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            NaN values (with ``nan_policy="raise"``), a channel of only NaN values, or
            infinite values that make a statistic infinite or NaN (the message names the
            stack, sample and channel); empty data.
        """
        nan_policy = look_up_option(nan_policy, NAN_POLICIES, "nan_policy")
        progress = as_bool(progress, "progress")
        stacks = _as_stack_list(stacks, "stacks")
        if not stacks:
            raise ValueError("fit needs at least one stack: stacks is empty")
        if targets is not None:
            targets = _as_stack_list(targets, "targets")
            if not targets:
                raise ValueError("targets is empty: give one target stack per input stack, or targets=None")
        channels = check_channels(channels, stacks[0].data_shape[1])
        input_stats = target_stats = None
        if self._input_affine() is None:
            input_stats = stats_pass(stacks, channels, per_channel=self.per_channel, progress=progress,
                                      desc="input statistics", name="stacks", nan_policy=nan_policy, **self._wanted)
        if targets is not None and not self.skip_target and self._target_affine() is None:
            target_stats = stats_pass(list(targets), None, per_channel=self.per_channel, progress=progress,
                                       desc="target statistics", name="targets", nan_policy=nan_policy, **self._wanted)
        self._fit_from(input_stats, target_stats)
        return self

    def _affine(self, target: bool, n_channels: int) -> tuple[np.ndarray, np.ndarray]:
        if target and self.skip_target:
            return np.ones(n_channels, np.float32), np.zeros(n_channels, np.float32)
        affine = self._target_affine() if target else self._input_affine()
        if affine is None:
            if target and self._input_affine() is not None:
                raise ValueError(
                    f"{type(self).__name__} has no target statistics: give them or fit with targets"
                )
            raise ValueError(f"{type(self).__name__} is not fitted: give the statistics or call fit()")
        which = "target" if target else "input"
        scale = broadcast(affine[0], n_channels, f"{which} statistics")
        shift = broadcast(affine[1], n_channels, f"{which} statistics")
        return scale.astype(np.float32), shift.astype(np.float32)

    def input_scale_shift(self, n_channels: int) -> tuple[np.ndarray, np.ndarray]:
        """Float32 ``(scale, shift)`` of length ``n_channels`` so that ``x*scale+shift`` normalises inputs."""
        return self._affine(False, as_channel_count(n_channels))

    def target_scale_shift(self, n_channels: int) -> tuple[np.ndarray, np.ndarray]:
        """Float32 ``(scale, shift)`` for targets (identity with ``skip_target``)."""
        return self._affine(True, as_channel_count(n_channels))

    def normalize(self, x, *, target: bool = False):
        """Normalise a NumPy/CuPy array with channels on axis 1, exactly like the gather kernel."""
        target = as_bool(target, "target")
        if not (isinstance(x, np.ndarray) or is_gpu_array(x)) or x.ndim < 2:
            raise TypeError(
                f"x must be a NumPy or CuPy array with the channel axis at position 1, got "
                f"{type(x).__name__}{f' of shape {x.shape}' if hasattr(x, 'shape') else ''}"
            )
        xp = array_module(x)
        scale, shift = self._affine(target, x.shape[1])
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return x.astype(xp.float32) * xp.asarray(scale).reshape(shape) + xp.asarray(shift).reshape(shape)

    def denormalize(self, x):
        """Invert the normalisation of model outputs (NumPy, CuPy or torch; channels on axis 1).

        Uses the target statistics when there are any, else the input statistics; a no-op
        with ``skip_target``. Float64 maths, cast back to ``x``'s dtype.
        """
        if self.skip_target:
            return x
        affine = self._target_affine() or self._input_affine()
        if affine is None:
            raise ValueError(f"{type(self).__name__} is not fitted: give the statistics or call fit()")
        if not hasattr(x, "ndim"):
            raise TypeError(
                f"x must be a NumPy, CuPy or torch array with the channel axis at position 1, got {type(x).__name__}"
            )
        if x.ndim < 2:
            raise ValueError(f"denormalize expects an array with the channel axis at position 1, got shape {tuple(x.shape)}")
        n_channels = x.shape[1]
        scale = broadcast(affine[0], n_channels, "statistics")
        shift = broadcast(affine[1], n_channels, "statistics")
        inv_scale, inv_shift = 1.0 / scale, -shift / scale
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if type(x).__module__.startswith("torch"):
            import torch  # optional dependency: only reached with torch tensors

            a = torch.as_tensor(inv_scale, device=x.device, dtype=x.dtype).reshape(shape)
            b = torch.as_tensor(inv_shift, device=x.device, dtype=x.dtype).reshape(shape)
            return x * a + b
        xp = array_module(x)
        dtype = x.dtype if x.dtype.kind == "f" else np.float32
        a = xp.asarray(inv_scale, dtype=dtype).reshape(shape)
        b = xp.asarray(inv_shift, dtype=dtype).reshape(shape)
        return x * a + b


def check_normalization(value, name: str = "normalization") -> Normalization | None:
    """``value`` when it is a :class:`Normalization` (or None), else TypeError naming ``name``."""
    if value is not None and not isinstance(value, Normalization):
        raise TypeError(
            f"{name} must be a cupatch.normalization.Normalization (MeanStdNormalization, "
            f"MinMaxNormalization, QuantileNormalization, NoNormalization) or None, got {type(value).__name__}"
        )
    return value


class NoNormalization(Normalization):
    """Only the float32 cast (scale 1, shift 0)."""

    _wanted = {}

    def __init__(self) -> None:
        pass

    def _input_affine(self):
        return np.ones(1), np.zeros(1)

    def _target_affine(self):
        return np.ones(1), np.zeros(1)

    def _fit_from(self, input_stats, target_stats):
        pass

    def __repr__(self) -> str:
        return "NoNormalization()"


class RangeNormalization(Normalization):
    """Base of the ``(x - low) / (high - low + 1e-8)`` normalisations."""

    def _range(self, target: bool):
        raise NotImplementedError

    @staticmethod
    def _affine_of(low, high):
        if low is None or high is None:
            return None
        scale = 1.0 / (high - low + RANGE_EPS)
        return scale, -low * scale

    def _input_affine(self):
        return self._affine_of(*self._range(False))

    def _target_affine(self):
        return self._affine_of(*self._range(True))
