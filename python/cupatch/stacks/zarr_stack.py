"""Zarr (>= 3) stacks: arrays, groups and ``file://`` URIs, read chunk by chunk."""

from __future__ import annotations

import itertools
import os
import threading
from collections import OrderedDict
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

from .lazy_stack import LazyStack

__all__ = ["ChunkCache", "ZarrStack", "chunk_cache", "dimension_axes", "is_zarr_source", "open_zarr_arrays", "open_zarr_node"]


class ChunkCache:
    """Least-recently-used cache of decoded Zarr chunks, shared by all Zarr stacks.

    Random patches touch the same chunks many times per epoch (a 128x128 patch in 256x256
    chunks touches up to four); decoding each chunk once instead of once per patch removes most
    of the cost of training from Zarr. ``max_bytes = 0`` disables caching.
    """

    def __init__(self, max_bytes: int = 512 * 2**20) -> None:
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key, value: np.ndarray) -> None:
        if value.nbytes > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = value
            self._bytes += value.nbytes
            while self._bytes > self.max_bytes:
                _, old = self._entries.popitem(last=False)
                self._bytes -= old.nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes


#: The cache used by every :class:`ZarrStack` (resize with ``chunk_cache.max_bytes = ...``).
chunk_cache = ChunkCache()
_stack_ids = itertools.count()


def is_zarr_source(obj) -> bool:
    """True for a Zarr array or group, a ``file://`` URI or a path containing ``.zarr``."""
    try:
        import zarr  # imported on first use: reading Zarr is optional
    except ImportError:  # pragma: no cover - zarr is a dependency
        return False
    if isinstance(obj, (zarr.Array, zarr.Group)):
        return True
    if isinstance(obj, (str, os.PathLike)):
        text = str(obj)
        return text.startswith("file://") or any(p.endswith(".zarr") for p in Path(text).parts)
    return False


def _split_store_path(text: str) -> tuple[Path, str]:
    """Split ``/x/store.zarr/group/array`` (or a ``file://`` URI) into store and inner path."""
    if text.startswith("file://"):
        text = unquote(urlparse(text).path)
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise ValueError(
            f"unsupported URI scheme {scheme!r} in {text!r}: only local paths and file:// URIs are read; "
            f"open remote stores with zarr and pass the zarr array or group instead"
        )
    parts = Path(text).parts
    for i, part in enumerate(parts):
        if part.endswith(".zarr"):
            return Path(*parts[: i + 1]), "/".join(parts[i + 1 :])
    return Path(text), ""


def open_zarr_arrays(obj) -> list:
    """Resolve a Zarr source to its arrays.

    An array gives itself; a group gives every array it holds directly, sorted by name; a path
    or ``file://`` URI is opened read-only (``store.zarr`` or ``store.zarr/inner/path``).

    Raises
    ------
    FileNotFoundError
        If the store or the inner path does not exist.
    ValueError
        If a group holds no array.
    """
    import zarr  # imported on first use: reading Zarr is optional

    if isinstance(obj, zarr.Array):
        return [obj]
    if isinstance(obj, zarr.Group):
        arrays = [arr for _, arr in sorted(obj.arrays(), key=lambda item: item[0])]
        if not arrays:
            raise ValueError(f"Zarr group {obj.store_path} holds no array")
        return arrays
    return open_zarr_arrays(open_zarr_node(obj))


def open_zarr_node(obj):
    """The Zarr array or group a source names: itself, or a path / ``file://`` URI opened
    read-only (``store.zarr`` or ``store.zarr/inner/path``).

    Raises
    ------
    FileNotFoundError
        If the store or the inner path does not exist.
    ValueError
        If the metadata cannot be read.
    """
    import zarr  # imported on first use: reading Zarr is optional

    if isinstance(obj, (zarr.Array, zarr.Group)):
        return obj
    store, inner = _split_store_path(str(obj))
    if not store.exists():
        raise FileNotFoundError(f"Zarr store not found: {str(store)!r} (from {str(obj)!r})")
    try:
        node = zarr.open(store=str(store), path=inner or None, mode="r")
    except (FileNotFoundError, KeyError) as exc:
        raise FileNotFoundError(f"no Zarr array or group at {str(obj)!r}") from exc
    except Exception as exc:  # zarr raises several types for unreadable metadata
        raise ValueError(f"cannot open Zarr source {str(obj)!r}: {exc}") from exc
    return node


def dimension_axes(array) -> str | None:
    """The axes a Zarr v3 array's ``dimension_names`` spell (``["c", "y", "x"]`` -> ``"CYX"``),
    or None when they are absent or are not axis letters from ``STCZYX``."""
    names = getattr(getattr(array, "metadata", None), "dimension_names", None)
    if not names or any(not isinstance(n, str) or len(n) != 1 for n in names):
        return None
    letters = "".join(names).upper()
    if len(set(letters)) != len(letters) or any(c not in "STCZYX" for c in letters) or not {"Y", "X"} <= set(letters):
        return None
    return letters


class ZarrStack(LazyStack):
    """One Zarr array seen as an SC(Z)YX stack; regions read only the chunks they touch.

    Parameters
    ----------
    array : zarr.Array
        The data, in its own axis order.
    axes : str
        Axes of ``array``.

    ``source`` is the array's ``file://`` URI and ``additional_metadata`` holds ``chunks`` and
    (when sharded) ``shards``, both in the array's original axis order. Regions are
    assembled from whole decoded chunks kept in the shared LRU :data:`chunk_cache`, so each
    chunk is read and decoded once while it stays cached.
    """

    def __init__(self, array, axes: str) -> None:
        import zarr  # imported on first use: reading Zarr is optional

        if not isinstance(array, zarr.Array):
            raise TypeError(f"ZarrStack needs a zarr.Array, got {type(array).__name__}")
        metadata = {"chunks": tuple(array.chunks)}
        if array.shards is not None:
            metadata["shards"] = tuple(array.shards)
        self._init_lazy(array, str(array.store_path), axes, metadata)
        self._cache_id = next(_stack_ids)

    def _read_original(self, index: tuple) -> np.ndarray:
        """Assemble ``array[index]`` from whole decoded chunks, through :data:`chunk_cache`."""
        if chunk_cache.max_bytes <= 0:
            return np.asarray(self._backing[index])
        array = self._backing
        chunks = array.chunks
        lows, highs, keep = [], [], []
        for item, n in zip(index, array.shape):
            if isinstance(item, slice):
                lo, hi, _ = item.indices(n)
                keep.append(True)
            else:
                lo, hi = int(item), int(item) + 1
                keep.append(False)
            lows.append(lo)
            highs.append(hi)
        out = np.empty([h - lo for lo, h in zip(lows, highs)], dtype=array.dtype)
        grid = [range(lo // c, (h - 1) // c + 1) for lo, h, c in zip(lows, highs, chunks)]
        for chunk_idx in itertools.product(*grid):
            key = (self._cache_id, chunk_idx)
            block = chunk_cache.get(key)
            if block is None:
                box = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(chunk_idx, chunks, array.shape))
                block = np.asarray(array[box])
                chunk_cache.put(key, block)
            src, dst = [], []
            for i, c, lo, h in zip(chunk_idx, chunks, lows, highs):
                a, b = max(lo, i * c), min(h, (i + 1) * c)
                src.append(slice(a - i * c, b - i * c))
                dst.append(slice(a - lo, b - lo))
            out[tuple(dst)] = block[tuple(src)]
        return out.reshape([n for n, k in zip(out.shape, keep) if k])
