"""Per-channel intensity normalisation, fused into the gather kernel as ``x * scale + shift``.

The formulas are CAREamics':

* mean/std: ``(x - mean) / (std + 1e-6)`` (population std);
* min/max and quantile ranges: ``(x - low) / (high - low + 1e-8)``, no clipping.

Statistics are given, or computed by :meth:`Normalization.fit` in **one pass** over the stacks
(whole samples, not patches; on the GPU with CuPy when the stacks live there, with NumPy
otherwise), with a tqdm progress bar that ``progress=False`` switches off. Per-channel (or,
with ``per_channel=False``, pooled) statistics are merged across samples with Chan et al.'s
parallel update, in float64.

Quantiles are exact (NumPy's default ``"linear"`` method) for 8/16-bit integer data, always
(a streaming histogram of every value), and for other dtypes when every stack is in memory
(one channel at a time is copied in its stored dtype and partially sorted, so the extra memory
is about one channel of the data, not float64 copies of all of it).
For other dtypes read from disk they are *estimated* from a regular subsample of at most
``2**24`` values per channel (every k-th voxel of every sample, k chosen from the total size).

``denormalize`` inverts the normalisation exactly (it uses the same epsilon), on NumPy, CuPy or
torch arrays with the channel axis at position 1; it uses the target statistics when there
are any (supervised training), else the input statistics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "MeanStdNormalization",
    "MinMaxNormalization",
    "NoNormalization",
    "Normalization",
    "QuantileNormalization",
]

STD_EPS = 1e-6
RANGE_EPS = 1e-8
#: Largest number of values per channel kept for estimated (subsampled) quantiles.
MAX_QUANTILE_SAMPLES = 2**24


def _array_module(x):
    if type(x).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


def _as_stat(values, name: str) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a number or a non-empty 1-D sequence, got {values!r}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {values!r}")
    return arr


def _broadcast(values: np.ndarray, n_channels: int, name: str) -> np.ndarray:
    if values.size == 1:
        return np.repeat(values, n_channels)
    if values.size != n_channels:
        raise ValueError(f"{name} has {values.size} entries but there are {n_channels} channels (give 1 or {n_channels})")
    return values


class _StatsPass:
    """One streaming pass over C(Z)YX blocks, accumulating what a normalisation needs.

    Quantiles: 8/16-bit integer data are counted in a per-channel histogram (exact, bounded
    memory). Other data are exact when ``exact_floats`` (every stack already held in memory,
    host or GPU): the blocks are kept as given (views of the stacks where possible, copies only
    for channel subsets), and :meth:`result` takes one channel at a time, copies it in its
    stored dtype, partially sorts it in place and interpolates the two order statistics around
    each level in float64 (NumPy's ``"linear"`` method, bit for bit). The extra memory is thus
    about one channel of the data in its stored dtype (plus any channel-subset copies), never
    float64 copies of everything. Otherwise a regular subsample of at most
    ``MAX_QUANTILE_SAMPLES`` values per channel is kept and its quantiles are an estimate.
    """

    def __init__(self, *, moments: bool, extremes: bool, quantiles: Sequence[float] | None, exact_floats: bool, total_per_channel: int):
        self.moments, self.extremes, self.levels = moments, extremes, quantiles
        self.exact_floats = exact_floats
        self.stride = max(1, math.ceil(total_per_channel / MAX_QUANTILE_SAMPLES))
        self.count = 0
        self.mean = self.m2 = self.low = self.high = None
        self.hist = None  # integer data: per-channel counts of (value - offset)
        self.hist_offset = 0
        self.values: list = []  # other data: exact values or a subsample

    def update(self, block) -> None:
        """Add a ``(C, N)`` block (any dtype, NumPy or CuPy)."""
        xp = _array_module(block)
        n = block.shape[1]
        if n == 0:
            return
        if self.moments:
            x = block.astype(xp.float64)
            mean = x.mean(axis=1)
            m2 = ((x - mean[:, None]) ** 2).sum(axis=1)
            if self.mean is None:
                self.mean, self.m2 = mean, m2
            else:  # Chan et al. parallel merge
                total = self.count + n
                delta = mean - self.mean
                self.mean = self.mean + delta * (n / total)
                self.m2 = self.m2 + m2 + delta * delta * (self.count * n / total)
        if self.extremes:
            low, high = block.min(axis=1), block.max(axis=1)
            self.low = low if self.low is None else xp.minimum(self.low, low)
            self.high = high if self.high is None else xp.maximum(self.high, high)
        if self.levels is not None:
            if block.dtype.kind in "iu" and block.dtype.itemsize <= 2:
                info = np.iinfo(block.dtype)
                self.hist_offset = -int(info.min)
                n_bins = int(info.max) - int(info.min) + 1
                shifted = block.astype(xp.int64) + self.hist_offset
                counts = xp.stack([xp.bincount(row, minlength=n_bins) for row in shifted])
                self.hist = counts if self.hist is None else self.hist + counts
            elif self.exact_floats:
                self.values.append(block)
            else:
                self.values.append(block[:, :: self.stride].copy())
        self.count += n

    def result(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if self.count == 0:
            raise ValueError("cannot compute normalisation statistics of empty data")

        def host(a):
            return np.asarray(a.get() if hasattr(a, "get") else a, dtype=np.float64)

        if self.moments:
            out["mean"] = host(self.mean)
            out["std"] = np.sqrt(host(self.m2) / self.count)
        if self.extremes:
            out["min"], out["max"] = host(self.low), host(self.high)
        if self.levels is not None:
            levels = np.asarray(self.levels, dtype=np.float64)
            if self.hist is not None:
                out["quantiles"] = _histogram_quantiles(host(self.hist), levels) - self.hist_offset
            else:
                n_rows = self.values[0].shape[0]
                out["quantiles"] = np.stack([self._row_quantiles(row, levels) for row in range(n_rows)])
        return out

    def _row_quantiles(self, row: int, levels: np.ndarray) -> np.ndarray:
        """NumPy-"linear" quantiles of one channel of the kept values, in bounded memory."""
        xp = _array_module(self.values[0])
        values = xp.concatenate([block[row] for block in self.values])  # one channel, stored dtype
        n = values.size
        position = (n - 1) * levels
        below = np.floor(position).astype(np.int64)
        above = np.minimum(below + 1, n - 1)
        kth = np.unique(np.concatenate([below, above]))
        if xp is np:
            values.partition(kth)  # in place: order statistics at kth, O(n)
        else:
            values.sort()  # in place on the device
        order_stats = values[xp.asarray(kth)]
        if values.dtype.kind in "fc":
            has_nan = bool(xp.isnan(values).any())  # NaN propagates, as in numpy.quantile
        else:
            has_nan = False
        order_stats = np.asarray(order_stats.get() if hasattr(order_stats, "get") else order_stats, dtype=np.float64)
        del values
        if has_nan:
            return np.full(levels.size, np.nan)
        lookup = dict(zip(kth.tolist(), order_stats.tolist()))
        a = np.array([lookup[k] for k in below.tolist()], dtype=np.float64)
        b = np.array([lookup[k] for k in above.tolist()], dtype=np.float64)
        t = position - below
        # numpy's _lerp, so results equal numpy.quantile of the float64 values exactly
        diff = b - a
        result = a + diff * t
        np.subtract(b, diff * (1 - t), out=result, where=t >= 0.5)
        return result


def _histogram_quantiles(hist: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Exact NumPy-"linear" quantiles of integer data given per-channel value counts."""
    out = np.empty((hist.shape[0], levels.size))
    for c, counts in enumerate(hist):
        cumulative = np.cumsum(counts)
        n = cumulative[-1]
        position = (n - 1) * levels
        below = np.floor(position)
        # value of the k-th smallest element = first bin whose cumulative count exceeds k
        v_lo = np.searchsorted(cumulative, below, side="right").astype(np.float64)
        v_hi = np.searchsorted(cumulative, np.minimum(below + 1, n - 1), side="right").astype(np.float64)
        out[c] = v_lo + (position - below) * (v_hi - v_lo)
    return out


def _stats_pass(stacks, channels, *, per_channel, moments, extremes, quantiles, progress, desc) -> dict:
    """Run one pass over every sample of ``stacks`` (channel subset ``channels``)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a dependency, but the statistics do not need it
        tqdm = None
    # exact float quantiles need every value in memory: only for stacks already held there
    resident = all(getattr(s, "array", None) is not None and not isinstance(s.array, np.memmap) for s in stacks)
    # The statistics are accumulated on the GPU only when every stack is there: CuPy refuses
    # NumPy operands, so with a mix of GPU and host stacks the GPU blocks come to the host.
    on_gpu = [_array_module(getattr(s, "array", None)) is not np for s in stacks]
    to_host = any(on_gpu) and not all(on_gpu)
    n_channels = len(channels) if channels is not None else stacks[0].data_shape[1]
    total = sum(int(np.prod(s.data_shape[2:])) * s.data_shape[0] for s in stacks)
    if not per_channel:
        total *= n_channels
    acc = _StatsPass(moments=moments, extremes=extremes, quantiles=quantiles, exact_floats=resident,
                     total_per_channel=total)
    n_samples = sum(s.data_shape[0] for s in stacks)
    bar = tqdm(total=n_samples, desc=desc, unit="sample", disable=not progress, leave=False) if tqdm else None
    try:
        for stack in stacks:
            for s in range(stack.data_shape[0]):
                if stack.array is not None:
                    sample = stack.array[s]
                    if channels is not None:
                        sample = sample[channels]
                else:
                    sample = stack.read_region(s, [0] * (len(stack.data_shape) - 2), stack.data_shape[2:], channels)
                if to_host and not isinstance(sample, np.ndarray):
                    sample = sample.get()
                block = sample.reshape(sample.shape[0], -1)
                if not per_channel:
                    block = block.reshape(1, -1)
                acc.update(block)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return acc.result()


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

    def fit(self, stacks, *, targets=None, channels: Sequence[int] | None = None, progress: bool = True):
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

        Returns
        -------
        self
        """
        from .stacks.base import check_channels

        stacks = _as_stack_list(stacks, "stacks")
        if not stacks:
            raise ValueError("fit needs at least one stack")
        if targets is not None:
            targets = _as_stack_list(targets, "targets")
        channels = check_channels(channels, stacks[0].data_shape[1])
        input_stats = target_stats = None
        if self._input_affine() is None:
            input_stats = _stats_pass(stacks, channels, per_channel=self.per_channel, progress=progress,
                                      desc="input statistics", **self._wanted)
        if targets is not None and not self.skip_target and self._target_affine() is None:
            target_stats = _stats_pass(list(targets), None, per_channel=self.per_channel, progress=progress,
                                       desc="target statistics", **self._wanted)
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
        scale = _broadcast(affine[0], n_channels, f"{which} statistics")
        shift = _broadcast(affine[1], n_channels, f"{which} statistics")
        return scale.astype(np.float32), shift.astype(np.float32)

    def input_scale_shift(self, n_channels: int) -> tuple[np.ndarray, np.ndarray]:
        """Float32 ``(scale, shift)`` of length ``n_channels`` so that ``x*scale+shift`` normalises inputs."""
        return self._affine(False, n_channels)

    def target_scale_shift(self, n_channels: int) -> tuple[np.ndarray, np.ndarray]:
        """Float32 ``(scale, shift)`` for targets (identity with ``skip_target``)."""
        return self._affine(True, n_channels)

    def normalize(self, x, *, target: bool = False):
        """Normalise a NumPy/CuPy array with channels on axis 1, exactly like the gather kernel."""
        xp = _array_module(x)
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
        if getattr(x, "ndim", 0) < 2:
            raise ValueError("denormalize expects an array with the channel axis at position 1")
        n_channels = x.shape[1]
        scale = _broadcast(affine[0], n_channels, "statistics")
        shift = _broadcast(affine[1], n_channels, "statistics")
        inv_scale, inv_shift = 1.0 / scale, -shift / scale
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if type(x).__module__.startswith("torch"):
            import torch

            a = torch.as_tensor(inv_scale, device=x.device, dtype=x.dtype).reshape(shape)
            b = torch.as_tensor(inv_shift, device=x.device, dtype=x.dtype).reshape(shape)
            return x * a + b
        xp = _array_module(x)
        dtype = x.dtype if x.dtype.kind == "f" else np.float32
        a = xp.asarray(inv_scale, dtype=dtype).reshape(shape)
        b = xp.asarray(inv_shift, dtype=dtype).reshape(shape)
        return x * a + b


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


class MeanStdNormalization(Normalization):
    """``(x - mean) / (std + 1e-6)`` per channel.

    Parameters
    ----------
    means, stds : float or sequence of float, optional
        Input statistics (one value broadcasts to every channel); computed by ``fit`` when None.
    target_means, target_stds : optional
        Target statistics; computed by ``fit`` from the targets when None.
    per_channel : bool
        Per-channel statistics (default) or one pooled value for all channels.
    skip_target : bool
        Leave targets unnormalised.
    """

    _wanted = {"moments": True, "extremes": False, "quantiles": None}

    def __init__(self, means=None, stds=None, target_means=None, target_stds=None, *, per_channel: bool = True,
                 skip_target: bool = False) -> None:
        self.means, self.stds = _as_stat(means, "means"), _as_stat(stds, "stds")
        self.target_means, self.target_stds = _as_stat(target_means, "target_means"), _as_stat(target_stds, "target_stds")
        for name in ("stds", "target_stds"):
            value = getattr(self, name)
            if value is not None and np.any(value < 0):
                raise ValueError(f"{name} must be non-negative, got {value.tolist()}")
        self.per_channel, self.skip_target = bool(per_channel), bool(skip_target)

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
        return f"MeanStdNormalization(means={_fmt(self.means)}, stds={_fmt(self.stds)})"


def _as_stack_list(stacks, name: str) -> list:
    """``stacks`` as a list, refusing anything that is not a list of image stacks."""
    if isinstance(stacks, np.ndarray) or hasattr(stacks, "__cuda_array_interface__") or isinstance(stacks, (str, bytes)):
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


def _check_range(lows, highs, low_name: str, high_name: str) -> None:
    """Refuse given ranges whose lengths disagree or whose low end lies above the high end."""
    if lows is None or highs is None:
        return
    if lows.size != highs.size and 1 not in (lows.size, highs.size):
        raise ValueError(f"{low_name} ({lows.size}) and {high_name} ({highs.size}) have different lengths")
    if np.any(lows > highs):
        raise ValueError(f"{low_name} must not exceed {high_name}, got {lows.tolist()} and {highs.tolist()}")


class _RangeNormalization(Normalization):
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


class MinMaxNormalization(_RangeNormalization):
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
        self.mins, self.maxes = _as_stat(mins, "mins"), _as_stat(maxes, "maxes")
        self.target_mins, self.target_maxes = _as_stat(target_mins, "target_mins"), _as_stat(target_maxes, "target_maxes")
        _check_range(self.mins, self.maxes, "mins", "maxes")
        _check_range(self.target_mins, self.target_maxes, "target_mins", "target_maxes")
        self.per_channel, self.skip_target = bool(per_channel), bool(skip_target)

    def _range(self, target):
        return (self.target_mins, self.target_maxes) if target else (self.mins, self.maxes)

    def _fit_from(self, input_stats, target_stats):
        if input_stats is not None:
            self.mins, self.maxes = input_stats["min"], input_stats["max"]
        if target_stats is not None:
            self.target_mins, self.target_maxes = target_stats["min"], target_stats["max"]

    def __repr__(self) -> str:
        return f"MinMaxNormalization(mins={_fmt(self.mins)}, maxes={_fmt(self.maxes)})"


class QuantileNormalization(_RangeNormalization):
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
        if not 0.0 <= lower < upper <= 1.0:
            raise ValueError(f"quantile levels need 0 <= lower < upper <= 1, got lower={lower}, upper={upper}")
        self.lower, self.upper = float(lower), float(upper)
        self.lower_values, self.upper_values = _as_stat(lower_values, "lower_values"), _as_stat(upper_values, "upper_values")
        self.target_lower_values = _as_stat(target_lower_values, "target_lower_values")
        self.target_upper_values = _as_stat(target_upper_values, "target_upper_values")
        _check_range(self.lower_values, self.upper_values, "lower_values", "upper_values")
        _check_range(self.target_lower_values, self.target_upper_values, "target_lower_values", "target_upper_values")
        self.per_channel, self.skip_target = bool(per_channel), bool(skip_target)
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
                f"lower_values={_fmt(self.lower_values)}, upper_values={_fmt(self.upper_values)})")


def _fmt(values) -> str:
    return "None" if values is None else str([round(float(v), 6) for v in values])
