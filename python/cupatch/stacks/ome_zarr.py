"""OME-Zarr (OME-NGFF 0.4 and 0.5) images as stacks: axes, scale and units from the metadata.

An OME-Zarr *image* is a Zarr group whose attributes hold ``multiscales`` (NGFF 0.4, Zarr v2)
or ``ome.multiscales`` (NGFF 0.5, Zarr v3): the axes (``name``, ``type``, ``unit``) and one
dataset per resolution level with its ``coordinateTransformations`` (scale, translation).
A *labels* group (``labels`` / ``ome.labels``) lists label images, each an OME-Zarr image
itself. This module reads that JSON as the specification writes it
(https://ngff.openmicroscopy.org/0.4/ and /0.5/) with zarr alone, so reading needs no
extra package; writing (:mod:`cupatch.inference.writers`) goes through ``ome-zarr``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .zarr_stack import ZarrStack

__all__ = ["NGFF_AXES", "OmeImage", "OmeZarrStack", "label_names", "ngff_attrs", "ome_image"]

#: NGFF axis names cupatch understands, and the axis letter each becomes.
NGFF_AXES = {"t": "T", "c": "C", "z": "Z", "y": "Y", "x": "X"}


@dataclass(frozen=True)
class OmeImage:
    """The NGFF metadata of one resolution level of an OME-Zarr image.

    ``axes`` are cupatch's letters (``"CZYX"``); ``axes_metadata`` the NGFF axis dicts
    (``name``, ``type``, ``unit``), ``scale`` and ``translation`` the level's transformation
    per axis, all in the array's axis order.
    """

    version: str
    axes: str
    axes_metadata: tuple
    scale: tuple
    translation: tuple | None
    level: int
    n_levels: int
    path: str  # the level's array, inside the image group
    name: str | None

    def for_axes(self, letters: str) -> dict:
        """Units, scale and translation of the axes ``letters`` (an output's), taken from the
        axes of the same letter here; an axis this image lacks gets scale 1, no unit."""
        by_letter = {a: i for i, a in enumerate(self.axes)}
        axes, scale, translation = [], [], []
        for letter in letters:
            i = by_letter.get(letter)
            if i is None:
                axes.append({"name": letter.lower(), "type": _TYPES[letter]})
                scale.append(1.0)
                translation.append(0.0)
            else:
                axes.append(dict(self.axes_metadata[i]))
                scale.append(float(self.scale[i]))
                translation.append(float(self.translation[i]) if self.translation else 0.0)
        return {"axes": axes, "scale": scale, "translation": translation if self.translation else None}


_TYPES = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}


def ngff_attrs(group) -> tuple[str | None, dict]:
    """``(version, attributes)`` of a group's NGFF metadata: 0.5 keeps it under ``ome``."""
    attrs = dict(group.attrs)
    if isinstance(attrs.get("ome"), dict):  # NGFF 0.5
        ome = attrs["ome"]
        return str(ome.get("version", "0.5")), ome
    if "multiscales" in attrs:  # NGFF <= 0.4: the version is on each multiscale
        multiscales = attrs["multiscales"]
        version = multiscales[0].get("version") if multiscales and isinstance(multiscales[0], dict) else None
        return (str(version) if version else None), attrs
    return None, attrs


def is_ome_image(node) -> bool:
    """True for a Zarr group with NGFF ``multiscales`` metadata."""
    import zarr  # imported on first use: reading Zarr is optional

    return isinstance(node, zarr.Group) and bool(ngff_attrs(node)[1].get("multiscales"))


def label_names(node) -> list[str] | None:
    """The label images a NGFF ``labels`` group lists, or None for any other node."""
    import zarr  # imported on first use: reading Zarr is optional

    if not isinstance(node, zarr.Group):
        return None
    labels = ngff_attrs(node)[1].get("labels")
    return [str(name) for name in labels] if isinstance(labels, list) else None


def _where(group) -> str:
    return str(getattr(group, "store_path", None) or group)


def _axis_letters(axes, where: str) -> tuple[str, tuple]:
    if not isinstance(axes, list) or not axes:
        raise ValueError(f"OME-Zarr image {where}: multiscales has no axes list; cupatch reads NGFF 0.4 and 0.5")
    letters, meta = [], []
    for axis in axes:
        entry = dict(axis) if isinstance(axis, dict) else {"name": str(axis)}  # NGFF 0.3: plain names
        name = str(entry.get("name", "")).lower()
        if name not in NGFF_AXES:
            raise ValueError(
                f"OME-Zarr image {where}: axis {entry.get('name')!r} is not one of {', '.join(NGFF_AXES)} "
                f"(the NGFF time, channel and space axes cupatch maps to T, C, Z, Y, X)"
            )
        letters.append(NGFF_AXES[name])
        meta.append(entry)
    return "".join(letters), tuple(meta)


def _transform(transforms, kind: str, n: int, where: str):
    for t in transforms or ():
        if isinstance(t, dict) and t.get("type") == kind:
            if "path" in t:
                raise ValueError(f"OME-Zarr image {where}: {kind} stored in a separate array is not supported")
            values = tuple(float(v) for v in t.get(kind, ()))
            if len(values) != n:
                raise ValueError(f"OME-Zarr image {where}: {kind} {list(values)} does not have one value per axis ({n})")
            return values
    return None


def ome_image(group, level: int = 0) -> OmeImage:
    """Read the NGFF metadata of ``level`` (0: full resolution) of an OME-Zarr image group.

    Raises
    ------
    ValueError
        Not an OME-Zarr image, unsupported axes, or ``level`` out of range (the message
        names the levels there are).
    """
    from .._validation import as_int

    where = _where(group)
    version, attrs = ngff_attrs(group)
    multiscales = attrs.get("multiscales")
    if not multiscales:
        raise ValueError(f"{where} is not an OME-Zarr image (no NGFF multiscales metadata)")
    multiscale = multiscales[0]
    letters, axes_meta = _axis_letters(multiscale.get("axes"), where)
    datasets = multiscale.get("datasets") or []
    level = as_int(level, "level")
    if not 0 <= level < len(datasets):
        raise ValueError(
            f"level must be one of 0 to {len(datasets) - 1} (the resolution levels of the OME-Zarr image {where}), "
            f"got {level}"
        )
    dataset = datasets[level]
    transforms = dataset.get("coordinateTransformations")
    scale = _transform(transforms, "scale", len(letters), where) or (1.0,) * len(letters)
    translation = _transform(transforms, "translation", len(letters), where)
    return OmeImage(
        version=version or "0.4",
        axes=letters,
        axes_metadata=axes_meta,
        scale=scale,
        translation=translation,
        level=level,
        n_levels=len(datasets),
        path=str(dataset["path"]),
        name=multiscale.get("name"),
    )


class OmeZarrStack(ZarrStack):
    """One resolution level of an OME-Zarr image, axes from its metadata.

    Parameters
    ----------
    group : zarr.Group
        The image group (its attributes hold ``multiscales``).
    level : int
        Resolution level, 0 (full resolution) by default.
    axes : str, optional
        Checked against the metadata when given (they must be the same).

    Attributes
    ----------
    ome : OmeImage
        The level's NGFF metadata; ``predict_tiled`` copies its axes, units and scale to an
        OME-Zarr or OME-TIFF output.
    """

    def __init__(self, group, level: int = 0, axes: str | None = None) -> None:
        from .axes import validate_axes

        self.ome = ome_image(group, level)
        if axes is not None and validate_axes(axes) != self.ome.axes:
            raise ValueError(
                f"axes {axes!r} do not match the OME-Zarr image's axes {self.ome.axes!r} (from its metadata, "
                f"{_where(group)}); leave axes out to use them"
            )
        try:
            array = group[self.ome.path]
        except KeyError:
            raise ValueError(f"OME-Zarr image {_where(group)}: level {level} names the array {self.ome.path!r}, which is missing") from None
        if len(array.shape) != len(self.ome.axes):
            raise ValueError(
                f"OME-Zarr image {_where(group)}: level {level} has {len(array.shape)} dimensions but the metadata "
                f"names {len(self.ome.axes)} axes ({self.ome.axes})"
            )
        super().__init__(array, self.ome.axes)

    def to_device(self, placement: str):
        """As :meth:`LazyStack.to_device`; the in-memory stack keeps :attr:`ome`."""
        stack = super().to_device(placement)
        stack.ome = self.ome
        return stack
