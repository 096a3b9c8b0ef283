"""Stacks and direct NumPy statistics shared by the normalisation tests."""

from __future__ import annotations

import numpy as np

from cupatch.stacks import as_stack


def make_stacks(xp, dtype=np.uint16, placement="auto"):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 4000, (3, 2, 17, 19)).astype(dtype)  # S C Y X
    b = rng.integers(100, 9000, (1, 2, 9, 31)).astype(dtype)
    if placement == "disk":
        return [as_stack(a, "SCYX", placement="disk"), as_stack(b, "SCYX", placement="disk")], a, b
    return [as_stack(xp.asarray(a), "SCYX"), as_stack(xp.asarray(b), "SCYX")], a, b



def values_per_channel(a, b):
    """All values per channel, (C, N) float64."""
    return np.concatenate([a.transpose(1, 0, 2, 3).reshape(2, -1), b.transpose(1, 0, 2, 3).reshape(2, -1)], axis=1).astype(np.float64)
