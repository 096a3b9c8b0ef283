"""TiledPatching and SequentialPatching: CAREamics' worked numbers and exact partitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cupatch._reference import careamics_tile_axis
from cupatch.patching import SequentialPatching, TiledPatching
from cupatch.patching.sequential import sequential_starts
from cupatch.patching.tiled import tile_axis

# (N, coords, stitch, crop, crop_size) for P=32, O=8, as CAREamics 0.3.5 computes them
CAREAMICS_1D = [
    (100, [0, 24, 48, 68], [0, 28, 52, 76], [0, 4, 4, 8], [28, 24, 24, 24]),
    (96, [0, 24, 48, 64], [0, 28, 52, 76], [0, 4, 4, 12], [28, 24, 24, 20]),
    (104, [0, 24, 48, 72], [0, 28, 52, 76], [0, 4, 4, 4], [28, 24, 24, 28]),
    (57, [0, 24, 25], [0, 28, 52], [0, 4, 27], [28, 24, 5]),
    (56, [0, 24], [0, 28], [0, 4], [28, 28]),
    (40, [0, 8], [0, 28], [0, 20], [28, 12]),
    (33, [0, 1], [0, 28], [0, 27], [28, 5]),
    (32, [0], [0], [0], [32]),
    (20, [0], [0], [0], [20]),
]


@pytest.mark.parametrize("n,coords,stitch,crop,size", CAREAMICS_1D)
def test_tile_axis_careamics_numbers(n, coords, stitch, crop, size):
    t = tile_axis(n, 32, 8)
    assert t[:, 0].tolist() == coords
    assert t[:, 1].tolist() == crop
    assert t[:, 2].tolist() == size
    assert t[:, 3].tolist() == stitch


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 300), p=st.integers(2, 64), half_o=st.integers(0, 31))
def test_tile_axis_equals_careamics_loop_for_even_overlaps(n, p, half_o):
    o = 2 * half_o
    if o >= p:
        o = 2 * ((p - 1) // 2)
    assert [tuple(r) for r in tile_axis(n, p, o).tolist()] == careamics_tile_axis(n, p, o)
    assert len(tile_axis(n, p, o)) == max(1, -(-(n - o) // (p - o)))


def test_odd_overlap_is_an_exact_partition():
    """N=100, P=32, O=9: CAREamics keeps [0,28) then [27,50) (1-pixel overlap); we keep [0,27)."""
    t = tile_axis(100, 32, 9)
    assert t[:, 0].tolist() == [0, 23, 46, 68]
    assert t[:, 3].tolist() == [0, 27, 50, 73]
    assert t[:, 1].tolist() == [0, 4, 4, 5]
    assert t[:, 2].tolist() == [27, 23, 23, 27]
    careamics = careamics_tile_axis(100, 32, 9)
    assert [r[2] for r in careamics] == [28, 23, 23, 27]  # the only difference: first crop_size


def _check_axis_partition(t, n, p):
    kept = np.zeros(n, dtype=np.int64)
    for coord, crop, size, stitch in t.tolist():
        assert size >= 1
        assert 0 <= crop and crop + size <= p  # kept region inside the tile
        assert stitch == coord + crop  # kept region is where the tile read it
        kept[stitch : stitch + size] += 1
    assert (kept == 1).all()
    assert t[:, 0].min() >= 0
    assert (t[:, 0] + p <= max(n, p)).all()  # read windows inside (or a single padded tile)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 400), p=st.integers(1, 64), o=st.integers(0, 63))
def test_tile_axis_partitions_exactly(n, p, o):
    o = o % p
    _check_axis_partition(tile_axis(n, p, o), n, p)


@settings(max_examples=30, deadline=None)
@given(
    data=st.data(),
    ndim=st.sampled_from([2, 3]),
    even=st.booleans(),
)
def test_tiles_partition_images_exactly(data, ndim, even):
    """Kept regions of TiledPatching partition every sample exactly (2D and 3D)."""
    spatial = tuple(data.draw(st.integers(1, 70 if ndim == 2 else 30)) for _ in range(ndim))
    tile = tuple(data.draw(st.integers(2, 24)) for _ in range(ndim))
    overlaps = []
    for t in tile:
        o = data.draw(st.integers(0, t - 1))
        overlaps.append(o - (o % 2) if even else o)
    n_samples = data.draw(st.integers(1, 2))
    shapes = [(n_samples, 1, *spatial), (1, 1, *(s + 3 for s in spatial))]
    tp = TiledPatching(shapes, tile, overlaps)
    table = tp.spec_table(np.arange(tp.n_patches))
    nd = ndim
    for k, shape in enumerate(shapes):
        cover = np.zeros((shape[0], *shape[2:]), dtype=np.int64)
        rows = table[table[:, 0] == k]
        assert len(rows) == tp.total_tiles(k) == shape[0] * np.prod([len(a) for a in tp.axis_tiles(k)])
        for r in rows:
            crop, size, stitch = r[2 + nd : 2 + 2 * nd], r[2 + 2 * nd : 2 + 3 * nd], r[2 + 3 * nd :]
            assert (stitch == r[2 : 2 + nd] + crop).all()
            assert (crop + size <= np.array(tile)).all()
            cover[(r[1], *(slice(s, s + z) for s, z in zip(stitch, size)))] += 1
        assert (cover == 1).all()


def test_2d_worked_example():
    """100x100, tile 32, overlap 8: 16 tiles per sample; tile 5 = (row 1, col 1); total 32."""
    tp = TiledPatching([(2, 1, 100, 100)], (32, 32), (8, 8))
    assert tp.n_patches == 32
    spec = tp.get_patch_spec(5)
    assert spec == {
        "data_idx": 0,
        "sample_idx": 0,
        "coords": (24, 24),
        "patch_size": (32, 32),
        "crop_coords": (4, 4),
        "crop_size": (24, 24),
        "stitch_coords": (28, 28),
        "total_tiles": 32,
    }
    assert tp.get_patch_spec(16)["sample_idx"] == 1 and tp.get_patch_spec(16)["coords"] == (0, 0)
    assert all(tp.get_patch_spec(i)["total_tiles"] == 32 for i in range(32))
    assert tp.total_tiles(0) == 32


def test_order_matches_itertools_product():
    shapes = [(2, 1, 50, 70), (1, 1, 30, 90)]
    tp = TiledPatching(shapes, (16, 24), (4, 6))
    expected = []
    for k, s in enumerate(shapes):
        axes = [tile_axis(n, p, o) for n, p, o in zip(s[2:], (16, 24), (4, 6))]
        for sample in range(s[0]):
            for ty, tx in itertools.product(axes[0].tolist(), axes[1].tolist()):
                expected.append([k, sample, ty[0], tx[0], ty[1], tx[1], ty[2], tx[2], ty[3], tx[3]])
    assert tp.spec_table(np.arange(tp.n_patches)).tolist() == expected
    assert [a.tolist() for a in tp.axis_tiles(1)] == [tile_axis(30, 16, 4).tolist(), tile_axis(90, 24, 6).tolist()]


def test_axis_tiles_returns_copies():
    tp = TiledPatching([(1, 1, 50, 70)], (16, 16), (4, 4))
    tp.axis_tiles(0)[0][:] = -1
    assert tp.axis_tiles(0)[0].min() >= 0


def test_huge_tiling_is_lazy():
    tp = TiledPatching([(1, 1, 40_000, 40_000)], (32, 32), (8, 8))
    assert tp.n_patches == 1667**2
    last = tp.get_patch_spec(tp.n_patches - 1)
    assert last["stitch_coords"][0] + last["crop_size"][0] == 40_000
    assert tp.spec_table(np.arange(tp.n_patches - 1000, tp.n_patches)).shape == (1000, 10)


@pytest.mark.parametrize("overlaps", [(2, 2), (3, 4), (6, 3)])
@pytest.mark.parametrize("shape", [(1, 1, 9, 14), (2, 1, 14, 9), (1, 1, 32, 33)])
def test_tile_windows_cover_every_pixel_2d(shape, overlaps):
    """CAREamics test_whole_image_covered_2d (tile read windows clipped to the image)."""
    tp = TiledPatching([shape], (8, 8), overlaps)
    covered = np.zeros((shape[0], *shape[2:]), dtype=bool)
    for i in range(tp.n_patches):
        s = tp.get_patch_spec(i)
        covered[(s["sample_idx"], *(slice(c, c + p) for c, p in zip(s["coords"], s["patch_size"])))] = True
    assert covered.all()


@pytest.mark.parametrize("overlaps", [(2, 2, 2), (3, 4, 2), (6, 3, 5)])
def test_tile_windows_cover_every_pixel_3d(overlaps):
    shape = (1, 1, 9, 14, 17)
    tp = TiledPatching([shape], (8, 8, 8), overlaps)
    covered = np.zeros(shape[2:], dtype=bool)
    for row in tp.spec_table(np.arange(tp.n_patches)):
        covered[tuple(slice(c, c + 8) for c in row[2:5])] = True
    assert covered.all()


# ----------------------------------------------------------------------------- sequential
def test_sequential_starts_worked_numbers():
    assert sequential_starts(100, 32, 8).tolist() == [0, 24, 48, 68]
    assert sequential_starts(100, 32, 0).tolist() == [0, 32, 64, 68]
    assert sequential_starts(64, 32, 0).tolist() == [0, 32]
    assert sequential_starts(32, 32, 0).tolist() == [0]


def test_sequential_specs_order():
    sp = SequentialPatching([(2, 1, 100, 64)], (32, 32), (8, 0))
    assert sp.n_patches == 2 * 4 * 2
    coords = [sp.get_patch_spec(i)["coords"] for i in range(8)]
    assert coords == [(y, x) for y in (0, 24, 48, 68) for x in (0, 32)]
    assert sp.get_patch_spec(8)["sample_idx"] == 1


@pytest.mark.parametrize("overlaps", [None, (0, 0), (1, 3), (2, 2), (5, 7)])
@pytest.mark.parametrize("shape", [(1, 1, 32, 32), (2, 1, 19, 37), (1, 1, 9, 8)])
def test_sequential_covers_every_pixel(shape, overlaps):
    """CAREamics test_whole_image_covered (incl. zero and odd overlaps)."""
    sp = SequentialPatching([shape], (8, 8), overlaps)
    covered = np.zeros((shape[0], *shape[2:]), dtype=bool)
    for row in sp.spec_table(np.arange(sp.n_patches)):
        assert row[2] + 8 <= shape[2] and row[3] + 8 <= shape[3]
        covered[row[1], row[2] : row[2] + 8, row[3] : row[3] + 8] = True
    assert covered.all()


def test_sequential_3d():
    sp = SequentialPatching([(1, 1, 19, 37, 23)], (8, 8, 8), (2, 2, 2))
    covered = np.zeros((19, 37, 23), dtype=bool)
    for row in sp.spec_table(np.arange(sp.n_patches)):
        covered[tuple(slice(c, c + 8) for c in row[2:])] = True
    assert covered.all()
