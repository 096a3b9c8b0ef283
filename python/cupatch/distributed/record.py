"""The completion record: which regions of an output are finished, in a Zarr attribute.

Every output array of a distributed run carries the attribute ``cupatch_distributed``:

``fingerprint``
    what the run computes (input shape and dtype, tiling, blend, channels, normalisation,
    output layout, regions); ``resume=True`` refuses an output whose fingerprint differs;
``n_tasks``
    the regions (tasks) of the image, all samples together;
``done``
    the finished tasks as ``[first, last]`` ranges;
``complete``
    true once every task is done.

Only the client writes the record, after the task's future has finished (its chunks are
written by then), so a region listed as done is on disk. An interrupted run leaves the
record of what finished; ``resume=True`` runs only the rest.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

__all__ = ["ATTRIBUTE", "CompletionRecord", "decode_ranges", "encode_ranges", "read_record"]

#: The Zarr attribute holding the record.
ATTRIBUTE = "cupatch_distributed"


def encode_ranges(ids) -> list[list[int]]:
    """Sorted task ids as inclusive ``[first, last]`` ranges (compact for long runs)."""
    ranges: list[list[int]] = []
    for i in sorted(set(int(i) for i in ids)):
        if ranges and ranges[-1][1] == i - 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    return ranges


def decode_ranges(ranges) -> set[int]:
    return {i for first, last in ranges for i in range(int(first), int(last) + 1)}


def _jsonable(value: Any):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_record(array) -> dict | None:
    """The record of an output array, or None when it has none."""
    record = dict(array.attrs).get(ATTRIBUTE)
    return dict(record) if isinstance(record, dict) else None


class CompletionRecord:
    """The record of one output array, kept by the client and written as tasks finish.

    Writes are throttled to one per ``interval`` seconds; :meth:`flush` writes at once.
    """

    def __init__(self, array, fingerprint: dict, n_tasks: int, done=(), interval: float = 1.0):
        self.array, self.n_tasks, self.interval = array, int(n_tasks), interval
        self.fingerprint = _jsonable(fingerprint)
        self.done: set[int] = set(done)
        self._written = -np.inf
        self._dirty = True

    @classmethod
    def resume(cls, array, fingerprint: dict, n_tasks: int, path) -> CompletionRecord:
        """The record of an existing output, checked against this run's fingerprint."""
        record = read_record(array)
        if record is None:
            raise ValueError(
                f"out {str(path)!r} has no '{ATTRIBUTE}' completion record, so resume=True cannot tell which regions "
                f"are finished; pass overwrite=True to recompute it"
            )
        theirs, ours = record.get("fingerprint"), _jsonable(fingerprint)
        if theirs != ours or int(record.get("n_tasks", -1)) != n_tasks:
            differ = sorted(k for k in set(theirs or {}) | set(ours) if (theirs or {}).get(k) != ours.get(k))
            raise ValueError(
                f"out {str(path)!r} was written by a run with different settings ({', '.join(differ) or 'n_tasks'} "
                f"differ), so resume=True would mix two predictions; pass the same arguments, or overwrite=True"
            )
        return cls(array, fingerprint, n_tasks, decode_ranges(record.get("done", [])))

    @property
    def complete(self) -> bool:
        return len(self.done) >= self.n_tasks

    def mark(self, task_id: int) -> None:
        self.done.add(int(task_id))
        self._dirty = True
        if time.monotonic() - self._written >= self.interval or self.complete:
            self.flush()

    def flush(self) -> None:
        if not self._dirty:
            return
        self.array.attrs.update(
            {
                ATTRIBUTE: {
                    "fingerprint": self.fingerprint,
                    "n_tasks": self.n_tasks,
                    "done": encode_ranges(self.done),
                    "complete": self.complete,
                }
            }
        )
        self._written, self._dirty = time.monotonic(), False
