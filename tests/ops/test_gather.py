"""gather_patches against the NumPy reference (bit for bit), on every backend.

The matrix covers dtype x 2D/3D x channel subsets x padding cases x flips/quarter turns;
literal cases pin the semantics (CAREamics pad_patch cases, augmentation orientation,
affine and rounding). Property tests live in test_ops_property.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import HAS_GPU, requires_gpu, to_numpy

from cupatch import _core
from cupatch._reference import gather_patches_reference
from cupatch.ops import OUTPUT_DTYPES, SOURCE_DTYPES, SourceTable, gather_patches

REQUIRED_SOURCE_DTYPES = [np.uint8, np.uint16, np.int16, np.int32, np.float16, np.float32, np.float64]


def random_source(rng, shape, dtype):
    """Random SC(Z)YX data spanning the dtype's range (negative values for signed types)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = max(info.min, -(2**20)), min(info.max, 2**20)
        return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    return (rng.standard_normal(shape) * 1000).astype(dtype)


def bits(a):
    """View an array as unsigned integers so comparisons are bit for bit (NaN-safe)."""
    a = np.ascontiguousarray(to_numpy(a))
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


PADDING_CASES = ["inside", "negative", "past_end", "fully_outside", "image_smaller_than_patch"]


def padding_specs(case, ndim, image, patch, n_sources, n_samples, rng, count=6):
    """Spec table whose coordinates exercise one padding case."""
    rows = []
    for _ in range(count):
        d, s = int(rng.integers(n_sources)), int(rng.integers(n_samples))
        coords = []
        for n, p in zip(image, patch):
            if case == "inside" or case == "image_smaller_than_patch":
                c = int(rng.integers(0, max(n - p, 0) + 1)) if case == "inside" else int(rng.integers(-1, 1))
            elif case == "negative":
                c = int(rng.integers(-p + 1, 0))
            elif case == "past_end":
                c = int(rng.integers(n - p + 1, n))
            else:  # fully outside, on either side
                c = int(rng.choice([-p - int(rng.integers(0, 5)), n + int(rng.integers(0, 5))]))
            coords.append(c)
        rows.append([d, s, *coords])
    return np.array(rows, dtype=np.int64)


AUG_CASES = ["none", "flips", "rot90", "flips_and_rot90"]


def aug_args(case, count, rng):
    out = {}
    if case in ("flips", "flips_and_rot90"):
        out["flip_y"] = rng.integers(0, 2, count).astype(bool)
        out["flip_x"] = rng.integers(0, 2, count).astype(bool)
    if case in ("rot90", "flips_and_rot90"):
        out["rot90"] = rng.integers(0, 4, count)
    return out


@pytest.mark.parametrize("dtype", REQUIRED_SOURCE_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("padding", PADDING_CASES)
@pytest.mark.parametrize(
    ("channels", "aug"),
    [(None, "none"), ([2], "flips"), ([2, 0], "rot90"), ([1, 1, 0], "flips_and_rot90")],
    ids=["all-none", "one-flips", "two-rot90", "repeated-flips_rot90"],
)
def test_gather_matrix_matches_reference(xp, dtype, ndim, padding, channels, aug):
    rng = np.random.default_rng([ndim, PADDING_CASES.index(padding), AUG_CASES.index(aug), np.dtype(dtype).num])
    patch = (4, 6, 6) if ndim == 3 else (6, 6)
    if padding == "image_smaller_than_patch":
        image = (3, 4, 5) if ndim == 3 else (4, 5)
    else:
        image = (7, 13, 11) if ndim == 3 else (13, 11)
    host = [random_source(rng, (2, 3, *image), dtype), random_source(rng, (3, 3, *image), dtype)]
    specs = padding_specs(padding, ndim, image, patch, len(host), 2, rng)
    n_out = 3 if channels is None else len(channels)
    kwargs = dict(
        channels=channels,
        scale=rng.uniform(0.5, 2.0, n_out).astype(np.float32),
        shift=rng.uniform(-1.0, 1.0, n_out).astype(np.float32),
        **aug_args(aug, len(specs), rng),
    )
    got = gather_patches([xp.asarray(h) for h in host], specs, patch, **kwargs)
    expected = gather_patches_reference(host, specs, patch, **kwargs)
    assert type(got) is type(xp.empty(0))
    assert got.shape == expected.shape == (len(specs), n_out, *patch)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(bits(got), bits(expected))


@pytest.mark.parametrize("out_dtype", OUTPUT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("source_dtype", SOURCE_DTYPES, ids=lambda d: d.name)
def test_every_source_and_output_dtype(xp, source_dtype, out_dtype):
    rng = np.random.default_rng(7)
    host = [random_source(rng, (2, 2, 9, 10), source_dtype)]
    specs = np.array([[0, 0, -2, 3], [0, 1, 4, -1], [0, 1, 0, 0]])
    got = gather_patches([xp.asarray(host[0])], specs, (5, 8), dtype=out_dtype, scale=[0.25, 3.0], shift=[1.5, -2.0])
    with np.errstate(over="ignore"):  # values beyond the float16 range become inf, as in NumPy
        expected = gather_patches_reference(host, specs, (5, 8), dtype=out_dtype, scale=[0.25, 3.0], shift=[1.5, -2.0])
    assert got.dtype == out_dtype
    np.testing.assert_array_equal(bits(got), bits(expected))


def test_float16_conversions_exhaustive():
    """Every float16 value in, and a wide spread of float32 values out, round exactly like NumPy."""
    every_half = np.arange(2**16, dtype=np.uint16).view(np.float16).reshape(1, 1, 256, 256)
    got = gather_patches([every_half], np.array([[0, 0, 0, 0]]), (256, 256))
    with np.errstate(invalid="ignore"):  # the NaN inputs
        expected = gather_patches_reference([every_half], np.array([[0, 0, 0, 0]]), (256, 256))
    np.testing.assert_array_equal(bits(got), bits(expected))

    rng = np.random.default_rng(3)
    exps = rng.integers(-30, 18, (1, 1, 300, 300)).astype(np.float32)
    wide = (rng.standard_normal((1, 1, 300, 300)) * np.exp2(exps)).astype(np.float32)
    wide.flat[:6] = [65504.0, 65519.99, 65520.0, 2.0**-25, 2.0**-24 * 1.5, np.inf]
    spec = np.array([[0, 0, 0, 0]])
    got = gather_patches([wide], spec, (300, 300), dtype=np.float16)
    with np.errstate(over="ignore"):
        expected = gather_patches_reference([wide], spec, (300, 300), dtype=np.float16)
    np.testing.assert_array_equal(bits(got), bits(expected))


@pytest.mark.skipif(not any(d.name == "bfloat16" for d in OUTPUT_DTYPES), reason="ml_dtypes (bfloat16) not installed")
def test_bfloat16_output_rounds_to_nearest_even():
    import ml_dtypes

    rng = np.random.default_rng(4)
    data = (rng.standard_normal((1, 1, 64, 64)) * 100).astype(np.float32)
    got = gather_patches([data], np.array([[0, 0, 0, 0]]), (64, 64), dtype=ml_dtypes.bfloat16)
    np.testing.assert_array_equal(bits(got), bits(data.astype(ml_dtypes.bfloat16)))


# ---------------------------------------------------------------------------------------
# literal, table-driven cases

DATA_3X3 = np.arange(1, 10, dtype=np.uint16).reshape(1, 1, 3, 3)

PAD_PATCH_CASES = [
    # coords, size, expected (CAREamics test_pad_patch)
    ((-1, 0), (2, 2), [[0, 0], [1, 2]]),
    ((1, 1), (3, 3), [[5, 6, 0], [8, 9, 0], [0, 0, 0]]),
    ((5, 5), (2, 2), [[0, 0], [0, 0]]),
    ((-3, 0), (2, 3), [[0, 0, 0], [0, 0, 0]]),
    ((-1, -1), (3, 5), [[0, 0, 0, 0, 0], [0, 1, 2, 3, 0], [0, 4, 5, 6, 0]]),
    ((0, 0), (3, 3), [[1, 2, 3], [4, 5, 6], [7, 8, 9]]),
]


@pytest.mark.parametrize(("coords", "size", "expected"), PAD_PATCH_CASES)
def test_pad_patch_literal(xp, coords, size, expected):
    got = gather_patches([xp.asarray(DATA_3X3)], np.array([[0, 0, *coords]]), size)
    np.testing.assert_array_equal(to_numpy(got)[0, 0], np.array(expected, dtype=np.float32))


PATCH_2X2 = np.array([[1, 2], [3, 4]], dtype=np.uint8).reshape(1, 1, 2, 2)

AUG_LITERAL_CASES = [
    # flip_y, flip_x, rot90, expected (numpy.rot90(flip(patch), k))
    (False, False, 0, [[1, 2], [3, 4]]),
    (True, False, 0, [[3, 4], [1, 2]]),
    (False, True, 0, [[2, 1], [4, 3]]),
    (True, True, 0, [[4, 3], [2, 1]]),
    (False, False, 1, [[2, 4], [1, 3]]),
    (False, False, 2, [[4, 3], [2, 1]]),
    (False, False, 3, [[3, 1], [4, 2]]),
    (True, False, 1, [[4, 2], [3, 1]]),
    (False, True, 3, [[4, 2], [3, 1]]),
]


@pytest.mark.parametrize(("flip_y", "flip_x", "rot90", "expected"), AUG_LITERAL_CASES)
def test_augmentation_literal(xp, flip_y, flip_x, rot90, expected):
    got = gather_patches(
        [xp.asarray(PATCH_2X2)], np.array([[0, 0, 0, 0]]), (2, 2), flip_y=[flip_y], flip_x=[flip_x], rot90=[rot90]
    )
    np.testing.assert_array_equal(to_numpy(got)[0, 0], np.array(expected, dtype=np.float32))


def test_flips_on_non_square_patch_and_half_turn(xp):
    data = np.arange(6, dtype=np.int16).reshape(1, 1, 2, 3)
    got = gather_patches(
        [xp.asarray(data)], np.array([[0, 0, 0, 0]] * 3), (2, 3), flip_y=[1, 0, 0], flip_x=[0, 1, 0], rot90=[0, 0, 2]
    )
    got = to_numpy(got)[:, 0]
    np.testing.assert_array_equal(got[0], [[3, 4, 5], [0, 1, 2]])
    np.testing.assert_array_equal(got[1], [[2, 1, 0], [5, 4, 3]])
    np.testing.assert_array_equal(got[2], [[5, 4, 3], [2, 1, 0]])


def test_affine_and_padding_literal(xp):
    data = np.array([0, 1, 65535], dtype=np.uint16).reshape(1, 1, 1, 3)
    got = gather_patches([xp.asarray(data)], np.array([[0, 0, 0, -1]]), (1, 5), scale=[0.5], shift=[-1.0])
    # padding is raw zero *before* normalisation: it becomes the shift
    np.testing.assert_array_equal(to_numpy(got)[0, 0, 0], [-1.0, -1.0, -0.5, 32766.5, -1.0])


def test_float16_output_rounds_ties_to_even(xp):
    data = np.array([2049, 2051, 2053, -2051, 70000], dtype=np.int32).reshape(1, 1, 1, 5)
    got = gather_patches([xp.asarray(data)], np.array([[0, 0, 0, 0]]), (1, 5), dtype=np.float16)
    np.testing.assert_array_equal(to_numpy(got)[0, 0, 0], np.array([2048, 2052, 2052, -2052, np.inf], dtype=np.float16))


def test_3d_patch_literal(xp):
    data = np.arange(2 * 2 * 2, dtype=np.float64).reshape(1, 1, 2, 2, 2)
    got = to_numpy(gather_patches([xp.asarray(data)], np.array([[0, 0, 1, 0, -1]]), (2, 2, 2)))[0, 0]
    np.testing.assert_array_equal(got, [[[0, 4], [0, 6]], [[0, 0], [0, 0]]])


def test_multiple_sources_and_samples_are_addressed(xp):
    a = np.full((2, 1, 4, 4), 1, np.uint8)
    a[1] = 2
    b = np.full((1, 1, 6, 6), 3, np.uint8)
    specs = np.array([[0, 0, 0, 0], [0, 1, 0, 0], [1, 0, 2, 2], [1, 0, 3, 3]])
    got = to_numpy(gather_patches([xp.asarray(a), xp.asarray(b)], specs, (3, 3)))
    assert got[0].min() == got[0].max() == 1
    assert got[1].min() == got[1].max() == 2
    assert got[2].min() == got[2].max() == 3
    np.testing.assert_array_equal(got[3, 0], [[3, 3, 3], [3, 3, 3], [3, 3, 3]])


# ---------------------------------------------------------------------------------------
# API behaviour


def test_strided_and_reversed_sources(xp):
    rng = np.random.default_rng(11)
    base = random_source(rng, (3, 4, 20, 30), np.float32)
    views = [base[::2, ::-1, 1::2, ::3], np.moveaxis(base, 1, 3)[:, :, :, 2:6].transpose(0, 3, 1, 2)]
    specs = np.array([[0, 1, 2, -1], [0, 0, 5, 5], [0, 1, -3, 7]])
    for v in views:
        got = gather_patches([xp.asarray(v)], specs, (4, 5))
        expected = gather_patches_reference([v], specs, (4, 5))
        np.testing.assert_array_equal(bits(got), bits(expected))


def test_source_table_reuse_and_out(xp):
    rng = np.random.default_rng(12)
    host = [random_source(rng, (2, 2, 12, 12), np.uint16)]
    table = SourceTable([xp.asarray(h) for h in host])
    assert len(table) == 1 and table.ndim == 2 and table.n_channels == 2 and table.is_gpu == (xp is not np)
    out = xp.zeros((3, 2, 5, 5), dtype=np.float32)
    for seed in range(3):
        specs = np.random.default_rng(seed).integers(-3, 10, (3, 4))
        specs[:, 0] = 0
        specs[:, 1] = seed % 2
        result = gather_patches(table, specs, (5, 5), out=out)
        assert result is out
        np.testing.assert_array_equal(to_numpy(out), gather_patches_reference(host, specs, (5, 5)))


def test_out_sharing_memory_with_a_source_is_refused(xp):
    # The kernel reads the sources while writing out: an out over a source gave a half-mirrored
    # patch for an in-place flip (the second half read the voxels the first half had written).
    image = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 1, 8, 8)
    src = xp.asarray(image)
    buffer = xp.zeros(2 * 8 * 8, dtype=np.float32)
    reversed_view = xp.zeros((1, 1, 8, 8), dtype=np.float32)
    cases = [
        ([src], src[:1], 0),  # out is the first sample of the source
        ([src[:, :, ::-1]], src[1:], 0),  # a reversed view of the source overlaps out
        ([xp.zeros((1, 1, 8, 8), np.float32), reversed_view[:, :, ::-1, ::-1]], reversed_view, 1),
        ([buffer[32:96].reshape(1, 1, 8, 8)], buffer[:64].reshape(1, 1, 8, 8), 0),  # partly overlapping
    ]
    for sources, out, index in cases:
        with pytest.raises(ValueError, match=rf"out shares memory with sources\[{index}\]"):
            gather_patches(sources, np.array([[index, 0, 0, 0]]), (8, 8), flip_x=[True], out=out)
    np.testing.assert_array_equal(to_numpy(src), image)
    # another sample of the same array is separate memory: accepted, and right
    got = gather_patches([src[:1]], np.array([[0, 0, 0, 0]]), (8, 8), flip_x=[True], out=src[1:])
    np.testing.assert_array_equal(to_numpy(got)[0, 0], image[0, 0, :, ::-1])


def test_empty_batch(xp):
    got = gather_patches([xp.zeros((1, 2, 4, 4), np.uint8)], np.zeros((0, 4), np.int64), (3, 3), channels=[1])
    assert got.shape == (0, 1, 3, 3)


def test_tile_table_prefix_is_a_patch_table():
    data = np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8)
    tile_specs = np.array([[0, 0, 2, 3, 0, 0, 4, 4, 2, 3]])
    got = gather_patches([data], tile_specs[:, :4], (4, 4))
    np.testing.assert_array_equal(got[0, 0], data[0, 0, 2:6, 3:7])


def test_thread_count_does_not_change_results():
    rng = np.random.default_rng(5)
    host = [random_source(rng, (4, 2, 64, 64), np.uint16)]
    specs = np.stack([np.zeros(300, int), rng.integers(0, 4, 300), rng.integers(-8, 60, 300), rng.integers(-8, 60, 300)], 1)
    rot = rng.integers(0, 4, 300)
    try:
        _core.set_cpu_threads(1)
        one = gather_patches(host, specs, (16, 16), rot90=rot)
        _core.set_cpu_threads(2)
        two = gather_patches(host, specs, (16, 16), rot90=rot)
    finally:
        _core.set_cpu_threads(0)
    np.testing.assert_array_equal(one, two)


# ---------------------------------------------------------------------------------------
# CPU / GPU bit identity (run where a GPU exists)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("source_dtype", SOURCE_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("ndim", [2, 3])
def test_gpu_bit_identical_to_cpu(source_dtype, ndim):
    import cupy

    rng = np.random.default_rng(21)
    image = (9, 37, 70) if ndim == 3 else (130, 70)
    patch = (5, 33, 33) if ndim == 3 else (33, 33)
    host = [random_source(rng, (2, 3, *image), source_dtype), random_source(rng, (1, 3, *image), source_dtype)[:, :, ..., ::-1]]
    n = 97
    specs = np.stack(
        [rng.integers(0, 2, n), np.zeros(n, int), *(rng.integers(-p, s, n) for p, s in zip(patch, image))], 1
    )
    kwargs = dict(
        channels=[2, 0],
        scale=np.float32([0.3, 7.0]),
        shift=np.float32([-3.0, 0.25]),
        flip_y=rng.integers(0, 2, n).astype(bool),
        flip_x=rng.integers(0, 2, n).astype(bool),
        rot90=rng.integers(0, 4, n),
    )
    for out_dtype in OUTPUT_DTYPES:
        cpu = gather_patches(host, specs, patch, dtype=out_dtype, **kwargs)
        gpu = gather_patches([cupy.asarray(h) for h in host], cupy.asarray(specs), patch, dtype=out_dtype, **kwargs)
        assert isinstance(gpu, cupy.ndarray)
        np.testing.assert_array_equal(bits(cpu), bits(gpu))


@pytest.mark.gpu
@requires_gpu
def test_gpu_accepts_device_resident_arguments():
    import cupy

    rng = np.random.default_rng(22)
    host = [random_source(rng, (2, 2, 30, 30), np.uint16)]
    n = 33
    specs = np.stack([np.zeros(n, int), rng.integers(0, 2, n), rng.integers(-5, 30, n), rng.integers(-5, 30, n)], 1)
    kwargs = dict(
        scale=np.float32([0.5, 2.0]), shift=np.float32([1.0, -1.0]), flip_y=rng.integers(0, 2, n).astype(bool),
        flip_x=rng.integers(0, 2, n), rot90=rng.integers(0, 4, n),
    )
    expected = gather_patches_reference(host, specs, (8, 8), **kwargs)
    on_device = {k: cupy.asarray(v) for k, v in kwargs.items()}
    got = gather_patches([cupy.asarray(host[0])], cupy.asarray(specs), (8, 8), **on_device)
    np.testing.assert_array_equal(bits(got), bits(expected))
    with pytest.raises(ValueError, match="rot90 given on the GPU needs square"):
        gather_patches([cupy.asarray(host[0])], specs, (8, 6), rot90=cupy.zeros(n, dtype=cupy.int64))


@pytest.mark.gpu
@requires_gpu
def test_gpu_runs_on_current_stream_without_sync():
    import cupy

    host = np.arange(4 * 64 * 64, dtype=np.uint16).reshape(4, 1, 64, 64)
    specs = np.array([[0, i, i, -i] for i in range(4)])
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        src = cupy.asarray(host)
        got = gather_patches([src], specs, (32, 32))
    stream.synchronize()
    np.testing.assert_array_equal(got.get(), gather_patches_reference([host], specs, (32, 32)))


def test_gpu_sources_without_gpu_raise_runtime_error():
    if HAS_GPU:
        pytest.skip("a GPU is usable here")

    class FakeDeviceArray:
        __cuda_array_interface__ = {"shape": (1, 1, 4, 4), "typestr": "<f4", "data": (1 << 40, False), "version": 3, "strides": None}

    with pytest.raises(RuntimeError, match="no GPU is usable"):
        gather_patches([FakeDeviceArray()], np.array([[0, 0, 0, 0]]), (2, 2))


@pytest.mark.parametrize("rot", [0, 1, 2, 3])
@pytest.mark.parametrize("flip", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gather_extreme_coords_read_only_padding(rot, flip):
    """Coordinates near +-2**63 (flipped/rotated row maps used to overflow int64) read padding."""
    extreme = [int(np.iinfo(np.int64).min), -(1 << 62), (1 << 62), int(np.iinfo(np.int64).max)]
    src = np.arange(2 * 2 * 6 * 6, dtype=np.float32).reshape(2, 2, 6, 6) + 1
    specs = np.array([[0, 1, y, x] for y in extreme + [1] for x in extreme if (y, x) != (1, 1)], dtype=np.int64)
    n = len(specs)
    out = gather_patches([src], specs, (4, 4), shift=[-3.0, 5.0], flip_y=[flip[0]] * n, flip_x=[flip[1]] * n, rot90=[rot] * n)
    assert (out[:, 0] == -3.0).all() and (out[:, 1] == 5.0).all()
