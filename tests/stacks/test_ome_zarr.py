"""OME-Zarr inputs (:mod:`cupatch.stacks.ome_zarr`): images written by ome-zarr-py itself, NGFF 0.4 and 0.5."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import zarr

from cupatch.stacks import OmeZarrStack, as_stack, as_stacks, source_axes
from cupatch.stacks.ome_zarr import ome_image

ome_writer = pytest.importorskip("ome_zarr.writer", reason="ome-zarr is not installed (pip install 'cupatch[ome]')")
ome_format = pytest.importorskip("ome_zarr.format")

FORMATS = {"0.4": ome_format.FormatV04, "0.5": ome_format.FormatV05}


def write_ome(path, data, axes, *, version="0.5", scale=None, units=None, labels=None, levels=2):
    """An OME-Zarr image written by ome-zarr-py (``levels`` resolution levels, halved in YX)."""
    fmt = FORMATS[version]()
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ome-zarr's own deprecation notices about its defaults
        ome_writer.write_image(
            data, group, axes=axes, fmt=fmt, scale_factors=[2] * (levels - 1), scale=scale, axes_units=units,
            name="image",
        )
        for name, label in (labels or {}).items():
            ome_writer.write_labels(label, group, name=name, axes=axes.replace("c", ""), fmt=fmt, scale_factors=[])
    return path


@pytest.fixture(params=["0.4", "0.5"])
def version(request):
    return request.param


def test_axes_scale_and_units_from_the_metadata(tmp_path, version):
    data = np.random.default_rng(0).integers(0, 4000, (2, 3, 32, 40)).astype(np.uint16)
    path = write_ome(tmp_path / "img.ome.zarr", data, "czyx", version=version, scale={"z": 2.0, "y": 0.5, "x": 0.25},
                     units={"z": "micrometer", "y": "micrometer", "x": "micrometer"})
    stack = as_stack(str(path))  # no axes: they come from the multiscales metadata
    assert isinstance(stack, OmeZarrStack)
    assert stack.original_axes == "CZYX" and stack.data_shape == (1, 2, 3, 32, 40)
    assert stack.ome.version == version and stack.ome.level == 0 and stack.ome.n_levels == 2
    assert stack.ome.scale[1:] == (2.0, 0.5, 0.25)
    assert [a.get("unit") for a in stack.ome.axes_metadata] == [None, "micrometer", "micrometer", "micrometer"]
    np.testing.assert_array_equal(stack.read_region(0, (0, 0, 0), (3, 32, 40)), data)
    assert source_axes(str(path)) == "CZYX"
    in_memory = as_stack(str(path), placement="cpu")  # placed in memory, it keeps the OME metadata
    assert in_memory.ome == stack.ome and in_memory.array is not None
    assert as_stack(str(path), "CZYX").original_axes == "CZYX"  # given axes are checked
    with pytest.raises(ValueError, match="do not match the OME-Zarr image's axes 'CZYX'"):
        as_stack(str(path), "ZCYX")


def test_level_chooses_the_resolution(tmp_path, version):
    data = np.arange(64 * 48, dtype=np.float32).reshape(64, 48)
    path = write_ome(tmp_path / "img.ome.zarr", data, "yx", version=version, levels=3)
    low = as_stack(path, level=2)  # a PathLike works as a str does
    assert low.data_shape == (1, 1, 16, 12) and low.ome.level == 2
    assert low.ome.scale == (4.0, 4.0)  # ome-zarr-py's scale of the level
    group = zarr.open_group(str(path), mode="r")
    np.testing.assert_array_equal(low.read_sample(0)[0], np.asarray(group[ome_image(group, 2).path]))
    assert as_stack(group).data_shape == (1, 1, 64, 48)  # a zarr.Group works too
    assert len(as_stacks([str(path)])) == 1  # one image, not one stack per level
    with pytest.raises(ValueError, match="level must be one of 0 to 2"):
        as_stack(str(path), level=3)


def test_labels_group_is_a_stack(tmp_path, version):
    data = np.random.default_rng(1).random((2, 24, 24)).astype(np.float32)
    cells = (data[0] > 0.5).astype(np.uint8)
    nuclei = (data[1] > 0.8).astype(np.uint8) * 2
    path = write_ome(tmp_path / "img.ome.zarr", data, "cyx", version=version, labels={"cells": cells, "nuclei": nuclei},
                     levels=1)
    mask = as_stack(f"{path}/labels/cells")
    assert mask.original_axes == "YX" and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask.read_sample(0)[0], cells)
    both = as_stacks(f"{path}/labels")  # the labels group: one stack per label image, in its order
    np.testing.assert_array_equal(both[1].read_sample(0)[0], nuclei)
    with pytest.raises(ValueError, match="labels group with 2 label images"):
        as_stack(f"{path}/labels")


def test_plain_zarr_dimension_names_give_the_axes(tmp_path):
    array = zarr.create_array(str(tmp_path / "plain.zarr"), shape=(3, 8, 9), dtype="uint16", dimension_names=["c", "y", "x"])
    array[:] = 7
    assert as_stack(str(tmp_path / "plain.zarr")).original_axes == "CYX"
    unnamed = zarr.create_array(str(tmp_path / "unnamed.zarr"), shape=(8, 9), dtype="uint16")
    with pytest.raises(ValueError, match="axes is required.*carries no axes metadata"):
        as_stack(unnamed)


def test_not_ome_and_bad_metadata(tmp_path):
    data = np.zeros((8, 8), np.float32)
    with pytest.raises(ValueError, match="level applies to OME-Zarr images only"):
        as_stack(data, "YX", level=1)
    path = write_ome(tmp_path / "img.ome.zarr", data, "yx", levels=1)
    group = zarr.open_group(str(path), mode="r+")
    attrs = dict(group.attrs)
    attrs["ome"]["multiscales"][0]["axes"][0]["name"] = "angle"
    group.attrs.put(attrs)
    with pytest.raises(ValueError, match="axis 'angle' is not one of t, c, z, y, x"):
        as_stack(str(path))
