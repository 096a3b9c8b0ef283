"""Inputs the workers can reach, and the input window of one task.

Workers read an image themselves when it is named by something every worker can open: a
Zarr array or a path (or URI) to a Zarr array or group, a TIFF path, a ``.npy`` path, or a
file-backed stack. A ``dask.array.Array`` is read by Dask: each task receives, as a task
dependency, only the box of the array its tiles read (the array's chunks are storage, not
tasks). In-memory NumPy/CuPy arrays are refused with a message naming both ways to send
them (save as Zarr, or wrap in ``dask.array.from_array``).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import is_cupy_array
from .._dtypes import STACK_DTYPES
from ..inference.destinations import is_zarr_array
from ..inference.sources import open_image
from ..stacks import BaseStack
from ..stacks.lazy_stack import LazyArrayStack

__all__ = ["DaskStack", "InputRef", "input_refs", "is_dask_array", "read_window"]


def is_dask_array(obj) -> bool:
    """True for a ``dask.array.Array`` (checked by module name: Dask is never imported here)."""
    return type(obj).__module__.split(".")[0] == "dask" and hasattr(obj, "dask") and hasattr(obj, "chunks")


class DaskStack(LazyArrayStack):
    """A dask array as a stack whose region reads stay lazy (dask arrays, not NumPy)."""

    def __init__(self, array, axes: str) -> None:
        super().__init__(array, axes, source=f"dask.array<{array.name}>")

    def lazy_box(self, sample_idx: int, channels, lo, hi):
        """The in-image box ``[lo, hi)`` of one sample, C(Z)YX, as a dask array."""
        return self._read_box(sample_idx, channels, [slice(a, b) for a, b in zip(lo, hi)])

    def _read_original(self, index: tuple):
        return self._backing[index]


@dataclass(frozen=True)
class InputRef:
    """One image as a task sees it: ``source`` reopened on the worker, or None for dask
    inputs (the window arrives as a task argument)."""

    source: Any
    axes: str
    dask: Any = None  # the DaskStack the client slices windows from
    run: str = ""  # the call it belongs to: a worker's open stacks are reused within one call only


def _unreachable(name: str, obj) -> TypeError:
    kind = "CuPy" if is_cupy_array(obj) else "NumPy"
    return TypeError(
        f"{name} is an in-memory {kind} array, which the Dask workers cannot read. Save it where every worker "
        f"can open it (e.g. zarr.save_array('image.zarr', data)) and pass the path, or send it with the tasks "
        f"explicitly by wrapping it: dask.array.from_array(data, chunks=...)"
    )


def input_refs(data, axes: str) -> tuple[list[InputRef], list, bool]:
    """``(refs, plan_data, is_list)``: what the workers open, and what the client plans with."""
    run = uuid.uuid4().hex
    is_list = isinstance(data, (list, tuple))
    items = list(data) if is_list else [data]
    refs, plan_data = [], []
    for k, item in enumerate(items):
        name = f"data[{k}]" if is_list else "data"
        if isinstance(item, np.ndarray) or is_cupy_array(item):
            raise _unreachable(name, item)
        if is_dask_array(item):
            stack = DaskStack(item, axes)
            refs.append(InputRef(None, axes, stack, run))
            plan_data.append(stack)
        elif isinstance(item, (str, os.PathLike)) or is_zarr_array(item):
            refs.append(InputRef(os.fspath(item) if isinstance(item, os.PathLike) else item, axes, run=run))
            plan_data.append(item)
        elif isinstance(item, BaseStack):
            if getattr(item, "array", None) is not None or item.placement != "disk":
                raise TypeError(
                    f"{name} is a stack held in memory ({item.placement}), which the Dask workers cannot read; pass "
                    f"its file path, or a dask array wrapping the data"
                )
            refs.append(InputRef(item.source, item.original_axes, run=run))
            plan_data.append(item)
        else:
            raise TypeError(
                f"{name}: cannot send {type(item).__name__} to Dask workers; expected a Zarr array, a Zarr/TIFF/.npy "
                f"path or URI, a file-backed stack, or a dask.array.Array"
            )
    return refs, plan_data, is_list


# Per worker process: the stacks opened from paths by the latest calls (a stack keeps a chunk
# cache, so it is never reused by a later call, which may read a rewritten file).
_STACKS: dict[tuple[str, str, str], Any] = {}
_MAX_STACKS = 8


def _worker_stack(ref: InputRef):
    if not isinstance(ref.source, str):
        return open_image(ref.source, ref.axes)
    key = (ref.source, ref.axes, ref.run)
    stack = _STACKS.get(key)
    if stack is None:
        while len(_STACKS) >= _MAX_STACKS:
            _STACKS.pop(next(iter(_STACKS)))
        stack = _STACKS[key] = open_image(ref.source, ref.axes)
    return stack


def read_window(ref: InputRef, sample: int, channels, lo, hi, block=None) -> np.ndarray:
    """The input box ``[lo, hi)`` of one sample, C(Z)YX on the host, in a gatherable dtype.

    ``block`` is that box already read by Dask (dask inputs); otherwise the worker reads it.
    """
    if block is None:
        stack = _worker_stack(ref)
        array = getattr(stack, "array", None)
        if array is not None:  # a memory-mapped file: slice it directly
            sample_data = array[sample] if channels is None else array[sample][list(channels)]
            block = sample_data[(slice(None), *(slice(a, b) for a, b in zip(lo, hi)))]
        else:
            block = stack.read_region(sample, lo, [b - a for a, b in zip(lo, hi)], channels=channels)
    block = np.ascontiguousarray(block)
    if block.dtype not in STACK_DTYPES:
        block = block.astype(np.float32)
    return block
