"""The statistics pass behind ``Normalization.fit``: one streaming pass over every sample.

Moments (Chan et al.'s parallel merge, float64), extremes and quantiles (exact from a
histogram for 8/16-bit integers, exact from an in-place partial sort for other dtypes held
in memory, estimated from a regular subsample otherwise), on the GPU with CuPy when every
stack lives there and with NumPy otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .._backend import array_module

try:
    from tqdm.auto import tqdm
except ImportError:  # tqdm is a dependency, but the statistics do not need it
    tqdm = None

__all__ = ["MAX_QUANTILE_SAMPLES", "NAN_POLICIES", "stats_pass"]

#: What ``fit`` does with NaN values in the data: refuse them (default) or leave them out.
NAN_POLICIES = ("raise", "omit")

#: Largest number of values per channel kept for estimated (subsampled) quantiles.
MAX_QUANTILE_SAMPLES = 2**24


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

    def __init__(self, *, moments: bool, extremes: bool, quantiles: Sequence[float] | None, exact_floats: bool,
                 total_per_channel: int, nan_policy: str = "raise", desc: str = "statistics", rows: Sequence[str] = ()):
        self.moments, self.extremes, self.levels = moments, extremes, quantiles
        self.exact_floats = exact_floats
        self.stride = max(1, math.ceil(total_per_channel / MAX_QUANTILE_SAMPLES))
        self.count = 0
        self.mean = self.m2 = self.low = self.high = None
        self.hist = None  # integer data: per-channel counts of (value - offset)
        self.hist_offset = 0
        self.values: list = []  # other data: exact values or a subsample
        self.nan_policy, self.desc, self.rows = nan_policy, desc, list(rows)
        self.valid = None  # per-row counts of non-NaN values, once a NaN was left out ("omit")
        self.first_inf: dict[int, tuple] = {}  # row -> (stack label, sample, channel) of its first infinity

    def check_finite(self, block, label: str, sample: int, channels: Sequence[int], pooled: bool) -> None:
        """Look at a ``(C, N)`` float block before it is added, raising a ValueError that names
        the stack, sample and channel for NaN (with ``"raise"``) and for infinities when a mean,
        std, min or max is wanted. For quantiles the first infinity of every row is remembered
        instead: :meth:`result` refuses a quantile it reaches and names where it is."""
        xp = array_module(block)
        if block.dtype.kind != "f" or bool(xp.isfinite(block).all()):
            return
        nan_rows = np.asarray(_host(xp.isnan(block).any(axis=1)), dtype=bool)
        if self.nan_policy == "raise" and nan_rows.any():
            c = channels[int(np.flatnonzero(nan_rows)[0])]
            raise ValueError(
                f"{label}, sample {sample}, channel {c} contains NaN: its normalisation statistics would be NaN, "
                f"and so would every batch; remove the NaN values, give the statistics, or fit with "
                f"nan_policy='omit' to compute them from the other values"
            )
        inf_rows = np.asarray(_host(xp.isinf(block).any(axis=1)), dtype=bool)
        if inf_rows.any() and (self.moments or self.extremes):  # a mean, std, min or max it cannot survive
            c = channels[int(np.flatnonzero(inf_rows)[0])]
            raise ValueError(
                f"{label}, sample {sample}, channel {c} contains infinite values: its normalisation statistics "
                f"would not be finite, and every normalised batch would be wrong; remove them or give the statistics"
            )
        for r in np.flatnonzero(inf_rows).tolist():  # quantiles may not reach them: checked in result()
            self.first_inf.setdefault(0 if pooled else r, (label, sample, channels[r]))

    def update(self, block) -> None:
        """Add a ``(C, N)`` block (any dtype, NumPy or CuPy)."""
        xp = array_module(block)
        n = block.shape[1]
        if n == 0:
            return
        nan = None  # the NaN mask of a float block, when NaN values are left out
        if self.nan_policy == "omit" and block.dtype.kind == "f":
            mask = xp.isnan(block)
            if bool(mask.any()):
                nan = mask
                if self.valid is None:
                    self.valid = xp.full(block.shape[0], float(self.count))
        if self.valid is not None:
            n_rows = xp.full(block.shape[0], float(n)) if nan is None else (~nan).sum(axis=1).astype(xp.float64)
        if self.moments:
            x = block.astype(xp.float64)
            if self.valid is None:  # every row has every value: the scalar counts
                mean = x.mean(axis=1)
                m2 = ((x - mean[:, None]) ** 2).sum(axis=1)
                if self.mean is None:
                    self.mean, self.m2 = mean, m2
                else:  # Chan et al. parallel merge
                    total = self.count + n
                    delta = mean - self.mean
                    self.mean = self.mean + delta * (n / total)
                    self.m2 = self.m2 + m2 + delta * delta * (self.count * n / total)
            else:  # per-row counts of the values kept (NaN left out)
                kept = xp.ones(x.shape, dtype=bool) if nan is None else ~nan
                mean = xp.where(kept, x, 0.0).sum(axis=1) / xp.maximum(n_rows, 1.0)
                m2 = (xp.where(kept, x - mean[:, None], 0.0) ** 2).sum(axis=1)
                if self.mean is None:
                    self.mean, self.m2 = mean, m2
                else:
                    total = self.valid + n_rows
                    delta = mean - self.mean
                    weight = n_rows / xp.maximum(total, 1.0)
                    self.mean = self.mean + delta * weight
                    self.m2 = self.m2 + m2 + delta * delta * (self.valid * weight)
        if self.extremes:
            if nan is None:
                low, high = block.min(axis=1), block.max(axis=1)
            else:  # a row of NaN only gives (inf, -inf) here and is refused in result()
                low, high = xp.where(nan, xp.inf, block).min(axis=1), xp.where(nan, -xp.inf, block).max(axis=1)
            self.low = low if self.low is None else xp.minimum(self.low, low)
            self.high = high if self.high is None else xp.maximum(self.high, high)
        if self.valid is not None:
            self.valid = self.valid + n_rows
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
            return np.asarray(_host(a), dtype=np.float64)

        if self.valid is not None:
            empty = np.flatnonzero(host(self.valid) == 0)
            if empty.size:
                raise ValueError(
                    f"{self.desc}: {self._row_name(int(empty[0]))} holds only NaN values; there is nothing to compute "
                    f"its normalisation statistics from"
                )
        if self.moments:
            out["mean"] = host(self.mean)
            out["std"] = np.sqrt(host(self.m2) / (self.count if self.valid is None else host(self.valid)))
        if self.extremes:
            out["min"], out["max"] = host(self.low), host(self.high)
        if self.levels is not None:
            levels = np.asarray(self.levels, dtype=np.float64)
            if self.hist is not None:
                out["quantiles"] = _histogram_quantiles(host(self.hist), levels) - self.hist_offset
            else:
                n_rows = self.values[0].shape[0]
                out["quantiles"] = np.stack([self._row_quantiles(row, levels) for row in range(n_rows)])
        self._check_result(out)
        return out

    def _row_name(self, row: int) -> str:
        return self.rows[row] if row < len(self.rows) else f"channel {row}"

    def _check_result(self, out: dict[str, np.ndarray]) -> None:
        """Refuse statistics that are not finite (from infinite values in the data), naming
        where the first infinity of that channel is."""
        for key, values in out.items():
            rows = np.flatnonzero(~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1))
            if not rows.size:
                continue
            r = int(rows[0])
            if r in self.first_inf:
                label, sample, channel = self.first_inf[r]
                where = f"{label}, sample {sample}, channel {channel} contains infinite values"
            else:
                where = f"the data of {self._row_name(r)} are not finite"
            raise ValueError(
                f"{self.desc}: {where}, which make its {key} {values.reshape(values.shape[0], -1)[r].tolist()}; "
                f"every normalised batch would be wrong; remove them or give the statistics"
            )

    def _row_quantiles(self, row: int, levels: np.ndarray) -> np.ndarray:
        """NumPy-"linear" quantiles of one channel of the kept values, in bounded memory."""
        xp = array_module(self.values[0])
        values = xp.concatenate([block[row] for block in self.values])  # one channel, stored dtype
        if self.nan_policy == "omit" and values.dtype.kind == "f":
            nan = xp.isnan(values)
            if bool(nan.any()):  # left out: the quantiles of the other values
                values = values[~nan]
            del nan
            if values.size == 0:  # a subsample that met only NaN values
                raise ValueError(
                    f"{self.desc}: the values of {self._row_name(row)} kept for its quantiles are all NaN; "
                    f"give the quantile values"
                )
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
        # numpy's _lerp, so results equal numpy.quantile of the float64 values exactly (an
        # infinite order statistic gives inf or NaN here, refused in result())
        with np.errstate(invalid="ignore"):
            diff = b - a
            result = a + diff * t
            np.subtract(b, diff * (1 - t), out=result, where=t >= 0.5)
        return result


def _host(a):
    """A NumPy view of a NumPy or CuPy array (CuPy arrays are copied to the host)."""
    return a.get() if hasattr(a, "get") else a


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


def stats_pass(stacks, channels, *, per_channel, moments, extremes, quantiles, progress, desc, name="stacks",
               nan_policy="raise") -> dict:
    """Run one pass over every sample of ``stacks`` (channel subset ``channels``).

    ``nan_policy="raise"`` refuses NaN values in float data (ValueError naming the stack,
    ``name[k]``, the sample and the channel); ``"omit"`` leaves them out of every statistic.
    Statistics that infinite values make non-finite are refused either way.
    """
    # exact float quantiles need every value in memory: only for stacks already held there
    resident = all(getattr(s, "array", None) is not None and not isinstance(s.array, np.memmap) for s in stacks)
    # The statistics are accumulated on the GPU only when every stack is there: CuPy refuses
    # NumPy operands, so with a mix of GPU and host stacks the GPU blocks come to the host.
    on_gpu = [array_module(getattr(s, "array", None)) is not np for s in stacks]
    to_host = any(on_gpu) and not all(on_gpu)
    n_channels = len(channels) if channels is not None else stacks[0].data_shape[1]
    total = sum(int(np.prod(s.data_shape[2:])) * s.data_shape[0] for s in stacks)
    if not per_channel:
        total *= n_channels
    channel_ids = list(channels) if channels is not None else list(range(n_channels))
    rows = [f"channel {c}" for c in channel_ids] if per_channel else ["the pooled channels"]
    acc = _StatsPass(moments=moments, extremes=extremes, quantiles=quantiles, exact_floats=resident,
                     total_per_channel=total, nan_policy=nan_policy, desc=desc, rows=rows)
    n_samples = sum(s.data_shape[0] for s in stacks)
    bar = tqdm(total=n_samples, desc=desc, unit="sample", disable=not progress, leave=False) if tqdm else None
    try:
        for k, stack in enumerate(stacks):
            source = getattr(stack, "source", "array")
            label = f"{name}[{k}]" + ("" if source == "array" else f" ({source})")
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
                acc.check_finite(block, label, s, channel_ids, pooled=not per_channel)
                if not per_channel:
                    block = block.reshape(1, -1)
                acc.update(block)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return acc.result()
