"""The column layouts of the integer tables passed to the native kernels, in one place.

The native core defines them (``cpp/include/cupatch/view.h``) and exports them as
``_core.SOURCE_COLUMNS``, ``_core.OUTPUT_COLUMNS``, ``_core.patch_spec_columns(ndim)`` and
``_core.tile_spec_columns(ndim)``, each ``{name: (first column, width)}``. Here they become
slices keyed by the names Python code uses (the :class:`~cupatch.PatchSpecs` /
:class:`~cupatch.TileSpecs` field names for spec tables), so the ops layer, the patching
strategies and the dataset never spell a column number. See ``docs/contracts.md``.
"""

from __future__ import annotations

import functools

from . import _core

__all__ = [
    "OUTPUT_COLUMNS",
    "SOURCE_COLUMNS",
    "TILE_AXIS_FIELDS",
    "n_patch_columns",
    "n_tile_columns",
    "patch_columns",
    "tile_columns",
]


def _slices(columns: dict) -> dict[str, slice]:
    return {name: slice(first, first + width) for name, (first, width) in columns.items()}


#: Source table (one row per source): ``data`` pointer, ``shape`` (S, C, Z, Y, X), ``strides``.
SOURCE_COLUMNS: dict[str, slice] = _slices(_core.SOURCE_COLUMNS)
#: Output table (one row per output): ``data`` and ``weight`` pointers, ``shape`` (S, C, Z, Y,
#: X), ``origin`` and ``image`` (Z, Y, X).
OUTPUT_COLUMNS: dict[str, slice] = _slices(_core.OUTPUT_COLUMNS)

#: Per-axis fields of a tile table, in column order: spec-dict name -> native column name.
TILE_AXIS_FIELDS = {"coords": "coords", "crop_coords": "crop", "crop_size": "size", "stitch_coords": "stitch"}


@functools.lru_cache(maxsize=None)
def patch_columns(ndim: int) -> dict[str, slice]:
    """``data_idx``, ``sample_idx``, ``coords`` columns of a patch table."""
    return _slices(_core.patch_spec_columns(ndim))


@functools.lru_cache(maxsize=None)
def tile_columns(ndim: int) -> dict[str, slice]:
    """``data_idx``, ``sample_idx`` and the :data:`TILE_AXIS_FIELDS` columns of a tile table."""
    native = _slices(_core.tile_spec_columns(ndim))
    out = {"data_idx": native["data_idx"], "sample_idx": native["sample_idx"]}
    out.update((field, native[column]) for field, column in TILE_AXIS_FIELDS.items())
    return out


def n_patch_columns(ndim: int) -> int:
    """Width of a patch table."""
    return max(s.stop for s in patch_columns(ndim).values())


def n_tile_columns(ndim: int) -> int:
    """Width of a tile table."""
    return max(s.stop for s in tile_columns(ndim).values())
