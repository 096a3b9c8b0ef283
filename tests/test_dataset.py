"""PatchDataset: CAREamics checklist items, fused batches vs reference and vs items, errors."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr
from conftest import HAS_GPU, requires_gpu, to_numpy

from cupatch._reference import gather_patches_reference
from cupatch.augmentation import Augmentations
from cupatch.dataset import PatchDataset
from cupatch.normalization import MeanStdNormalization, MinMaxNormalization
from cupatch.patching import (
    FixedRandomPatching,
    RandomPatching,
    SequentialPatching,
    StratifiedPatching,
    TiledPatching,
    WholeSamplePatching,
)
from cupatch.region import collate_regions, decollate_regions
from cupatch.stacks import reshape_array


def _device(xp):
    return "gpu" if xp.__name__ == "cupy" else "cpu"


def _assert_regions_equal(a, b):
    """Equal data and equal metadata (compared after decollation)."""
    np.testing.assert_array_equal(to_numpy(a.data), to_numpy(b.data))
    assert len(a.source) == len(b.source)
    for ra, rb in zip(decollate_regions(a._replace(data=to_numpy(a.data))), decollate_regions(b._replace(data=to_numpy(b.data)))):
        assert ra[1:] == rb[1:]


def _image(shape, seed=0, high=4000, dtype=np.uint16):
    return np.random.default_rng(seed).integers(0, high, shape).astype(dtype)


# -- CAREamics checklist -----------------------------------------------------------------------
@pytest.mark.parametrize("shape, patch, expected", [((256, 256), 32, 64), ((512, 512), 64, 64), ((128, 128), 32, 16)])
def test_from_array(xp, shape, patch, expected):
    a, t = _image(shape), _image(shape, seed=1)
    ds = PatchDataset(a, lambda s: RandomPatching(s, (patch, patch), seed=42), axes="YX", targets=t,
                      device=_device(xp), progress=False)
    assert len(ds) == expected
    x, y = ds[3]
    assert x.data.shape == (1, patch, patch) and y.data.shape == (1, patch, patch)
    assert x.source == "array" and x.dtype == "uint16" and x.data_shape == (1, 1, *shape)
    spec = x.region_spec
    assert y.region_spec == spec
    window = (slice(spec["coords"][0], spec["coords"][0] + patch), slice(spec["coords"][1], spec["coords"][1] + patch))
    np.testing.assert_array_equal(to_numpy(x.data)[0], a[window].astype(np.float32))
    np.testing.assert_array_equal(to_numpy(y.data)[0], t[window].astype(np.float32))


def test_from_tiff(tmp_path):
    a = _image((2, 64, 64))
    for i in range(2):
        tifffile.imwrite(tmp_path / f"img{i}.tif", a + i)
    ds = PatchDataset([tmp_path / "img0.tif", tmp_path / "img1.tif"], lambda s: RandomPatching(s, (32, 32), seed=1),
                      axes="SYX", device="cpu", progress=False)
    assert len(ds) == 2 * 2 * 4
    x, = ds[5]
    assert x.source == str(tmp_path / "img0.tif") and x.region_spec["data_idx"] == 0
    x, = ds[12]
    assert x.source == str(tmp_path / "img1.tif")


def test_from_array_with_target_axes():
    a = _image((2, 32, 32))  # S Y X
    t = _image((2, 32, 32, 2), seed=3)  # S Y X C
    ds = PatchDataset(a, lambda s: RandomPatching(s, (16, 16), seed=1), axes="SYX", targets=t, target_axes="SYXC",
                      device="cpu", progress=False)
    x, y = ds[0]
    assert x.data.shape == (1, 16, 16) and y.data.shape == (2, 16, 16)
    assert x.axes == "SYX" and y.axes == "SYXC" and x.target_axes == y.target_axes == "SYXC"
    assert x.original_data_shape == (2, 32, 32) and y.original_data_shape == (2, 32, 32, 2)
    assert y.data_shape == (2, 2, 32, 32)


def test_from_array_with_channels():
    a = _image((32, 32, 3))  # YXC
    t = _image((32, 32, 3), seed=5)
    ds = PatchDataset(a, lambda s: RandomPatching(s, (16, 16), seed=1), axes="YXC", targets=t, channels=[2, 0],
                      device="cpu", progress=False)
    x, y = ds[1]
    assert x.data.shape == (2, 16, 16) and y.data.shape == (3, 16, 16)
    cy, cx = x.region_spec["coords"]
    np.testing.assert_array_equal(x.data, np.moveaxis(a[cy : cy + 16, cx : cx + 16][..., [2, 0]], -1, 0).astype(np.float32))
    assert x.data_shape == (1, 2, 32, 32) and y.data_shape == (1, 3, 32, 32)
    assert x.original_data_shape == (32, 32, 2) and y.original_data_shape == (32, 32, 3)
    assert ds.n_channels == 2


@pytest.mark.parametrize("shape", [(64, 64), (24, 24)])
def test_prediction_from_array(xp, shape):
    a = _image(shape)
    ds = PatchDataset(xp.asarray(a), lambda s: TiledPatching(s, (32, 32), (8, 8)), axes="YX", device=_device(xp), progress=False)
    items = [ds[i] for i in range(len(ds))]
    assert all(len(item) == 1 and item[0].data.shape == (1, 32, 32) for item in items)
    spec = items[-1][0].region_spec
    assert {"crop_coords", "crop_size", "stitch_coords", "total_tiles"} <= set(spec)
    if shape == (24, 24):  # smaller than the tile: zero padded on the right/bottom
        data = to_numpy(items[0][0].data)[0]
        np.testing.assert_array_equal(data[:24, :24], a.astype(np.float32))
        assert not data[24:].any() and not data[:, 24:].any()


@pytest.mark.parametrize("strategy", [RandomPatching, FixedRandomPatching, StratifiedPatching])
def test_error_data_smaller_than_patch(strategy):
    a = _image((2, 24, 40))
    with pytest.raises(ValueError, match="Not all images sizes are greater or equal than the patch size"):
        PatchDataset(a, lambda s: strategy(s, (32, 32), seed=1), axes="SYX", device="cpu", progress=False)


# -- fused batches ------------------------------------------------------------------------------
def _strategies():
    return {
        "random": lambda s: RandomPatching(s, (8, 8), seed=3),
        "stratified": lambda s: StratifiedPatching(s, (8, 8), seed=3),
        "fixed_random": lambda s: FixedRandomPatching(s, (8, 8), seed=3),
        "sequential": lambda s: SequentialPatching(s, (8, 8), (2, 2)),
        "tiled": lambda s: TiledPatching(s, (8, 8), (2, 2)),
        "whole": WholeSamplePatching,
    }


def test_get_batch_builds_the_spec_table_once_and_separate_specs(monkeypatch):
    """One spec table per batch (arrays and metadata); input and target get their own
    region_spec arrays, equal to each other."""
    a = [_image((3, 19, 21, 2), seed=1)]
    ds = PatchDataset(a, _strategies()["random"], axes="SYXC", targets=[x[..., :1] for x in a], channels=[1],
                      augmentations=Augmentations(seed=5), device="cpu", progress=False)
    calls = []
    build = ds.patching.spec_table
    monkeypatch.setattr(ds.patching, "spec_table", lambda idx: calls.append(1) or build(idx))
    x, y = ds.get_batch([0, 3, 5])
    assert len(calls) == 1
    for key, value in x.region_spec.items():
        other = y.region_spec[key]
        for u, v in zip(value if isinstance(value, list) else [value], other if isinstance(other, list) else [other]):
            np.testing.assert_array_equal(u, v)
            assert not np.shares_memory(u, v)


@pytest.mark.parametrize("placement", ["auto", "disk"])
@pytest.mark.parametrize("strategy", list(_strategies()))
def test_get_batch_equals_items_and_reference(xp, strategy, placement):
    if placement == "disk" and xp.__name__ == "cupy":
        placement = "cpu"  # host-resident stacks fed through pinned staging on the GPU
    a = [_image((3, 19, 21, 2), seed=1), _image((2, 19, 21, 2), seed=2)]
    t = [x[..., :1] + 7 for x in a]
    aug = Augmentations(seed=5, flip=strategy != "whole", rot90=strategy not in ("whole",))
    norm = MeanStdNormalization()
    ds = PatchDataset(a, _strategies()[strategy], axes="SYXC", targets=t, channels=[1], normalization=norm,
                      augmentations=aug, device=_device(xp), placement=placement, progress=False)
    ds.set_epoch(2)
    rng = np.random.default_rng(0)
    indices = rng.permutation(len(ds))[: min(6, len(ds))]
    if strategy == "whole":
        indices = np.array([0, 2, 1])  # samples of stack 0 only (equal shapes)
    x, y = ds.get_batch(indices)
    items = [ds[int(i)] for i in indices]
    _assert_regions_equal(x, collate_regions([it[0] for it in items]))
    _assert_regions_equal(y, collate_regions([it[1] for it in items]))
    # reference: NumPy per-patch loop on the reshaped arrays with the same specs and flags
    table = ds.patching.spec_table(indices)[:, :4]
    size = x.data.shape[2:]
    flags = aug.draw(indices, 2) if aug.enabled else (None, None, None)
    sources = [reshape_array(v, "SYXC") for v in a]
    scale, shift = norm.input_scale_shift(1)
    expected = gather_patches_reference(sources, table, size, channels=[1], scale=scale, shift=shift,
                                        flip_y=flags[0], flip_x=flags[1], rot90=flags[2])
    np.testing.assert_array_equal(to_numpy(x.data), expected)
    t_scale, t_shift = norm.target_scale_shift(1)
    expected_t = gather_patches_reference([reshape_array(v, "SYXC") for v in t], table, size, scale=t_scale,
                                          shift=t_shift, flip_y=flags[0], flip_x=flags[1], rot90=flags[2])
    np.testing.assert_array_equal(to_numpy(y.data), expected_t)


@pytest.mark.parametrize("kind", ["tiff", "zarr"])
@pytest.mark.parametrize("axes", ["XYS", "SXYC", "CYXT", "CXYTS", "XCSYT"])
def test_file_sources_any_axis_order(kind, axes, tmp_path):
    sizes = {"S": 2, "T": 2, "C": 2, "Y": 18, "X": 20}
    a = _image([sizes[c] for c in axes], seed=4)
    if kind == "tiff":
        src = tmp_path / "a.tif"
        tifffile.imwrite(src, a, photometric="minisblack")
    else:
        src = tmp_path / "a.zarr"
        arr = zarr.create_array(str(src), shape=a.shape, chunks=tuple(max(1, n // 3) for n in a.shape), dtype=a.dtype)
        arr[...] = a
    make = lambda s: RandomPatching(s, (8, 8), seed=2)  # noqa: E731
    aug = Augmentations(seed=1)
    from_file = PatchDataset(src, make, axes=axes, augmentations=aug, device="cpu", placement="disk", progress=False)
    from_array = PatchDataset(a, make, axes=axes, augmentations=aug, device="cpu", progress=False)
    idx = np.arange(len(from_array))
    xf = from_file.get_batch(idx)[0]
    xa = from_array.get_batch(idx)[0]
    np.testing.assert_array_equal(xf.data, xa.data)
    assert all(np.array_equal(p, q) for p, q in zip(xf.original_data_shape, xa.original_data_shape))
    assert [int(v[0]) for v in xf.original_data_shape] == list(a.shape)
    if kind == "zarr":
        assert set(xf.additional_metadata) == {"chunks"}
        assert [int(v[0]) for v in xf.additional_metadata["chunks"]] == [max(1, n // 3) for n in a.shape]


def test_normalisation_and_augmentation_against_numpy():
    a = _image((1, 16, 16))
    t = (a.astype(np.int32) * 2).astype(np.uint16)
    norm = MinMaxNormalization()
    aug = Augmentations(p_flip=0.5, p_rot90=0.5, seed=9)
    ds = PatchDataset(a, lambda s: RandomPatching(s, (16, 16), seed=1), axes="SYX", targets=t, normalization=norm,
                      augmentations=aug, device="cpu", progress=False)
    lo, hi = float(a.min()), float(a.max())
    tlo, thi = float(t.min()), float(t.max())
    seen = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        (x, y), = [ds[0]]
        fy, fx, k = (v[0] for v in aug.draw([0], epoch))
        seen.add((bool(fy), bool(fx), int(k)))
        img = a[0].astype(np.float64)
        img = img[::-1] if fy else img
        img = img[:, ::-1] if fx else img
        img = np.rot90(img, k)
        np.testing.assert_allclose(x.data[0], (img - lo) / (hi - lo + 1e-8), rtol=1e-6, atol=1e-6)
        timg = np.rot90(((t[0][::-1] if fy else t[0])[:, ::-1] if fx else (t[0][::-1] if fy else t[0])).astype(np.float64), k)
        np.testing.assert_allclose(y.data[0], (timg - tlo) / (thi - tlo + 1e-8), rtol=1e-6, atol=1e-6)
    assert len(seen) > 3  # augmentations change with the epoch
    pred = np.asarray(y.data)[None]
    np.testing.assert_allclose(ds.denormalize(pred)[0, 0], timg, rtol=1e-5, atol=1e-3)


def test_determinism_and_epochs():
    a = _image((4, 40, 40))
    make = lambda s: RandomPatching(s, (16, 16), seed=11)  # noqa: E731
    d1 = PatchDataset(a, make, axes="SYX", augmentations=Augmentations(seed=2), device="cpu", progress=False)
    d2 = PatchDataset(a, make, axes="SYX", augmentations=Augmentations(seed=2), device="cpu", progress=False)
    full = d1.get_batch(np.arange(len(d1)))[0]
    part = d2.get_batch(np.array([7, 3]))[0]
    np.testing.assert_array_equal(part.data, full.data[[7, 3]])
    np.testing.assert_array_equal(d2[5][0].data, full.data[5])
    d1.set_epoch(1)
    again = d1.get_batch(np.arange(len(d1)))[0]
    assert not np.array_equal(again.data, full.data)
    assert any(a != b for a, b in zip(again.region_spec["coords"][0], full.region_spec["coords"][0]))
    d1.set_epoch(0)
    np.testing.assert_array_equal(d1.get_batch(np.arange(len(d1)))[0].data, full.data)


def test_mixed_dtypes_and_3d():
    a = _image((6, 10, 12), dtype=np.uint8, high=200)
    b = _image((6, 10, 12), seed=1, dtype=np.int16, high=3000)
    ds = PatchDataset([a, b], lambda s: RandomPatching(s, (4, 8, 8), seed=1), axes="ZYX", device="cpu", progress=False)
    x = ds.get_batch(np.arange(len(ds)))[0]
    assert x.data.shape == (len(ds), 1, 4, 8, 8) and x.dtype == ["uint8"] * 8 + ["int16"] * 8
    table = ds.patching.spec_table(np.arange(len(ds)))
    expected = gather_patches_reference([reshape_array(a, "ZYX"), reshape_array(b, "ZYX")], table, (4, 8, 8))
    np.testing.assert_array_equal(x.data, expected)


def test_float16_output():
    a = _image((16, 16))
    ds = PatchDataset(a, lambda s: RandomPatching(s, (8, 8), seed=1), axes="YX", dtype=np.float16, device="cpu",
                      normalization=MeanStdNormalization(), progress=False)
    x = ds.get_batch([0, 1])[0]
    assert x.data.dtype == np.float16


# -- errors -------------------------------------------------------------------------------------
def test_errors(tmp_path):
    a = _image((2, 16, 16))
    make = lambda s: RandomPatching(s, (8, 8), seed=1)  # noqa: E731
    with pytest.raises(ValueError, match="input/target shape mismatch"):
        PatchDataset(a, make, axes="SYX", targets=_image((2, 16, 15)), device="cpu", progress=False)
    with pytest.raises(ValueError, match="2 input stacks but 1 target"):
        PatchDataset([a, a], make, axes="SYX", targets=[a], device="cpu", progress=False)
    with pytest.raises(ValueError, match="unknown axis"):
        PatchDataset(a, make, axes="SYQ", device="cpu", progress=False)
    with pytest.raises(ValueError, match="3 letters but the data has 2"):
        PatchDataset(a[0], make, axes="SYX", device="cpu", progress=False)
    with pytest.raises(ValueError, match="Channel index 1 .* out of bounds"):
        PatchDataset(a, make, axes="SYX", channels=[1], device="cpu", progress=False)
    with pytest.raises(TypeError, match="unsupported dtype int64"):
        PatchDataset(a.astype(np.int64), make, axes="SYX", device="cpu", progress=False)
    with pytest.raises(FileNotFoundError, match="nope.tif"):
        PatchDataset(tmp_path / "nope.tif", make, axes="SYX", device="cpu", progress=False)
    with pytest.raises(ValueError, match="square YX patch size"):
        PatchDataset(a, lambda s: RandomPatching(s, (8, 4), seed=1), axes="SYX", augmentations=Augmentations(),
                     device="cpu", progress=False)
    with pytest.raises(ValueError, match="channel count"):
        PatchDataset([a[..., None], _image((2, 16, 16, 2))], make, axes="SYXC", device="cpu", progress=False)
    with pytest.raises(ValueError, match="device must be"):
        PatchDataset(a, make, axes="SYX", device="tpu", progress=False)
    with pytest.raises(ValueError, match="patching was built for shapes"):
        PatchDataset(a, RandomPatching([(1, 1, 16, 16)], (8, 8)), axes="SYX", device="cpu", progress=False)
    with pytest.raises(ValueError, match="dtype must be one of"):
        PatchDataset(a, make, axes="SYX", dtype=np.int32, device="cpu", progress=False)
    ds = PatchDataset([a, _image((1, 12, 12))], WholeSamplePatching, axes="SYX", device="cpu", progress=False)
    with pytest.raises(ValueError, match="equal sample shapes"):
        ds.get_batch([0, 2])
    with pytest.raises(IndexError):
        ds[len(ds)]
    with pytest.raises(TypeError, match="normalization must be"):
        PatchDataset(a, make, axes="SYX", normalization="mean_std", device="cpu", progress=False)
    with pytest.raises(TypeError, match="augmentations must be"):
        PatchDataset(a, make, axes="SYX", augmentations=True, device="cpu", progress=False)
    with pytest.raises(TypeError, match="patching must be a patching strategy"):
        PatchDataset(a, object(), axes="SYX", device="cpu", progress=False)


def test_set_epoch_refuses_floats_instead_of_truncating():
    # set_epoch(1.7) used to select epoch 1 silently
    a = _image((2, 16, 16))
    make = lambda s: RandomPatching(s, (8, 8), seed=1)  # noqa: E731
    ds = PatchDataset(a, make, axes="SYX", augmentations=Augmentations(seed=3), device="cpu", progress=False)
    ds.set_epoch(2)
    for bad in (1.7, 1.0, np.float64(3.0), True, "1"):
        with pytest.raises(TypeError, match="epoch must be an integer"):
            ds.set_epoch(bad)
    for bad in (-1, 2**63):
        with pytest.raises(ValueError, match="epoch must be"):
            ds.set_epoch(bad)
    assert ds.epoch == 2 and ds.patching.epoch == 2  # a refused epoch changes nothing
    ds.set_epoch(np.int64(5))
    assert ds.epoch == 5 and type(ds.epoch) is int and ds.patching.epoch == 5


def test_non_integer_indices_and_unknown_placement_are_refused():
    a = _image((2, 16, 16))
    make = lambda s: RandomPatching(s, (8, 8), seed=1)  # noqa: E731
    ds = PatchDataset(a, make, axes="SYX", device="cpu", progress=False)
    for bad in ([0.5], np.array([1.0, 2.0]), [True, False]):
        with pytest.raises(TypeError, match="indices must be integers"):
            ds.get_batch(bad)
        with pytest.raises(TypeError, match="indices must be integers"):
            ds.gather_arrays(bad)
    assert ds.get_batch([])[0].data.shape == (0, 1, 8, 8)
    assert ds.get_batch(np.array([3], np.int32))[0].data.shape == (1, 1, 8, 8)
    with pytest.raises(ValueError, match="placement must be one of"):
        PatchDataset(a, make, axes="SYX", placement="ram", device="cpu", progress=False)
    for channels in ([0.0], [True], 0.5):
        with pytest.raises(TypeError, match="channels must"):
            PatchDataset(a, make, axes="SYX", channels=channels, device="cpu", progress=False)


@pytest.mark.skipif(HAS_GPU, reason="checks the error raised when no GPU is usable")
def test_gpu_requested_without_gpu():
    with pytest.raises(RuntimeError, match="GPU was requested but none is usable"):
        PatchDataset(_image((16, 16)), lambda s: RandomPatching(s, (8, 8)), axes="YX", device="gpu", progress=False)
    with pytest.raises(ValueError, match="placement='gpu' needs device='gpu'"):
        PatchDataset(_image((16, 16)), lambda s: RandomPatching(s, (8, 8)), axes="YX", device="cpu", placement="gpu",
                     progress=False)


def test_target_statistics_are_computed_when_missing():
    a = _image((2, 16, 16))
    norm = MeanStdNormalization(means=[0.0], stds=[1.0])
    ds = PatchDataset(a, lambda s: RandomPatching(s, (8, 8), seed=1), axes="SYX", targets=a * 2,
                      normalization=norm, device="cpu", progress=False)
    assert norm.means[0] == 0.0
    np.testing.assert_allclose(norm.target_means, [(a.astype(np.float64) * 2).mean()])
    assert ds.has_target


# -- GPU ----------------------------------------------------------------------------------------
@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("placement", ["auto", "gpu", "cpu", "disk"])
def test_gpu_batches_equal_cpu_batches(placement, tmp_path):
    import cupy

    a = _image((3, 40, 36, 2))
    src = tmp_path / "a.zarr"
    arr = zarr.create_array(str(src), shape=a.shape, chunks=(1, 16, 16, 1), dtype=a.dtype)
    arr[...] = a
    kwargs = dict(axes="SYXC", channels=[1], normalization=MeanStdNormalization(), augmentations=Augmentations(seed=4),
                  progress=False)
    make = lambda s: RandomPatching(s, (16, 16), seed=2)  # noqa: E731
    gpu = PatchDataset(src if placement == "disk" else a, make, device="gpu", placement=placement, **kwargs)
    cpu = PatchDataset(a, make, device="cpu", **kwargs)
    for epoch in range(2):
        gpu.set_epoch(epoch)
        cpu.set_epoch(epoch)
        idx = np.arange(len(cpu))[::-1]
        xg = gpu.get_batch(idx)[0]
        xc = cpu.get_batch(idx)[0]
        assert isinstance(xg.data, cupy.ndarray)
        np.testing.assert_array_equal(xg.data.get(), xc.data)
    if placement in ("auto", "gpu"):
        assert gpu.input_stacks[0].array.dtype == np.uint16  # uploaded once, stored dtype


class _PlacedStack:
    """Stand-in stack for placement decisions: records where it is moved."""

    def __init__(self, placement, nbytes):
        self.placement, self.nbytes, self.moves = placement, nbytes, []

    def to_device(self, placement):
        if placement == self.placement:  # like ImageStack.to_device
            return self
        self.moves.append(placement)
        moved = _PlacedStack(placement, self.nbytes)
        moved.moves = self.moves
        return moved


def _place_auto_on_gpu(monkeypatch, inputs, targets, free_bytes):
    """Run ``PatchDataset._place(placement="auto")`` for a GPU device with ``free_bytes`` free."""
    import sys
    import types

    fake_cupy = types.SimpleNamespace(
        cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(memGetInfo=lambda: (free_bytes, 10 * free_bytes))),
        get_default_memory_pool=lambda: types.SimpleNamespace(free_bytes=lambda: 0),
    )
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    return PatchDataset._place(types.SimpleNamespace(device="gpu"), inputs, targets, "auto")


def test_auto_placement_counts_only_stacks_not_yet_on_the_gpu(monkeypatch):
    """Free GPU memory already excludes GPU-resident stacks: only host stacks need room."""
    on_gpu, on_host = _PlacedStack("gpu", 1000), _PlacedStack("cpu", 100)
    inputs, targets = _place_auto_on_gpu(monkeypatch, [on_gpu], [on_host], free_bytes=400)
    assert [s.placement for s in inputs + targets] == ["gpu", "gpu"]
    assert on_gpu.moves == [] and on_host.moves == ["gpu"]
    # an all-GPU dataset needs no room at all
    stacks = [_PlacedStack("gpu", 10**9), _PlacedStack("gpu", 10**9)]
    inputs, targets = _place_auto_on_gpu(monkeypatch, stacks, None, free_bytes=0)
    assert targets is None and [s.placement for s in inputs] == ["gpu", "gpu"]
    assert all(s.moves == [] for s in stacks)


def test_auto_placement_that_does_not_fit_brings_gpu_stacks_to_the_host(monkeypatch):
    """A mix of GPU-resident and host stacks must not stay mixed (the GPU ones would be read
    back patch by patch): when the uploads do not fit, every stack is fed from the host."""
    stacks = [_PlacedStack("gpu", 1000), _PlacedStack("cpu", 1000), _PlacedStack("disk", 1000)]
    target_stacks = [_PlacedStack("gpu", 1000), _PlacedStack("disk", 1000), _PlacedStack("cpu", 1000)]
    inputs, targets = _place_auto_on_gpu(monkeypatch, stacks, target_stacks, free_bytes=400)
    assert [s.placement for s in inputs] == ["cpu", "cpu", "disk"]
    assert [s.placement for s in targets] == ["cpu", "disk", "cpu"]
    assert [s.moves for s in stacks] == [["cpu"], [], []]
    assert [s.moves for s in target_stacks] == [["cpu"], [], []]


@pytest.mark.gpu
@requires_gpu
def test_gpu_auto_placement_of_a_mixed_dataset_that_does_not_fit(monkeypatch):
    """CuPy inputs with host targets that cannot be uploaded: the inputs come to the host and
    both roles are fed through staging, with the same batches as on the CPU."""
    import cupy

    import cupatch.dataset as dataset_module

    monkeypatch.setattr(dataset_module, "GPU_PLACEMENT_FRACTION", 0.0)  # no upload fits
    a, t = _image((2, 32, 32)), _image((2, 32, 32), seed=1)
    make = lambda s: RandomPatching(s, (16, 16), seed=3)  # noqa: E731
    gpu = PatchDataset(cupy.asarray(a), make, axes="SYX", targets=t, device="gpu", placement="auto", progress=False)
    assert [s.placement for s in gpu.input_stacks + gpu.target_stacks] == ["cpu", "cpu"]
    assert not gpu._input.resident and not gpu._target.resident
    cpu = PatchDataset(a, make, axes="SYX", targets=t, device="cpu", progress=False)
    idx = np.arange(len(cpu))
    (xg, yg), (xc, yc) = gpu.get_batch(idx), cpu.get_batch(idx)
    np.testing.assert_array_equal(xg.data.get(), xc.data)
    np.testing.assert_array_equal(yg.data.get(), yc.data)
    # all on the GPU already: nothing to upload, the stacks stay there
    gpu = PatchDataset(cupy.asarray(a), make, axes="SYX", targets=cupy.asarray(t), device="gpu", placement="auto",
                       progress=False)
    assert [s.placement for s in gpu.input_stacks + gpu.target_stacks] == ["gpu", "gpu"]
    assert gpu._input.resident and gpu._target.resident


class _CupyLikeArray(np.ndarray):
    """A host array whose type claims to come from cupy: stacks treat it as GPU-resident."""

    __module__ = "cupy.stand_in"


def test_gpu_source_tables_are_built_at_construction(monkeypatch):
    """On the GPU, resident stacks' SourceTables must be built by the constructor, on the stream
    the stacks were uploaded on, so that their ready point covers the uploads; built lazily by
    the first gather (e.g. on the loader's non-blocking prefetch stream) it would not."""
    import cupatch._roles as roles_module
    import cupatch.dataset as dataset_module

    built = []

    class RecordingTable:
        def __init__(self, sources):
            built.append(("table", len(sources)))
            self.arrays = sources

    monkeypatch.setattr(dataset_module, "_resolve_device", lambda device: "gpu")
    monkeypatch.setattr(roles_module, "SourceTable", RecordingTable)
    a = _image((2, 16, 16)).view(_CupyLikeArray)
    ds = PatchDataset(a, lambda s: RandomPatching(s, (8, 8), seed=1), axes="SYX", targets=a.copy().view(_CupyLikeArray),
                      device="gpu", placement="gpu", progress=False)
    assert ds._input.resident and ds._target.resident
    assert built == [("table", 1), ("table", 1)]  # input and target, before any gather
    assert ds._input.source_table() is ds._input.source_table()
    assert len(built) == 2


@pytest.mark.gpu
@requires_gpu
def test_gpu_gather_on_another_stream_waits_for_the_upload():
    """Stacks uploaded on a busy stream, first gathered on another non-blocking stream: the
    gather must wait for the upload (no host synchronisation in between)."""
    import cupy

    a = _image((2, 256, 256))
    kwargs = dict(axes="SYX", normalization=MeanStdNormalization(means=[10.0], stds=[3.0]), progress=False)
    make = lambda s: RandomPatching(s, (32, 32), seed=5)  # noqa: E731
    upload = cupy.cuda.Stream(non_blocking=True)
    with upload:
        busy = cupy.zeros((1 << 22,), dtype=cupy.float32)
        for _ in range(30):  # keeps the upload stream busy, so the upload lands late
            busy = cupy.sin(busy) + 1
        gpu = PatchDataset(a, make, device="gpu", placement="gpu", **kwargs)
    other = cupy.cuda.Stream(non_blocking=True)
    with other:
        x, _ = gpu.gather_arrays(np.arange(len(gpu)))
        got = x.get()
    expected, _ = PatchDataset(a, make, device="cpu", **kwargs).gather_arrays(np.arange(len(gpu)))
    np.testing.assert_array_equal(got, expected)
