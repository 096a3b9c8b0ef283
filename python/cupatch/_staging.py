"""Pinned host staging for patches of stacks that do not live on the compute device.

:class:`cupatch.PatchDataset` reads each patch window of such stacks on the host
(``read_region``), writes it into one of a few reusable buffers (pinned on the GPU) and
uploads it asynchronously on the current stream, so the next batch is read while the
previous upload is in flight.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["Staging"]


class Staging:
    """Ring of host buffers (pinned on GPU) for patches of stacks that are not resident.

    A buffer is reused only after the upload that read it has finished (its event), so the
    next batch can be read on the host while the previous upload is still in flight.
    """

    def __init__(self, device: str, depth: int = 3) -> None:
        self.device = device
        self.depth = depth
        self._buffers: list = [None] * depth
        self._events: list = [None] * depth
        self._next = 0
        self._lock = threading.Lock()

    def acquire(self, shape, dtype) -> tuple[int, np.ndarray]:
        with self._lock:
            slot = self._next
            self._next = (self._next + 1) % self.depth
        event = self._events[slot]
        if event is not None:
            event.synchronize()
            self._events[slot] = None
        buf = self._buffers[slot]
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if buf is None or buf.nbytes < size:
            if self.device == "gpu":
                import cupyx  # optional dependency, only on the GPU path

                buf = cupyx.empty_pinned((size,), dtype=np.uint8)
            else:
                buf = np.empty(size, dtype=np.uint8)
            self._buffers[slot] = buf
        return slot, buf[:size].view(dtype).reshape(shape)

    def upload(self, slot: int, host: np.ndarray):
        """Asynchronous host-to-device copy on the current stream (GPU), else the host array."""
        if self.device != "gpu":
            return host
        import cupy  # optional dependency, only on the GPU path

        dev = cupy.empty(host.shape, dtype=host.dtype)
        stream = cupy.cuda.get_current_stream()
        dev.set(host, stream=stream)
        # block=True: waiting for the slot to be free sleeps instead of spinning a core
        event = cupy.cuda.Event(block=True, disable_timing=True)
        event.record(stream)
        self._events[slot] = event
        return dev
