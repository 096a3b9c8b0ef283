"""Zarr (>= 3) stacks: arrays, groups and ``file://`` URIs, read chunk by chunk."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from .base import LazyStack

__all__ = ["ZarrStack", "is_zarr_source", "open_zarr_arrays"]


def is_zarr_source(obj) -> bool:
    """True for a Zarr array or group, a ``file://`` URI or a path containing ``.zarr``."""
    try:
        import zarr
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
    import zarr

    if isinstance(obj, zarr.Array):
        return [obj]
    if isinstance(obj, zarr.Group):
        arrays = [arr for _, arr in sorted(obj.arrays(), key=lambda item: item[0])]
        if not arrays:
            raise ValueError(f"Zarr group {obj.store_path} holds no array")
        return arrays
    store, inner = _split_store_path(str(obj))
    if not store.exists():
        raise FileNotFoundError(f"Zarr store not found: {str(store)!r} (from {str(obj)!r})")
    try:
        node = zarr.open(store=str(store), path=inner or None, mode="r")
    except (FileNotFoundError, KeyError) as exc:
        raise FileNotFoundError(f"no Zarr array or group at {str(obj)!r}") from exc
    except Exception as exc:  # zarr raises several types for unreadable metadata
        raise ValueError(f"cannot open Zarr source {str(obj)!r}: {exc}") from exc
    return open_zarr_arrays(node)


class ZarrStack(LazyStack):
    """One Zarr array seen as an SC(Z)YX stack; regions read only the chunks they touch.

    Parameters
    ----------
    array : zarr.Array
        The data, in its own axis order.
    axes : str
        Axes of ``array``.

    ``source`` is the array's ``file://`` URI and ``additional_metadata`` holds ``chunks`` and
    (when sharded) ``shards``, both in the array's original axis order.
    """

    def __init__(self, array, axes: str) -> None:
        import zarr

        if not isinstance(array, zarr.Array):
            raise TypeError(f"ZarrStack needs a zarr.Array, got {type(array).__name__}")
        metadata = {"chunks": tuple(array.chunks)}
        if array.shards is not None:
            metadata["shards"] = tuple(array.shards)
        self._init_lazy(array, str(array.store_path), axes, metadata)
