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

__all__ = [
    "UNIFORM_INT_MAX",
    "Stream",
    "draw_uniform_int",
    "hash4",
    "hash4_indices",
    "resolve_seed",
    "splitmix64",
    "uniform01",
    "uniform_int",
    "uniform_int_scalar",
]

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


def hash4_indices(seed, epoch, indices: np.ndarray, stream) -> np.ndarray:
    """:func:`hash4` of an int64 index array with scalar ``seed``, ``epoch`` and ``stream``,
    computed by the native twin of this module (``cpp/include/cupatch/random.h``, the same
    bits: ``tests/ops/test_property.py``), a hundred times faster for a batch."""
    from . import _core  # the extension module; imported here so that this module stays importable alone

    return _core.hash4(int(seed), int(epoch), np.ascontiguousarray(indices, dtype=np.int64), int(stream))


#: The largest range :func:`uniform_int` draws from (far above any image extent, 2**60).
UNIFORM_INT_MAX = 2**62
_SMALL = np.uint64(2**32)
_LOW32 = np.uint64(0xFFFFFFFF)


def _mulhi64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``floor(a * b / 2**64)`` for uint64 arrays: the high word of the 128-bit product, from
    32-bit halves (no product or sum below can exceed 2**64)."""
    ah, al, bh, bl = a >> _U32, a & _LOW32, b >> _U32, b & _LOW32
    hl, lh, ll = ah * bl, al * bh, al * bl
    carry = ((hl & _LOW32) + (lh & _LOW32) + (ll >> _U32)) >> _U32
    return ah * bh + (hl >> _U32) + (lh >> _U32) + carry


def draw_uniform_int(h: np.ndarray, n: np.ndarray) -> np.ndarray:
    """:func:`uniform_int` on uint64 arrays without its argument checks (callers guarantee
    ``1 <= n <= 2**62``), as uint64."""
    h, n = _as_u64(h), _as_u64(n)
    if n.size == 1 and int(n.reshape(-1)[0]) < 2**32:  # one small range (a batch of draws): no broadcast copies
        return ((h >> _U32) * n.reshape(-1)[0]) >> _U32
    h, n = np.broadcast_arrays(h, n)
    small = ((h >> _U32) * n) >> _U32  # wraps where n >= 2**32; replaced there below
    large = n >= _SMALL
    if large.any():
        return np.where(large, _mulhi64(h, n), small)
    return small


def uniform_int_scalar(h: int, n: int) -> int:
    """:func:`uniform_int` on Python ints (no checks): the scalar twin, exact in big ints."""
    return ((h >> 32) * n) >> 32 if n < 2**32 else (h * n) >> 64


def uniform_int(h, n) -> np.ndarray:
    """Map hashes to integers in ``[0, n)`` (``n`` broadcasts; ``1 <= n <= 2**62``).

    ``((h >> 32) * n) >> 32`` for ``n < 2**32`` (the top 32 bits of the hash, as always), and
    ``floor(h * n / 2**64)`` (all 64 bits, a 128-bit product) for larger ``n``, so every value
    of a range beyond 2**32 can be drawn. ``cpp/include/cupatch/random.h`` computes the same.
    """
    n_arr = np.asarray(n)
    if n_arr.dtype.kind not in "iu":
        raise TypeError(f"uniform_int needs integer n, got dtype {n_arr.dtype}")
    if np.any(n_arr < 1) or np.any(n_arr > UNIFORM_INT_MAX):
        raise ValueError(f"uniform_int needs 1 <= n <= 2**62, got n in [{n_arr.min()}, {n_arr.max()}]")
    return draw_uniform_int(h, n_arr).astype(np.int64)


def uniform01(h) -> np.ndarray:
    """Map hashes to float64 values in ``[0, 1)``."""
    return (_as_u64(h) >> _U11).astype(np.float64) * (2.0**-53)


def resolve_seed(seed: int | None) -> int:
    """Return a concrete non-negative seed: ``seed`` itself, or fresh entropy when None."""
    if seed is None:
        return int(np.random.SeedSequence().entropy) % 2**64
    return as_int(seed, "seed", minimum=0, below=2**64, below_text="2**64")
