"""as_stack / as_stacks: every kind of source, any axis order, metadata and errors."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from cupatch.stacks import ZarrStack, as_stack, as_stacks, reshape_array

from .helpers import AXES_ORDERS, axes_data, expected_region, make_source, regions_to_check


@pytest.mark.parametrize("kind", ["array", "tiff", "tiff-zlib", "zarr"])
@pytest.mark.parametrize("axes", AXES_ORDERS)
def test_round_trip_any_axis_order(kind, axes, tmp_path):
    a = axes_data(axes)
    stack = as_stack(make_source(kind, a, axes, tmp_path), axes)
    sc = reshape_array(a, axes)
    assert stack.data_shape == sc.shape
    assert stack.original_axes == axes and stack.original_data_shape == a.shape
    assert stack.dtype == np.uint16
    for sample_idx, coords, size in regions_to_check(stack):
        got = stack.read_region(sample_idx, coords, size)
        np.testing.assert_array_equal(got, expected_region(sc, sample_idx, coords, size))
        if stack.n_channels > 1:
            got = stack.read_region(sample_idx, coords, size, channels=[2, 0])
            np.testing.assert_array_equal(got, expected_region(sc, sample_idx, coords, size, [2, 0]))
    # placing the stack in memory keeps the stored dtype and gives the reshaped data
    host = stack.to_device("cpu")
    assert host.array.dtype == np.uint16
    np.testing.assert_array_equal(np.asarray(host.array), sc)



def test_sources_and_metadata(tmp_path):
    a = axes_data("SYX")
    assert as_stack(a, "SYX").source == "array"
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, a, photometric="minisblack")
    assert as_stack(path, "SYX").source == str(path)
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    arr = group.create_array("b", shape=a.shape, chunks=(1, 8, 8), shards=(1, 16, 16), dtype=a.dtype)
    arr[...] = a
    group.create_array("a", shape=(6, 6), chunks=(3, 3), dtype="float32")
    stack = ZarrStack(arr, "SYX")
    assert stack.source == f"file://{tmp_path / 'g.zarr'}/b"
    assert stack.additional_metadata == {"chunks": (1, 8, 8), "shards": (1, 16, 16)}
    unsharded = as_stacks(tmp_path / "g.zarr" / "a", "YX")[0]
    assert unsharded.additional_metadata == {"chunks": (3, 3)}



def test_zarr_group_expands_sorted_and_uri(tmp_path):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    for name, value in [("b", 2), ("a", 1), ("c", 3)]:
        group.create_array(name, shape=(8, 9), chunks=(4, 4), dtype="uint8")[...] = value
    for src in [tmp_path / "g.zarr", f"file://{tmp_path}/g.zarr", group]:
        stacks = as_stacks(src, "YX")
        assert [s.source.rsplit("/", 1)[-1] for s in stacks] == ["a", "b", "c"]
        assert [int(s.read_region(0, (0, 0), (1, 1))[0, 0, 0]) for s in stacks] == [1, 2, 3]
    single = as_stacks(f"file://{tmp_path}/g.zarr/c", "YX")
    assert len(single) == 1 and int(single[0].read_sample(0).max()) == 3
    with pytest.raises(ValueError, match=r"holds 3 Zarr arrays \(a, b, c\); name one \(e.g. '.*g.zarr/a'\) or use as_stacks"):
        as_stack(tmp_path / "g.zarr", "YX")
    assert as_stacks([tmp_path / "g.zarr", np.zeros((8, 9), np.uint8)], "YX")[3].source == "array"



def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        as_stack(tmp_path / "missing.tif", "YX")
    with pytest.raises(FileNotFoundError, match="missing.zarr"):
        as_stack(tmp_path / "missing.zarr", "YX")
    with pytest.raises(ValueError, match="unsupported URI scheme 's3'"):
        as_stack("s3://bucket/data.zarr", "YX")  # used to report a mangled local path as missing
    with pytest.raises(FileNotFoundError, match="nothing.png"):
        as_stack(tmp_path / "nothing.png", "YX")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"this is not a tiff file at all")
    with pytest.raises(ValueError, match="cannot read TIFF file .*bad.tif"):
        as_stack(bad, "YX")
    png = tmp_path / "x.png"
    png.write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported file type"):
        as_stack(png, "YX")
    with pytest.raises(TypeError, match="unsupported dtype complex64"):
        as_stack(np.zeros((4, 4), np.complex64), "YX")
    with pytest.raises(TypeError, match="unsupported dtype bool"):
        as_stack(np.zeros((4, 4), bool), "YX")
    with pytest.raises(ValueError, match="unknown axis"):
        as_stack(np.zeros((4, 4)), "YQ")
    with pytest.raises(ValueError, match="3 letters but the data has 2"):
        as_stack(np.zeros((4, 4)), "SYX")
    with pytest.raises(TypeError, match="cannot build an image stack from dict"):
        as_stack({}, "YX")
    with pytest.raises(ValueError, match="placement must be one of"):
        as_stack(np.zeros((4, 4)), "YX", placement="ram")
    stack = as_stack(np.zeros((2, 3, 4, 4), np.float32), "SCYX")
    with pytest.raises(ValueError, match="Channel index 3 .* out of bounds"):
        stack.read_region(0, (0, 0), (2, 2), channels=[0, 3])
    with pytest.raises(ValueError, match="must not be empty"):
        stack.read_region(0, (0, 0), (2, 2), channels=[])
    with pytest.raises(IndexError, match="sample_idx 2"):
        stack.read_region(2, (0, 0), (2, 2))
    with pytest.raises(ValueError, match="must both have 2 entries"):
        stack.read_region(0, (0, 0, 0), (2, 2, 2))
    with pytest.raises(ValueError, match="do not match"):
        as_stack(stack, "CSYX")
