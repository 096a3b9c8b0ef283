"""``ImageRegionData``: a region (patch, tile or whole sample) with its metadata, and its
collated (batched) form.

Follows CAREamics' ``careamics.dataset.image_region_data.ImageRegionData`` field for field.
:func:`collate_regions` builds the batched form CAREamics gets from torch's
``default_collate`` (same layout), but keeps the data in its own array library (NumPy or
CuPy) and the metadata in plain Python lists and NumPy int64 arrays on the host, so no
torch is needed and :func:`decollate_regions` never synchronises a device.
:func:`collate_table` builds the same batched form straight from a spec table and the
per-stack metadata (:func:`stack_metadata`), without one dict per region: what
:meth:`cupatch.PatchDataset.get_batch` returns.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np

from ._backend import is_cupy_array
from ._layouts import TILE_AXIS_FIELDS, n_tile_columns, patch_columns, tile_columns
from ._validation import is_int

__all__ = [
    "ImageRegionData",
    "PerAxis",
    "collate_regions",
    "collate_spec_table",
    "collate_table",
    "decollate_regions",
    "stack_metadata",
]

RegionSpecT = TypeVar("RegionSpecT")

# typing.NamedTuple accepts Generic as a second base from Python 3.11 on
_BASES: tuple = (NamedTuple, Generic[RegionSpecT]) if sys.version_info >= (3, 11) else (NamedTuple,)


class ImageRegionData(*_BASES):  # type: ignore[misc]
    """One region of an image stack, or a batch of them after :func:`collate_regions`.

    Attributes
    ----------
    data : array
        Region data C(Z)YX (NumPy on the CPU path, CuPy on the GPU path); ``(B, C, [Z,] Y,
        X)`` once collated.
    source : str
        Where the stack comes from: ``"array"``, a file path, a zarr URI.
    data_shape : sequence of int
        SC(Z)YX shape of the stack (C adjusted to the selected channels for inputs).
    dtype : str
        dtype of the original data (e.g. ``"uint16"``), not of ``data``.
    axes : str
        Axes of the original data, user order.
    target_axes : str
        Axes predictions are restored to.
    original_data_shape : sequence of int
        Shape of the stack in the original axis order.
    region_spec : PatchSpecs or TileSpecs
        The spec that produced the region.
    additional_metadata : dict
        Extra information, e.g. ``{"chunks": ..., "shards": ...}`` for zarr stacks.
    """

    data: Any
    source: Any
    data_shape: Any
    dtype: Any
    axes: Any
    target_axes: Any
    original_data_shape: Any
    region_spec: Any
    additional_metadata: Any

    @classmethod
    def from_model_output(cls, input_region: ImageRegionData, output_data: Any) -> ImageRegionData:
        """Copy every field of ``input_region`` except ``data``, which becomes ``output_data``.

        As in CAREamics, ``data_shape`` keeps the input's channel count.
        """
        if not _is_region(input_region):
            raise TypeError(f"input_region must be an ImageRegionData, got {type(input_region).__name__}")
        return cls(output_data, *input_region[1:])


def _is_region(value: Any) -> bool:
    """An ImageRegionData (ours, or another NamedTuple with the same fields, e.g. CAREamics')."""
    return isinstance(value, tuple) and all(hasattr(value, f) for f in ImageRegionData._fields)


def _is_item(value: Any) -> bool:
    """A dataset item: a tuple of one region per role, ``(input,)`` or ``(input, target)``."""
    return isinstance(value, tuple) and not _is_region(value) and 0 < len(value) and all(_is_region(r) for r in value)


def _collate_items(items: list) -> tuple:
    """Collate dataset items role by role (torch's ``default_collate`` of tuples)."""
    n = len(items[0])
    for i, item in enumerate(items):
        if not _is_item(item) or len(item) != n:
            raise TypeError(
                f"regions[{i}] must be a dataset item of {n} ImageRegionData like regions[0], got "
                f"{type(item).__name__}{f' of length {len(item)}' if isinstance(item, tuple) else ''}"
            )
    return tuple(collate_regions([item[k] for item in items]) for k in range(n))


def _stack(arrays: Sequence[Any]) -> Any:
    """Stack region arrays along a new first axis in their own array library."""
    first = arrays[0]
    if is_cupy_array(first):
        import cupy  # optional dependency: only reached with CuPy data

        return cupy.stack(arrays)
    if type(first).__module__.split(".")[0] == "numpy" or isinstance(first, np.ndarray):
        return np.stack(arrays)
    if hasattr(first, "__array_namespace__"):
        return first.__array_namespace__().stack(arrays)
    raise TypeError(f"cannot collate region data of type {type(first).__name__}; expected NumPy or CuPy arrays")


class PerAxis(list):
    """A list of per-axis int64 arrays ``(B,)``: the collated form of a tuple field."""


def per_axis(columns: np.ndarray) -> PerAxis:
    """(B, n) int table -> the collated per-axis form (a list of contiguous int64 arrays (B,))."""
    return PerAxis(np.ascontiguousarray(columns[:, a], dtype=np.int64) for a in range(columns.shape[1]))


def _is_int_seq(v: Any) -> bool:
    return isinstance(v, (tuple, list)) and all(is_int(x) for x in v)


def _collate_value(values: list[Any], name: str) -> Any:
    """Ints -> int64 array (B,); int sequences -> list of per-axis int64 arrays; else list."""
    if all(is_int(v) for v in values):
        return np.array(values, dtype=np.int64)
    if all(_is_int_seq(v) for v in values):
        lengths = {len(v) for v in values}
        if len(lengths) != 1:
            raise ValueError(f"{name} has different lengths across the batch: {sorted(lengths)}")
        return PerAxis(np.array(axis_values, dtype=np.int64) for axis_values in zip(*values))
    return list(values)


def _collate_dict(dicts: list[Mapping[str, Any]], name: str) -> dict[str, Any]:
    keys = list(dicts[0].keys())
    for i, d in enumerate(dicts):
        if set(d.keys()) != set(keys):
            raise ValueError(
                f"{name} of region {i} has keys {sorted(d.keys())}, region 0 has {sorted(keys)}; "
                "every region of a batch needs the same keys"
            )
    return {k: _collate_value([d[k] for d in dicts], f"{name}[{k!r}]") for k in keys}


def collate_regions(regions: Sequence[ImageRegionData]) -> ImageRegionData:
    """Batch regions the way CAREamics' collation does, without torch.

    Parameters
    ----------
    regions : sequence of ImageRegionData, or of dataset items
        B regions with equally shaped ``data`` and the same metadata keys; or B dataset
        items ``(input,)`` / ``(input, target)`` (what ``PatchDataset[i]`` returns), which
        are collated role by role, as torch's ``default_collate`` does, into the tuple that
        ``PatchDataset.get_batch`` returns.

    Returns
    -------
    ImageRegionData, or a tuple of them for dataset items
        ``data`` stacked to ``(B, C, [Z,] Y, X)`` in the regions' array library;
        ``source``, ``dtype``, ``axes``, ``target_axes``: lists of length B;
        ``data_shape``, ``original_data_shape``: lists of per-dimension int64 arrays of
        length B; ``region_spec`` and ``additional_metadata``: dicts whose int fields are
        int64 arrays ``(B,)`` and whose tuple fields (``coords``, ``patch_size``, ...,
        zarr ``chunks``/``shards``) are lists of per-axis int64 arrays ``(B,)``; other
        values are kept as lists of length B. Metadata stays on the host.

    Raises
    ------
    ValueError
        If ``regions`` is empty, data shapes differ, or metadata keys/lengths differ.
    """
    if isinstance(regions, (str, bytes, Mapping)) or not isinstance(regions, Iterable) or _is_region(regions):
        raise TypeError(f"regions must be a sequence of ImageRegionData, got {type(regions).__name__}")
    regions = list(regions)
    if not regions:
        raise ValueError("regions must not be empty")
    if _is_item(regions[0]):
        return _collate_items(regions)
    for i, r in enumerate(regions):
        if not isinstance(r, tuple) or len(r) != len(ImageRegionData._fields):
            raise TypeError(f"regions[{i}] must be an ImageRegionData, got {type(r).__name__}")
        if not (hasattr(r.data, "shape") and hasattr(r.data, "dtype")):
            raise TypeError(
                f"cannot collate region data of type {type(r.data).__name__} (regions[{i}].data); "
                "expected NumPy or CuPy arrays"
            )
    shapes = {tuple(r.data.shape) for r in regions}
    if len(shapes) != 1:
        raise ValueError(
            f"regions have different data shapes {sorted(shapes)}; batch regions of one shape "
            "(e.g. whole-sample prediction of differently sized images needs batches of 1)"
        )
    return ImageRegionData(
        data=_stack([r.data for r in regions]),
        source=[r.source for r in regions],
        data_shape=_collate_value([tuple(r.data_shape) for r in regions], "data_shape"),
        dtype=[r.dtype for r in regions],
        axes=[r.axes for r in regions],
        target_axes=[r.target_axes for r in regions],
        original_data_shape=_collate_value([tuple(r.original_data_shape) for r in regions], "original_data_shape"),
        region_spec=_collate_dict([r.region_spec for r in regions], "region_spec"),
        additional_metadata=_collate_dict([r.additional_metadata for r in regions], "additional_metadata"),
    )


def _to_list(v: Any) -> list:
    return v.tolist() if hasattr(v, "tolist") else list(v)


def _is_1d_array(a: Any) -> bool:
    return hasattr(a, "shape") and hasattr(a, "dtype") and len(a.shape) == 1


def _decollate_value(v: Any, batch_size: int) -> list[Any]:
    """Inverse of :func:`_collate_value`: one plain Python value per batch item."""
    # PerAxis marks our own per-axis lists; a plain list of 1-D arrays/tensors comes from
    # torch's default_collate, which uses the same layout
    if isinstance(v, PerAxis) or (isinstance(v, list) and v and all(_is_1d_array(a) for a in v)):
        per_axis = [_to_list(a) for a in v]
        return [tuple(int(axis[i]) for axis in per_axis) for i in range(batch_size)]
    if _is_1d_array(v):
        return [int(x) for x in _to_list(v)]
    return list(v)


def _field_length(value: Any, name: str) -> int:
    """Number of batch items a collated field describes (per-axis fields: each axis)."""
    if isinstance(value, PerAxis) or (isinstance(value, list) and value and all(_is_1d_array(a) for a in value)):
        lengths = {int(a.shape[0]) for a in value}
        if len(lengths) != 1:
            raise ValueError(f"{name} has per-axis arrays of different lengths {sorted(lengths)}")
        return lengths.pop()
    if _is_1d_array(value):
        return int(value.shape[0])
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"{name} must be a list or array with one entry per region, got {type(value).__name__}")
    return len(value)


def _check_collated(batch: Any) -> int:
    """The batch size of a collated ImageRegionData, every field checked to describe it."""
    if not _is_region(batch):
        raise TypeError(
            f"batch must be a collated ImageRegionData (from collate_regions or PatchDataset.get_batch), "
            f"got {type(batch).__name__}"
        )
    batch_size = _field_length(batch.source, "batch.source")
    data_shape = getattr(batch.data, "shape", None)
    if data_shape is None or len(data_shape) < 1:
        raise TypeError(f"batch.data must be an array (B, C, [Z,] Y, X), got {type(batch.data).__name__}")
    fields = [("data", int(data_shape[0]))]
    for name in ("data_shape", "dtype", "axes", "target_axes", "original_data_shape"):
        fields.append((name, _field_length(getattr(batch, name), f"batch.{name}")))
    for name in ("region_spec", "additional_metadata"):
        value = getattr(batch, name)
        if not isinstance(value, Mapping):
            raise TypeError(f"batch.{name} must be a dict of collated fields, got {type(value).__name__}")
        fields.extend((f"{name}[{k!r}]", _field_length(v, f"batch.{name}[{k!r}]")) for k, v in value.items())
    for name, n in fields:
        if n != batch_size:
            raise ValueError(
                f"batch.{name} describes {n} regions but batch.source lists {batch_size}: every field of "
                f"a collated batch needs one entry per region"
            )
    return batch_size


def decollate_regions(batch: ImageRegionData) -> list[ImageRegionData]:
    """Split a collated batch back into regions (exact inverse of :func:`collate_regions`).

    ``data`` items are views ``batch.data[i]`` in the batch's array library; metadata
    becomes plain Python values (ints, tuples of ints, strings). Metadata is read from
    host arrays, so no device synchronisation happens. A batch collated by torch's
    ``default_collate`` (tensors instead of arrays) is accepted too.

    Returns
    -------
    list of ImageRegionData
    """
    batch_size = _check_collated(batch)
    data_shape = _decollate_value(batch.data_shape, batch_size)
    original = _decollate_value(batch.original_data_shape, batch_size)
    specs = {k: _decollate_value(v, batch_size) for k, v in batch.region_spec.items()}
    extra = {k: _decollate_value(v, batch_size) for k, v in batch.additional_metadata.items()}
    return [
        ImageRegionData(
            data=batch.data[i],
            source=batch.source[i],
            data_shape=data_shape[i],
            dtype=batch.dtype[i],
            axes=batch.axes[i],
            target_axes=batch.target_axes[i],
            original_data_shape=original[i],
            region_spec={k: v[i] for k, v in specs.items()},
            additional_metadata={k: v[i] for k, v in extra.items()},
        )
        for i in range(batch_size)
    ]


# ---------------------------------------------------------------------------------------
# collation from a spec table


def stack_metadata(stack, channels, axes: str, target_axes: str) -> dict[str, Any]:
    """The :class:`ImageRegionData` fields of every region of one stack (all but ``data`` and
    ``region_spec``); with a channel subset, ``data_shape`` and ``original_data_shape`` count
    the selected channels."""
    data_shape = list(stack.data_shape)
    original = list(stack.original_data_shape)
    if channels is not None:
        data_shape[1] = len(channels)
        if "C" in stack.original_axes:
            original[stack.original_axes.index("C")] = len(channels)
    return {
        "source": stack.source,
        "data_shape": tuple(data_shape),
        "dtype": str(stack.dtype),
        "axes": axes,
        "target_axes": target_axes,
        "original_data_shape": tuple(original),
        "additional_metadata": dict(stack.additional_metadata),
    }


def collate_table(data: Any, data_idx: np.ndarray, metas: Sequence[Mapping[str, Any]], region_spec: dict) -> ImageRegionData:
    """The collated region of a batch whose rows come from stacks ``data_idx``.

    ``metas`` holds :func:`stack_metadata` of every stack, ``region_spec`` the collated specs
    (:func:`collate_spec_table`). Equal to :func:`collate_regions` of the batch's regions.
    """
    per_item = [metas[k] for k in data_idx.tolist()]
    shapes = np.array([m["data_shape"] for m in metas], dtype=np.int64)[data_idx]
    originals = np.array([m["original_data_shape"] for m in metas], dtype=np.int64)[data_idx]
    return ImageRegionData(
        data=data,
        source=[m["source"] for m in per_item],
        data_shape=per_axis(shapes),
        dtype=[m["dtype"] for m in per_item],
        axes=[m["axes"] for m in per_item],
        target_axes=[m["target_axes"] for m in per_item],
        original_data_shape=per_axis(originals),
        region_spec=region_spec,
        additional_metadata=_collate_extra([m["additional_metadata"] for m in metas], data_idx),
    )


def collate_spec_table(
    table: np.ndarray,
    ndim: int,
    keys: Sequence[str],
    *,
    patch_sizes: np.ndarray,
    total_tiles: np.ndarray | None,
    specs: Callable[[], list[Mapping[str, Any]]],
) -> dict[str, Any]:
    """The collated ``region_spec`` of a batch, vectorised from its spec table.

    Parameters
    ----------
    table : int64 array (B, 2 + ndim) or (B, 2 + 4 * ndim)
        Patch or tile table of the batch (layouts in :mod:`cupatch._layouts`).
    keys : sequence of str
        The spec fields, in the order the strategy's spec dicts have them.
    patch_sizes : int64 array (B, ndim)
        Each row's patch size.
    total_tiles : int64 array (n_stacks,), optional
        Tiles per stack, for the ``total_tiles`` field.
    specs : callable
        The per-item spec dicts, collated instead when a field is none of the above.
    """
    columns = tile_columns(ndim) if table.shape[1] >= n_tile_columns(ndim) else patch_columns(ndim)
    data_idx = table[:, columns["data_idx"]][:, 0]
    out: dict[str, Any] = {}
    for key in keys:
        if key in ("data_idx", "sample_idx"):
            out[key] = table[:, columns[key]][:, 0].copy()
        elif key in columns and key in TILE_AXIS_FIELDS:
            out[key] = per_axis(table[:, columns[key]])
        elif key == "patch_size":
            out[key] = per_axis(patch_sizes)
        elif key == "total_tiles" and total_tiles is not None:
            out[key] = total_tiles[data_idx]
        else:  # a field this function does not know: collate the per-item values
            return _collate_dict(list(specs()), "region_spec")
    return out


def _collate_extra(per_stack: list[dict], data_idx: np.ndarray) -> dict:
    """Collated ``additional_metadata`` (zarr chunks/shards) by lookup per stack."""
    used = np.unique(data_idx).tolist()
    if not used:
        return {}
    keys = set(per_stack[used[0]])
    for k in used:
        if set(per_stack[k]) != keys:
            raise ValueError(
                f"additional_metadata of stack {k} has keys {sorted(per_stack[k])}, stack {used[0]} has "
                f"{sorted(keys)}; every region of a batch needs the same keys"
            )
    out = {}
    for key in per_stack[used[0]]:
        values = [per_stack[k][key] if k in used else per_stack[used[0]][key] for k in range(len(per_stack))]
        lengths = {len(v) for v in values}
        if len(lengths) != 1:
            raise ValueError(f"additional_metadata[{key!r}] has different lengths across the batch")
        out[key] = per_axis(np.array(values, dtype=np.int64)[data_idx])
    return out
