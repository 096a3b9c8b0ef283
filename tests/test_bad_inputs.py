"""Bad inputs to every public name of ``cupatch``, one row each.

Every row of ``REJECTED`` is ``(id, call, exception type, message fragment)``: the call must
raise exactly that type (not a subclass picked up by accident: ``IndexError`` is not a
``ValueError``) with a message containing the fragment, which names the parameter (and,
where there are any, the allowed values). ``ACCEPTED`` holds the valid edge cases next to
those mistakes (empty batches, zero tiles, boundary values): ``(id, call, check)`` where
``check`` receives the result. Ids read ``<public name>/<mistake>``; a test checks that
every name in ``cupatch.__all__`` has rows.
"""

from __future__ import annotations

import math
import os
import pickle
import tempfile

import numpy as np
import pytest

import cupatch as cp
from cupatch.normalization import NoNormalization

# ---------------------------------------------------------------------------------------------
# inputs shared by the rows (small, built once)

IMG = np.arange(2 * 8 * 8, dtype=np.float32).reshape(1, 2, 8, 8)  # SCYX, 2 channels
SPECS = np.zeros((1, 4), np.int64)
DATA = np.arange(16 * 16, dtype=np.float32).reshape(16, 16)  # YX
SHAPES = [(1, 1, 16, 16)]
TILING = cp.TiledPatching([(1, 2, 8, 8)], (4, 4), (2, 2))
TILE_SPECS = TILING.spec_table(np.arange(TILING.n_patches))
TILES = np.ones((len(TILE_SPECS), 2, 4, 4), np.float32)
PATCH_SPEC = {"data_idx": 0, "sample_idx": 0, "coords": (0, 0), "patch_size": (4, 4)}
TILE_SPEC = TILING.get_patch_spec(0)
HUGE = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(1, 1, 2**60, 1), strides=(0, 0, 0, 0))


def identity(x):
    return x


def gather(**kw):
    args = {"sources": [IMG], "specs": SPECS, "patch_size": (4, 4), **kw}
    return cp.gather_patches(args.pop("sources"), args.pop("specs"), args.pop("patch_size"), **args)


def output():
    return [np.zeros((1, 2, 8, 8), np.float32)]


def stitch(**kw):
    args = {"tiles": TILES, "specs": TILE_SPECS, "outputs": output(), **kw}
    return cp.stitch_tiles(args.pop("tiles"), args.pop("specs"), args.pop("outputs"), **args)


def blend(**kw):
    weights = [np.zeros((1, 1, 8, 8), np.float32)]
    return stitch(**{"mode": "blend", "weights": weights, "window_table": cp.window_table((4, 4), (2, 2)), **kw})


def accumulator(**kw):
    args = {"output_shapes": [(1, 2, 8, 8)], "tile_size": (4, 4), "overlaps": (2, 2), **kw}
    return cp.BlendAccumulator(args.pop("output_shapes"), args.pop("tile_size"), args.pop("overlaps"), **args)


def finalized_accumulator():
    acc = accumulator()
    acc.finalize()
    return acc


def stratified():
    return cp.StratifiedPatching(SHAPES, (4, 4), seed=0)


def patching(name, **kw):
    """A strategy with valid arguments, ``kw`` replacing some of them."""
    cls = getattr(cp, name)
    if name == "WholeSamplePatching":
        return cls(kw.get("data_shapes", SHAPES))
    args = {"data_shapes": SHAPES, "patch_size": (4, 4)}
    if name in ("SequentialPatching", "TiledPatching"):
        args["overlaps"] = (2, 2)
    else:
        args["seed"] = 0
    args.update(kw)
    return cls(**args)


def random_patching(shapes):
    return lambda s: cp.RandomPatching(s, (4, 4), seed=0)


def dataset(**kw):
    args = {"inputs": DATA, "patching": lambda s: cp.RandomPatching(s, (4, 4), seed=0), "axes": "YX",
            "device": "cpu", "progress": False, **kw}  # fmt: skip
    return cp.PatchDataset(args.pop("inputs"), args.pop("patching"), **args)


DS = dataset()


def loader(**kw):
    return cp.BatchLoader(kw.pop("dataset", DS), kw.pop("batch_size", 4), **{"seed": 0, **kw})


def predict(**kw):
    args = {"model": identity, "data": DATA, "axes": "YX", "tile_size": 8, "overlaps": 2, "progress": False,
            "device": "cpu", **kw}  # fmt: skip
    return cp.predict_tiled(args.pop("model"), args.pop("data"), **args)


def channel_changing_model():
    calls = []

    def model(x):
        calls.append(1)
        return np.repeat(x, 1 if len(calls) == 1 else 2, axis=1)

    return model


def batch():
    x = DS.get_batch([0, 1])[0]
    return x


def region():
    return DS[0][0]


_TMP = tempfile.mkdtemp(prefix="cupatch-bad-inputs-")


def npy(kind: str) -> str:
    """A ``.npy`` file of one kind of damage (written on first use)."""
    path = os.path.join(_TMP, f"{kind}.npy")
    if not os.path.exists(path):
        if kind == "empty":
            open(path, "wb").close()
        elif kind == "truncated":
            np.save(path, DATA)
            with open(path, "r+b") as f:
                f.truncate(200)
        elif kind == "header":
            with open(path, "wb") as f:
                f.write(b"\x93NUMPY\x01\x00garbage")
        elif kind == "pickle":
            with open(path, "wb") as f:
                pickle.dump([1, 2, 3], f)
        elif kind == "objects":
            np.save(path, np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
        elif kind == "good":
            np.save(path, DATA)
    return path


# ---------------------------------------------------------------------------------------------
# rejected inputs: (id, call, exception type, fragment of the message)

REJECTED = [
    # -- gather_patches ------------------------------------------------------------------------
    ("gather_patches/sources-one-array", lambda: gather(sources=IMG), TypeError, "sources must be a list of SC(Z)YX arrays"),
    ("gather_patches/sources-empty", lambda: gather(sources=[]), ValueError, "sources must contain at least one array"),
    ("gather_patches/sources-3d", lambda: gather(sources=[np.zeros((2, 8, 8), np.float32)]), ValueError, "sources must be SCYX (4-D) or SCZYX (5-D)"),
    ("gather_patches/sources-no-channels", lambda: gather(sources=[np.zeros((1, 0, 8, 8), np.float32)]), ValueError, "sources must have at least one channel"),
    ("gather_patches/sources-complex", lambda: gather(sources=[IMG.astype(np.complex64)]), TypeError, "sources dtype complex64 is not supported"),
    ("gather_patches/sources-list-of-lists", lambda: gather(sources=[IMG.tolist()]), TypeError, "sources[0] must be a numpy.ndarray"),
    ("gather_patches/specs-float", lambda: gather(specs=[[0, 0, 0.5, 0]]), TypeError, "specs must be an integer array"),
    ("gather_patches/specs-bool", lambda: gather(specs=np.zeros((1, 4), bool)), TypeError, "specs must be an integer array"),
    ("gather_patches/specs-width", lambda: gather(specs=[[0, 0, 0]]), ValueError, "specs must be a patch table of shape (B, 4)"),
    ("gather_patches/specs-data_idx-range", lambda: gather(specs=[[1, 0, 0, 0]]), IndexError, "specs: data_idx must be in [0, 1)"),
    ("gather_patches/specs-sample_idx-range", lambda: gather(specs=[[0, 5, 0, 0]]), IndexError, "sample_idx 5 of patch 0"),
    ("gather_patches/specs-beyond-int64", lambda: gather(specs=np.array([[0, 0, 2**63, 0]], np.uint64)), ValueError, "specs has values too large for int64"),
    ("gather_patches/patch_size-float", lambda: gather(patch_size=(4.0, 4)), TypeError, "patch_size must contain only ints"),
    ("gather_patches/patch_size-bool", lambda: gather(patch_size=(True, 4)), TypeError, "patch_size must contain only ints"),
    ("gather_patches/patch_size-length", lambda: gather(patch_size=(4, 4, 4)), ValueError, "patch_size must have 2 entries"),
    ("gather_patches/patch_size-zero", lambda: gather(patch_size=(0, 4)), ValueError, "patch_size entries must be >= 1"),
    ("gather_patches/patch_size-row-limit", lambda: gather(patch_size=(4, 2**30 + 1)), ValueError, "patch_size[1] (the X extent) must be at most 2**30"),
    ("gather_patches/patch_size-extent-limit", lambda: gather(patch_size=(2**60, 4)), ValueError, "patch_size[0] must be below 2**60"),
    ("gather_patches/channels-out-of-range", lambda: gather(channels=[3]), ValueError, "Channel index 3 in channels is out of bounds"),
    ("gather_patches/channels-negative", lambda: gather(channels=[-1]), ValueError, "Channel index -1 in channels is out of bounds"),
    ("gather_patches/channels-empty", lambda: gather(channels=[]), ValueError, "channels must not be empty"),
    ("gather_patches/channels-float", lambda: gather(channels=[0.5]), TypeError, "channels must contain only ints"),
    ("gather_patches/channels-bool", lambda: gather(channels=[True]), TypeError, "channels must contain only ints"),
    ("gather_patches/dtype-unsupported", lambda: gather(dtype=np.int32), ValueError, "dtype must be one of"),
    ("gather_patches/dtype-not-a-dtype", lambda: gather(dtype="abc"), TypeError, "dtype 'abc' is not a valid dtype"),
    ("gather_patches/dtype-bool", lambda: gather(dtype=True), TypeError, "dtype True is not a valid dtype"),
    ("gather_patches/scale-length", lambda: gather(scale=[1.0, 2.0, 3.0]), ValueError, "scale must have one value per output channel (2)"),
    ("gather_patches/scale-strings", lambda: gather(scale=["a", "b"]), TypeError, "scale must be numbers"),
    ("gather_patches/scale-nan", lambda: gather(scale=[math.nan, 1.0]), ValueError, "scale must be finite in float32"),
    ("gather_patches/scale-beyond-float32", lambda: gather(scale=[1e300, 1.0]), ValueError, "scale must be finite in float32"),
    ("gather_patches/shift-inf", lambda: gather(shift=[math.inf, 0.0]), ValueError, "shift must be finite in float32"),
    ("gather_patches/shift-ragged", lambda: gather(shift=[[1.0], [2.0, 3.0]]), TypeError, "shift could not be converted to an array"),
    ("gather_patches/flip_y-length", lambda: gather(flip_y=[True, False]), ValueError, "flip_y must have one entry per patch, shape (1,)"),
    ("gather_patches/flip_y-values", lambda: gather(flip_y=[2]), ValueError, "flip_y must be booleans (or 0/1)"),
    ("gather_patches/flip_x-float", lambda: gather(flip_x=[0.5]), ValueError, "flip_x must be booleans (or 0/1)"),
    ("gather_patches/rot90-range", lambda: gather(rot90=[4]), ValueError, "rot90 values must be in 0..3"),
    ("gather_patches/rot90-float", lambda: gather(rot90=[1.0]), TypeError, "rot90 must be integers in 0..3"),
    ("gather_patches/rot90-odd-non-square", lambda: gather(patch_size=(4, 6), rot90=[1]), ValueError, "rot90 with odd quarter turns needs square YX patches"),
    ("gather_patches/out-shape", lambda: gather(out=np.zeros((1, 2, 3, 3), np.float32)), ValueError, "out must have shape (1, 2, 4, 4)"),
    ("gather_patches/out-dtype", lambda: gather(out=np.zeros((1, 2, 4, 4), np.float16)), TypeError, "out must have dtype float32"),
    ("gather_patches/out-list", lambda: gather(out=np.zeros((1, 2, 4, 4)).tolist()), TypeError, "out must be a numpy.ndarray"),
    # -- SourceTable -----------------------------------------------------------------------------
    ("SourceTable/one-array", lambda: cp.SourceTable(IMG), TypeError, "sources must be a list of SC(Z)YX arrays"),
    ("SourceTable/empty", lambda: cp.SourceTable([]), ValueError, "sources must contain at least one array"),
    ("SourceTable/twice", lambda: cp.SourceTable(cp.SourceTable([IMG])), TypeError, "sources is already a SourceTable"),
    ("SourceTable/mixed-dtypes", lambda: cp.SourceTable([IMG, IMG.astype(np.uint8)]), TypeError, "sources must all have the same dtype"),
    ("SourceTable/mixed-channels", lambda: cp.SourceTable([IMG, IMG[:, :1]]), ValueError, "sources must all have the same number of channels"),
    ("SourceTable/mixed-ndim", lambda: cp.SourceTable([IMG, IMG[:, :, None]]), ValueError, "sources must all have the same number of dimensions"),
    ("SourceTable/extent-limit", lambda: cp.SourceTable([HUGE]), ValueError, "sources[0] has an extent of 2**60 or more"),
    ("SourceTable/not-an-array", lambda: cp.SourceTable([5]), TypeError, "sources[0] must be a numpy.ndarray"),
    # -- stitch_tiles ----------------------------------------------------------------------------
    ("stitch_tiles/tiles-list", lambda: stitch(tiles=TILES.tolist()), TypeError, "tiles must be a numpy.ndarray or a GPU array"),
    ("stitch_tiles/tiles-float64", lambda: stitch(tiles=TILES.astype(np.float64)), TypeError, "tiles must be float32"),
    ("stitch_tiles/tiles-3d", lambda: stitch(tiles=TILES[:, 0]), ValueError, "tiles must be (B, C, Y, X) or (B, C, Z, Y, X)"),
    ("stitch_tiles/specs-rows", lambda: stitch(specs=TILE_SPECS[:1]), ValueError, f"specs has 1 rows but tiles has {len(TILES)} tiles"),
    ("stitch_tiles/specs-float", lambda: stitch(specs=TILE_SPECS.astype(float)), TypeError, "specs must be an integer array"),
    ("stitch_tiles/specs-width", lambda: stitch(specs=TILE_SPECS[:, :4]), ValueError, "specs must be a tile table of shape (B, 10)"),
    ("stitch_tiles/specs-data_idx-range", lambda: stitch(specs=TILE_SPECS + np.array([1] + [0] * 9)), IndexError, "specs: data_idx must be in [0, 1)"),
    ("stitch_tiles/specs-crop-outside-tile", lambda: stitch(specs=TILE_SPECS + np.array([0] * 4 + [3, 0] + [0] * 4)), ValueError, "outside the tile"),
    ("stitch_tiles/outputs-one-array", lambda: stitch(outputs=output()[0]), TypeError, "outputs must be a list of SC(Z)YX float32 arrays"),
    ("stitch_tiles/outputs-empty", lambda: stitch(outputs=[]), ValueError, "outputs must contain at least one array"),
    ("stitch_tiles/outputs-channels", lambda: stitch(outputs=[np.zeros((1, 3, 8, 8), np.float32)]), ValueError, "outputs[0] has 3 channels but the tiles have 2"),
    ("stitch_tiles/outputs-float64", lambda: stitch(outputs=[np.zeros((1, 2, 8, 8))]), TypeError, "outputs[0] must be float32"),
    ("stitch_tiles/outputs-read-only", lambda: stitch(outputs=[np.broadcast_to(np.zeros((1, 2, 8, 8), np.float32), (1, 2, 8, 8))]), ValueError, "outputs[0] is read-only"),
    ("stitch_tiles/mode-unknown", lambda: stitch(mode="mean"), ValueError, 'mode must be "crop" or "blend", got "mean"'),
    ("stitch_tiles/mode-bool", lambda: stitch(mode=True), ValueError, 'mode must be "crop" or "blend", got True'),
    ("stitch_tiles/weights-in-crop", lambda: stitch(weights=[np.zeros((1, 1, 8, 8), np.float32)]), ValueError, 'weights is used only with mode="blend"'),
    ("stitch_tiles/window_table-in-crop", lambda: stitch(window_table=cp.window_table((4, 4), (2, 2))), ValueError, 'window_table is used only with mode="blend"'),
    ("stitch_tiles/blend-weights-bool", lambda: blend(weights=True), ValueError, "weights must be a list with one array per output (1)"),
    ("stitch_tiles/blend-weights-shape", lambda: blend(weights=[np.zeros((1, 2, 8, 8), np.float32)]), ValueError, "weights[0] must have shape (1, 1, 8, 8)"),
    ("stitch_tiles/blend-without-window", lambda: blend(window_table=None), ValueError, 'mode="blend" needs window_table'),
    ("stitch_tiles/blend-window-shape", lambda: blend(window_table=np.zeros((2, 4, 2), np.float32)), ValueError, "window_table must have shape (2, 4, T >= 4)"),
    ("stitch_tiles/origins-int", lambda: stitch(origins=5), TypeError, "origins must be a list of (Z)YX int tuples"),
    ("stitch_tiles/origins-length", lambda: stitch(origins=[(0, 0), (0, 0)]), ValueError, "origins must have one entry per output (1), got 2"),
    ("stitch_tiles/origins-negative", lambda: stitch(origins=[(-1, 0)]), ValueError, "origins[0] entries must be >= 0"),
    ("stitch_tiles/origins-float", lambda: stitch(origins=[(0.5, 0)]), TypeError, "origins[0] must contain only ints"),
    ("stitch_tiles/image_shapes-bool", lambda: stitch(image_shapes=True), TypeError, "image_shapes must be a list of (Z)YX int tuples"),
    ("stitch_tiles/image_shapes-too-small", lambda: stitch(image_shapes=[(4, 4)]), ValueError, "does not fit in image_shapes[0] = (4, 4)"),
    ("stitch_tiles/image_shapes-extent-limit", lambda: stitch(image_shapes=[(2**60, 8)]), ValueError, "image_shapes[0] entries must be below 2**60"),
    # -- BlendAccumulator ------------------------------------------------------------------------
    ("BlendAccumulator/array_module-math", lambda: accumulator(array_module=math), ValueError, "array_module must be numpy or cupy"),
    ("BlendAccumulator/array_module-string", lambda: accumulator(array_module="numpy"), ValueError, "array_module must be numpy or cupy"),
    ("BlendAccumulator/output_shapes-int", lambda: accumulator(output_shapes=5), TypeError, "output_shapes must be a list of SC(Z)YX shapes"),
    ("BlendAccumulator/output_shapes-empty", lambda: accumulator(output_shapes=[]), ValueError, "output_shapes must contain at least one shape"),
    ("BlendAccumulator/output_shapes-length", lambda: accumulator(output_shapes=[(1, 8, 8)]), ValueError, "output_shapes[0] must have 4 entries"),
    ("BlendAccumulator/output_shapes-float", lambda: accumulator(output_shapes=[(1, 2, 8.0, 8)]), TypeError, "output_shapes[0] must contain only ints"),
    ("BlendAccumulator/tile_size-float", lambda: accumulator(tile_size=(4.5, 4)), TypeError, "tile_size must contain only ints"),
    ("BlendAccumulator/tile_size-length", lambda: accumulator(tile_size=(4,)), ValueError, "tile_size must have 2 or 3 entries"),
    ("BlendAccumulator/tile_size-row-limit", lambda: accumulator(tile_size=(4, 2**30 + 1)), ValueError, "tile_size[1] (the X extent) must be at most 2**30"),
    ("BlendAccumulator/overlaps-too-large", lambda: accumulator(overlaps=(4, 2)), ValueError, "overlaps must satisfy 0 <= overlap < tile"),
    ("BlendAccumulator/overlaps-missing", lambda: accumulator(overlaps=None), ValueError, "overlaps is required for window='hann'"),
    ("BlendAccumulator/window-unknown", lambda: accumulator(window="box"), ValueError, 'window must be one of "linear", "hann", "gaussian", "uniform", got "box"'),
    ("BlendAccumulator/origins-int", lambda: accumulator(origins=3), TypeError, "origins must be a list of (Z)YX int tuples"),
    ("BlendAccumulator/origins-string", lambda: accumulator(origins="ab"), TypeError, "origins must be a list of (Z)YX int tuples"),
    ("BlendAccumulator/image_shapes-length", lambda: accumulator(image_shapes=[]), ValueError, "image_shapes must have one entry per output (1), got 0"),
    ("BlendAccumulator/add-list", lambda: accumulator().add(TILES.tolist(), TILE_SPECS), TypeError, "tiles must be a numpy.ndarray (or a GPU array), got list"),
    ("BlendAccumulator/add-tile-size", lambda: accumulator().add(np.ones((1, 2, 5, 5), np.float32), TILE_SPECS[:1]), ValueError, "tiles must have tile size (4, 4)"),
    ("BlendAccumulator/add-specs-float", lambda: accumulator().add(TILES, TILE_SPECS.astype(float)), TypeError, "specs must be an integer array"),
    ("BlendAccumulator/add-after-finalize", lambda: finalized_accumulator().add(TILES, TILE_SPECS), RuntimeError, "BlendAccumulator.add called after finalize()"),
    # -- window_table ----------------------------------------------------------------------------
    ("window_table/tile_size-float", lambda: cp.window_table((4.5, 4), (2, 2)), TypeError, "tile_size must contain only ints"),
    ("window_table/tile_size-length", lambda: cp.window_table((4,), (2,)), ValueError, "tile_size must be 2 or 3 positive ints"),
    ("window_table/tile_size-zero", lambda: cp.window_table((0, 4), (0, 0)), ValueError, "tile_size must be 2 or 3 positive ints"),
    ("window_table/tile_size-row-limit", lambda: cp.window_table((4, 2**30 + 1), None, "uniform"), ValueError, "tile_size[1] (the X extent) must be at most 2**30"),
    ("window_table/tile_size-int", lambda: cp.window_table(4, 2), TypeError, "window_table cannot tell 2-D from 3-D from one int"),
    ("window_table/overlaps-length", lambda: cp.window_table((4, 4), (2,)), ValueError, "overlaps must have 2 entries like tile_size"),
    ("window_table/overlaps-too-large", lambda: cp.window_table((4, 4), (4, 2)), ValueError, "overlaps must satisfy 0 <= overlap < tile"),
    ("window_table/overlaps-negative", lambda: cp.window_table((4, 4), (-1, 2)), ValueError, "overlaps must satisfy 0 <= overlap < tile"),
    ("window_table/overlaps-bool", lambda: cp.window_table((4, 4), (True, 2)), TypeError, "overlaps must contain only ints"),
    ("window_table/overlaps-missing", lambda: cp.window_table((4, 4), None, "linear"), ValueError, "overlaps is required for window='linear'"),
    ("window_table/window-unknown", lambda: cp.window_table((4, 4), (2, 2), "box"), ValueError, "window must be one of"),
    # -- patching strategies (the same constructor mistakes for each) -------------------------------
    *[
        row
        for name in ("RandomPatching", "FixedRandomPatching", "StratifiedPatching", "SequentialPatching", "TiledPatching", "WholeSamplePatching")
        for row in [
            (f"{name}/data_shapes-int", lambda name=name: patching(name, data_shapes=5), TypeError, "data_shapes must be a sequence of SC(Z)YX shapes"),
            (f"{name}/data_shapes-empty", lambda name=name: patching(name, data_shapes=[]), ValueError, "data_shapes must not be empty"),
            (f"{name}/data_shapes-3-entries", lambda name=name: patching(name, data_shapes=[(1, 16, 16)]), ValueError, "data_shapes[0] must be SCYX or SCZYX"),
            (f"{name}/data_shapes-zero", lambda name=name: patching(name, data_shapes=[(1, 1, 0, 16)]), ValueError, "data_shapes[0] entries must be >= 1"),
            (f"{name}/data_shapes-float", lambda name=name: patching(name, data_shapes=[(1, 1, 16.0, 16)]), TypeError, "data_shapes[0] must contain only ints"),
            (f"{name}/data_shapes-bool", lambda name=name: patching(name, data_shapes=[(True, 1, 16, 16)]), TypeError, "data_shapes[0] must contain only ints"),
            (f"{name}/data_shapes-2**62", lambda name=name: patching(name, data_shapes=[(1, 1, 2**62, 16)]), ValueError, "data_shapes[0] entries must be below 2**60"),
            (f"{name}/data_shapes-2**60", lambda name=name: patching(name, data_shapes=[(1, 1, 16, 2**60)]), ValueError, "data_shapes[0] entries must be below 2**60"),
            (f"{name}/data_shapes-mixed-ndim", lambda name=name: patching(name, data_shapes=[(1, 1, 16, 16), (1, 1, 4, 16, 16)]), ValueError, "data_shapes must all have the same number of spatial dimensions"),
        ]
    ],
    *[
        row
        for name in ("RandomPatching", "FixedRandomPatching", "StratifiedPatching", "SequentialPatching", "TiledPatching")
        for row in [
            (f"{name}/patch_size-length", lambda name=name: patching(name, patch_size=(4, 4, 4)), ValueError, "patch_size must have 2 entries"),
            (f"{name}/patch_size-zero", lambda name=name: patching(name, patch_size=(0, 4)), ValueError, "patch_size entries must be >= 1"),
            (f"{name}/patch_size-float", lambda name=name: patching(name, patch_size=(4.0, 4)), TypeError, "patch_size must contain only ints"),
            (f"{name}/patch_size-bool", lambda name=name: patching(name, patch_size=(True, 4)), TypeError, "patch_size must contain only ints"),
            (f"{name}/patch_size-string", lambda name=name: patching(name, patch_size="44"), TypeError, "patch_size must be a sequence of ints"),
            (f"{name}/patch_size-row-limit", lambda name=name: patching(name, patch_size=(4, 2**31)), ValueError, "patch_size[1] (the X extent) must be at most 2**30"),
            (f"{name}/patch_size-extent-limit", lambda name=name: patching(name, patch_size=(2**62, 4)), ValueError, "patch_size[0] must be below 2**60"),
        ]
    ],
    *[
        row
        for name in ("RandomPatching", "FixedRandomPatching", "StratifiedPatching")
        for row in [
            (f"{name}/seed-negative", lambda name=name: patching(name, seed=-1), ValueError, "seed must be in [0, 2**64), got -1"),
            (f"{name}/seed-2**64", lambda name=name: patching(name, seed=2**64), ValueError, "seed must be in [0, 2**64)"),
            (f"{name}/seed-float", lambda name=name: patching(name, seed=1.5), TypeError, "seed must be an integer, got 1.5 (float)"),
            (f"{name}/seed-bool", lambda name=name: patching(name, seed=True), TypeError, "seed must be an integer, got True"),
            (f"{name}/seed-string", lambda name=name: patching(name, seed="1"), TypeError, "seed must be an integer, got '1' (str)"),
        ]
    ],
    *[
        row
        for name in ("SequentialPatching", "TiledPatching")
        for row in [
            (f"{name}/overlaps-as-large-as-patch", lambda name=name: patching(name, overlaps=(4, 2)), ValueError, "overlaps[0] must be smaller than patch_size[0] (4), got 4"),
            (f"{name}/overlaps-negative", lambda name=name: patching(name, overlaps=(-1, 2)), ValueError, "overlaps entries must be >= 0"),
            (f"{name}/overlaps-length", lambda name=name: patching(name, overlaps=(2,)), ValueError, "overlaps must have 2 entries"),
            (f"{name}/overlaps-float", lambda name=name: patching(name, overlaps=(2.0, 2)), TypeError, "overlaps must contain only ints"),
        ]
    ],
    ("TiledPatching/overlaps-missing", lambda: cp.TiledPatching(SHAPES, (4, 4), None), TypeError, "overlaps is required for TiledPatching"),
    ("SequentialPatching/image-smaller-than-patch", lambda: patching("SequentialPatching", patch_size=(32, 4)), ValueError, "patch_size[0] (32) is larger than axis 0 of data_shapes[0]"),
    ("RandomPatching/too-many-patches", lambda: cp.RandomPatching([(1, 1, 2**40, 2**40)], (1, 1), seed=0), ValueError, "more than int64 indices can number"),
    ("RandomPatching/too-many-patches-3d", lambda: cp.RandomPatching([(1, 1, 2**21, 2**21, 2**21)], (1, 1, 1), seed=0), ValueError, "give 9223372036854775808 patches"),
    ("FixedRandomPatching/too-many-patches", lambda: cp.FixedRandomPatching([(4, 1, 2**31, 2**31)], (1, 1), seed=0), ValueError, "more than int64 indices can number"),
    ("StratifiedPatching/too-many-regions", lambda: cp.StratifiedPatching([(1, 1, 2**40, 2**40)], (1, 1), seed=0), ValueError, "data_shapes[0] (spatial shape (1099511627776, 1099511627776)) with patch_size (1, 1) has"),
    ("WeightedPatching/all-zero", lambda: cp.WeightedPatching(SHAPES, (4, 4), np.zeros((16, 16))), ValueError, "weights are 0 everywhere"),
    ("WeightedPatching/negative", lambda: cp.WeightedPatching(SHAPES, (4, 4), -np.ones((16, 16))), ValueError, "weights[0] must be >= 0"),
    ("WeightedPatching/nan", lambda: cp.WeightedPatching(SHAPES, (4, 4), np.full((16, 16), math.nan)), ValueError, "weights[0] must be finite"),
    ("WeightedPatching/shape", lambda: cp.WeightedPatching(SHAPES, (4, 4), np.ones((5, 16))), ValueError, "weights[0] of spatial shape (5, 16) does not fit the image of spatial shape (16, 16)"),
    ("WeightedPatching/divisor", lambda: cp.WeightedPatching(SHAPES, (4, 4), np.ones((8, 8)), divisor=4), ValueError, "divisor (4, 4) does not fit weights[0]"),
    ("WeightedPatching/not-an-array", lambda: cp.WeightedPatching(SHAPES, (4, 4), "mask.npy"), TypeError, "weights must be an array or a list of arrays"),
    # -- strategy methods ---------------------------------------------------------------------------
    *[
        row
        for name in ("RandomPatching", "FixedRandomPatching", "StratifiedPatching", "SequentialPatching", "TiledPatching", "WholeSamplePatching")
        for row in [
            (f"{name}/spec_table-negative", lambda name=name: patching(name).spec_table([-1]), IndexError, "indices contains -1, out of range"),
            (f"{name}/spec_table-too-large", lambda name=name: patching(name).spec_table([10**6]), IndexError, "indices contains 1000000, out of range"),
            (f"{name}/spec_table-float", lambda name=name: patching(name).spec_table([0.5]), TypeError, "indices must be integers, got dtype float64"),
            (f"{name}/spec_table-bool", lambda name=name: patching(name).spec_table([True]), TypeError, "indices must be integers, got dtype bool"),
            (f"{name}/spec_table-2d", lambda name=name: patching(name).spec_table([[0, 1]]), ValueError, "indices must be a scalar or 1-D"),
            (f"{name}/get_patch_spec-bool", lambda name=name: patching(name).get_patch_spec(True), TypeError, "index must be an integer, got True"),
            (f"{name}/get_patch_spec-float", lambda name=name: patching(name).get_patch_spec(0.0), TypeError, "index must be an integer, got 0.0"),
            (f"{name}/get_patch_spec-negative", lambda name=name: patching(name).get_patch_spec(-1), IndexError, "index -1 out of range"),
            (f"{name}/get_patch_indices-range", lambda name=name: patching(name).get_patch_indices(1), IndexError, "data_idx 1 out of range for 1 image stacks"),
            (f"{name}/set_epoch-negative", lambda name=name: patching(name).set_epoch(-1), ValueError, "epoch must be in [0, 2**63), got -1"),
            (f"{name}/set_epoch-float", lambda name=name: patching(name).set_epoch(1.5), TypeError, "epoch must be an integer, got 1.5"),
            (f"{name}/set_epoch-bool", lambda name=name: patching(name).set_epoch(True), TypeError, "epoch must be an integer, got True"),
        ]
    ],
    ("WholeSamplePatching/patch_size_of-out-of-range", lambda: patching("WholeSamplePatching").patch_size_of(5), IndexError, "data_idx 5 out of range for 1 image stacks (valid: 0 <= data_idx < 1)"),
    ("WholeSamplePatching/patch_size_of-negative", lambda: patching("WholeSamplePatching").patch_size_of(-1), IndexError, "data_idx -1 out of range"),
    ("WholeSamplePatching/patch_size_of-float", lambda: patching("WholeSamplePatching").patch_size_of(0.0), TypeError, "data_idx must be an integer"),
    ("TiledPatching/axis_tiles-out-of-range", lambda: patching("TiledPatching").axis_tiles(1), IndexError, "data_idx 1 out of range"),
    ("TiledPatching/total_tiles-bool", lambda: patching("TiledPatching").total_tiles(True), TypeError, "data_idx must be an integer"),
    ("StratifiedPatching/grid_shape-out-of-range", lambda: stratified().grid_shape(2), IndexError, "data_idx 2 out of range"),
    ("StratifiedPatching/exclude_patches-width", lambda: stratified().exclude_patches(0, 0, [(0, 0, 0), (1, 1, 1)]), ValueError, "grid_coords must be a sequence of 2-tuples of ints (grid coordinates), got shape (2, 3)"),
    ("StratifiedPatching/exclude_patches-int", lambda: stratified().exclude_patches(0, 0, 5), TypeError, "grid_coords must be a sequence of 2-tuples"),
    ("StratifiedPatching/exclude_patches-float", lambda: stratified().exclude_patches(0, 0, [(0.5, 0)]), TypeError, "grid_coords must be integer grid coordinates"),
    ("StratifiedPatching/exclude_patches-outside-grid", lambda: stratified().exclude_patches(0, 0, [(4, 0)]), ValueError, "grid_coords contains (4, 0), outside the grid (4, 4)"),
    ("StratifiedPatching/exclude_patches-sample", lambda: stratified().exclude_patches(0, 1, [(0, 0)]), IndexError, "sample_idx 1 out of range for 1 samples of data_idx 0"),
    ("StratifiedPatching/set_region_probs-string", lambda: stratified().set_region_probs(0, 0, {(0, 0): "high"}), ValueError, "probs values must be numbers in [0, 1]"),
    ("StratifiedPatching/set_region_probs-range", lambda: stratified().set_region_probs(0, 0, {(0, 0): 1.5}), ValueError, "probs values must lie in [0, 1]"),
    ("StratifiedPatching/set_region_probs-nan", lambda: stratified().set_region_probs(0, 0, {(0, 0): math.nan}), ValueError, "probs values must lie in [0, 1]"),
    ("StratifiedPatching/set_region_probs-shape", lambda: stratified().set_region_probs(0, 0, np.ones((2, 2))), ValueError, "probs must be a dict or an array of the grid shape (4, 4)"),
    ("StratifiedPatching/set_region_probs-keys", lambda: stratified().set_region_probs(0, 0, {(0,): 0.5}), ValueError, "probs keys must be a sequence of 2-tuples"),
    # -- FixedPatching, PatchSpecs, TileSpecs ----------------------------------------------------
    ("FixedPatching/specs-dict", lambda: cp.FixedPatching(PATCH_SPEC), TypeError, "specs must be a sequence of PatchSpecs dicts, got dict"),
    ("FixedPatching/specs-empty", lambda: cp.FixedPatching([]), ValueError, "specs must not be empty"),
    ("FixedPatching/specs-entry-int", lambda: cp.FixedPatching([5]), TypeError, "specs[0] must be a PatchSpecs dict, got int"),
    ("FixedPatching/patch_size-mismatch", lambda: cp.FixedPatching([PATCH_SPEC, {**PATCH_SPEC, "patch_size": (8, 8)}]), ValueError, "all specs of a FixedPatching must share one patch size"),
    ("FixedPatching/get_patch_indices-negative", lambda: cp.FixedPatching([PATCH_SPEC]).get_patch_indices(-1), IndexError, "data_idx must be >= 0, got -1"),
    ("FixedPatching/spec_table-out-of-range", lambda: cp.FixedPatching([PATCH_SPEC]).spec_table([1]), IndexError, "indices contains 1, out of range for 1 patches"),
    ("PatchSpecs/missing-field", lambda: cp.FixedPatching([{"data_idx": 0, "coords": (0, 0), "patch_size": (4, 4)}]), ValueError, "specs[0] lacks the field(s) ['sample_idx']"),
    ("PatchSpecs/coords-int", lambda: cp.FixedPatching([{**PATCH_SPEC, "coords": 5}]), TypeError, "specs[0]['coords'] must be a sequence of ints"),
    ("PatchSpecs/coords-length", lambda: cp.FixedPatching([{**PATCH_SPEC, "coords": (0, 0, 0, 0)}]), ValueError, "specs[0]['coords'] must have 2 or 3 entries"),
    ("PatchSpecs/coords-float", lambda: cp.FixedPatching([{**PATCH_SPEC, "coords": (0.5, 0)}]), TypeError, "specs[0]['coords'] must contain only ints"),
    ("PatchSpecs/data_idx-float", lambda: cp.FixedPatching([{**PATCH_SPEC, "data_idx": 0.0}]), TypeError, "specs[0]['data_idx'] must be an integer"),
    ("PatchSpecs/sample_idx-bool", lambda: cp.FixedPatching([{**PATCH_SPEC, "sample_idx": False}]), TypeError, "specs[0]['sample_idx'] must be an integer"),
    ("PatchSpecs/patch_size-zero", lambda: cp.FixedPatching([{**PATCH_SPEC, "patch_size": (0, 4)}]), ValueError, "specs[0]['patch_size'] entries must be >= 1"),
    ("TileSpecs/crop_size-length", lambda: cp.FixedPatching([{**TILE_SPEC, "crop_size": (1, 1, 1)}]), ValueError, "specs[0]['crop_size'] must have 2 entries"),
    ("TileSpecs/stitch_coords-float", lambda: cp.FixedPatching([{**TILE_SPEC, "stitch_coords": (0.0, 0)}]), TypeError, "specs[0]['stitch_coords'] must contain only ints"),
    ("TileSpecs/total_tiles-float", lambda: cp.FixedPatching([{**TILE_SPEC, "total_tiles": 9.0}]), TypeError, "specs[0]['total_tiles'] must be an integer"),
    ("is_tile_specs/int", lambda: cp.is_tile_specs(5), TypeError, "spec must be a PatchSpecs or TileSpecs dict, got int"),
    ("is_tile_specs/list", lambda: cp.is_tile_specs(["crop_coords", "crop_size", "stitch_coords"]), TypeError, "spec must be a PatchSpecs or TileSpecs dict, got list"),
    ("Patching/not-a-strategy", lambda: dataset(patching=object()), TypeError, "patching must be a patching strategy (missing 'spec_table')"),
    ("Patching/factory-returns-junk", lambda: dataset(patching=lambda shapes: 5), TypeError, "patching must be a patching strategy (missing 'spec_table'), got int"),
    ("Patching/wrong-ndim", lambda: dataset(patching=cp.RandomPatching([(1, 1, 4, 16, 16)], (4, 4, 4), seed=0)), ValueError, "patching is 3-D but the stacks have 2 spatial dimensions"),
    ("Patching/other-shapes", lambda: dataset(patching=cp.RandomPatching([(1, 1, 8, 8)], (4, 4), seed=0)), ValueError, "patching was built for shapes"),
    # -- regions -----------------------------------------------------------------------------------
    ("ImageRegionData/from_model_output-not-a-region", lambda: cp.ImageRegionData.from_model_output(5, DATA), TypeError, "input_region must be an ImageRegionData, got int"),
    ("ImageRegionData/from_model_output-tuple", lambda: cp.ImageRegionData.from_model_output((1, 2, 3), DATA), TypeError, "input_region must be an ImageRegionData, got tuple"),
    ("collate_regions/none", lambda: cp.collate_regions(None), TypeError, "regions must be a sequence of ImageRegionData, got NoneType"),
    ("collate_regions/one-region", lambda: cp.collate_regions(region()), TypeError, "regions must be a sequence of ImageRegionData, got ImageRegionData"),
    ("collate_regions/empty", lambda: cp.collate_regions([]), ValueError, "regions must not be empty"),
    ("collate_regions/items-of-different-roles", lambda: cp.collate_regions([(region(),), (region(), region())]), TypeError, "regions[1] must be a dataset item of 1 ImageRegionData like regions[0], got tuple of length 2"),
    ("collate_regions/entry-int", lambda: cp.collate_regions([5]), TypeError, "regions[0] must be an ImageRegionData, got int"),
    ("collate_regions/data-list", lambda: cp.collate_regions([region()._replace(data=[1, 2])]), TypeError, "cannot collate region data of type list (regions[0].data)"),
    ("collate_regions/shapes-differ", lambda: cp.collate_regions([region(), region()._replace(data=np.zeros((1, 2, 2)))]), ValueError, "regions have different data shapes"),
    ("decollate_regions/list", lambda: cp.decollate_regions([1, 2]), TypeError, "batch must be a collated ImageRegionData (from collate_regions or PatchDataset.get_batch), got list"),
    ("decollate_regions/data-shorter-than-metadata", lambda: cp.decollate_regions(batch()._replace(data=batch().data[:1])), ValueError, "batch.data describes 1 regions but batch.source lists 2"),
    ("decollate_regions/source-shorter", lambda: cp.decollate_regions(batch()._replace(source=["array"])), ValueError, "batch.data describes 2 regions but batch.source lists 1"),
    ("decollate_regions/spec-field-shorter", lambda: cp.decollate_regions(batch()._replace(region_spec={**batch().region_spec, "data_idx": np.zeros(1, np.int64)})), ValueError, "batch.region_spec['data_idx'] describes 1 regions"),
    ("decollate_regions/region_spec-list", lambda: cp.decollate_regions(batch()._replace(region_spec=[])), TypeError, "batch.region_spec must be a dict of collated fields"),
    ("decollate_regions/source-string", lambda: cp.decollate_regions(batch()._replace(source="array")), TypeError, "batch.source must be a list or array with one entry per region"),
    ("decollate_regions/data-list", lambda: cp.decollate_regions(batch()._replace(data=[1, 2])), TypeError, "batch.data must be an array"),
    # -- stacks ------------------------------------------------------------------------------------
    ("as_stack/none", lambda: cp.as_stack(None, "YX"), TypeError, "cannot build an image stack from NoneType"),
    ("as_stack/axes-missing", lambda: cp.as_stack(DATA), ValueError, "axes is required to build a stack from ndarray: it carries no axes metadata"),
    ("as_stack/axes-unknown", lambda: cp.as_stack(DATA, "YQ"), ValueError, "axes 'YQ' contains unknown axis letter(s) ['Q']"),
    ("as_stack/axes-int", lambda: cp.as_stack(DATA, 5), TypeError, "axes must be a string such as 'SYX', got int"),
    ("as_stack/axes-length", lambda: cp.as_stack(DATA, "SYX"), ValueError, "axes 'SYX' has 3 letters but the data has 2"),
    ("as_stack/axes-repeated", lambda: cp.as_stack(DATA, "YY"), ValueError, "axes 'YY' repeats an axis letter"),
    ("as_stack/placement-unknown", lambda: cp.as_stack(DATA, "YX", placement="ram"), ValueError, "placement must be one of"),
    ("as_stack/dtype-complex", lambda: cp.as_stack(DATA.astype(np.complex64), "YX"), TypeError, "unsupported dtype complex64"),
    ("as_stack/dtype-bool", lambda: cp.as_stack(DATA > 0, "YX"), TypeError, "unsupported dtype bool"),
    ("as_stack/npy-missing", lambda: cp.as_stack(os.path.join(_TMP, "missing.npy"), "YX"), FileNotFoundError, "missing.npy"),
    ("as_stack/npy-empty", lambda: cp.as_stack(npy("empty"), "YX"), ValueError, "empty.npy': the file is empty"),
    ("as_stack/npy-truncated", lambda: cp.as_stack(npy("truncated"), "YX"), ValueError, "cannot read .npy file"),
    ("as_stack/npy-bad-header", lambda: cp.as_stack(npy("header"), "YX"), ValueError, "header.npy'"),
    ("as_stack/npy-pickle", lambda: cp.as_stack(npy("pickle"), "YX"), ValueError, "pickle.npy': it is not in the .npy format"),
    ("as_stack/npy-objects", lambda: cp.as_stack(npy("objects"), "YX"), ValueError, "objects.npy'"),
    ("as_stack/png", lambda: cp.as_stack(npy("good").replace(".npy", ".png") if open(npy("good").replace(".npy", ".png"), "wb").close() is None else None, "YX"), ValueError, "unsupported file type"),
    ("as_stacks/empty-list", lambda: cp.as_stacks([], "YX"), ValueError, "objs is an empty list: no image sources given"),
    ("as_stacks/entry-none", lambda: cp.as_stacks([DATA, None], "YX"), TypeError, "cannot build an image stack from NoneType"),
    # -- normalisations --------------------------------------------------------------------------
    ("MeanStdNormalization/means-string", lambda: cp.MeanStdNormalization(means="abc"), ValueError, "means must be a finite number or a non-empty 1-D sequence of finite numbers, got 'abc'"),
    ("MeanStdNormalization/means-mixed", lambda: cp.MeanStdNormalization(means=[1, "a"]), ValueError, "means must be a finite number or a non-empty 1-D sequence"),
    ("MeanStdNormalization/means-nan", lambda: cp.MeanStdNormalization(means=[1.0, math.nan]), ValueError, "(means[1] is nan)"),
    ("MeanStdNormalization/means-bool", lambda: cp.MeanStdNormalization(means=True), ValueError, "means must be a finite number"),
    ("MeanStdNormalization/means-nested", lambda: cp.MeanStdNormalization(means=[[1.0]]), ValueError, "means must be a finite number or a non-empty 1-D sequence"),
    ("MeanStdNormalization/means-empty", lambda: cp.MeanStdNormalization(means=[]), ValueError, "means must be a finite number or a non-empty 1-D sequence"),
    ("MeanStdNormalization/stds-inf", lambda: cp.MeanStdNormalization(stds=math.inf), ValueError, "stds must be a finite number"),
    ("MeanStdNormalization/stds-negative", lambda: cp.MeanStdNormalization(stds=[-1.0]), ValueError, "stds must be non-negative"),
    ("MeanStdNormalization/target_means-string", lambda: cp.MeanStdNormalization(target_means="0"), ValueError, "target_means must be a finite number"),
    ("MeanStdNormalization/per_channel-string", lambda: cp.MeanStdNormalization(per_channel="no"), TypeError, "per_channel must be True or False, got 'no' (str)"),
    ("MeanStdNormalization/skip_target-none", lambda: cp.MeanStdNormalization(skip_target=None), TypeError, "skip_target must be True or False, got None"),
    ("MinMaxNormalization/mins-string", lambda: cp.MinMaxNormalization(mins="abc"), ValueError, "mins must be a finite number"),
    ("MinMaxNormalization/maxes-nan", lambda: cp.MinMaxNormalization(maxes=math.nan), ValueError, "maxes must be a finite number"),
    ("MinMaxNormalization/mins-above-maxes", lambda: cp.MinMaxNormalization(mins=[2.0], maxes=[1.0]), ValueError, "mins must not exceed maxes"),
    ("MinMaxNormalization/per_channel-int", lambda: cp.MinMaxNormalization(per_channel=2), TypeError, "per_channel must be True or False, got 2"),
    ("QuantileNormalization/lower-string", lambda: cp.QuantileNormalization(lower="0.1"), ValueError, "lower must be a probability in [0, 1], got '0.1' (str)"),
    ("QuantileNormalization/lower-bool", lambda: cp.QuantileNormalization(lower=True), ValueError, "lower must be a probability in [0, 1], got True"),
    ("QuantileNormalization/upper-range", lambda: cp.QuantileNormalization(upper=1.5), ValueError, "upper must be a probability in [0, 1], got 1.5"),
    ("QuantileNormalization/upper-nan", lambda: cp.QuantileNormalization(upper=math.nan), ValueError, "upper must be a probability in [0, 1], got nan"),
    ("QuantileNormalization/lower-not-below-upper", lambda: cp.QuantileNormalization(lower=0.9, upper=0.1), ValueError, "quantile levels need 0 <= lower < upper <= 1"),
    ("QuantileNormalization/lower_values-string", lambda: cp.QuantileNormalization(lower_values="abc"), ValueError, "lower_values must be a finite number"),
    ("QuantileNormalization/skip_target-string", lambda: cp.QuantileNormalization(skip_target="True"), TypeError, "skip_target must be True or False"),
    ("NoNormalization/fit-array", lambda: NoNormalization().fit(DATA), TypeError, "stacks must be a list of image stacks, got ndarray"),
    ("NoNormalization/fit-int", lambda: NoNormalization().fit(5), TypeError, "stacks must be a list of image stacks, got int"),
    ("NoNormalization/fit-empty", lambda: NoNormalization().fit([]), ValueError, "fit needs at least one stack: stacks is empty"),
    ("MeanStdNormalization/fit-targets-empty", lambda: cp.MeanStdNormalization().fit([cp.as_stack(DATA, "YX")], targets=[], progress=False), ValueError, "targets is empty"),
    ("MeanStdNormalization/fit-channels", lambda: cp.MeanStdNormalization().fit([cp.as_stack(DATA, "YX")], channels=[5], progress=False), ValueError, "Channel index 5 in channels is out of bounds"),
    ("MeanStdNormalization/fit-progress-string", lambda: cp.MeanStdNormalization().fit([cp.as_stack(DATA, "YX")], progress="no"), TypeError, "progress must be True or False"),
    ("MeanStdNormalization/normalize-list", lambda: cp.MeanStdNormalization(1.0, 2.0).normalize([[1.0]]), TypeError, "x must be a NumPy or CuPy array with the channel axis at position 1, got list"),
    ("MeanStdNormalization/normalize-1d", lambda: cp.MeanStdNormalization(1.0, 2.0).normalize(np.zeros(3)), TypeError, "x must be a NumPy or CuPy array with the channel axis at position 1, got ndarray of shape (3,)"),
    ("MeanStdNormalization/normalize-unfitted", lambda: cp.MeanStdNormalization().normalize(np.zeros((1, 1, 2, 2))), ValueError, "MeanStdNormalization is not fitted"),
    ("MeanStdNormalization/input_scale_shift-zero", lambda: cp.MeanStdNormalization(1.0, 2.0).input_scale_shift(0), ValueError, "n_channels must be in [1, 2**24 + 1"),
    ("MeanStdNormalization/input_scale_shift-huge", lambda: cp.MeanStdNormalization(1.0, 2.0).input_scale_shift(2**62), ValueError, "n_channels must be in [1, 2**24 + 1"),
    ("MeanStdNormalization/target_scale_shift-huge", lambda: cp.MeanStdNormalization(1.0, 2.0).target_scale_shift(2**24 + 1), ValueError, "n_channels must be in [1, 2**24 + 1"),
    ("MeanStdNormalization/input_scale_shift-float", lambda: cp.MeanStdNormalization(1.0, 2.0).input_scale_shift(2.5), TypeError, "n_channels must be an integer"),
    ("MeanStdNormalization/input_scale_shift-length", lambda: cp.MeanStdNormalization([1.0, 2.0], [1.0, 1.0]).input_scale_shift(3), ValueError, "has 2 entries but there are 3 channels"),
    ("MeanStdNormalization/denormalize-1d", lambda: cp.MeanStdNormalization(1.0, 2.0).denormalize(np.zeros(3)), ValueError, "denormalize expects an array with the channel axis at position 1"),
    ("MeanStdNormalization/denormalize-none", lambda: cp.MeanStdNormalization(1.0, 2.0).denormalize(None), TypeError, "x must be a NumPy, CuPy or torch array with the channel axis at position 1, got NoneType"),
    # -- augmentations -----------------------------------------------------------------------------
    ("Augmentations/p_flip-range", lambda: cp.Augmentations(p_flip=1.5), ValueError, "p_flip must be a probability in [0, 1], got 1.5"),
    ("Augmentations/p_flip-string", lambda: cp.Augmentations(p_flip="0.5"), ValueError, "p_flip must be a probability in [0, 1], got '0.5' (str)"),
    ("Augmentations/p_rot90-nan", lambda: cp.Augmentations(p_rot90=math.nan), ValueError, "p_rot90 must be a probability in [0, 1], got nan"),
    ("Augmentations/flip-string", lambda: cp.Augmentations(flip="yes"), TypeError, "flip must be True or False, got 'yes' (str)"),
    ("Augmentations/rot90-list", lambda: cp.Augmentations(rot90=[]), TypeError, "rot90 must be True or False, got []"),
    ("Augmentations/flip_axes-unknown", lambda: cp.Augmentations(flip_axes="Z"), ValueError, 'flip_axes must be one of "YX", "XY", "Y", "X", got "Z"'),
    ("Augmentations/seed-negative", lambda: cp.Augmentations(seed=-1), ValueError, "seed must be in [0, 2**64), got -1"),
    ("Augmentations/seed-float", lambda: cp.Augmentations(seed=1.5), TypeError, "seed must be an integer, got 1.5"),
    ("Augmentations/draw-float-indices", lambda: cp.Augmentations(seed=0).draw([0.5]), TypeError, "indices must be integers, got dtype float64"),
    ("Augmentations/draw-epoch-float", lambda: cp.Augmentations(seed=0).draw([0], 1.5), TypeError, "epoch must be an integer, got 1.5"),
    ("Augmentations/draw-epoch-list", lambda: cp.Augmentations(seed=0).draw([0], [1]), TypeError, "epoch must be an integer, got [1]"),
    ("Augmentations/check_patch_size-non-square", lambda: cp.Augmentations(seed=0).check_patch_size((4, 8)), ValueError, "rot90 augmentation needs a square YX patch size"),
    ("Augmentations/check_patch_size-string", lambda: cp.Augmentations(seed=0).check_patch_size("ab"), TypeError, "patch_size must be a sequence of ints"),
    ("Augmentations/check_patch_size-length", lambda: cp.Augmentations(seed=0).check_patch_size((4,)), ValueError, "patch_size must have 2 or 3 entries"),
    # -- PatchDataset -------------------------------------------------------------------------------
    ("PatchDataset/inputs-empty", lambda: dataset(inputs=[]), ValueError, "inputs is an empty list"),
    ("PatchDataset/targets-empty", lambda: dataset(targets=[]), ValueError, "targets is an empty list: give at least one image (or targets=None for no targets)"),
    ("PatchDataset/targets-count", lambda: dataset(targets=[DATA, DATA]), ValueError, "got 1 input stacks but 2 target stacks"),
    ("PatchDataset/targets-shape", lambda: dataset(targets=np.zeros((8, 8), np.float32)), ValueError, "input/target shape mismatch for stack 0"),
    ("PatchDataset/inputs-zero-size", lambda: dataset(inputs=np.zeros((0, 16, 16), np.float32), axes="SYX"), ValueError, "inputs[0] is empty: its SC(Z)YX shape (0, 1, 16, 16) has an axis of length 0"),
    ("PatchDataset/inputs-none", lambda: dataset(inputs=None), TypeError, "cannot build an image stack from NoneType"),
    ("PatchDataset/axes-unknown", lambda: dataset(axes="YQ"), ValueError, "axes 'YQ' contains unknown axis letter(s)"),
    ("PatchDataset/target_axes-int", lambda: dataset(target_axes=5), TypeError, "target_axes must be a string such as 'SYX', got int"),
    ("PatchDataset/target_axes-unknown", lambda: dataset(target_axes="YQ"), ValueError, "target_axes 'YQ' contains unknown axis letter(s)"),
    ("PatchDataset/channels-out-of-range", lambda: dataset(channels=[3]), ValueError, "Channel index 3 in channels is out of bounds"),
    ("PatchDataset/channels-float", lambda: dataset(channels=[0.5]), TypeError, "channels must contain only ints"),
    ("PatchDataset/channels-empty", lambda: dataset(channels=[]), ValueError, "channels must not be empty"),
    ("PatchDataset/normalization-dict", lambda: dataset(normalization={"mean": 0}), TypeError, "normalization must be a cupatch.normalization.Normalization"),
    ("PatchDataset/augmentations-string", lambda: dataset(augmentations="flip"), TypeError, "augmentations must be a cupatch.augmentation.Augmentations"),
    ("PatchDataset/augmentations-non-square", lambda: dataset(patching=lambda s: cp.RandomPatching(s, (4, 8), seed=0), augmentations=cp.Augmentations(seed=0)), ValueError, "rot90 augmentation needs a square YX patch size"),
    ("PatchDataset/device-unknown", lambda: dataset(device="tpu"), ValueError, 'device must be one of "auto", "gpu", "cpu", got "tpu"'),
    ("PatchDataset/placement-unknown", lambda: dataset(placement="ram"), ValueError, "placement must be one of"),
    ("PatchDataset/placement-gpu-on-cpu", lambda: dataset(placement="gpu"), ValueError, "placement='gpu' needs device='gpu'"),
    ("PatchDataset/dtype-unsupported", lambda: dataset(dtype=np.int32), ValueError, "dtype must be one of"),
    ("PatchDataset/dtype-not-a-dtype", lambda: dataset(dtype="abc"), TypeError, "dtype 'abc' is not a valid dtype"),
    ("PatchDataset/dtype-bool", lambda: dataset(dtype=True), TypeError, "dtype True is not a valid dtype"),
    ("PatchDataset/progress-string", lambda: dataset(progress="no"), TypeError, "progress must be True or False, got 'no' (str)"),
    ("PatchDataset/patch-larger-than-image", lambda: dataset(patching=lambda s: cp.RandomPatching(s, (32, 32), seed=0)), ValueError, "Not all images sizes are greater or equal than the patch size"),
    ("PatchDataset/get_batch-out-of-range", lambda: DS.get_batch([99]), IndexError, "indices contains 99, out of range for 16 patches"),
    ("PatchDataset/get_batch-float", lambda: DS.get_batch([0.5]), TypeError, "indices must be integers, got dtype float64"),
    ("PatchDataset/getitem-float", lambda: DS[1.0], TypeError, "index must be an integer, got 1.0"),
    ("PatchDataset/getitem-negative", lambda: DS[-1], IndexError, "index -1 out of range for 16 patches"),
    ("PatchDataset/set_epoch-negative", lambda: DS.set_epoch(-1), ValueError, "epoch must be"),
    ("PatchDataset/set_epoch-string", lambda: DS.set_epoch("1"), TypeError, "epoch must be an integer, got '1' (str)"),
    # -- BatchLoader --------------------------------------------------------------------------------
    ("BatchLoader/dataset-list", lambda: cp.BatchLoader([1, 2, 3], 2), TypeError, "dataset must be a cupatch.PatchDataset (or have __len__, gather_arrays), got list without gather_arrays"),
    ("BatchLoader/dataset-without-get_batch", lambda: cp.BatchLoader(type("D", (), {"__len__": lambda s: 4, "gather_arrays": None})(), 2, return_regions=True), TypeError, "got D without get_batch"),
    ("BatchLoader/batch_size-zero", lambda: loader(batch_size=0), ValueError, "batch_size must be >= 1, got 0"),
    ("BatchLoader/batch_size-float", lambda: loader(batch_size=2.5), TypeError, "batch_size must be an integer, got 2.5"),
    ("BatchLoader/batch_size-bool", lambda: loader(batch_size=True), TypeError, "batch_size must be an integer, got True"),
    ("BatchLoader/rank-out-of-range", lambda: loader(rank=2, world_size=2), ValueError, "rank must be in [0, world_size=2), got 2"),
    ("BatchLoader/world_size-zero", lambda: loader(world_size=0), ValueError, "world_size must be >= 1, got 0"),
    ("BatchLoader/seed-required", lambda: loader(seed=None, world_size=2), ValueError, "seed is required when world_size > 1"),
    ("BatchLoader/seed-negative", lambda: loader(seed=-1), ValueError, "seed must be in [0, 2**64)"),
    ("BatchLoader/prefetch-negative", lambda: loader(prefetch=-1), ValueError, "prefetch must be >= 0, got -1"),
    ("BatchLoader/shuffle-string", lambda: loader(shuffle="False"), TypeError, "shuffle must be True or False, got 'False' (str)"),
    ("BatchLoader/drop_last-none", lambda: loader(drop_last=None), TypeError, "drop_last must be True or False, got None"),
    ("BatchLoader/return_regions-array", lambda: loader(return_regions=np.zeros(3)), TypeError, "return_regions must be True or False"),
    ("BatchLoader/as_torch-string", lambda: loader(as_torch="yes"), TypeError, "as_torch must be True or False"),
    ("BatchLoader/set_epoch-negative", lambda: loader().set_epoch(-1), ValueError, "epoch must be >= 0, got -1"),
    # -- predict_tiled ------------------------------------------------------------------------------
    ("predict_tiled/model-not-callable", lambda: predict(model=5), TypeError, "model must be callable"),
    ("predict_tiled/skip-mask-shape", lambda: predict(skip=np.ones((16, 15), bool)), ValueError, "skip (SC(Z)YX shape (1, 1, 16, 15)) of spatial shape (16, 15) does not fit the image of spatial shape (16, 16)"),
    ("predict_tiled/skip-type", lambda: predict(skip=3), TypeError, "skip must be a mask (array, stack or path), a callable on a batch of tiles, or an object with filter_out_batch"),
    ("predict_tiled/skip-returns", lambda: predict(skip=lambda t: [True]), ValueError, "skip must return one bool per tile"),
    ("predict_tiled/skip_value-inf", lambda: predict(skip=np.ones((16, 16), bool), skip_value=math.inf), ValueError, "skip_value must be a finite number or nan, got inf"),
    ("predict_tiled/data-empty-list", lambda: predict(data=[]), ValueError, "data is an empty list; give at least one image"),
    ("predict_tiled/data-none", lambda: predict(data=None), TypeError, "cannot build an image stack from NoneType"),
    ("predict_tiled/data-zero-size", lambda: predict(data=np.zeros((0, 8), np.float32)), ValueError, "data image 0 is empty: its SC(Z)YX shape (1, 1, 0, 8)"),
    ("predict_tiled/data-npy-empty", lambda: predict(data=npy("empty")), ValueError, "empty.npy': the file is empty"),
    ("predict_tiled/data-npy-truncated", lambda: predict(data=npy("truncated")), ValueError, "truncated.npy'"),
    ("predict_tiled/data-npy-pickle", lambda: predict(data=npy("pickle")), ValueError, "pickle.npy': it is not in the .npy format"),
    ("predict_tiled/data-npy-objects", lambda: predict(data=npy("objects")), ValueError, "objects.npy'"),
    ("predict_tiled/axes-unknown", lambda: predict(axes="YQ"), ValueError, "axes 'YQ' contains unknown axis letter(s)"),
    ("predict_tiled/axes-length", lambda: predict(axes="SYX"), ValueError, "axes 'SYX' has 3 letters but the data has 2"),
    ("predict_tiled/tile_size-zero", lambda: predict(tile_size=0), ValueError, "tile_size must be positive"),
    ("predict_tiled/tile_size-float", lambda: predict(tile_size=8.0), TypeError, "tile_size must be a sequence of ints, got 8.0 (float)"),
    ("predict_tiled/tile_size-bool", lambda: predict(tile_size=True), TypeError, "tile_size must be a sequence of ints, got True (bool)"),
    ("predict_tiled/tile_size-length", lambda: predict(tile_size=(8, 8, 8)), ValueError, "tile_size must have 2 entries"),
    ("predict_tiled/tile_size-row-limit", lambda: predict(tile_size=(8, 2**31), overlaps=0), ValueError, "tile_size[1] (the X extent) must be at most 2**30"),
    ("predict_tiled/overlap-as-large-as-tile", lambda: predict(overlaps=8), ValueError, "overlaps (8, 8) must be smaller than tile_size (8, 8)"),
    ("predict_tiled/overlap-odd-crop", lambda: predict(overlaps=3), ValueError, "overlaps must be even in crop mode"),
    ("predict_tiled/overlap-negative", lambda: predict(overlaps=-2), ValueError, "overlaps must be non-negative"),
    ("predict_tiled/axes-missing-for-an-array", lambda: predict(axes=None), ValueError, "axes is required to build a stack from ndarray: it carries no axes metadata"),
    ("predict_tiled/overlaps-missing", lambda: predict(overlaps=None), TypeError, "predict_tiled() missing required argument 'overlaps'"),
    ("predict_tiled/overlaps-and-deprecated-overlap", lambda: predict(overlap=2), TypeError, "got both 'overlaps' and its deprecated alias 'overlap'"),
    ("predict_tiled/overlap-float", lambda: predict(overlaps=2.0), TypeError, "overlaps must be a sequence of ints, got 2.0 (float)"),
    ("predict_tiled/batch_size-zero", lambda: predict(batch_size=0), ValueError, "batch_size must be >= 1, got 0"),
    ("predict_tiled/batch_size-float", lambda: predict(batch_size=2.5), TypeError, "batch_size must be an integer"),
    ("predict_tiled/blend-unknown", lambda: predict(blend="max"), ValueError, 'blend must be one of "crop", "blend", "linear", "hann", "gaussian", "uniform", got "max"'),
    ("predict_tiled/window-unknown", lambda: predict(blend="blend", window="box"), ValueError, "window must be one of"),
    ("predict_tiled/window-with-crop", lambda: predict(window="hann"), ValueError, "window='hann' needs a blended mode"),
    ("predict_tiled/blend-window-disagree", lambda: predict(blend="linear", window="hann"), ValueError, "blend='linear' and window='hann' disagree"),
    ("predict_tiled/channels-out-of-range", lambda: predict(channels=[3]), ValueError, "Channel index 3 in channels is out of bounds"),
    ("predict_tiled/channels-float", lambda: predict(channels=[0.5]), TypeError, "channels must contain only ints"),
    ("predict_tiled/normalization-dict", lambda: predict(normalization={"mean": 0}), TypeError, "normalization must be a cupatch.normalization.Normalization"),
    ("predict_tiled/target_axes-int", lambda: predict(target_axes=5), TypeError, "target_axes must be a string such as 'SYX', got int"),
    ("predict_tiled/device-unknown", lambda: predict(device="tpu"), ValueError, 'device must be one of "auto", "cpu", "gpu", got "tpu"'),
    ("predict_tiled/progress-string", lambda: predict(progress="no"), TypeError, "progress must be True or False"),
    ("predict_tiled/overwrite-string", lambda: predict(overwrite="yes"), TypeError, "overwrite must be True or False"),
    ("predict_tiled/max_gpu_bytes-string", lambda: predict(max_gpu_bytes="1e9"), TypeError, "max_gpu_bytes must be a number of bytes"),
    ("predict_tiled/max_gpu_bytes-bool", lambda: predict(max_gpu_bytes=True), TypeError, "max_gpu_bytes must be a number of bytes"),
    ("predict_tiled/max_gpu_bytes-zero", lambda: predict(max_gpu_bytes=0), ValueError, "max_gpu_bytes must be positive"),
    ("predict_tiled/max_gpu_bytes-nan", lambda: predict(max_gpu_bytes=math.nan), ValueError, "max_gpu_bytes must be positive"),
    ("predict_tiled/out-int", lambda: predict(out=42), TypeError, "out must be None, a path"),
    ("predict_tiled/model-changes-channels", lambda: predict(model=channel_changing_model(), tile_size=4, overlaps=0, batch_size=2), ValueError, "model returned 2 channels for batch 1 (output shape (2, 2, 4, 4)) but 1 for batch 0"),
    ("predict_tiled/model-changes-spatial-shape", lambda: predict(model=lambda x: x[..., :4]), ValueError, "changed the spatial shape"),
    ("predict_tiled/model-returns-list", lambda: predict(model=lambda x: [x]), TypeError, "returned list; expected an array"),
    ("predict_tiled/model-returns-1d", lambda: predict(model=lambda x: x.reshape(-1)), ValueError, "expected 4 dimensions (B, C, Y, X)"),
    ("predict_tiled/model-batch-size", lambda: predict(model=lambda x: x[:1]), ValueError, "returned batch size 1 for a batch of"),
    ("predict_tiled/model-no-channels", lambda: predict(model=lambda x: x[:, :0]), ValueError, "returned no channels"),
    # -- build_info, gpu_available (no arguments) ------------------------------------------------
    ("build_info/argument", lambda: cp.build_info(1), TypeError, "positional argument"),
    ("gpu_available/argument", lambda: cp.gpu_available(1), TypeError, "positional argument"),
    # -- background filters and the validation split ----------------------------------------------
    ("MaxPatchFilter/threshold-nan", lambda: cp.MaxPatchFilter(math.nan), ValueError, "threshold must be a finite number, got nan"),
    ("MaxPatchFilter/coverage-range", lambda: cp.MaxPatchFilter(1.0, 1.5), ValueError, "coverage must be a probability in [0, 1], got 1.5"),
    ("MaxPatchFilter/regions-channels", lambda: cp.MaxPatchFilter(1.0).filter_out_batch(np.zeros((1, 2, 4, 4))), ValueError, "regions must have shape (B, 1, *spatial) (one channel), got (1, 2, 4, 4)"),
    ("MaxPatchFilter/regions-list", lambda: cp.MaxPatchFilter(1.0).filter_out_batch([[[[0.0]]]]), TypeError, "regions must be a NumPy or CuPy array"),
    ("MeanStdPatchFilter/mean-negative", lambda: cp.MeanStdPatchFilter(-1.0), ValueError, "mean_threshold must be a finite number >= 0, got -1.0"),
    ("MeanStdPatchFilter/std-negative", lambda: cp.MeanStdPatchFilter(1.0, -1.0), ValueError, "std_threshold must be a finite number >= 0, got -1.0"),
    ("ShannonPatchFilter/negative", lambda: cp.ShannonPatchFilter(-0.5), ValueError, "threshold must be a finite number >= 0, got -0.5"),
    ("MaskPatchFilter/coverage-string", lambda: cp.MaskPatchFilter("0.5"), ValueError, "coverage must be a probability in [0, 1], got '0.5' (str)"),
    ("filter_background/strategy", lambda: cp.filter_background(patching("RandomPatching"), [DATA], cp.MaxPatchFilter(1.0), axes="YX"), TypeError, "strategy must be a StratifiedPatching"),
    ("filter_background/filter", lambda: cp.filter_background(stratified(), [DATA], identity, axes="YX"), TypeError, "patch_filter must be a patch filter with filter_out_batch"),
    ("filter_background/prob", lambda: cp.filter_background(stratified(), [DATA], cp.MaxPatchFilter(1.0), axes="YX", filtered_patch_prob=2), ValueError, "filtered_patch_prob must be a probability in [0, 1], got 2"),
    ("filter_background/ref_channel", lambda: cp.filter_background(stratified(), [DATA], cp.MaxPatchFilter(1.0), axes="YX", ref_channel=1), ValueError, "ref_channel"),
    ("filter_background/shape", lambda: cp.filter_background(stratified(), [DATA[:8]], cp.MaxPatchFilter(1.0), axes="YX"), ValueError, "data[0] has SC(Z)YX shape (1, 1, 8, 16) but the strategy's data_shapes[0] is (1, 1, 16, 16)"),
    ("filter_background/batch_size", lambda: cp.filter_background(stratified(), [DATA], cp.MaxPatchFilter(1.0), axes="YX", batch_size=0), ValueError, "batch_size must be >= 1, got 0"),
    ("create_val_split/too-many", lambda: cp.create_val_split(stratified(), 16, seed=0), ValueError, "n_val_patches must be below the number of training patches: got 16"),
    ("create_val_split/zero", lambda: cp.create_val_split(stratified(), 0, seed=0), ValueError, "n_val_patches must be >= 1, got 0"),
    ("create_val_split/float", lambda: cp.create_val_split(stratified(), 1.0, seed=0), TypeError, "n_val_patches must be an integer"),
    ("create_val_split/strategy", lambda: cp.create_val_split(patching("RandomPatching"), 1, seed=0), TypeError, "strategy must be a StratifiedPatching"),
    ("create_val_split/seed-negative", lambda: cp.create_val_split(stratified(), 1, seed=-1), ValueError, "seed must be >= 0, got -1"),
]


# ---------------------------------------------------------------------------------------------
# accepted edge cases: (id, call, check of the result)


def _shape(expected):
    return lambda result: tuple(result.shape) == expected


def _zeros(result):
    return not np.any(result)


def _is_none(result):
    return result is None


def _stitch_zero_tiles(mode):
    outputs = output()
    kwargs = {}
    if mode == "blend":
        kwargs = {"weights": [np.zeros((1, 1, 8, 8), np.float32)], "window_table": cp.window_table((4, 4), (2, 2))}
    cp.stitch_tiles(np.zeros((0, 2, 4, 4), np.float32), [], outputs, mode=mode, **kwargs)
    return outputs[0]


def _accumulate_zero_tiles():
    acc = accumulator()
    acc.add(np.zeros((0, 2, 4, 4), np.float32), [])
    return acc.finalize()[0]


def _npy_stack():
    return cp.as_stack(npy("good"), "YX")


ACCEPTED = [
    ("gather_patches/empty-batch-list", lambda: gather(specs=[]), _shape((0, 2, 4, 4))),
    ("gather_patches/empty-batch-float-table", lambda: gather(specs=np.empty((0, 4))), _shape((0, 2, 4, 4))),
    ("gather_patches/empty-batch-with-channels", lambda: gather(specs=[], channels=[1]), _shape((0, 1, 4, 4))),
    ("gather_patches/channels-int", lambda: gather(channels=1), _shape((1, 1, 4, 4))),
    ("gather_patches/patch_size-int", lambda: gather(patch_size=4), _shape((1, 2, 4, 4))),
    ("gather_patches/coords-outside-image", lambda: gather(specs=[[0, 0, -100, 100]]), _zeros),
    ("gather_patches/coords-beyond-2**60", lambda: gather(specs=[[0, 0, 2**62, -(2**62)]]), _zeros),
    ("gather_patches/patch-larger-than-image", lambda: gather(patch_size=(16, 16)), _shape((1, 2, 16, 16))),
    ("gather_patches/rot90-even-non-square", lambda: gather(patch_size=(4, 6), rot90=[2]), _shape((1, 2, 4, 6))),
    ("gather_patches/flips-as-ints", lambda: gather(flip_y=[1], flip_x=[0]), _shape((1, 2, 4, 4))),
    ("gather_patches/patch_size-at-row-limit", lambda: cp.gather_patches([IMG], np.zeros((0, 4), np.int64), (1, 2**30)), _shape((0, 2, 1, 2**30))),
    ("SourceTable/zero-samples", lambda: len(cp.SourceTable([np.zeros((0, 1, 8, 8), np.float32)])), lambda n: n == 1),
    ("stitch_tiles/zero-tiles-crop", lambda: _stitch_zero_tiles("crop"), _zeros),
    ("stitch_tiles/zero-tiles-blend", lambda: _stitch_zero_tiles("blend"), _zeros),
    ("stitch_tiles/whole-tiling", lambda: stitch(), _is_none),
    ("BlendAccumulator/zero-tiles", _accumulate_zero_tiles, _zeros),
    ("BlendAccumulator/gaussian-without-overlaps", lambda: accumulator(overlaps=None, window="gaussian").tile_size, lambda t: t == (4, 4)),
    ("BlendAccumulator/sizes-int", lambda: accumulator(tile_size=4, overlaps=2).tile_size, lambda t: t == (4, 4)),
    ("window_table/overlaps-int", lambda: cp.window_table((4, 4), 2), _shape((2, 4, 4))),
    ("window_table/uniform-without-overlaps", lambda: cp.window_table((4, 4), None, "uniform"), _shape((2, 4, 4))),
    ("window_table/overlap-one-below-tile", lambda: cp.window_table((4, 4), (3, 3)), _shape((2, 4, 4))),
    ("RandomPatching/patch_size-int", lambda: cp.RandomPatching(SHAPES, 4, seed=0).patch_size, lambda p: p == (4, 4)),
    ("FixedPatching/patch_size-int", lambda: cp.FixedPatching([{**PATCH_SPEC, "patch_size": 4}]).patch_size, lambda p: p == (4, 4)),
    ("TiledPatching/sizes-int", lambda: cp.TiledPatching(SHAPES, 4, 2).spec_table([0]), _shape((1, 10))),
    ("RandomPatching/spec_table-empty", lambda: patching("RandomPatching").spec_table([]), _shape((0, 4))),
    ("RandomPatching/image-equals-patch", lambda: cp.RandomPatching([(1, 1, 4, 4)], (4, 4), seed=0).n_patches, lambda n: n == 1),
    ("RandomPatching/largest-extent", lambda: cp.RandomPatching([(1, 1, 2**60 - 1, 8)], (4, 4), seed=0).n_patches, lambda n: n == 2**58 * 2),
    ("RandomPatching/seed-2**64-1", lambda: patching("RandomPatching", seed=2**64 - 1).seed, lambda s: s == 2**64 - 1),
    ("FixedRandomPatching/spec_table-empty-float", lambda: patching("FixedRandomPatching").spec_table(np.array([], float)), _shape((0, 4))),
    ("StratifiedPatching/spec_table-scalar", lambda: patching("StratifiedPatching").spec_table(0), _shape((1, 4))),
    ("StratifiedPatching/exclude_patches-none", lambda: stratified().exclude_patches(0, 0, []), _is_none),
    ("SequentialPatching/overlaps-none", lambda: cp.SequentialPatching(SHAPES, (4, 4)).overlaps, lambda o: o == (0, 0)),
    ("TiledPatching/image-smaller-than-tile", lambda: cp.TiledPatching([(1, 1, 3, 5)], (8, 8), (2, 2)).n_patches, lambda n: n == 1),
    ("TiledPatching/spec_table-empty", lambda: patching("TiledPatching").spec_table([]), _shape((0, 10))),
    ("WholeSamplePatching/patch_size_of", lambda: patching("WholeSamplePatching").patch_size_of(0), lambda s: s == (16, 16)),
    ("WholeSamplePatching/set_epoch-largest", lambda: patching("WholeSamplePatching").set_epoch(2**63 - 1), _is_none),
    ("FixedPatching/negative-coords", lambda: cp.FixedPatching([{**PATCH_SPEC, "coords": (-2, -2)}]).spec_table([0]), lambda t: t.tolist() == [[0, 0, -2, -2]]),
    ("TileSpecs/fixed-tiles", lambda: cp.FixedPatching([TILE_SPEC]).spec_table([0]), _shape((1, 10))),
    ("PatchSpecs/numpy-ints", lambda: cp.FixedPatching([{**PATCH_SPEC, "data_idx": np.int64(0)}]).n_patches, lambda n: n == 1),
    ("is_tile_specs/patch-spec", lambda: cp.is_tile_specs(PATCH_SPEC), lambda r: r is False),
    ("Patching/strategy-instance", lambda: len(dataset(patching=cp.SequentialPatching([(1, 1, 16, 16)], (4, 4)))), lambda n: n == 16),
    ("ImageRegionData/from_model_output", lambda: cp.ImageRegionData.from_model_output(region(), np.zeros((3, 4, 4))).data.shape, lambda s: s == (3, 4, 4)),
    ("collate_regions/dataset-items", lambda: cp.collate_regions([DS[0], DS[1]])[0].data, _shape((2, 1, 4, 4))),
    ("collate_regions/one-item", lambda: cp.collate_regions([region()]).data, _shape((1, 1, 4, 4))),
    ("decollate_regions/empty-batch", lambda: cp.decollate_regions(DS.get_batch([])[0]), lambda r: r == []),
    ("decollate_regions/round-trip", lambda: len(cp.decollate_regions(batch())), lambda n: n == 2),
    ("as_stack/npy-path", _npy_stack, lambda s: s.source == npy("good") and s.data_shape == (1, 1, 16, 16)),
    ("as_stack/npy-path-disk", lambda: cp.as_stack(npy("good"), "YX", placement="disk").read_region(0, (0, 0), (2, 2)), _shape((1, 2, 2))),
    ("as_stack/lower-case-axes", lambda: cp.as_stack(DATA, "yx").original_axes, lambda a: a == "YX"),
    ("as_stacks/tuple", lambda: len(cp.as_stacks((DATA, DATA), "YX")), lambda n: n == 2),
    ("MeanStdNormalization/scalar-statistics", lambda: cp.MeanStdNormalization(1, 2).input_scale_shift(3)[0], _shape((3,))),
    ("MeanStdNormalization/numpy-bool-flag", lambda: cp.MeanStdNormalization(per_channel=np.bool_(False)).per_channel, lambda v: v is False),
    ("MeanStdNormalization/zero-std", lambda: cp.MeanStdNormalization(0.0, 0.0).fitted, lambda v: v is True),
    ("MinMaxNormalization/equal-range", lambda: cp.MinMaxNormalization(1.0, 1.0).fitted, lambda v: v is True),
    ("QuantileNormalization/full-range", lambda: cp.QuantileNormalization(0, 1).upper, lambda v: v == 1.0),
    ("NoNormalization/denormalize", lambda: NoNormalization().denormalize(np.ones((1, 1, 2, 2), np.float32)), _shape((1, 1, 2, 2))),
    ("Augmentations/draw-empty", lambda: cp.Augmentations(seed=0).draw([])[2], _shape((0,))),
    ("Augmentations/probability-bounds", lambda: cp.Augmentations(p_flip=0, p_rot90=1, seed=0).enabled, lambda v: v is True),
    ("Augmentations/flag-ints", lambda: cp.Augmentations(flip=1, rot90=0, seed=0).rot90, lambda v: v is False),
    ("Augmentations/check_patch_size-int", lambda: cp.Augmentations(seed=0).check_patch_size(16), _is_none),
    ("Augmentations/check_patch_size-none", lambda: cp.Augmentations(seed=0).check_patch_size(None), _is_none),
    ("PatchDataset/get_batch-empty", lambda: DS.get_batch([])[0].data, _shape((0, 1, 4, 4))),
    ("PatchDataset/channels-int", lambda: dataset(inputs=np.zeros((2, 16, 16), np.float32), axes="CYX", channels=1).n_channels, lambda n: n == 1),
    ("PatchDataset/image-equals-patch", lambda: len(dataset(inputs=np.zeros((4, 4), np.float32))), lambda n: n == 1),
    ("BatchLoader/fewer-patches-than-batch", lambda: len(loader(batch_size=32, drop_last=True)), lambda n: n == 0),
    ("BatchLoader/more-ranks-than-patches", lambda: len(loader(batch_size=1, rank=19, world_size=20)), lambda n: n == 1),
    ("BatchLoader/prefetch-zero", lambda: len(list(loader(prefetch=0))), lambda n: n == 4),
    ("predict_tiled/image-smaller-than-tile", lambda: predict(data=DATA[:3, :5]), _shape((3, 5))),
    ("predict_tiled/tile-equals-image", lambda: predict(tile_size=16, overlaps=0), _shape((16, 16))),
    ("predict_tiled/max_gpu_bytes-inf", lambda: predict(max_gpu_bytes=math.inf), _shape((16, 16))),
    ("predict_tiled/channels-int", lambda: predict(data=np.zeros((2, 16, 16), np.float32), axes="CYX", channels=1), _shape((1, 16, 16))),
    ("predict_tiled/npy-path", lambda: predict(data=npy("good")), lambda r: np.array_equal(r, DATA)),
    ("build_info/no-arguments", lambda: cp.build_info(), lambda info: "version" in info),
    ("gpu_available/no-arguments", lambda: cp.gpu_available(), lambda v: isinstance(v, bool)),
    ("MaskPatchFilter/empty-batch", lambda: cp.MaskPatchFilter(0.5).filter_out_batch(np.zeros((0, 1, 4, 4))), _shape((0,))),
    ("MaxPatchFilter/coverage-bounds", lambda: (cp.MaxPatchFilter(0.0, 0.0).coverage, cp.MaxPatchFilter(0.0, 1).coverage), lambda c: c == (0.0, 1.0)),
    ("filter_background/prob-zero", lambda: cp.filter_background(stratified(), [DATA], cp.MaxPatchFilter(1e9), axes="YX", filtered_patch_prob=0, progress=False), lambda n: n == 16),
    ("create_val_split/one", lambda: cp.create_val_split(stratified(), 1, seed=0)[1].n_patches, lambda n: n == 1),
]

#: public names without rows of their own, and why
NO_ROWS = {
    "__version__": "a string",
    "WINDOWS": "a tuple of window names (its mistakes are the window rows)",
}


@pytest.mark.parametrize(("call", "error", "fragment"), [pytest.param(*r[1:], id=r[0]) for r in REJECTED])
def test_rejected(call, error, fragment):
    with pytest.raises(Exception) as info:
        call()
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    assert fragment in str(info.value), str(info.value)


@pytest.mark.parametrize(("call", "check"), [pytest.param(*r[1:], id=r[0]) for r in ACCEPTED])
def test_accepted(call, check):
    assert check(call())


def test_ids_are_unique():
    ids = [r[0] for r in REJECTED + ACCEPTED]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def test_every_public_name_has_rows():
    covered = {r[0].split("/")[0] for r in REJECTED}
    missing = [name for name in cp.__all__ if name not in covered and name not in NO_ROWS]
    assert not missing, f"public names without rejected-input rows: {missing}"
    assert not covered - set(cp.__all__), f"rows for names that are not public: {covered - set(cp.__all__)}"
