"""Models and factories for the distributed tests, importable on the workers.

The cluster fixtures put this directory on the workers' ``PYTHONPATH``, so functions here
travel by reference and ``"dist_models:..."`` factory strings import on the workers.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np


def affine(batch):
    """An elementwise model: 2x + 1."""
    return batch * 2 + 1


def two_channels(batch):
    """Two output channels of another dtype (float64 -> cast to the first batch's dtype)."""
    return np.concatenate([batch[:, :1] * 3, batch[:, :1] - 1], axis=1).astype(np.float32)


def build_conv():
    """A small torch conv net, built on the worker (a factory)."""
    import torch

    torch.manual_seed(0)
    ndim = int(os.environ.get("CUPATCH_TEST_CONV_NDIM", "2"))
    conv = torch.nn.Conv2d if ndim == 2 else torch.nn.Conv3d
    net = torch.nn.Sequential(conv(1, 4, 3, padding=1), torch.nn.ReLU(), conv(4, 1, 3, padding=1))
    return net.eval()


def failing_factory():
    raise RuntimeError("boom: the weights file is missing on this worker")


class CountingFactory:
    """A factory recording the process that calls it (one line per build)."""

    def __init__(self, log: str):
        self.log = log

    def __call__(self):
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return affine


class FailOnce:
    """Raises (or kills its worker process) the first time a batch of several tiles arrives,
    across all processes (an exclusive-create flag file); afterwards it is ``affine``."""

    def __init__(self, flag: str, kill: bool = False):
        self.flag, self.kill = flag, kill

    def __call__(self, batch):
        if batch.shape[0] > 1:
            try:
                fd = os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                if self.kill:
                    os._exit(1)  # the worker process dies mid-task
                raise RuntimeError("a transient failure")
        return affine(batch)


class FailOnValue:
    """Fails on every batch holding ``value`` (an interrupted run), else ``affine``."""

    def __init__(self, value: float):
        self.value = value

    def __call__(self, batch):
        if np.any(batch == self.value):
            raise RuntimeError("the run is stopped here")
        return affine(batch)


class Unpicklable:
    """A model holding a lock: it cannot be pickled."""

    def __init__(self):
        self.lock = threading.Lock()

    def __call__(self, batch):
        return batch


def pids(log: str) -> list[int]:
    return [int(line) for line in Path(log).read_text().split()]
