"""``cupatch predict`` with inputs that carry their axes (:mod:`cupatch._cli_input`) and
output formats other tools read: no ``--axes`` for OME-Zarr and OME/ImageJ TIFF,
``--level``, ``.ome.zarr`` outputs, ``--compression``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile
import zarr

from cupatch.cli import main

ome_writer = pytest.importorskip("ome_zarr.writer", reason="ome-zarr is not installed (pip install 'cupatch[ome]')")
from ome_zarr.format import FormatV04  # noqa: E402

IMAGE = (np.random.default_rng(5).random((2, 96, 80)) * 1000).astype(np.uint16)  # CYX


def _ome_input(path):
    fmt = FormatV04()
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ome_writer.write_image(IMAGE, group, axes="cyx", fmt=fmt, scale_factors=[2], scale={"y": 0.5, "x": 0.5},
                               axes_units={"y": "micrometer", "x": "micrometer"})
    return str(path)


def test_ome_zarr_in_ome_zarr_out_without_axes(tmp_path, capsys):
    source = _ome_input(tmp_path / "in.ome.zarr")
    out = tmp_path / "pred.ome.zarr"
    args = ["predict", source, "--tile", "32", "--overlap", "8", "--out", str(out), "--no-progress", "--no-check"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "(axes CYX, from the file's metadata, shape 2x96x80, uint16)" in printed
    group = zarr.open_group(str(out), mode="r")
    multiscale = group.attrs["ome"]["multiscales"][0]
    assert [a["name"] for a in multiscale["axes"]] == ["c", "y", "x"]
    assert multiscale["axes"][1]["unit"] == "micrometer"
    assert multiscale["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 0.5, 0.5]
    assert group["0"].shape == IMAGE.shape


def test_level_picks_an_ome_zarr_resolution(tmp_path, capsys):
    source = _ome_input(tmp_path / "in.ome.zarr")
    assert main(["predict", source, "--level", "1", "--tile", "32", "--overlap", "8", "--no-progress", "--no-check"]) == 0
    assert "shape 2x48x40" in capsys.readouterr().out
    assert main(["predict", source, "--level", "2", "--no-progress", "--no-check"]) == 1
    assert "level must be one of 0 to 1" in capsys.readouterr().err


def test_imagej_tiff_axes_and_compression(tmp_path, capsys):
    source = tmp_path / "in.tif"
    tifffile.imwrite(source, IMAGE, imagej=True, metadata={"axes": "CYX"})
    out = tmp_path / "pred.tif"
    args = ["predict", str(source), "--tile", "32", "--overlap", "8", "--out", str(out), "--compression", "zstd",
            "--no-progress", "--no-check"]
    assert main(args) == 0
    assert "(axes CYX, from the file's metadata" in capsys.readouterr().out
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "CYX" and tif.pages[0].compression == 50000 and tif.is_imagej


def test_files_without_axes_still_default_to_yx(tmp_path, capsys):
    source = tmp_path / "plain.npy"
    np.save(source, IMAGE[0])
    assert main(["predict", str(source), "--tile", "32", "--overlap", "8", "--no-progress", "--no-check"]) == 0
    assert "(axes YX, the default, shape 96x80" in capsys.readouterr().out
    assert main(["predict", str(source), "--level", "1", "--no-progress"]) == 1
    assert "level applies to OME-Zarr images only" in capsys.readouterr().err
