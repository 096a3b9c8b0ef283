"""A fixed list of patch (or tile) specs, CAREamics' ``FixedPatching``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .._layouts import TILE_AXIS_FIELDS, patch_columns, tile_columns
from ._base import BasePatching
from .._validation import as_index, as_indices, as_int, as_int_tuple, ensure_tuple_rep
from .specs import PatchSpecs, is_tile_specs

__all__ = ["FixedPatching"]

#: the fields a tile spec adds to a patch spec's coords
_TILE_FIELDS = tuple(f for f in TILE_AXIS_FIELDS if f != "coords")


class FixedPatching(BasePatching):
    """Patches given explicitly as a sequence of specs (e.g. a validation split).

    Parameters
    ----------
    specs : sequence of PatchSpecs
        The specs, in index order. All must have the same number of spatial dimensions
        and the same ``patch_size`` (one int: that size on every axis). When every spec is a tile spec
        (:func:`~cupatch.is_tile_specs`), :meth:`spec_table` returns a tile table.

    Notes
    -----
    The specs are validated and stored as integer arrays; :meth:`get_patch_spec`
    rebuilds an equal dict (plain Python ints and tuples) each time.
    """

    def __init__(self, specs: Sequence[Mapping]):
        if isinstance(specs, Mapping) or not isinstance(specs, Sequence):
            raise TypeError(f"specs must be a sequence of PatchSpecs dicts, got {type(specs).__name__}")
        if len(specs) == 0:
            raise ValueError("specs must not be empty")
        for i, s in enumerate(specs):
            if not isinstance(s, Mapping):
                raise TypeError(f"specs[{i}] must be a PatchSpecs dict, got {type(s).__name__}")
            missing = {"data_idx", "sample_idx", "coords", "patch_size"} - set(s)
            if missing:
                raise ValueError(f"specs[{i}] lacks the field(s) {sorted(missing)}")
        ndim = len(as_int_tuple(specs[0]["coords"], "specs[0]['coords']"))
        if ndim not in (2, 3):
            raise ValueError(f"specs[0]['coords'] must have 2 or 3 entries, got {ndim}")
        patch_size = ensure_tuple_rep(specs[0]["patch_size"], ndim, "specs[0]['patch_size']", minimum=1)
        self._tiles = all(is_tile_specs(s) for s in specs)
        self._columns = columns = tile_columns(ndim) if self._tiles else patch_columns(ndim)
        table = np.empty((len(specs), max(c.stop for c in columns.values())), dtype=np.int64)
        totals = np.zeros(len(specs), dtype=np.int64)
        for i, s in enumerate(specs):
            table[i, columns["data_idx"]] = as_int(s["data_idx"], f"specs[{i}]['data_idx']")
            table[i, columns["sample_idx"]] = as_int(s["sample_idx"], f"specs[{i}]['sample_idx']")
            if table[i, columns["data_idx"]][0] < 0 or table[i, columns["sample_idx"]][0] < 0:
                raise ValueError(f"specs[{i}] has a negative data_idx or sample_idx")
            table[i, columns["coords"]] = as_int_tuple(s["coords"], f"specs[{i}]['coords']", length=ndim)
            size = ensure_tuple_rep(s["patch_size"], ndim, f"specs[{i}]['patch_size']", minimum=1)
            if size != patch_size:
                raise ValueError(
                    f"specs[{i}]['patch_size'] is {size} but specs[0]['patch_size'] is {patch_size}; "
                    "all specs of a FixedPatching must share one patch size"
                )
            if self._tiles:
                for name in _TILE_FIELDS:
                    table[i, columns[name]] = as_int_tuple(s[name], f"specs[{i}]['{name}']", length=ndim)
                totals[i] = as_int(s.get("total_tiles", 0), f"specs[{i}]['total_tiles']")
        self._table_all = table
        self._totals = totals
        self._ndim = ndim
        self._patch_size = patch_size
        self._n_stacks = int(table[:, columns["data_idx"]].max()) + 1

    @property
    def data_shapes(self):
        """Not defined: the patches are given as specs, not laid out over image shapes."""
        raise AttributeError(
            "FixedPatching has no data_shapes: its patches are given explicitly as specs, not laid out over images"
        )

    @property
    def n_patches(self) -> int:
        """Number of specs."""
        return len(self._table_all)

    def spec_table(self, indices) -> np.ndarray:
        """Rows of the stored table (patch table, or tile table when all specs are tiles)."""
        idx = as_indices(indices, self.n_patches)
        return np.ascontiguousarray(self._table_all[idx])

    def get_patch_spec(self, index: int) -> PatchSpecs:
        """The spec at ``index`` (same values on every call)."""
        i = as_index(index, self.n_patches)
        r, columns = self._table_all[i].tolist(), self._columns
        spec = {
            "data_idx": r[columns["data_idx"].start],
            "sample_idx": r[columns["sample_idx"].start],
            "coords": tuple(r[columns["coords"]]),
            "patch_size": self._patch_size,
        }
        if self._tiles:
            for name in _TILE_FIELDS:
                spec[name] = tuple(r[columns[name]])
            spec["total_tiles"] = int(self._totals[i])
        return spec

    def get_patch_indices(self, data_idx: int) -> list[int]:
        """Indices of the specs with this ``data_idx`` (in index order)."""
        k = as_int(data_idx, "data_idx")
        if k < 0:
            raise IndexError(f"data_idx must be >= 0, got {k}")
        return np.flatnonzero(self._table_all[:, self._columns["data_idx"].start] == k).tolist()
