"""Filter maps (CAREamics' create_filter_map, batched) and plot_filter_map."""

from __future__ import annotations

import numpy as np
import pytest

from cupatch.filters import MaxPatchFilter, MeanStdPatchFilter, ShannonPatchFilter, create_filter_map, plot_filter_map

from ._careamics import CAREAMICS, needs_careamics


@needs_careamics
@pytest.mark.parametrize("direction", ["greater", "less"])
@pytest.mark.parametrize("shape,patch", [((37, 50), (8, 16)), ((12, 21, 18), (4, 8, 8)), ((16, 16), (16, 16))])
def test_create_filter_map_is_careamics(direction, shape, patch):
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    ours = create_filter_map(image, lambda r: r.reshape(len(r), -1).sum(axis=1, dtype=np.float64), patch, direction)
    theirs = CAREAMICS["filters"].filtermap_utils.create_filter_map(
        image, lambda p: float(np.sum(p, dtype=np.float64)), patch, direction
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert ours.shape == shape and ours.dtype == np.float64


def test_create_filter_map_checks():
    with pytest.raises(ValueError, match="image must be a 2-D"):
        create_filter_map(np.zeros((2, 2, 2, 2)), np.max, (1, 1, 1, 1))
    with pytest.raises(ValueError, match="patch_size must have 2 entries"):
        create_filter_map(np.zeros((8, 8)), np.max, (4, 4, 4))
    with pytest.raises(ValueError, match='direction must be "greater" or "less"'):
        create_filter_map(np.zeros((8, 8)), np.max, (4, 4), "up")


@pytest.fixture
def agg():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def test_plot_filter_maps(agg):
    image = np.random.default_rng(1).random((32, 32)).astype(np.float32) * 100
    fig = MaxPatchFilter.plot_filter_map(image, MaxPatchFilter.filter_map(image, (8, 8)))
    assert fig._suptitle.get_text() == "Maximum Filter Map" and len(fig.axes) == 2  # image axes + colour bar
    fig = MeanStdPatchFilter.plot_filter_map(image, MeanStdPatchFilter.filter_map(image, (8, 8)))
    assert [a.get_title() for a in fig.axes[:1]] == ["Mean Filter Map"] and len(fig.axes) == 4
    volume = np.random.default_rng(2).random((6, 16, 16)).astype(np.float32)
    fmap = ShannonPatchFilter.filter_map(volume, (2, 4, 4))
    fig = ShannonPatchFilter.plot_filter_map(volume, fmap)  # the central slice
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), volume[3])
    fig = plot_filter_map(volume, fmap, 5, title="t", label="v")
    np.testing.assert_array_equal(fig.axes[0].images[1].get_array(), fmap[5])
    with pytest.raises(ValueError, match=r"z_idx must be an int in \[0, 6\)"):
        plot_filter_map(volume, fmap, 6)
    with pytest.raises(ValueError, match="filter_map must have the image's shape"):
        plot_filter_map(image, fmap)
