"""Every validation rule of the ops layer (and the native re-checks) rejects bad input
with a clear exception that names the parameter."""

from __future__ import annotations

import types

import numpy as np
import pytest
from conftest import HAS_GPU

from cupatch import _core
from cupatch._windows import window_table
from cupatch.ops import BlendAccumulator, SourceTable, gather_patches, stitch_tiles

SRC = np.zeros((2, 3, 8, 8), np.uint16)
SPECS = np.array([[0, 0, 0, 0], [0, 1, 2, 2]])


class FakeDeviceArray:
    """Something that claims to be GPU memory (never dereferenced in these tests)."""

    def __init__(self, shape=(1, 1, 4, 4), typestr="<f4"):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "data": (1 << 40, False), "version": 3, "strides": None}


def gather(**overrides):
    kwargs = dict(sources=[SRC], specs=SPECS, patch_size=(4, 4))
    kwargs.update(overrides)
    return gather_patches(kwargs.pop("sources"), kwargs.pop("specs"), kwargs.pop("patch_size"), **kwargs)


GATHER_BAD = [
    # (overrides, exception, message fragment)
    (dict(sources=SRC), TypeError, "sources must be a list"),
    (dict(sources=[]), ValueError, "sources must contain at least one"),
    (dict(sources=[[[[1]]]]), TypeError, r"sources\[0\] must be a numpy.ndarray"),
    (dict(sources=[np.zeros((3, 8, 8), np.uint16)]), ValueError, "SCYX"),
    (dict(sources=[np.zeros((1, 1, 8, 8), np.int64)]), TypeError, "sources dtype int64 is not supported"),
    (dict(sources=[np.zeros((1, 1, 8, 8), np.bool_)]), TypeError, "sources dtype bool is not supported"),
    (dict(sources=[SRC, SRC.astype(np.float32)]), TypeError, "same dtype"),
    (dict(sources=[SRC, SRC[:, :2]]), ValueError, "same number of channels"),
    (dict(sources=[SRC, SRC[:, :, None]]), ValueError, "same number of dimensions"),
    (dict(sources=[SRC, FakeDeviceArray()]), TypeError, r"sources\[1\] is a GPU array"),
    (dict(specs=SPECS.astype(np.float32)), TypeError, "specs must be an integer array"),
    (dict(specs=SPECS[0]), ValueError, r"specs must be a patch table of shape \(B, 4\)"),
    (dict(specs=np.zeros((2, 6), np.int64)), ValueError, r"specs must be a patch table of shape \(B, 4\)"),
    (dict(specs=np.array([[1, 0, 0, 0]])), IndexError, "specs: data_idx"),
    (dict(specs=np.array([[-1, 0, 0, 0]])), IndexError, "specs: data_idx"),
    (dict(specs=np.array([[0, 2, 0, 0]])), IndexError, "specs: sample_idx"),
    (dict(specs=np.array([[0, -1, 0, 0]])), IndexError, "specs: sample_idx"),
    (dict(specs=FakeDeviceArray((2, 4), "<i8")), TypeError, "specs is a GPU array"),
    (dict(patch_size=(4,)), ValueError, "patch_size must have 2 entries"),
    (dict(patch_size=(4, 4, 4)), ValueError, "patch_size must have 2 entries"),
    (dict(patch_size=(0, 4)), ValueError, "patch_size entries must be >= 1"),
    (dict(patch_size=(4.0, 4)), TypeError, "patch_size must contain only ints"),
    (dict(patch_size="44"), TypeError, "patch_size must be a sequence"),
    (dict(channels=[3]), ValueError, "Channel index 3 in channels is out of bounds"),
    (dict(channels=[-1]), ValueError, "Channel index -1 in channels is out of bounds"),
    (dict(channels=[]), ValueError, "channels must not be empty"),
    (dict(channels=[0.5]), TypeError, "channels must contain only ints"),
    (dict(scale=[1.0, 2.0]), ValueError, "scale must have one value per output channel"),
    (dict(channels=[0], shift=[1.0, 2.0]), ValueError, "shift must have one value per output channel"),
    (dict(scale=["a", "b", "c"]), TypeError, "scale must be numbers"),
    (dict(flip_y=[True]), ValueError, "flip_y must have one entry per patch"),
    (dict(flip_x=[0, 2]), ValueError, "flip_x must be booleans"),
    (dict(rot90=[0, 4]), ValueError, "rot90 values must be in 0..3"),
    (dict(rot90=[-1, 0]), ValueError, "rot90 values must be in 0..3"),
    (dict(rot90=[0.0, 1.0]), TypeError, "rot90 must be integers"),
    (dict(rot90=[1, 0, 0]), ValueError, "rot90 must have one entry per patch"),
    (dict(patch_size=(4, 6), rot90=[1, 0]), ValueError, "rot90 with odd quarter turns needs square YX"),
    (dict(flip_y=FakeDeviceArray((2,), "|b1")), TypeError, "flip_y is a GPU array but the sources are NumPy"),
    (dict(scale=FakeDeviceArray((3,))), TypeError, "scale is a GPU array but the sources are NumPy"),
    (dict(dtype=np.int32), ValueError, "dtype must be one of"),
    (dict(dtype="not-a-dtype"), TypeError, "dtype 'not-a-dtype' is not a valid dtype"),
    (dict(out=np.zeros((2, 3, 4, 5), np.float32)), ValueError, r"out must have shape \(2, 3, 4, 4\)"),
    (dict(out=np.zeros((2, 3, 4, 4), np.float16)), TypeError, "out must have dtype float32"),
    (dict(out=np.zeros((2, 3, 4, 8), np.float32)[..., ::2]), ValueError, "out must be C-contiguous"),
    (dict(out=np.zeros((2, 3, 4, 4), np.float32).copy().view()), None, None),
    (dict(out=FakeDeviceArray((2, 3, 4, 4))), TypeError, "out is a GPU array"),
    (dict(out=[0]), TypeError, "out must be a numpy.ndarray"),
]


@pytest.mark.parametrize(("overrides", "exc", "match"), GATHER_BAD, ids=range(len(GATHER_BAD)))
def test_gather_rejects_bad_input(overrides, exc, match):
    if exc is None:  # a control case that must pass
        gather(**overrides)
        return
    with pytest.raises(exc, match=match):
        gather(**overrides)


def test_gather_rejects_read_only_out():
    out = np.zeros((2, 3, 4, 4), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        gather(out=out)


def test_even_rot90_allows_rectangular_patches():
    got = gather(patch_size=(4, 6), rot90=[2, 0])
    assert got.shape == (2, 3, 4, 6)


def test_source_table_rejects_nesting():
    table = SourceTable([SRC])
    with pytest.raises(TypeError, match="already a SourceTable"):
        SourceTable(table)


def test_gpu_inputs_without_gpu_raise_runtime_error():
    if HAS_GPU:
        pytest.skip("a GPU is usable here")
    with pytest.raises(RuntimeError, match="no GPU is usable"):
        gather_patches([FakeDeviceArray()], SPECS, (2, 2))
    with pytest.raises(RuntimeError, match="no GPU is usable"):
        stitch_tiles(FakeDeviceArray((1, 1, 4, 4)), np.zeros((1, 10), np.int64), [np.zeros((1, 1, 4, 4), np.float32)])
    not_numpy = types.ModuleType("cupy")  # CuPy itself may not even be installed
    with pytest.raises(RuntimeError, match="no GPU is usable"):
        BlendAccumulator([(1, 1, 4, 4)], (4, 4), (2, 2), array_module=not_numpy)


# ---------------------------------------------------------------------------------------
# stitch

TILES = np.zeros((2, 2, 4, 4), np.float32)
TSPECS = np.array([[0, 0, 0, 0, 0, 0, 4, 3, 0, 0], [0, 0, 0, 2, 0, 1, 4, 3, 0, 3]])
OUT_SHAPE = (1, 2, 4, 6)


def stitch(**overrides):
    kwargs = dict(tiles=TILES, specs=TSPECS, outputs=[np.zeros(OUT_SHAPE, np.float32)])
    kwargs.update(overrides)
    return stitch_tiles(kwargs.pop("tiles"), kwargs.pop("specs"), kwargs.pop("outputs"), **kwargs)


def blend_kwargs(**overrides):
    kwargs = dict(mode="blend", weights=[np.zeros((1, 1, 4, 6), np.float32)], window_table=window_table((4, 4), (2, 2)))
    kwargs.update(overrides)
    return kwargs


def read_only(shape):
    a = np.zeros(shape, np.float32)
    a.flags.writeable = False
    return a


STITCH_BAD = [
    (dict(mode="average"), ValueError, 'mode must be "crop" or "blend"'),
    (dict(tiles=TILES.astype(np.float64)), TypeError, "tiles must be float32"),
    (dict(tiles=TILES[0]), ValueError, r"tiles must be \(B, C, Y, X\)"),
    (dict(tiles=TILES.tolist()), TypeError, "tiles must be a numpy.ndarray"),
    (dict(tiles=np.zeros((2, 0, 4, 4), np.float32)), ValueError, "at least one channel"),
    (dict(specs=TSPECS[:, :4]), ValueError, r"specs must be a tile table of shape \(B, 10\)"),
    (dict(specs=TSPECS.astype(float)), TypeError, "specs must be an integer array"),
    (dict(specs=TSPECS[:1]), ValueError, "specs has 1 rows but tiles has 2"),
    (dict(specs=TSPECS + np.array([1] + [0] * 9)), IndexError, "specs: data_idx"),
    (dict(specs=TSPECS + np.array([0, 1] + [0] * 8)), IndexError, "specs: sample_idx"),
    (dict(specs=TSPECS + np.array([0] * 5 + [2] + [0] * 4)), ValueError, "outside the tile"),
    (dict(specs=TSPECS + np.array([0] * 4 + [-1] + [0] * 5)), ValueError, "outside the tile"),
    (dict(specs=TSPECS + np.array([0] * 9 + [1])), ValueError, "outside its image"),
    (dict(outputs=np.zeros(OUT_SHAPE, np.float32)), TypeError, "outputs must be a list"),
    (dict(outputs=[]), ValueError, "outputs must contain at least one"),
    (dict(outputs=[np.zeros(OUT_SHAPE, np.float64)]), TypeError, r"outputs\[0\] must be float32"),
    (dict(outputs=[np.zeros((1, 3, 4, 6), np.float32)]), ValueError, r"outputs\[0\] has 3 channels but the tiles have 2"),
    (dict(outputs=[np.zeros((1, 2, 1, 4, 6), np.float32)]), ValueError, r"outputs\[0\] must be SCYX"),
    (dict(outputs=[np.zeros((1, 2, 4, 12), np.float32)[..., ::2]]), ValueError, r"outputs\[0\] must be C-contiguous"),
    (dict(outputs=[read_only(OUT_SHAPE)]), ValueError, r"outputs\[0\] is read-only"),
    (dict(outputs=[FakeDeviceArray(OUT_SHAPE)]), TypeError, r"outputs\[0\] is a GPU array"),
    (dict(origins=[(0, 0), (0, 0)]), ValueError, "origins must have one entry per output"),
    (dict(origins=[(0, -1)]), ValueError, r"origins\[0\] entries must be >= 0"),
    (dict(origins=[(0,)]), ValueError, r"origins\[0\] must have 2 entries"),
    (dict(image_shapes=[(4, 5)]), ValueError, r"does not fit in image_shapes\[0\]"),
    (dict(image_shapes=[(4, 6), (4, 6)]), ValueError, "image_shapes must have one entry per output"),
    (blend_kwargs(weights=[]), ValueError, "weights must be a list with one array per output"),
    (blend_kwargs(weights=[np.zeros((1, 2, 4, 6), np.float32)]), ValueError, r"weights\[0\] must have shape \(1, 1, 4, 6\)"),
    (blend_kwargs(weights=[np.zeros((1, 1, 4, 6), np.float64)]), TypeError, r"weights\[0\] must be float32"),
    (blend_kwargs(weights=[read_only((1, 1, 4, 6))]), ValueError, r"weights\[0\] is read-only"),
    (blend_kwargs(window_table=None), ValueError, "needs window_table"),
    (blend_kwargs(window_table=window_table((4, 4), (2, 2)).astype(np.float64)), TypeError, "window_table must be float32"),
    (blend_kwargs(window_table=window_table((2, 2), (0, 0))), ValueError, r"window_table must have shape \(2, 4, T >= 4\)"),
    (blend_kwargs(window_table=window_table((4, 4, 4), (2, 2, 2))), ValueError, "window_table must have shape"),
    (blend_kwargs(), None, None),
    (dict(), None, None),
]


@pytest.mark.parametrize(("overrides", "exc", "match"), STITCH_BAD, ids=range(len(STITCH_BAD)))
def test_stitch_rejects_bad_input(overrides, exc, match):
    if exc is None:
        stitch(**overrides)
        return
    with pytest.raises(exc, match=match):
        stitch(**overrides)


BLEND_ACC_BAD = [
    (dict(output_shapes=[(1, 1, 8, 8)], tile_size=(4, 4), overlaps=(2, 2), window="box"), ValueError, "window must be one of"),
    (dict(output_shapes=[(1, 1, 8, 8)], tile_size=(4,)), ValueError, "tile_size must have 2 or 3 entries"),
    (dict(output_shapes=[(1, 1, 8)], tile_size=(4, 4), overlaps=(2, 2)), ValueError, r"output_shapes\[0\] must have 4 entries"),
    (dict(output_shapes=[], tile_size=(4, 4), overlaps=(2, 2)), ValueError, "output_shapes must contain"),
    (dict(output_shapes=[(1, 1, 8, 8)], tile_size=(4, 4)), ValueError, "overlaps is required"),
    (dict(output_shapes=[(1, 1, 8, 8)], tile_size=(4, 4), overlaps=(4, 2)), ValueError, "overlaps must satisfy"),
    (dict(output_shapes=[(1, 1, 8, 8)], tile_size=(4, 4), overlaps=(2, 2), array_module=pytest), ValueError, "array_module must be numpy or cupy"),
]


@pytest.mark.parametrize(("kwargs", "exc", "match"), BLEND_ACC_BAD, ids=range(len(BLEND_ACC_BAD)))
def test_blend_accumulator_rejects_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        BlendAccumulator(kwargs.pop("output_shapes"), kwargs.pop("tile_size"), kwargs.pop("overlaps", None), **kwargs)


def test_blend_accumulator_rejects_wrong_tile_size():
    acc = BlendAccumulator([(1, 1, 8, 8)], (4, 4), (2, 2))
    with pytest.raises(ValueError, match=r"tiles must have tile size \(4, 4\)"):
        acc.add(np.zeros((1, 1, 5, 5), np.float32), np.zeros((1, 10), np.int64))


# ---------------------------------------------------------------------------------------
# native re-checks (bypassing the Python validation)


def native_gather_args(**overrides):
    table = SourceTable([SRC])
    args = dict(
        sources=table.table, source_dtype=table.dtype_code, specs=SPECS.copy(), ndim=2, patch=(1, 4, 4),
        channels=np.arange(3, dtype=np.int64), affine=None, aug=None, out=np.zeros((2, 3, 4, 4), np.float32), out_dtype=5,
    )
    args.update(overrides)
    return args


NATIVE_GATHER_BAD = [
    (dict(specs=np.array([[1, 0, 0, 0]])), IndexError, "data_idx"),
    (dict(specs=np.array([[0, 5, 0, 0]])), IndexError, "sample_idx"),
    (dict(channels=np.array([3], np.int64), out=np.zeros((2, 1, 4, 4), np.float32)), IndexError, "channels"),
    (dict(out=np.zeros((2, 3, 4, 5), np.float32)), ValueError, "out has the wrong shape"),
    (dict(out=np.zeros((2, 3, 4, 4), np.float32), out_dtype=4), ValueError, "itemsize"),
    (dict(out_dtype=1), ValueError, "output dtype must be"),
    (dict(source_dtype=99), ValueError, "unknown dtype code"),
    (dict(ndim=4), ValueError, "ndim must be 2 or 3"),
    (dict(patch=(1, 0, 4)), ValueError, "patch_size entries must be positive"),
    (dict(aug=np.array([4, 0], np.uint8), patch=(1, 4, 5), out=np.zeros((2, 3, 4, 5), np.float32)), ValueError, "square"),
    (dict(affine=np.zeros(5, np.float32)), ValueError, "affine"),
    (dict(specs=SPECS.astype(np.int32)), TypeError, "incompatible function arguments"),
    (dict(sources=np.zeros((1, 5), np.int64)), ValueError, "sources table"),
]


@pytest.mark.parametrize(("overrides", "exc", "match"), NATIVE_GATHER_BAD, ids=range(len(NATIVE_GATHER_BAD)))
def test_native_gather_rechecks(overrides, exc, match):
    with pytest.raises(exc, match=match):
        _core.gather_cpu(**native_gather_args(**overrides))


def test_native_stitch_rechecks():
    out = np.zeros(OUT_SHAPE, np.float32)
    table = np.array([[out.__array_interface__["data"][0], 0, 1, 2, 1, 4, 6, 0, 0, 0, 1, 4, 6]], np.int64)
    _core.stitch_crop_cpu(TILES, TSPECS, table)  # valid
    with pytest.raises(IndexError, match="data_idx"):
        _core.stitch_crop_cpu(TILES, TSPECS + np.array([1] + [0] * 9), table)
    with pytest.raises(IndexError, match="sample_idx"):
        _core.stitch_crop_cpu(TILES, TSPECS + np.array([0, 3] + [0] * 8), table)
    with pytest.raises(ValueError, match="one row per tile"):
        _core.stitch_crop_cpu(TILES, TSPECS[:1], table)
    _core.stitch_blend_cpu(TILES, TSPECS, table, window_table((4, 4), (2, 2)))  # no weight array: sums only
    bad_channels = table.copy()
    bad_channels[0, 3] = 3
    with pytest.raises(ValueError, match="as many channels"):
        _core.stitch_crop_cpu(TILES, TSPECS, bad_channels)


def test_native_crop_clips_to_the_output_whatever_the_specs():
    """Even specs that bypass validation cannot write outside the output arrays."""
    guard = np.full((3, 1, 2, 4, 6), 5.0, np.float32)  # output in the middle, guards around
    out = guard[1]
    table = np.array([[out.__array_interface__["data"][0], 0, 1, 2, 1, 4, 6, 0, 0, 0, 1, 4, 6]], np.int64)
    wild = np.array([[0, 0, 0, 0, -3, -3, 9, 9, -5, -5], [0, 0, 0, 0, 0, 0, 4, 4, 3, 4]])
    _core.stitch_crop_cpu(np.ones((2, 2, 4, 4), np.float32), wild, table)
    assert (guard[0] == 5).all() and (guard[2] == 5).all()


@pytest.mark.skipif(not _core.built_with_cuda, reason="built without CUDA")
def test_cuda_entry_points_refuse_rows_too_long_for_int_indexing():
    """The CUDA kernels index within a row with int; the bindings refuse longer rows before
    touching any pointer or the device."""
    float32 = list(_core.DTYPES).index("float32")
    with pytest.raises(ValueError, match="X extent"):
        _core.gather_cuda(1, 1, float32, 1, 1, 4, 2, (1, 1, (1 << 30) + 1), 1, 1, 0, 0, 1, float32, 0, 0)
    with pytest.raises(ValueError, match="X extent"):
        _core.stitch_crop_cuda(1, 1, 1, (1, 1, (1 << 30) + 1), 1, 10, 2, 1, 1, 0, 0, 0, 0)
