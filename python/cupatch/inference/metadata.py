"""The axes metadata an output file carries: NGFF for ``.ome.zarr``, and for TIFF an ImageJ
hyperstack, OME-XML or tifffile's own description, whichever the axes and dtype allow.

Units, scale and translation are copied from an OME-Zarr input (its
:class:`~cupatch.stacks.ome_zarr.OmeImage`), axis by axis; an axis the input lacks (a
channel axis the model added) gets scale 1 and no unit.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BIGTIFF_BYTES", "NGFF_ORDER", "ngff_axes", "ngff_metadata", "tiff_kwargs"]

#: Axes of an OME-Zarr image, in the order NGFF stores them.
NGFF_ORDER = "TCZYX"

#: TIFF outputs at least this large are written as BigTIFF (classic TIFF offsets are 32-bit;
#: the margin leaves room for the tags and the metadata).
BIGTIFF_BYTES = 2**32 - 2**25

_IMAGEJ_ORDER = "TZCYX"
_IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
# NGFF (UDUNITS-2) length units and OME-XML's spelling of them.
_OME_UNITS = {"nanometer": "nm", "micrometer": "µm", "millimeter": "mm", "centimeter": "cm", "meter": "m",
              "angstrom": "Å"}


def ngff_axes(target_axes: str) -> str:
    """``target_axes`` in NGFF order (``"YXC"`` -> ``"CYX"``)."""
    return "".join(a for a in NGFF_ORDER if a in target_axes)


def ngff_metadata(axes: str, ome) -> tuple[list[dict], list[dict]]:
    """``(axes, coordinateTransformations)`` of a one-level NGFF image with ``axes``
    (NGFF-ordered letters), from the OME input ``ome`` when there is one."""
    if ome is None:
        kinds = {"T": "time", "C": "channel"}
        return [{"name": a.lower(), "type": kinds.get(a, "space")} for a in axes], [
            {"type": "scale", "scale": [1.0] * len(axes)}
        ]
    copied = ome.for_axes(axes)
    transforms = [{"type": "scale", "scale": copied["scale"]}]
    if copied["translation"] is not None:
        transforms.append({"type": "translation", "translation": copied["translation"]})
    return copied["axes"], transforms


def _physical_sizes(axes: str, ome) -> dict[str, tuple[float, str | None]]:
    """Pixel size and unit of the output's Z, Y, X axes, from an OME input."""
    if ome is None:
        return {}
    copied = ome.for_axes(axes)
    return {
        a: (s, meta.get("unit"))
        for a, s, meta in zip(axes, copied["scale"], copied["axes"])
        if a in "ZYX"
    }


def _is_ome_axes(axes: str) -> bool:
    return axes.endswith("YX") and set(axes[:-2]) <= set("TZC")


def tiff_kwargs(path_kind: str, axes: str, dtype, nbytes: int, ome=None) -> tuple[str, dict]:
    """``(format, tifffile keywords)`` for a TIFF output with ``axes`` and ``dtype``.

    ``.ome.tif`` paths are always OME-TIFF. Other ``.tif`` paths are an ImageJ hyperstack
    when its rules allow (axes in TZCYX order, uint8/uint16/float32, below 4 GB: Fiji opens
    it as a hyperstack), else OME-TIFF when the axes are OME's (T, Z, C before Y, X), else a
    TIFF with tifffile's own axes description (for axes such as S, or C after X, that
    neither format has; tifffile and cupatch read the axes back). BigTIFF from
    :data:`BIGTIFF_BYTES` on.
    """
    dtype = np.dtype(dtype)
    bigtiff = nbytes >= BIGTIFF_BYTES
    sizes = _physical_sizes(axes, ome)
    imagej_axes = "".join(a for a in _IMAGEJ_ORDER if a in axes) == axes and axes.endswith("YX")
    if path_kind in (".ome.tif", ".ome.tiff") or not (imagej_axes and dtype in _IMAGEJ_DTYPES and not bigtiff):
        if not _is_ome_axes(axes) or dtype.kind == "b":
            if path_kind in (".ome.tif", ".ome.tiff"):
                raise ValueError(
                    f"an OME-TIFF output needs axes T, Z, C (any order) before Y, X and a numeric dtype; got axes "
                    f"{axes!r}, dtype {dtype}: write a .tif instead, or give target_axes"
                )
            return "tifffile", {"bigtiff": bigtiff, "photometric": "minisblack", "metadata": {"axes": axes}}
        metadata = {"axes": axes}
        for a, (size, unit) in sizes.items():
            metadata[f"PhysicalSize{a}"] = size
            if unit in _OME_UNITS:
                metadata[f"PhysicalSize{a}Unit"] = _OME_UNITS[unit]
        return "ome", {"bigtiff": bigtiff, "ome": True, "photometric": "minisblack", "metadata": metadata}
    metadata = {"axes": axes}
    kwargs = {"imagej": True, "photometric": "minisblack", "metadata": metadata}
    if "Y" in sizes and "X" in sizes:
        kwargs["resolution"] = (1.0 / sizes["X"][0], 1.0 / sizes["Y"][0])
        unit = sizes["X"][1]
        if unit in _OME_UNITS:
            metadata["unit"] = "um" if unit == "micrometer" else _OME_UNITS[unit]
    if "Z" in sizes:
        metadata["spacing"] = sizes["Z"][0]
    return "imagej", kwargs
