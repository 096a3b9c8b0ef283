"""Batches of regions for the filter tests: random, and built to sit on the thresholds."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from skimage.measure import shannon_entropy


def adversarial_batch(spatial=(16, 16), seed=0) -> np.ndarray:
    """float32 ``(B, 1, *spatial)``: padding-only, constant, two-valued, sparse, random and
    integer-valued regions (many equal means, maxima and histograms)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(spatial))
    rows = [
        np.zeros(n),  # all padding
        np.full(n, 0.5),  # constant
        np.full(n, 3.0),
        np.repeat([0.0, 1.0], [n // 2, n - n // 2]),  # half/half: entropy exactly 1 bit
        np.repeat([0.0, 2.0], [3 * n // 4, n - 3 * n // 4]),
        np.where(np.arange(n) == n // 3, 7.0, 0.0),  # one bright pixel
        rng.integers(0, 4, n).astype(float),
        rng.integers(0, 256, n).astype(float),
        rng.random(n),
        rng.normal(100.0, 10.0, n),
        rng.random(n) * 1e-3,
        np.where(rng.random(n) < 0.25, 1.0, 0.0),
    ]
    corner = np.zeros(spatial)  # a region mostly outside the image: only its first quarter is data
    corner[tuple(slice(0, s // 2) for s in spatial)] = rng.random(tuple(s // 2 for s in spatial))
    rows.append(corner.reshape(-1))
    return np.stack(rows).astype(np.float32).reshape(len(rows), 1, *spatial)


def thresholds_from(batch: np.ndarray) -> dict[str, list[float]]:
    """Thresholds that tie with some region of ``batch`` (and a few that do not)."""
    rows = batch.reshape(len(batch), -1)
    values = sorted({float(v) for v in np.unique(rows)[:: max(1, rows.size // 40)]} | {0.0, 0.5, 1.0, 3.0, 7.0})
    means = [float(np.mean(r)) for r in batch]
    stds = [float(np.std(r)) for r in batch]
    ents = [float(shannon_entropy(r)) for r in batch]
    fractions = sorted({np.count_nonzero(r) / r.size for r in batch} | {0.0, 0.25, 1.0})
    return {"value": values, "mean": means + [0.0, 0.5], "std": stds + [0.0], "entropy": ents + [0.0, 1.0, 2.0],
            "coverage": fractions}


@st.composite
def region_batches(draw, max_batch=6):
    """A hypothesis float32 ``(B, 1, *spatial)`` batch over few distinct values (ties likely)."""
    nd = draw(st.sampled_from([2, 3]))
    spatial = tuple(draw(st.integers(1, 9 if nd == 2 else 5)) for _ in range(nd))
    b = draw(st.integers(1, max_batch))
    levels = draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 100.0, 1e-3]), min_size=1, max_size=4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    batch = rng.choice(levels, size=(b, 1, *spatial))
    if draw(st.booleans()):
        batch = batch + rng.random(batch.shape) * draw(st.sampled_from([0.0, 1e-6, 1.0]))
    return batch.astype(np.float32)


def to_xp(batch: np.ndarray, xp):
    return batch if xp is np else xp.asarray(batch)


def check_batch(patch_filter, batch: np.ndarray, xp=np) -> np.ndarray:
    """Assert ``filter_out_batch`` equals ``filter_out`` of every region; returns the decisions."""
    got = patch_filter.filter_out_batch(to_xp(batch, xp))
    assert type(got).__module__.split(".")[0] == xp.__name__.split(".")[0]
    got = got.get() if xp is not np else got
    assert got.dtype == np.bool_ and got.shape == (len(batch),)
    want = np.array([patch_filter.filter_out(r) for r in batch], dtype=bool)
    np.testing.assert_array_equal(got, want, err_msg=repr(patch_filter))
    return got
