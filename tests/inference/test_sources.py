"""Inputs of ``predict_tiled`` (:mod:`cupatch.inference.sources`): files, lazy stacks, row slabs."""

from __future__ import annotations

import numpy as np
import pytest

from cupatch.inference import predict_tiled

from .helpers import identity, scaled


def test_file_inputs(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    zarr = pytest.importorskip("zarr")

    rng = np.random.default_rng(14)
    image = rng.integers(0, 4000, size=(2, 50, 40), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", image)
    zarr.create_array(store=str(tmp_path / "in.zarr"), data=image, chunks=(1, 16, 16))
    np.save(tmp_path / "in.npy", image)
    for name in ("in.tif", "in.zarr", "in.npy"):
        result = predict_tiled(scaled, str(tmp_path / name), axes="SYX", tile_size=16, overlaps=4, progress=False)
        np.testing.assert_allclose(result, scaled(image.astype(np.float32)), rtol=1e-6, err_msg=name)


def test_missing_input_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        predict_tiled(identity, str(tmp_path / "missing.tif"), axes="YX", tile_size=16, overlaps=4, progress=False)


@pytest.mark.parametrize("channels", [None, [1]])
def test_row_slab_source_matches_whole_source(channels):
    """Per-row input slabs (used for lazy files and for host arrays on the GPU) gather
    exactly what a gather from the whole resident array gives."""
    from cupatch.inference.plan import Tiling
    from cupatch.inference.sources import RowSource, WholeSource
    from cupatch.patching.tiled import TiledPatching
    from cupatch.stacks import as_stack

    rng = np.random.default_rng(19)
    image = rng.integers(0, 1000, size=(2, 2, 21, 30), dtype=np.uint16)  # SCYX, smaller than a tile in Y
    tile, overlap = (32, 16), (8, 4)
    scale = np.array([0.5] * (2 if channels is None else 1), np.float32)
    shift = np.array([-3.0] * (2 if channels is None else 1), np.float32)
    for stack in (as_stack(image, "SCYX"), as_stack(image, "SCYX", placement="disk")):
        tiling = Tiling(TiledPatching([image.shape], tile, overlap), image.shape, tile, overlap)
        whole = WholeSource(image, tile, channels, scale, shift)
        rows = RowSource(stack, np, tile, channels, scale, shift, tiling.row_coords, tiling.n_per_sample, tiling.row_size)
        for begin in range(0, tiling.n_tiles, 3):
            index = np.arange(begin, min(begin + 3, tiling.n_tiles))
            specs = tiling.patching.spec_table(index)
            np.testing.assert_array_equal(rows.gather(specs, index), whole.gather(specs, index))


def test_lazy_stack_input_streams_rows():
    from cupatch.stacks import as_stack

    rng = np.random.default_rng(20)
    image = rng.random((3, 70, 50), dtype=np.float32)
    lazy = as_stack(image, "ZYX", placement="disk")
    assert lazy.array is None
    result = predict_tiled(scaled, lazy, axes="ZYX", tile_size=(2, 32, 32), overlaps=(0, 8, 8), progress=False)
    np.testing.assert_allclose(result, scaled(image), rtol=1e-6)
