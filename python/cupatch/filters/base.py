"""What every patch filter shares: the :class:`PatchFilter` protocol and the batch helpers.

A filter decides, for a region of an image, whether it is background. ``filter_out`` takes
one region and applies CAREamics' rule as CAREamics writes it (NumPy, SciPy, scikit-image).
``filter_out_batch`` takes a ``(B, 1, ...)`` batch of regions, NumPy or CuPy, and gives the
same B decisions from vectorised reductions.

Where a batched reduction cannot reproduce CAREamics' floating-point result to the last bit
(a float32 mean summed in another order on the GPU, an entropy summed over a histogram built
by sorting), the batch computes the value with a bound on how far it can lie from CAREamics'
value. Regions whose value lies within that bound of the threshold are rare; they are
decided again with ``filter_out`` on the host (:func:`refine`). So the decisions are
CAREamics' decisions, ties at the threshold included.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from .._backend import is_gpu_array, require_gpu

__all__ = ["PatchFilter", "compare_dtype", "host", "refine", "region_batch", "require_scipy_ndimage"]


@runtime_checkable
class PatchFilter(Protocol):
    """A background-region test (CAREamics' ``PatchFilter`` plus a batched form)."""

    def filter_out(self, patch: np.ndarray) -> bool:
        """True when the region ``patch`` (``(1, *spatial)``) is background."""
        ...

    def filter_out_batch(self, regions: Any) -> Any:
        """Decisions for a ``(B, 1, *spatial)`` batch: a bool array of length B on the
        batch's array module (NumPy for NumPy input, CuPy for CuPy input)."""
        ...


def region_batch(regions: Any, name: str = "regions"):
    """``(xp, regions)``: the array module and the batch, checked to be ``(B, 1, *spatial)``.

    Raises
    ------
    TypeError
        For something that is neither a NumPy array nor a GPU array.
    ValueError
        For a batch without a channel axis of length 1 or without spatial axes.
    """
    if is_gpu_array(regions):
        xp = require_gpu("filter_out_batch")
        x = xp.asarray(regions)
    elif isinstance(regions, np.ndarray):
        xp, x = np, regions
    else:
        raise TypeError(f"{name} must be a NumPy or CuPy array of shape (B, 1, *spatial), got {type(regions).__name__}")
    if x.ndim < 3 or x.shape[1] != 1:
        raise ValueError(f"{name} must have shape (B, 1, *spatial) (one channel), got {tuple(x.shape)}")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold booleans or real numbers, got dtype {x.dtype}")
    return xp, x


def host(x: Any) -> np.ndarray:
    """A NumPy view or copy of a NumPy or CuPy array."""
    return x.get() if hasattr(x, "get") and not isinstance(x, np.ndarray) else np.asarray(x)


def compare_dtype(dtype: Any, threshold: float) -> np.dtype:
    """The dtype in which NumPy compares an array of ``dtype`` with the Python float
    ``threshold`` (NumPy 2 promotion: float32 arrays compare in float32)."""
    return np.result_type(np.dtype(dtype), threshold)


def refine(decisions, uncertain, regions, filter_out, xp):
    """Re-decide the ``uncertain`` regions with ``filter_out`` on the host (exact rule).

    ``decisions`` and ``uncertain`` are bool arrays of the batch's module; the result is one
    too. A host synchronisation happens only on the GPU, to find the uncertain rows.
    """
    rows = np.flatnonzero(host(uncertain))
    if not len(rows):
        return decisions
    exact = np.array([bool(filter_out(host(regions[int(i)]))) for i in rows], dtype=bool)
    decisions = decisions.copy()
    decisions[xp.asarray(rows)] = xp.asarray(exact)
    return decisions


def require_scipy_ndimage(xp):
    """``scipy.ndimage`` (NumPy) or ``cupyx.scipy.ndimage`` (CuPy), with an ImportError that
    says which package to install."""
    if xp is np:
        try:
            from scipy import ndimage
        except ImportError as exc:  # pragma: no cover - scipy is in the filters extra
            raise ImportError("the max filter needs SciPy: pip install 'cupatch[filters]'") from exc
        return ndimage
    import cupyx.scipy.ndimage as ndimage  # with CuPy

    return ndimage
