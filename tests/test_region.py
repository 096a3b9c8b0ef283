"""ImageRegionData and collate/decollate (CAREamics layout, no torch)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cupatch.patching import RandomPatching, TiledPatching
from cupatch.region import ImageRegionData, collate_regions, decollate_regions

from conftest import to_numpy

FIELDS = (
    "data",
    "source",
    "data_shape",
    "dtype",
    "axes",
    "target_axes",
    "original_data_shape",
    "region_spec",
    "additional_metadata",
)


def _region(xp, spec, i=0, metadata=None):
    data = xp.full((2, *spec["patch_size"]), float(i), dtype=xp.float32)
    return ImageRegionData(
        data=data,
        source=f"file:///data/store.zarr/group/array_{i}",
        data_shape=(3, 2, 100, 100),
        dtype="uint16",
        axes="SCYX",
        target_axes="SCYX",
        original_data_shape=(3, 2, 100, 100),
        region_spec=spec,
        additional_metadata={} if metadata is None else metadata,
    )


def test_fields_in_careamics_order():
    assert ImageRegionData._fields == FIELDS


def test_generic_subscription():
    alias = ImageRegionData[dict]
    assert alias.__origin__ is ImageRegionData


def test_from_model_output_copies_metadata():
    spec = RandomPatching([(3, 2, 100, 100)], (16, 16), seed=0).get_patch_spec(4)
    region = _region(np, spec)
    out = ImageRegionData.from_model_output(region, np.ones((5, 16, 16), np.float32))
    assert out.data.shape == (5, 16, 16)
    assert out[1:] == region[1:]
    assert out.region_spec is region.region_spec


@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_collate_layout_and_round_trip_tiles(xp, batch_size):
    """CAREamics test_decollate_image_region_data, with tile specs and zarr chunks/shards."""
    tiled = TiledPatching([(3, 2, 100, 100)], (32, 32), (8, 8))
    meta = {"chunks": (1, 2, 64, 64), "shards": (1, 2, 128, 128)}
    regions = [_region(xp, tiled.get_patch_spec(i), i, meta) for i in range(batch_size)]
    batch = collate_regions(regions)
    assert isinstance(batch, ImageRegionData)
    assert batch.data.shape == (batch_size, 2, 32, 32)
    assert type(batch.data) is type(regions[0].data)
    assert batch.source == [r.source for r in regions]
    assert batch.dtype == ["uint16"] * batch_size and batch.axes == ["SCYX"] * batch_size
    assert len(batch.data_shape) == 4
    for dim in batch.data_shape:
        assert isinstance(dim, np.ndarray) and dim.dtype == np.int64 and dim.shape == (batch_size,)
    spec = batch.region_spec
    assert isinstance(spec["data_idx"], np.ndarray) and spec["data_idx"].shape == (batch_size,)
    assert isinstance(spec["total_tiles"], np.ndarray)
    for key in ("coords", "patch_size", "crop_coords", "crop_size", "stitch_coords"):
        assert len(spec[key]) == 2 and all(isinstance(a, np.ndarray) and a.shape == (batch_size,) for a in spec[key])
    assert len(batch.additional_metadata["chunks"]) == 4
    back = decollate_regions(batch)
    assert len(back) == batch_size
    for original, restored in zip(regions, back):
        assert restored[1:] == original[1:]
        np.testing.assert_array_equal(to_numpy(restored.data), to_numpy(original.data))
        assert type(restored.data) is type(original.data)
        assert all(type(v) is int for v in restored.data_shape)
        assert all(type(v) is int for v in restored.region_spec["coords"])
        assert type(restored.region_spec["total_tiles"]) is int


def test_collate_errors():
    spec = RandomPatching([(3, 2, 100, 100)], (16, 16), seed=0).get_patch_spec(0)
    with pytest.raises(ValueError, match="regions must not be empty"):
        collate_regions([])
    a = _region(np, spec)
    b = a._replace(data=np.zeros((2, 8, 8), np.float32))
    with pytest.raises(ValueError, match="different data shapes"):
        collate_regions([a, b])
    c = a._replace(additional_metadata={"chunks": (1, 1, 8, 8)})
    with pytest.raises(ValueError, match="additional_metadata of region 1"):
        collate_regions([a, c])
    with pytest.raises(TypeError, match="cannot collate"):
        collate_regions([a._replace(data=[[1.0]])])


def test_non_integer_metadata_kept_as_lists():
    spec = RandomPatching([(3, 2, 100, 100)], (16, 16), seed=0).get_patch_spec(0)
    regions = [_region(np, spec, i, {"name": f"n{i}", "scale": 0.5 * i, "flag": bool(i), "maybe": None}) for i in range(3)]
    batch = collate_regions(regions)
    assert batch.additional_metadata["name"] == ["n0", "n1", "n2"]
    assert batch.additional_metadata["flag"] == [False, True, True]
    assert [r[1:] for r in decollate_regions(batch)] == [r[1:] for r in regions]


def test_decollate_accepts_default_collate_layout():
    """A batch laid out like torch's default_collate (plain lists of per-axis arrays)."""
    batch = ImageRegionData(
        data=np.zeros((2, 1, 8, 8), np.float32),
        source=["array", "array"],
        data_shape=[np.array([1, 1]), np.array([1, 1]), np.array([8, 8]), np.array([8, 8])],
        dtype=["float32", "float32"],
        axes=["YX", "YX"],
        target_axes=["YX", "YX"],
        original_data_shape=[np.array([8, 8]), np.array([8, 8])],
        region_spec={
            "data_idx": np.array([0, 1]),
            "sample_idx": np.array([0, 0]),
            "coords": [np.array([0, 2]), np.array([1, 3])],
            "patch_size": [np.array([8, 8]), np.array([8, 8])],
        },
        additional_metadata={},
    )
    back = decollate_regions(batch)
    assert back[1].region_spec == {"data_idx": 1, "sample_idx": 0, "coords": (2, 3), "patch_size": (8, 8)}
    assert back[0].data_shape == (1, 1, 8, 8)


def test_round_trip_with_torch_default_collate():
    torch = pytest.importorskip("torch", reason="torch not installed: default_collate interop not testable")
    from torch.utils.data import default_collate

    tiled = TiledPatching([(3, 2, 100, 100)], (32, 32), (8, 8))
    regions = [_region(np, tiled.get_patch_spec(i), i, {"chunks": (1, 2, 64, 64)}) for i in range(3)]
    batch = default_collate(regions)
    back = decollate_regions(batch)
    for original, restored in zip(regions, back):
        assert restored[1:] == original[1:]
        assert torch.equal(restored.data, torch.from_numpy(original.data))


_ints = st.integers(0, 2**40)
_tuple_of = lambda n: st.tuples(*[_ints] * n)  # noqa: E731


@st.composite
def _batches(draw):
    b = draw(st.integers(1, 5))
    nd = draw(st.sampled_from([2, 3]))
    tiles = draw(st.booleans())
    has_shards = draw(st.booleans())
    shape_len = nd + 2
    regions = []
    patch = draw(st.tuples(*[st.integers(1, 4)] * nd))
    for i in range(b):
        spec = {
            "data_idx": draw(_ints),
            "sample_idx": draw(_ints),
            "coords": draw(_tuple_of(nd)),
            "patch_size": patch,
        }
        if tiles:
            spec |= {
                "crop_coords": draw(_tuple_of(nd)),
                "crop_size": draw(_tuple_of(nd)),
                "stitch_coords": draw(_tuple_of(nd)),
                "total_tiles": draw(_ints),
            }
        meta = {"chunks": draw(_tuple_of(shape_len))}
        if has_shards:
            meta["shards"] = draw(_tuple_of(shape_len))
        regions.append(
            ImageRegionData(
                data=np.full((2, *patch), i, dtype=np.float32),
                source=draw(st.text(max_size=10)),
                data_shape=draw(_tuple_of(shape_len)),
                dtype=draw(st.sampled_from(["uint8", "uint16", "float32"])),
                axes=draw(st.sampled_from(["SCYX", "YX", "ZYX"])),
                target_axes=draw(st.sampled_from(["SCYX", "YX"])),
                original_data_shape=draw(_tuple_of(draw(st.integers(2, 5)))) if i == 0 else None,
                region_spec=spec,
                additional_metadata=meta,
            )
        )
    # original_data_shape needs one length across the batch
    first = regions[0].original_data_shape
    regions = [regions[0]] + [
        r._replace(original_data_shape=tuple(draw(_ints) for _ in first)) for r in regions[1:]
    ]
    return regions


@settings(max_examples=40, deadline=None)
@given(regions=_batches())
def test_collate_decollate_round_trip_hypothesis(regions):
    back = decollate_regions(collate_regions(regions))
    assert len(back) == len(regions)
    for original, restored in zip(regions, back):
        assert restored[1:] == original[1:]
        np.testing.assert_array_equal(restored.data, original.data)
