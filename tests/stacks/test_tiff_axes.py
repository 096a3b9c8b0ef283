"""TIFF inputs without ``axes``: the axes of OME-XML, ImageJ and tifffile metadata (:func:`tiff_axes`)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from cupatch.stacks import as_stack, source_axes
from cupatch.stacks.tiff_stack import tiff_axes


@pytest.mark.parametrize(
    ("axes", "kwargs"),
    [
        ("TCYX", {"ome": True}),
        ("CZYX", {"ome": True}),
        ("ZCYX", {"imagej": True}),
        ("TZCYX", {"imagej": True}),
        ("SYX", {}),  # tifffile's shaped metadata, as cupatch's own outputs carry when OME and ImageJ cannot
    ],
)
def test_axes_come_from_the_file(tmp_path, axes, kwargs):
    shape = {"T": 2, "Z": 3, "C": 2, "S": 2, "Y": 16, "X": 12}
    data = np.arange(np.prod([shape[a] for a in axes]), dtype=np.uint16).reshape([shape[a] for a in axes])
    path = tmp_path / "img.tif"
    tifffile.imwrite(path, data, metadata={"axes": axes}, **kwargs)
    assert tiff_axes(path) == axes == source_axes(str(path))
    stack = as_stack(str(path))
    assert stack.original_axes == axes and stack.original_data_shape == data.shape


def test_imagej_rgb_samples_are_channels(tmp_path):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.zeros((16, 12, 3), np.uint8), imagej=True, photometric="rgb")
    assert tiff_axes(path) == "YXC"


def test_files_that_do_not_name_their_axes_need_them(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.zeros((5, 16, 12), np.uint16))  # tifffile guesses the axes: not trusted
    assert tiff_axes(path) is None
    with pytest.raises(ValueError, match="axes is required.*plain.tif.*carries no axes metadata"):
        as_stack(str(path))
    assert as_stack(str(path), "ZYX").original_axes == "ZYX"


def test_a_missing_file_is_not_found_with_or_without_axes(tmp_path):
    for axes in (None, "YX"):
        with pytest.raises(FileNotFoundError, match="missing.tif"):
            as_stack(str(tmp_path / "missing.tif"), axes)

