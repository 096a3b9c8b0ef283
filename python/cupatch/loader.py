"""``BatchLoader``: epochs of batches from a :class:`~cupatch.PatchDataset`, prefetched.

Ordering, sharding and epochs follow ``torch.utils.data.DistributedSampler`` so that multi-GPU
training with ``torch.distributed`` needs nothing else: every rank builds the same
permutation of the dataset indices from ``(seed, epoch)``, pads it by repeating its head to a
multiple of ``world_size`` (or, with ``drop_last``, drops the tail), and takes
``indices[rank::world_size]``.

The permutation of epoch ``e`` is ``numpy.random.Generator(numpy.random.Philox(key=k))
.permutation(n)`` with ``k = hash4(seed, e, 0, Stream.SHUFFLE)`` (see
:mod:`cupatch._random`): a pure function of ``(seed, epoch)``.

Prefetching
-----------
On the GPU the next ``prefetch`` batches are gathered on a side CUDA stream while the model
runs on the current one. Before a batch is handed over, the consumer's current stream waits on
an event recorded after the batch's gather, so the batch is complete before any kernel of the
consumer reads it; and before the side stream allocates the next batches it waits on an event
recorded on the consumer's stream, so memory of batches the consumer has dropped is reused
only after the consumer's work on them is done (CuPy's memory pool is stream-ordered). With
``as_torch=True`` the consumer stream is torch's current stream and batches are wrapped with
``torch.from_dlpack`` (no copy).

The consumer stream is the one current when the loop asks for the next batch. Work on a batch
queued on another stream (a ``with stream:`` block *inside* the loop body) is not waited for
before the batch's memory is reused: enter such a stream around the whole loop instead, or
synchronise it before dropping the batch.

On the CPU a background thread prepares the next ``prefetch`` batches.
"""

from __future__ import annotations

import math
import queue
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np

from ._random import Stream, hash4, resolve_seed
from ._validation import as_bool, as_int

__all__ = ["BatchLoader", "epoch_permutation", "shard_indices"]


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled order of ``range(n)`` for ``(seed, epoch)`` (int64)."""
    key = int(hash4(seed, epoch, 0, Stream.SHUFFLE)[0])
    return np.random.Generator(np.random.Philox(key=key)).permutation(n).astype(np.int64)


def shard_indices(indices: np.ndarray, rank: int, world_size: int, drop_last: bool) -> np.ndarray:
    """``DistributedSampler``'s padding / truncation and ``indices[rank::world_size]``.

    The padded order repeats ``indices`` cyclically, so the shard is read straight from it
    (no padded copy: a world larger than the epoch costs nothing)."""
    n = len(indices)
    if n == 0:
        return np.ascontiguousarray(indices[:0])
    if drop_last and n % world_size != 0:
        num_samples = max(0, math.ceil((n - world_size) / world_size))
    else:
        num_samples = math.ceil(n / world_size)
    # position rank + k * world_size of the padded order is indices[(rank + k * world_size) % n]
    positions = (rank % n + (world_size % n) * np.arange(num_samples, dtype=np.int64)) % n
    return np.ascontiguousarray(indices[positions])


class BatchLoader:
    """Iterate a :class:`~cupatch.PatchDataset` in batches, epoch by epoch.

    Parameters
    ----------
    dataset : PatchDataset
        The dataset (its ``device`` decides GPU or CPU batches).
    batch_size : int
        Patches per batch.
    shuffle : bool
        Shuffle the indices each epoch (seeded; see :func:`epoch_permutation`).
    seed : int, optional
        Shuffle seed; required when ``world_size > 1`` so that every rank draws the same
        permutation. ``None`` draws one seed for the loader's life.
    drop_last : bool
        Drop the tail of the permutation that does not divide evenly across ranks (instead of
        padding) and the last incomplete batch.
    rank, world_size : int
        This process's shard (``torch.distributed.get_rank()`` / ``get_world_size()``).
    as_torch : bool
        Yield torch tensors (zero-copy through DLPack) instead of CuPy/NumPy arrays.
    prefetch : int
        Batches prepared ahead (0 disables prefetching).
    return_regions : bool
        Yield the collated :class:`~cupatch.ImageRegionData` of
        :meth:`PatchDataset.get_batch` (data converted as above) instead of bare arrays.

    Yields
    ------
    tuple
        One entry per role, as ``dataset[i]`` and ``get_batch``: ``(input, target)`` arrays
        ``(B, C, [Z,] Y, X)``, or ``(input,)`` when the dataset has no targets (so
        ``for x, y in loader`` and ``for (x,) in loader``); with ``return_regions``, the
        same tuple of collated regions.

    Notes
    -----
    Like ``DistributedSampler``, the loader does not advance the epoch by itself: call
    :meth:`set_epoch` at the start of every epoch (it also moves the dataset's random patch
    coordinates and augmentations to that epoch).
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int | None = None,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        as_torch: bool = False,
        prefetch: int = 1,
        return_regions: bool = False,
    ) -> None:
        return_regions = as_bool(return_regions, "return_regions")
        needed = ("__len__", "gather_arrays", "get_batch") if return_regions else ("__len__", "gather_arrays")
        missing = [attr for attr in needed if not hasattr(dataset, attr)]
        if missing:
            raise TypeError(
                f"dataset must be a cupatch.PatchDataset (or have {', '.join(needed)}), got "
                f"{type(dataset).__name__} without {', '.join(missing)}"
            )
        for name, value in (("batch_size", batch_size), ("rank", rank), ("world_size", world_size), ("prefetch", prefetch)):
            as_int(value, name)  # every type first, then the ranges
        batch_size = as_int(batch_size, "batch_size", minimum=1)
        world_size = as_int(world_size, "world_size", minimum=1)
        rank = as_int(rank, "rank", minimum=0, below=world_size, below_text=f"world_size={world_size}")
        prefetch = as_int(prefetch, "prefetch", minimum=0)
        shuffle, drop_last = as_bool(shuffle, "shuffle"), as_bool(drop_last, "drop_last")
        as_torch = as_bool(as_torch, "as_torch")
        if seed is None and shuffle and world_size > 1:
            raise ValueError("seed is required when world_size > 1, so that every rank shuffles the same way")
        if as_torch:
            try:
                import torch  # noqa: F401  (optional dependency, checked up front)
            except ImportError as exc:
                raise ImportError("as_torch=True needs torch installed") from exc
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = resolve_seed(seed)
        self.drop_last = bool(drop_last)
        self.rank, self.world_size = int(rank), int(world_size)
        self.as_torch = bool(as_torch)
        self.prefetch = int(prefetch)
        self.return_regions = bool(return_regions)
        self.epoch = int(getattr(dataset, "epoch", 0))

    # -- ordering --------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (shuffle order, random coordinates and augmentations)."""
        self.epoch = as_int(epoch, "epoch", minimum=0)
        self.dataset.set_epoch(self.epoch)

    def indices(self) -> np.ndarray:
        """This rank's dataset indices for the current epoch, in order."""
        n = len(self.dataset)
        order = epoch_permutation(n, self.seed, self.epoch) if self.shuffle else np.arange(n, dtype=np.int64)
        return shard_indices(order, self.rank, self.world_size, self.drop_last)

    def batches(self) -> list[np.ndarray]:
        """This rank's batches of indices for the current epoch."""
        idx = self.indices()
        n_full = len(idx) // self.batch_size
        out = [idx[i * self.batch_size : (i + 1) * self.batch_size] for i in range(n_full)]
        if not self.drop_last and len(idx) % self.batch_size:
            out.append(idx[n_full * self.batch_size :])
        return out

    def __len__(self) -> int:
        n = len(self.indices())
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    # -- producing -------------------------------------------------------------------------
    def _produce(self, idx: np.ndarray) -> tuple:
        """One batch as a tuple of one entry per role, ``(input,)`` or ``(input, target)``."""
        if self.return_regions:
            return tuple(self.dataset.get_batch(idx))
        x, y = self.dataset.gather_arrays(idx)
        return (x,) if y is None else (x, y)

    def _convert(self, batch: tuple) -> tuple:
        if self.return_regions:
            return tuple(r._replace(data=self._to_out(r.data)) for r in batch)
        return tuple(self._to_out(a) for a in batch)

    def _to_out(self, array):
        if not self.as_torch:
            return array
        import torch  # optional dependency, only with as_torch=True

        return torch.from_dlpack(array)

    def __iter__(self) -> Iterator[Any]:
        batches = self.batches()
        if getattr(self.dataset, "device", "cpu") == "gpu":
            return self._iter_gpu(batches)
        return self._iter_cpu(batches)

    def _iter_cpu(self, batches):
        if self.prefetch == 0:
            for idx in batches:
                yield self._convert(self._produce(idx))
            return
        done = object()
        out: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def work():
            try:
                for idx in batches:
                    if stop.is_set():
                        return
                    out.put(("ok", self._produce(idx)))
                out.put(("ok", done))
            except BaseException as exc:  # re-raised in the consumer
                out.put(("error", exc))

        thread = threading.Thread(target=work, name="cupatch-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                kind, item = out.get()
                if kind == "error":
                    raise item
                if item is done:
                    return
                yield self._convert(item)
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    out.get_nowait()
                except queue.Empty:
                    thread.join(timeout=0.01)

    def _consumer_stream(self):
        """The stream the consumer's kernels run on: torch's current stream with ``as_torch``
        (on the dataset's device), else CuPy's current stream."""
        import cupy  # optional dependency, only on the GPU path

        if self.as_torch:
            import torch  # optional dependency, only with as_torch=True

            torch_stream = torch.cuda.current_stream(cupy.cuda.Device().id)
            # Stream.from_external replaces ExternalStream (deprecated in CuPy 14, and its
            # DeprecationWarning is an error under warnings-as-errors)
            from_external = getattr(cupy.cuda.Stream, "from_external", None)
            if from_external is not None:
                return from_external(torch_stream)
            return cupy.cuda.ExternalStream(torch_stream.cuda_stream)
        return cupy.cuda.get_current_stream()

    def _side_stream(self):
        """The prefetch stream, one per loader and device for the loader's life.

        Reusing it across epochs matters beyond saving a stream creation: CuPy's memory pool
        files freed blocks under the handle of the stream they were allocated on, and a
        destroyed stream's handle can be handed to a new, unrelated stream, which would then
        reuse those blocks without waiting for the consumer.
        """
        import cupy  # optional dependency, only on the GPU path

        device = cupy.cuda.Device().id
        streams = self.__dict__.setdefault("_side_streams", {})
        side = streams.get(device)
        if side is None:
            side = streams[device] = cupy.cuda.Stream(non_blocking=True)
        return side

    def _iter_gpu(self, batches):
        side = self._side_stream()
        pending: deque = deque()
        position = 0

        def enqueue(consumer):
            nonlocal position
            # the side stream may reuse memory of batches the consumer dropped: wait for the
            # consumer's work queued so far before allocating
            side.wait_event(consumer.record())
            with side:
                batch = self._produce(batches[position])
                ready = side.record()
            pending.append((batch, ready))
            position += 1

        while position < len(batches) or pending:
            consumer = self._consumer_stream()
            while position < len(batches) and len(pending) <= self.prefetch:
                enqueue(consumer)
            batch, ready = pending.popleft()
            consumer.wait_event(ready)
            yield self._convert(batch)
