"""Counter-based randomness shared by every backend.

Every random choice cupatch makes (patch coordinates, stratified regions, augmentation
flags, loader shuffling) is a pure function of ``(seed, epoch, index, stream)``. The same
function is written in ``cpp/include/cupatch/random.h`` for the native kernels, so results
do not depend on the backend, on the number of DataLoader workers or on call order.
See ``docs/contracts.md``.
"""

from __future__ import annotations

import enum

import numpy as np

from ._validation import as_int

__all__ = ["Stream", "hash4", "resolve_seed", "splitmix64", "uniform01", "uniform_int"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_U30, _U27, _U31, _U32, _U11 = (np.uint64(v) for v in (30, 27, 31, 32, 11))


class Stream(enum.IntEnum):
    """Stream numbers that separate independent random choices for one index."""

    COORD = 0  # + axis (0..2)
    REGION = 8
    SUBBOX = 9
    COORD_IN_BOX = 10  # + axis (0..2)
    AUG_FLIP_APPLY = 16
    AUG_FLIP_AXIS = 17
    AUG_ROT_APPLY = 18
    AUG_ROT_K = 19
    SHUFFLE = 32


def _as_u64(value) -> np.ndarray:
    """Return ``value`` as a uint64 array (at least 1-D), wrapping negatives mod 2**64."""
    arr = np.asarray(value)
    if arr.dtype == np.uint64:
        return np.atleast_1d(arr)
    if arr.dtype.kind not in "iub":
        raise TypeError(f"counter values must be integers, got dtype {arr.dtype}")
    return np.atleast_1d(arr.astype(np.int64).view(np.uint64) if arr.dtype.kind == "i" else arr.astype(np.uint64))


def splitmix64(x) -> np.ndarray:
    """SplitMix64 finaliser, vectorised over a uint64 array (arithmetic mod 2**64)."""
    x = _as_u64(x) + _GOLDEN
    z = (x ^ (x >> _U30)) * _MUL1
    z = (z ^ (z >> _U27)) * _MUL2
    return z ^ (z >> _U31)


def hash4(seed, epoch, index, stream) -> np.ndarray:
    """64-bit hash of ``(seed, epoch, index, stream)``; arguments broadcast."""
    h = splitmix64(seed)
    h = splitmix64(h ^ _as_u64(epoch))
    h = splitmix64(h ^ _as_u64(index))
    return splitmix64(h ^ _as_u64(stream))


def uniform_int(h, n) -> np.ndarray:
    """Map hashes to integers in ``[0, n)`` (``n`` broadcasts; ``1 <= n < 2**32``)."""
    n_arr = np.asarray(n)
    if np.any(n_arr < 1) or np.any(n_arr >= 2**32):
        raise ValueError("uniform_int needs 1 <= n < 2**32")
    return (((_as_u64(h) >> _U32) * _as_u64(n_arr)) >> _U32).astype(np.int64)


def uniform01(h) -> np.ndarray:
    """Map hashes to float64 values in ``[0, 1)``."""
    return (_as_u64(h) >> _U11).astype(np.float64) * (2.0**-53)


def resolve_seed(seed: int | None) -> int:
    """Return a concrete non-negative seed: ``seed`` itself, or fresh entropy when None."""
    if seed is None:
        return int(np.random.SeedSequence().entropy) % 2**64
    return as_int(seed, "seed", minimum=0, below=2**64, below_text="2**64")
