"""Task regions: whole chunks, disjoint, covering; the tiles and window each region needs."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest

from cupatch.distributed.regions import RegionGrid, choose_region_chunks, region_tiles
from cupatch.patching import TiledPatching

CASES = [
    ((75, 93), (32, 40), (8, 12), (16, 24), (2, 1)),
    ((21, 38, 45), (12, 16, 16), (4, 6, 4), (8, 16, 12), (1, 1, 2)),
    ((10, 9), (16, 16), (4, 4), (4, 4), (1, 3)),  # image smaller than a tile
]


@pytest.mark.parametrize(("spatial", "tile", "overlap", "chunks", "k"), CASES)
def test_regions_are_disjoint_whole_chunks_covering_the_image(spatial, tile, overlap, chunks, k):
    grid = RegionGrid(spatial, chunks, k, n_samples=2)
    owner = np.full((2, *spatial), -1)
    for task in range(grid.n_tasks):
        sample, lo, hi = grid.task(task)
        box = (sample, *(slice(a, b) for a, b in zip(lo, hi)))
        assert (owner[box] == -1).all()
        owner[box] = task
        for a, b, c, n in zip(lo, hi, chunks, spatial):
            assert a % c == 0 and (b % c == 0 or b == n)  # whole chunks: no chunk has two writers
    assert (owner >= 0).all()


@pytest.mark.parametrize("mode", ["crop", "blend"])
@pytest.mark.parametrize(("spatial", "tile", "overlap", "chunks", "k"), CASES)
def test_region_tiles_are_exactly_the_contributing_tiles(spatial, tile, overlap, chunks, k, mode):
    patching = TiledPatching([(1, 1, *spatial)], tile, overlap)
    axis_tiles = patching.axis_tiles(0)
    specs = [patching.get_patch_spec(i) for i in range(len(patching))]
    grid = RegionGrid(spatial, chunks, k, n_samples=1)
    for task in range(grid.n_tasks):
        _, lo, hi = grid.task(task)
        local, w_lo, w_hi = region_tiles(axis_tiles, tile, spatial, lo, hi, mode)
        expected = []
        for i, spec in enumerate(specs):
            if mode == "crop":
                start = spec["stitch_coords"]
                stop = [s + c for s, c in zip(spec["stitch_coords"], spec["crop_size"])]
            else:
                start = [max(c, 0) for c in spec["coords"]]
                stop = [min(c + t, n) for c, t, n in zip(spec["coords"], tile, spatial)]
            if all(a < h and b > l for a, b, l, h in zip(start, stop, lo, hi)):
                expected.append(i)
        assert local.tolist() == expected
        for i in expected:  # the window holds every read window, clipped to the image
            for c, t, a, b, n in zip(specs[i]["coords"], tile, w_lo, w_hi, spatial):
                assert a <= max(c, 0) and min(c + t, n) <= b


def test_automatic_regions_fit_memory_and_feed_every_worker():
    spatial, chunks = (128, 1024, 1024), (24, 256, 512)
    tiles = (5, 9, 9)
    k = choose_region_chunks(spatial, chunks, tiles, bytes_per_voxel=4, n_samples=1, min_tasks=4)
    size = [min(a * c, n) for a, c, n in zip(k, chunks, spatial)]
    n_tasks = math.prod(math.ceil(n / s) for n, s in zip(spatial, size))
    assert math.prod(size) * 4 <= 256 * 2**20 and n_tasks >= 4
    assert size[0] == 128  # the axis with the fewest tiles is split last
    # nothing to split: one chunk per axis is the smallest region
    assert choose_region_chunks((8, 8), (8, 8), (1, 1), bytes_per_voxel=4, n_samples=1, min_tasks=10) == (1, 1)
    # several samples already give tasks: the image stays whole
    assert choose_region_chunks((64, 64), (8, 64), (3, 3), bytes_per_voxel=4, n_samples=8, min_tasks=4) == (8, 1)


def test_every_tile_belongs_to_some_region():
    spatial, tile, overlap, chunks = (75, 93), (32, 40), (8, 12), (16, 24)
    patching = TiledPatching([(1, 1, *spatial)], tile, overlap)
    grid = RegionGrid(spatial, chunks, (1, 1), 1)
    seen = set()
    for task in range(grid.n_tasks):
        _, lo, hi = grid.task(task)
        seen.update(region_tiles(patching.axis_tiles(0), tile, spatial, lo, hi, "crop")[0].tolist())
    assert seen == set(range(len(patching)))
    assert list(itertools.islice(sorted(seen), 3)) == [0, 1, 2]


def test_importing_cupatch_and_its_distributed_package_does_not_import_dask():
    code = (
        "import sys, cupatch, cupatch.distributed; "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')); "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_client_is_needed(tmp_path):
    pytest.importorskip("distributed")
    import zarr

    from cupatch.distributed import predict_tiled

    zarr.create_array(store=str(tmp_path / "in.zarr"), data=np.zeros((40, 40), np.float32))
    args = dict(axes="YX", tile_size=32, overlaps=8, out=tmp_path / "out.zarr", progress=False)
    with pytest.raises(TypeError, match="client must be a dask.distributed.Client"):
        predict_tiled(abs, str(tmp_path / "in.zarr"), client="tcp://localhost:8786", **args)
    from distributed import default_client

    try:
        default_client()
    except ValueError:  # no client running: the message says how to start one
        with pytest.raises(ValueError, match="needs a running dask.distributed.Client"):
            predict_tiled(abs, str(tmp_path / "in.zarr"), **args)
    assert not (tmp_path / "out.zarr").exists()
