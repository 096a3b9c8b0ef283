"""stitch_tiles (crop and blend) and BlendAccumulator against the NumPy reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import requires_gpu, to_numpy

from cupatch import _core, ops
from cupatch._reference import careamics_tile_axis, stitch_blend_reference, stitch_crop_reference
from cupatch._windows import WINDOWS, window_table
from cupatch.ops import BlendAccumulator, gather_patches, stitch_tiles


def tile_table(shapes, tile, overlaps):
    """Tile table for every sample of every image (C-order over axes, X fastest)."""
    rows = []
    for d, shape in enumerate(shapes):
        per_axis = [careamics_tile_axis(n, p, o) for n, p, o in zip(shape[2:], tile, overlaps)]
        for s in range(shape[0]):
            for combo in itertools.product(*per_axis):
                rows.append([d, s, *(c[0] for c in combo), *(c[1] for c in combo), *(c[2] for c in combo), *(c[3] for c in combo)])
    return np.array(rows, dtype=np.int64)


def random_tiles(rng, n, channels, tile):
    return rng.standard_normal((n, channels, *tile)).astype(np.float32)


CASES = {
    "2d": ([(2, 3, 37, 29), (1, 3, 20, 41)], (16, 16), (4, 4)),
    "2d-small-image": ([(1, 2, 9, 12)], (16, 16), (4, 4)),
    "3d": ([(2, 2, 13, 22, 19)], (8, 12, 12), (2, 4, 4)),
    "3d-single-channel": ([(1, 1, 6, 30, 17), (1, 1, 9, 9, 9)], (4, 10, 10), (2, 2, 2)),
}


def test_literal_careamics_1d_tiling_is_reproduced():
    # N=100, P=32, O=8: the tiles CAREamics 0.3.5 computes for this axis
    assert careamics_tile_axis(100, 32, 8) == [(0, 0, 28, 0), (24, 4, 24, 28), (48, 4, 24, 52), (68, 8, 24, 76)]


@pytest.mark.parametrize("case", list(CASES))
def test_crop_matches_reference(xp, case):
    shapes, tile, overlaps = CASES[case]
    rng = np.random.default_rng(len(case))
    specs = tile_table(shapes, tile, overlaps)
    specs = specs[rng.permutation(len(specs))]  # arrival order must not matter
    tiles = random_tiles(rng, len(specs), shapes[0][1], tile)
    expected = [np.full(s, -7.0, np.float32) for s in shapes]
    stitch_crop_reference(tiles, specs, expected)
    outputs = [xp.full(s, -7.0, dtype=np.float32) for s in shapes]
    for part in np.array_split(np.arange(len(specs)), 3):  # several batches
        assert stitch_tiles(xp.asarray(tiles[part]), specs[part], outputs) is None
    for got, exp in zip(outputs, expected):
        np.testing.assert_array_equal(to_numpy(got), exp)
        assert (to_numpy(got) != -7.0).all()  # kept regions partition the image


@pytest.mark.parametrize("case", list(CASES))
def test_gather_then_crop_stitch_is_identity(xp, case):
    shapes, tile, overlaps = CASES[case]
    rng = np.random.default_rng(1)
    images = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    specs = tile_table(shapes, tile, overlaps)
    tiles = gather_patches([xp.asarray(i) for i in images], specs[:, : 2 + len(tile)], tile)
    outputs = [xp.zeros(s, dtype=np.float32) for s in shapes]
    stitch_tiles(tiles, specs, outputs)
    for got, img in zip(outputs, images):
        np.testing.assert_array_equal(to_numpy(got), img)


def test_crop_literal_kept_regions():
    # 1 x 1 x 4 x 6 image from two 4 x 4 tiles, overlap 2: [0,3) from tile 0, [3,6) from tile 1.
    tiles = np.stack([np.full((1, 4, 4), 1, np.float32), np.full((1, 4, 4), 2, np.float32)])
    specs = np.array([[0, 0, 0, 0, 0, 0, 4, 3, 0, 0], [0, 0, 0, 2, 0, 1, 4, 3, 0, 3]])
    out = [np.zeros((1, 1, 4, 6), np.float32)]
    stitch_tiles(tiles, specs, out)
    np.testing.assert_array_equal(out[0][0, 0], [[1, 1, 1, 2, 2, 2]] * 4)


def test_output_channels_come_from_the_tiles():
    # CAREamics issue 948: the prediction channel count differs from the input's
    tiles = np.ones((1, 5, 4, 4), np.float32)
    out = [np.zeros((1, 5, 4, 4), np.float32)]
    stitch_tiles(tiles, np.array([[0, 0, 0, 0, 0, 0, 4, 4, 0, 0]]), out)
    assert (out[0] == 1).all()


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("case", list(CASES))
def test_blend_matches_reference_bitwise(xp, case, window):
    shapes, tile, overlaps = CASES[case]
    rng = np.random.default_rng([len(case), WINDOWS.index(window)])
    specs = tile_table(shapes, tile, overlaps)
    specs = specs[rng.permutation(len(specs))]
    tiles = random_tiles(rng, len(specs), shapes[0][1], tile)
    table = window_table(tile, overlaps, window)
    expected = [np.zeros(s, np.float32) for s in shapes]
    expected_w = [np.zeros((s[0], 1, *s[2:]), np.float32) for s in shapes]
    outputs = [xp.zeros(s, dtype=np.float32) for s in shapes]
    weights = [xp.zeros((s[0], 1, *s[2:]), dtype=np.float32) for s in shapes]
    for part in np.array_split(np.arange(len(specs)), 2):
        stitch_blend_reference(tiles[part], specs[part], expected, expected_w, table)
        stitch_tiles(xp.asarray(tiles[part]), specs[part], outputs, mode="blend", weights=weights, window_table=table)
    for got, exp in zip(outputs + weights, expected + expected_w):
        np.testing.assert_array_equal(to_numpy(got), exp)
    for w in weights:
        assert (to_numpy(w) > 0).all()  # border flags keep every voxel's weight positive


@pytest.mark.parametrize("case", list(CASES))
def test_blend_without_weights_adds_the_same_sums(xp, case):
    """weights=None: only the weighted tiles are added, bit for bit as with weights."""
    shapes, tile, overlaps = CASES[case]
    rng = np.random.default_rng([len(case), 7])
    specs = tile_table(shapes, tile, overlaps)
    tiles = xp.asarray(random_tiles(rng, len(specs), shapes[0][1], tile))
    table = window_table(tile, overlaps, "gaussian")
    with_w = [xp.zeros(s, dtype=np.float32) for s in shapes]
    weights = [xp.zeros((s[0], 1, *s[2:]), dtype=np.float32) for s in shapes]
    without = [xp.zeros(s, dtype=np.float32) for s in shapes]
    stitch_tiles(tiles, specs, with_w, mode="blend", weights=weights, window_table=table)
    stitch_tiles(tiles, specs, without, mode="blend", window_table=table)
    for a, b in zip(with_w, without):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    assert any(to_numpy(a).any() for a in without)


def test_blend_with_many_coincident_tiles_matches_reference(xp):
    """More tiles covering one voxel than the fast path holds (the slower path kicks in)."""
    rng = np.random.default_rng(2)
    tile = (6, 6)
    specs = np.array([[0, 0, int(rng.integers(-2, 3)), int(rng.integers(-2, 3)), 0, 0, 6, 6, 0, 0] for _ in range(45)])
    tiles = random_tiles(rng, len(specs), 2, tile)
    table = window_table(tile, (2, 2), "linear")
    expected, expected_w = [np.zeros((1, 2, 7, 7), np.float32)], [np.zeros((1, 1, 7, 7), np.float32)]
    stitch_blend_reference(tiles, specs, expected, expected_w, table)
    outputs, weights = [xp.zeros((1, 2, 7, 7), dtype=np.float32)], [xp.zeros((1, 1, 7, 7), dtype=np.float32)]
    stitch_tiles(xp.asarray(tiles), specs, outputs, mode="blend", weights=weights, window_table=xp.asarray(table))
    np.testing.assert_array_equal(to_numpy(outputs[0]), expected[0])
    np.testing.assert_array_equal(to_numpy(weights[0]), expected_w[0])


def test_blend_literal_two_tiles_uniform_window():
    # Two 1 x 4 tiles overlapping on two voxels: the overlap averages, the rest is copied.
    tiles = np.array([[[[2, 2, 2, 2]]], [[[4, 4, 4, 4]]]], np.float32)
    specs = np.array([[0, 0, 0, 0, 0, 0, 1, 4, 0, 0], [0, 0, 0, 2, 0, 0, 1, 4, 0, 0]])
    acc = BlendAccumulator([(1, 1, 1, 6)], (1, 4), window="uniform")
    acc.add(tiles, specs)
    (out,) = acc.finalize()
    np.testing.assert_array_equal(out[0, 0, 0], [2, 2, 3, 3, 4, 4])
    np.testing.assert_array_equal(acc.weights[0][0, 0, 0], [1, 1, 2, 2, 1, 1])


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("case", ["2d", "3d"])
def test_blend_accumulator_reconstructs_image(xp, case, window):
    shapes, tile, overlaps = CASES[case]
    rng = np.random.default_rng(3)
    images = [rng.uniform(1, 2, s).astype(np.float32) for s in shapes]
    specs = tile_table(shapes, tile, overlaps)
    acc = BlendAccumulator(shapes, tile, overlaps, window=window, array_module=xp)
    for part in np.array_split(np.arange(len(specs)), 4):
        tiles = gather_patches([xp.asarray(i) for i in images], specs[part, : 2 + len(tile)], tile)
        acc.add(tiles, specs[part])
    for got, img in zip(acc.finalize(), images):
        np.testing.assert_allclose(to_numpy(got), img, rtol=2e-6)


def test_blend_is_deterministic_run_to_run(xp):
    shapes, tile, overlaps = CASES["3d"]
    rng = np.random.default_rng(4)
    specs = tile_table(shapes, tile, overlaps)
    tiles = xp.asarray(random_tiles(rng, len(specs), shapes[0][1], tile))
    results = []
    for _ in range(3):
        acc = BlendAccumulator(shapes, tile, overlaps, array_module=xp)
        acc.add(tiles, specs)
        results.append(to_numpy(acc.finalize()[0]))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


@pytest.mark.parametrize("mode", ["crop", "blend"])
def test_slabs_match_full_image(xp, mode):
    """Outputs holding only a slab of the image (origins + image_shapes) get that slab."""
    shapes, tile, overlaps = CASES["2d"]
    shape = shapes[0]
    rng = np.random.default_rng(5)
    specs = tile_table([shape], tile, overlaps)
    tiles = xp.asarray(random_tiles(rng, len(specs), shape[1], tile))
    table = window_table(tile, overlaps, "hann")
    full, full_w = [xp.zeros(shape, dtype=np.float32)], [xp.zeros((shape[0], 1, *shape[2:]), dtype=np.float32)]
    kwargs = dict(weights=full_w, window_table=table) if mode == "blend" else {}
    stitch_tiles(tiles, specs, full, mode=mode, **kwargs)
    for y0, y1, x0, x1 in [(0, 10, 0, 29), (10, 25, 5, 20), (25, 37, 0, 29)]:
        slab = [xp.zeros((shape[0], shape[1], y1 - y0, x1 - x0), dtype=np.float32)]
        slab_w = [xp.zeros((shape[0], 1, y1 - y0, x1 - x0), dtype=np.float32)]
        kwargs = dict(weights=slab_w, window_table=table) if mode == "blend" else {}
        stitch_tiles(tiles, specs, slab, mode=mode, origins=[(y0, x0)], image_shapes=[shape[2:]], **kwargs)
        np.testing.assert_array_equal(to_numpy(slab[0]), to_numpy(full[0])[:, :, y0:y1, x0:x1])
        if mode == "blend":
            np.testing.assert_array_equal(to_numpy(slab_w[0]), to_numpy(full_w[0])[:, :, y0:y1, x0:x1])


def test_thread_count_does_not_change_blend():
    shapes, tile, overlaps = CASES["2d"]
    rng = np.random.default_rng(6)
    specs = tile_table(shapes, tile, overlaps)
    tiles = random_tiles(rng, len(specs), shapes[0][1], tile)
    results = []
    try:
        for n in (1, 2):
            _core.set_cpu_threads(n)
            acc = BlendAccumulator(shapes, tile, overlaps)
            acc.add(tiles, specs)
            results.append(acc.finalize())
    finally:
        _core.set_cpu_threads(0)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_blend_accumulator_finalize_leaves_uncovered_voxels_zero():
    acc = BlendAccumulator([(1, 1, 8, 8)], (4, 4), (2, 2))
    acc.add(np.ones((1, 1, 4, 4), np.float32), np.array([[0, 0, 0, 0, 0, 0, 4, 4, 0, 0]]))
    (out,) = acc.finalize()
    assert np.isfinite(out).all()
    assert (out[0, 0, :4, :4] == 1).all() and (out[0, 0, 4:] == 0).all()
    with pytest.raises(RuntimeError, match="finalize"):
        acc.add(np.ones((1, 1, 4, 4), np.float32), np.array([[0, 0, 0, 0, 0, 0, 4, 4, 0, 0]]))


def blend_voxelwise(tiles, specs, outputs, weights, table, candidate_lists, origins=None, image_shapes=None):
    """The CUDA blend kernel's per-voxel scheme (candidate lists + blend_voxel), run on the CPU."""
    ndim = tiles.ndim - 2
    _, _, out_table, _ = ops.stitch._output_table(outputs, weights, origins, image_shapes, ndim, tiles.shape[1], np, True)
    _core._stitch_blend_voxelwise_cpu(np.ascontiguousarray(tiles), np.ascontiguousarray(specs, dtype=np.int64), out_table,
                                      table, candidate_lists)


@pytest.mark.parametrize("candidate_lists", [True, False], ids=["lists", "whole-batch"])
@pytest.mark.parametrize("case", list(CASES))
def test_gpu_blend_scheme_matches_reference_on_cpu(case, candidate_lists):
    """blend_voxel(), which only the CUDA kernel uses, checked bit for bit on the CPU."""
    shapes, tile, overlaps = CASES[case]
    rng = np.random.default_rng(10)
    specs = tile_table(shapes, tile, overlaps)
    specs = specs[rng.permutation(len(specs))]
    tiles = random_tiles(rng, len(specs), shapes[0][1], tile)
    table = window_table(tile, overlaps, "hann")
    exp_o, exp_w = [np.zeros(s, np.float32) for s in shapes], [np.zeros((s[0], 1, *s[2:]), np.float32) for s in shapes]
    got_o, got_w = [np.zeros(s, np.float32) for s in shapes], [np.zeros((s[0], 1, *s[2:]), np.float32) for s in shapes]
    for part in np.array_split(np.arange(len(specs)), 2):
        stitch_blend_reference(tiles[part], specs[part], exp_o, exp_w, table)
        blend_voxelwise(tiles[part], specs[part], got_o, got_w, table, candidate_lists)
    for got, exp in zip(got_o + got_w, exp_o + exp_w):
        np.testing.assert_array_equal(got, exp)


@pytest.mark.parametrize("candidate_lists", [True, False], ids=["lists", "whole-batch"])
def test_gpu_blend_scheme_many_coincident_tiles_and_slabs(candidate_lists):
    rng = np.random.default_rng(11)
    specs = np.array([[0, 0, int(rng.integers(-2, 3)), int(rng.integers(-2, 3)), 0, 0, 6, 6, 0, 0] for _ in range(45)])
    tiles = random_tiles(rng, len(specs), 2, (6, 6))
    table = window_table((6, 6), (2, 2), "linear")
    exp_o, exp_w = [np.zeros((1, 2, 7, 7), np.float32)], [np.zeros((1, 1, 7, 7), np.float32)]
    stitch_blend_reference(tiles, specs, exp_o, exp_w, table)
    got_o, got_w = [np.zeros((1, 2, 7, 7), np.float32)], [np.zeros((1, 1, 7, 7), np.float32)]
    blend_voxelwise(tiles, specs, got_o, got_w, table, candidate_lists)  # > kBlendMaxCover tiles per voxel
    np.testing.assert_array_equal(got_o[0], exp_o[0])
    np.testing.assert_array_equal(got_w[0], exp_w[0])
    slab_o, slab_w = [np.zeros((1, 2, 4, 3), np.float32)], [np.zeros((1, 1, 4, 3), np.float32)]
    blend_voxelwise(tiles, specs, slab_o, slab_w, table, candidate_lists, origins=[(2, 4)], image_shapes=[(7, 7)])
    np.testing.assert_array_equal(slab_o[0], exp_o[0][:, :, 2:6, 4:7])
    np.testing.assert_array_equal(slab_w[0], exp_w[0][:, :, 2:6, 4:7])


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("case", list(CASES))
def test_gpu_stitch_bit_identical_to_cpu(case):
    import cupy

    shapes, tile, overlaps = CASES[case]
    rng = np.random.default_rng(9)
    specs = tile_table(shapes, tile, overlaps)
    specs = specs[rng.permutation(len(specs))]
    tiles = random_tiles(rng, len(specs), shapes[0][1], tile)
    table = window_table(tile, overlaps, "hann")
    cpu = [np.zeros(s, np.float32) for s in shapes]
    gpu = [cupy.zeros(s, dtype=np.float32) for s in shapes]
    stitch_tiles(tiles, specs, cpu)
    stitch_tiles(cupy.asarray(tiles), cupy.asarray(specs), gpu)
    for a, b in zip(cpu, gpu):
        np.testing.assert_array_equal(a, b.get())
    cpu_acc = BlendAccumulator(shapes, tile, overlaps)
    gpu_acc = BlendAccumulator(shapes, tile, overlaps, array_module=cupy)
    for part in np.array_split(np.arange(len(specs)), 3):
        cpu_acc.add(tiles[part], specs[part])
        gpu_acc.add(cupy.asarray(tiles[part]), cupy.asarray(specs[part]))
    for a, b in zip(cpu_acc.weights, gpu_acc.weights):
        np.testing.assert_array_equal(a, b.get())
    for a, b in zip(cpu_acc.finalize(), gpu_acc.finalize()):
        np.testing.assert_array_equal(a, b.get())


_I64 = np.iinfo(np.int64)
EXTREME = [int(_I64.min), int(_I64.min) + 1, -(1 << 62), -(1 << 60) - 1, (1 << 60) + 1, 1 << 62, int(_I64.max) - 1, int(_I64.max)]


@pytest.mark.parametrize("candidate_lists", [True, False, None], ids=["lists", "whole-batch", "rowwise"])
def test_blend_extreme_coords_touch_nothing(candidate_lists):
    """Read windows at +-2**63 (where coords + tile used to overflow int64) cover nothing;
    a normal tile in the same batch is still blended exactly."""
    rng = np.random.default_rng(12)
    tile, table = (4, 4), window_table((4, 4), (2, 2), "hann")
    rows = [[0, 0, y, x, 0, 0, 4, 4, 0, 0] for y in EXTREME for x in EXTREME + [1]]
    rows.insert(len(rows) // 2, [0, 0, 2, 3, 0, 0, 4, 4, 0, 0])
    specs = np.array(rows, dtype=np.int64)
    tiles = random_tiles(rng, len(specs), 1, tile)
    exp_o, exp_w = [np.zeros((1, 1, 9, 9), np.float32)], [np.zeros((1, 1, 9, 9), np.float32)]
    normal = np.flatnonzero((specs[:, 2] == 2) & (specs[:, 3] == 3))
    stitch_blend_reference(tiles[normal], specs[normal], exp_o, exp_w, table)
    got_o, got_w = [np.zeros((1, 1, 9, 9), np.float32)], [np.zeros((1, 1, 9, 9), np.float32)]
    if candidate_lists is None:
        stitch_tiles(tiles, specs, got_o, mode="blend", weights=got_w, window_table=table)
    else:
        blend_voxelwise(tiles, specs, got_o, got_w, table, candidate_lists)
    np.testing.assert_array_equal(got_o[0], exp_o[0])
    np.testing.assert_array_equal(got_w[0], exp_w[0])


def test_crop_kernel_extreme_spec_values_write_nothing_outside_the_contract():
    """The crop kernel itself (no Python validation, as with GPU-resident specs) clips any
    crop/size/stitch values: rows stitched at +-2**60 and beyond write nothing."""
    out = np.zeros((1, 1, 8, 8), np.float32)
    _, _, out_table, _ = ops.stitch._output_table([out], None, None, None, 2, 1, np, False)
    rows = []
    for v in EXTREME:
        rows += [[0, 0, 0, 0, v, 0, 4, 4, 0, 0], [0, 0, 0, 0, 0, 0, v, 4, 0, 0], [0, 0, 0, 0, 0, 0, 4, 4, v, 0],
                 [0, 0, 0, 0, 0, v, 4, -v if v != _I64.min else v, 0, v]]
    specs = np.array(rows, dtype=np.int64)
    tiles = np.ones((len(specs), 1, 4, 4), np.float32)
    _core.stitch_crop_cpu(tiles, specs, out_table)
    # Only rows with crop = 0 and a kept size clipped to the tile can write: [0, 0, 0, 0, 0, 0, v, 4, 0, 0]
    # with v > 0 keeps all 4 rows at stitch (0, 0).
    expected = np.zeros_like(out)
    expected[0, 0, :4, :4] = 1
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("bad", [[1 << 62, 1 << 62], [int(_I64.max), 1]])
def test_crop_validation_does_not_wrap_around(bad):
    """crop_coords + crop_size (and stitch + size) overflowing int64 must still be refused."""
    crop, size = bad
    out = [np.zeros((1, 1, 8, 8), np.float32)]
    with pytest.raises(ValueError, match="outside the tile"):
        stitch_tiles(np.ones((1, 1, 4, 4), np.float32), np.array([[0, 0, 0, 0, crop, 0, size, 4, 0, 0]]), out)
    with pytest.raises(ValueError, match="outside its image"):
        stitch_tiles(np.ones((1, 1, 4, 4), np.float32), np.array([[0, 0, 0, 0, 0, 0, 4, 4, crop, 0]]), out)
    assert not out[0].any()


def test_tiles_sharing_memory_with_an_output_or_weight_are_refused(xp):
    # The kernel reads the tiles while writing the outputs: tiles inside an output would be
    # read after the first stitched tile had overwritten them.
    buffer = xp.zeros(64, dtype=np.float32)
    buffer[:32] = 1
    tiles, out = buffer[:32].reshape(2, 1, 4, 4), buffer.reshape(1, 1, 8, 8)
    specs = np.array([[0, 0, 0, 0, 0, 0, 4, 4, 0, 0], [0, 0, 4, 4, 0, 0, 4, 4, 4, 4]])
    with pytest.raises(ValueError, match=r"tiles share memory with outputs\[0\]"):
        stitch_tiles(tiles, specs, [out])
    separate = xp.zeros((1, 1, 8, 8), dtype=np.float32)
    table = window_table((4, 4), (2, 2), "hann")
    with pytest.raises(ValueError, match=r"tiles share memory with weights\[0\]"):
        stitch_tiles(tiles, specs, [separate], mode="blend", weights=[out], window_table=table)
    assert not to_numpy(separate).any() and to_numpy(buffer)[:32].all() and not to_numpy(buffer)[32:].any()
    # a copy of the same tiles is accepted
    stitch_tiles(tiles.copy(), specs, [separate])
    assert to_numpy(separate)[0, 0, :4, :4].all() and to_numpy(separate)[0, 0, 4:, 4:].all()


def test_blend_accumulator_refuses_float_sizes_instead_of_truncating():
    # overlaps=(8.5, 8) used to blend with an 8-wide taper
    for overlaps in ((8.5, 8), (8, 8.0), np.array([8.0, 8.0]), (True, 8)):
        with pytest.raises(TypeError, match=r"overlaps must contain only ints"):
            BlendAccumulator([(1, 1, 64, 64)], (32, 32), overlaps)
    with pytest.raises(TypeError, match=r"tile_size must contain only ints"):
        BlendAccumulator([(1, 1, 64, 64)], (32.5, 32), (8, 8))
    acc = BlendAccumulator([(1, 1, 64, 64)], (32, 32), np.array([8, 8]))
    np.testing.assert_array_equal(acc.table, window_table((32, 32), (8, 8)))


def test_blend_refuses_outputs_and_weights_that_share_memory():
    tiles = np.ones((2, 1, 4, 4), np.float32)
    specs = np.array([[0, 0, 0, 0, 0, 0, 4, 4, 0, 0], [1, 0, 2, 2, 0, 0, 4, 4, 0, 0]])
    table = window_table((4, 4), (2, 2), "hann")
    out, w, w2 = np.zeros((1, 1, 8, 8), np.float32), np.zeros((1, 1, 8, 8), np.float32), np.zeros((1, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"outputs\[0\] and outputs\[1\] overlap"):
        stitch_tiles(tiles, specs, [out, out], mode="blend", weights=[w, w2], window_table=table)
    big = np.zeros((2, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"outputs\[0\] and weights\[0\] overlap"):
        stitch_tiles(tiles[:1], specs[:1], [big[:1]], mode="blend", weights=[big[:1]], window_table=table)
    assert not out.any() and not big.any()
    # Crop mode keeps allowing one array for several data_idx (disjoint regions are fine).
    stitch_tiles(tiles, np.array([[0, 0, 0, 0, 0, 0, 4, 4, 0, 0], [1, 0, 0, 0, 0, 0, 4, 4, 4, 4]]), [out, out])
    assert out[0, 0, :4, :4].all() and out[0, 0, 4:, 4:].all() and not out[0, 0, :4, 4:].any()


@pytest.mark.gpu
@requires_gpu
def test_gpu_blend_accumulator_across_streams_matches_cpu():
    """Batches added under different non-blocking streams are ordered after the zero fill
    and after each other (event waits), so the result is the CPU's, bit for bit."""
    import cupy

    shapes, tile, overlaps = CASES["2d"]
    rng = np.random.default_rng(13)
    specs = tile_table(shapes, tile, overlaps)
    tiles = random_tiles(rng, len(specs), shapes[0][1], tile)
    cpu_acc = BlendAccumulator(shapes, tile, overlaps)
    gpu_acc = BlendAccumulator(shapes, tile, overlaps, array_module=cupy)
    streams = [cupy.cuda.Stream(non_blocking=True) for _ in range(3)]
    for stream, part in zip(streams, np.array_split(np.arange(len(specs)), 3)):
        cpu_acc.add(tiles[part], specs[part])
        with stream:
            gpu_acc.add(cupy.asarray(tiles[part]), cupy.asarray(specs[part]))
    with streams[0]:
        results = gpu_acc.finalize()
        host = [r.get() for r in results]
    for a, b in zip(cpu_acc.finalize(), host):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------
# TileStitcher: the outputs checked once, batch after batch
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["crop", "blend"])
@pytest.mark.parametrize("case", ["2d", "3d"])
def test_stitcher_gives_the_bits_of_stitch_tiles(xp, case, mode):
    shapes, tile, overlaps = CASES[case]
    rng = np.random.default_rng(5)
    specs = tile_table(shapes, tile, overlaps)
    tiles = random_tiles(rng, len(specs), shapes[0][1], tile)
    window = xp.asarray(window_table(tile, overlaps, "hann")) if mode == "blend" else None
    expected = [xp.zeros(s, dtype=np.float32) for s in shapes]
    got = [xp.zeros(s, dtype=np.float32) for s in shapes]
    stitcher = ops.TileStitcher(got, (shapes[0][1], *tile), mode=mode, window_table=window, array_module=xp)
    stitcher.check_specs(specs)
    for k, part in enumerate(np.array_split(np.arange(len(specs)), 4)):
        batch = xp.asarray(tiles[part])
        stitch_tiles(batch, specs[part], expected, mode=mode, window_table=window)
        stitcher(batch, specs[part], checked=k % 2 == 1)  # checked or not: the same launch
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(to_numpy(g), to_numpy(e))
        assert np.abs(to_numpy(g)).sum() > 0


def test_stitcher_checks_what_stitch_tiles_checks():
    shapes, tile, overlaps = CASES["2d"]
    specs = tile_table(shapes, tile, overlaps)
    outputs = [np.zeros(s, dtype=np.float32) for s in shapes]
    stitcher = ops.TileStitcher(outputs, (3, *tile))
    tiles = np.zeros((len(specs), 3, *tile), np.float32)
    bad = specs.copy()
    bad[0, 2 + 2 * 2 : 2 + 3 * 2] = np.add(tile, 1)  # crop_size past the tile's end
    for call in (lambda: stitcher.check_specs(bad), lambda: stitcher(tiles, bad), lambda: stitch_tiles(tiles, bad, outputs)):
        with pytest.raises(ValueError, match="specs: tile 0 keeps crop_coords"):
            call()
    with pytest.raises(ValueError, match=r"tiles must be float32 \(B, 3, 16, 16\), got float32 \(2, 3, 16, 8\)"):
        stitcher(np.zeros((2, 3, 16, 8), np.float32), specs[:2])
    with pytest.raises(ValueError, match="specs has 2 rows but tiles has 3 tiles"):
        stitcher(tiles[:3], specs[:2])
    with pytest.raises(ValueError, match="tiles share memory with outputs"):
        stitcher(outputs[0].reshape(-1)[: 3 * 16 * 16].reshape(1, 3, 16, 16), specs[:1])
    with pytest.raises(ValueError, match='mode="blend" needs window_table'):
        ops.TileStitcher(outputs, (3, *tile), mode="blend")
    with pytest.raises(ValueError, match="outputs\\[0\\] has 3 channels but the tiles have 2"):
        ops.TileStitcher(outputs, (2, *tile))
    assert (outputs[0] == 0).all() and (outputs[1] == 0).all()  # nothing was stitched
