"""Per-channel intensity normalisation, fused into the gather kernel as ``x * scale + shift``.

:mod:`.base` holds the :class:`Normalization` interface (and :class:`NoNormalization`), one
module per normalisation holds each of the others, and :mod:`.statistics` the one-pass
statistics that ``fit`` runs.

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

CAREamics' names are accepted too: ``MeanStdNormalization(input_means=..., input_stds=...)``,
``MinMaxNormalization(input_mins=..., input_maxes=...)``, and :func:`from_careamics_config`
builds the normalisation a CAREamics config (or its ``model_dump()``) describes.

``denormalize`` inverts the normalisation exactly (it uses the same epsilon), on NumPy, CuPy or
torch arrays with the channel axis at position 1; it uses the target statistics when there
are any (supervised training), else the input statistics.
"""

from __future__ import annotations

from .base import RANGE_EPS, STD_EPS, NoNormalization, Normalization, check_normalization
from .from_config import from_careamics_config
from .mean_std import MeanStdNormalization
from .min_max import MinMaxNormalization
from .quantile import QuantileNormalization
from .statistics import MAX_QUANTILE_SAMPLES

__all__ = [
    "MAX_QUANTILE_SAMPLES",
    "RANGE_EPS",
    "STD_EPS",
    "MeanStdNormalization",
    "MinMaxNormalization",
    "NoNormalization",
    "Normalization",
    "QuantileNormalization",
    "check_normalization",
    "from_careamics_config",
]
