"""Models and references shared by the tiled-inference tests."""

from __future__ import annotations

import numpy as np

# The CAREamics-style per-tile reference (extraction, one model call per tile, stitch_prediction).
from cupatch._reference import careamics_predict_reference as careamics_predict  # noqa: F401 (re-exported)


BLEND_WINDOWS = ["linear", "hann", "gaussian", "uniform"]


def identity(x):
    return x


def scaled(x):
    return x * 2.0 + 1.0


def content_dependent(x):
    """A model whose output depends on the whole tile (padding included)."""
    axes = tuple(range(2, x.ndim))
    return x * 1.5 + x.mean(axis=axes, keepdims=True)


IMAGE = np.zeros((40, 40), np.float32)
