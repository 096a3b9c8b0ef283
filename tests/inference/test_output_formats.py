"""Output files read back by other libraries: OME-Zarr by ome-zarr-py, Zarr by zarr, TIFF by
tifffile (axes, units, scale, values, compression, BigTIFF), and OME-Zarr inputs predicted
without axes (:mod:`cupatch.inference.writers`, :mod:`cupatch.inference.metadata`)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import tifffile
import zarr

import cupatch
from cupatch.inference import metadata

ome_writer = pytest.importorskip("ome_zarr.writer", reason="ome-zarr is not installed (pip install 'cupatch[ome]')")
from ome_zarr.format import FormatV04, FormatV05  # noqa: E402
from ome_zarr.io import parse_url  # noqa: E402
from ome_zarr.reader import Reader  # noqa: E402

IMAGE = np.random.default_rng(3).random((2, 3, 40, 56)).astype(np.float32)  # CZYX


def double(x):
    return x * 2


def predict(data, out, **kw):
    kw = {"tile_size": (2, 16, 16), "overlaps": (0, 4, 4), "progress": False, **kw}
    return cupatch.predict_tiled(double, data, out=None if out is None else str(out), **kw)


def write_ome_input(path, version="0.5"):
    fmt = {"0.4": FormatV04, "0.5": FormatV05}[version]()
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ome_writer.write_image(IMAGE, group, axes="czyx", fmt=fmt, scale_factors=[], scale={"z": 2.0, "y": 0.5, "x": 0.25},
                               axes_units={"z": "micrometer", "y": "micrometer", "x": "micrometer"}, name="cells")
    return path


def read_with_ome_zarr(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nodes = list(Reader(parse_url(str(path)))())
    return nodes[0]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_in_and_out_without_axes(tmp_path, version):
    source = write_ome_input(tmp_path / "in.ome.zarr", version)
    result = predict(str(source), tmp_path / "pred.ome.zarr")  # no axes: from the input's metadata
    node = read_with_ome_zarr(tmp_path / "pred.ome.zarr")
    assert [a["name"] for a in node.metadata["axes"]] == ["c", "z", "y", "x"]
    assert [a.get("unit") for a in node.metadata["axes"]] == [None, "micrometer", "micrometer", "micrometer"]
    transforms = node.metadata["coordinateTransformations"][0]
    assert transforms[0] == {"type": "scale", "scale": [1.0, 2.0, 0.5, 0.25]}
    assert len(node.data) == 1  # one resolution level
    np.testing.assert_allclose(np.asarray(node.data[0]), 2 * IMAGE, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(result), np.asarray(node.data[0]))
    group = zarr.open_group(str(tmp_path / "pred.ome.zarr"), mode="r")
    assert group.attrs["ome"]["version"] == "0.5" and group["0"].metadata.dimension_names == ("c", "z", "y", "x")
    assert group["0"].chunks[1] == 2  # chunk-aligned with the tile step along Z
    again = cupatch.as_stack(str(tmp_path / "pred.ome.zarr"))  # and cupatch reads its own output
    assert again.original_axes == "CZYX" and again.ome.scale == (1.0, 2.0, 0.5, 0.25)


def test_ome_zarr_output_of_an_array_is_put_in_ngff_order(tmp_path):
    image = np.moveaxis(IMAGE[:, 0], 0, -1)  # YXC
    result = cupatch.predict_tiled(double, image, axes="YXC", tile_size=16, overlaps=4, out=str(tmp_path / "p.ome.zarr"),
                                   progress=False)
    node = read_with_ome_zarr(tmp_path / "p.ome.zarr")
    assert [a["name"] for a in node.metadata["axes"]] == ["c", "y", "x"]
    np.testing.assert_allclose(np.asarray(result), 2 * IMAGE[:, 0], rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": np.zeros((2, 32, 32), np.float32), "axes": "SYX"}, "OME-Zarr images have no sample axis S"),
        ({"data": np.zeros((3, 32, 32), np.float32), "axes": "CYX", "target_axes": "YXC"}, "stores axes in the order TCZYX"),
    ],
)
def test_ome_zarr_outputs_refuse_axes_ngff_cannot_hold(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cupatch.predict_tiled(double, tile_size=16, overlaps=4, out=str(tmp_path / "p.ome.zarr"), progress=False, **kwargs)
    assert not (tmp_path / "p.ome.zarr").exists()  # refused before any work


def test_plain_zarr_output_has_dimension_names(tmp_path):
    result = predict(IMAGE, tmp_path / "p.zarr", axes="CZYX")
    array = zarr.open_array(str(tmp_path / "p.zarr"), mode="r")
    assert array.metadata.dimension_names == ("C", "Z", "Y", "X")
    np.testing.assert_allclose(array[...], 2 * IMAGE, rtol=1e-6)
    assert cupatch.as_stack(str(tmp_path / "p.zarr")).original_axes == "CZYX" and result.shape == IMAGE.shape


@pytest.mark.parametrize(
    ("name", "axes", "target_axes", "dtype", "kind"),
    [
        ("p.tif", "CZYX", "ZCYX", np.float32, "imagej"),  # ImageJ's TZCYX order: a hyperstack
        ("p.tif", "CZYX", None, np.float32, "ome"),  # C before Z: not ImageJ's order, OME's
        ("p.tif", "CZYX", "ZCYX", np.float64, "ome"),  # ImageJ has no float64
        ("p.ome.tif", "CZYX", "ZCYX", np.float32, "ome"),  # asked for by name
        ("p.tif", "CZYX", "ZYXC", np.float32, "tifffile"),  # C after X: neither format, tifffile's axes
    ],
)
def test_tiff_outputs_carry_their_axes(tmp_path, name, axes, target_axes, dtype, kind):
    model = (lambda x: (x * 2).astype(dtype)) if dtype != np.float32 else double
    path = tmp_path / name
    cupatch.predict_tiled(model, IMAGE, axes=axes, tile_size=(2, 16, 16), overlaps=(0, 4, 4), target_axes=target_axes,
                          out=str(path), progress=False)
    out_axes = target_axes or axes
    with tifffile.TiffFile(path) as tif:
        assert (tif.is_imagej, tif.is_ome) == (kind == "imagej", kind == "ome")
        assert tif.series[0].axes == out_axes
        expected = cupatch.stacks.restore_array(2 * IMAGE[None], axes, IMAGE.shape, out_axes)
        np.testing.assert_allclose(tif.asarray(), expected, rtol=1e-6)
        assert tif.asarray().dtype == dtype
    assert cupatch.as_stack(str(path)).original_axes == out_axes  # read back without axes


@pytest.mark.parametrize("compression", ["zlib", "zstd"])
def test_compressed_tiff(tmp_path, compression):
    path = tmp_path / "p.tif"
    result = predict(IMAGE, path, axes="CZYX", target_axes="ZCYX", compression=compression)
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].compression == {"zlib": 8, "zstd": 50000}[compression]
        assert tif.series[0].axes == "ZCYX"
        np.testing.assert_allclose(tif.asarray(), 2 * np.swapaxes(IMAGE, 0, 1), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(result), tifffile.imread(path))  # a read-only view of the file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.tif"]  # no temporary file, no marker left


def test_compressed_zarr(tmp_path):
    predict(IMAGE, tmp_path / "p.zarr", axes="CZYX", compression="zlib")
    array = zarr.open_array(str(tmp_path / "p.zarr"), mode="r")
    assert [type(c).__name__ for c in array.compressors] == ["GzipCodec"]


def test_ome_tiff_gets_the_pixel_size_of_an_ome_input(tmp_path):
    source = write_ome_input(tmp_path / "in.ome.zarr")
    predict(str(source), tmp_path / "p.ome.tif")
    with tifffile.TiffFile(tmp_path / "p.ome.tif") as tif:
        pixels = tif.ome_metadata
    assert 'PhysicalSizeX="0.25"' in pixels and 'PhysicalSizeZ="2.0"' in pixels and "µm" in pixels


def test_imagej_tiff_gets_the_pixel_size_of_an_ome_input(tmp_path):
    source = write_ome_input(tmp_path / "in.ome.zarr")
    predict(str(source), tmp_path / "p.tif", target_axes="ZCYX")  # ImageJ's order: a hyperstack
    with tifffile.TiffFile(tmp_path / "p.tif") as tif:
        assert tif.is_imagej and tif.imagej_metadata["unit"] == "um" and tif.imagej_metadata["spacing"] == 2.0
        assert tif.pages[0].resolution == (4.0, 2.0)  # pixels per µm along X (0.25 µm) and Y (0.5 µm)


def test_bigtiff_when_large(tmp_path, monkeypatch):
    assert metadata.tiff_kwargs(".tif", "ZYX", np.float32, 2**33)[1]["bigtiff"] is True
    assert metadata.tiff_kwargs(".tif", "ZYX", np.float32, 2**33)[0] == "ome"  # ImageJ files stay below 4 GB
    monkeypatch.setattr(metadata, "BIGTIFF_BYTES", 1024)  # a small file stands in for a 4 GB one
    predict(IMAGE, tmp_path / "p.tif", axes="CZYX")
    with tifffile.TiffFile(tmp_path / "p.tif") as tif:
        assert tif.is_bigtiff and tif.series[0].axes == "CZYX"
        np.testing.assert_allclose(tif.asarray(), 2 * IMAGE, rtol=1e-6)


@pytest.mark.parametrize(
    ("out", "kwargs", "error", "message"),
    [
        ("p.npy", {"compression": "zlib"}, ValueError, "compression='zlib' applies to .tif/.tiff and .zarr output paths"),
        (None, {"compression": "zstd"}, ValueError, "but out is 'None'"),
        ("p.tif", {"compression": "lzw"}, ValueError, 'compression must be one of None, "zlib", "zstd", got "lzw"'),
        ("p.ome.tif", {"target_axes": "ZYXC"}, ValueError, "OME-TIFF needs the axes T, Z, C"),
    ],
)
def test_bad_output_options(tmp_path, out, kwargs, error, message):
    with pytest.raises(error, match=message):
        predict(IMAGE, None if out is None else tmp_path / out, axes="CZYX", **kwargs)


@pytest.mark.parametrize(
    ("module", "out", "kwargs", "message"),
    [
        ("ome_zarr", "p.ome.zarr", {}, r"writing OME-Zarr needs ome-zarr: pip install 'cupatch\[ome\]'"),
        ("imagecodecs", "p.tif", {"compression": "zlib"}, r"needs imagecodecs: pip install 'cupatch\[ome\]'"),
    ],
)
def test_missing_extra_is_named(tmp_path, monkeypatch, module, out, kwargs, message):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if it were not installed
    with pytest.raises(ImportError, match=message):
        predict(IMAGE, tmp_path / out, axes="CZYX", **kwargs)
