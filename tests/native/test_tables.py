"""The table column layouts exported by the native core: contiguous, complete, per ndim."""

from __future__ import annotations

import pytest

from cupatch import _core


def _spans_tile(columns: dict, n_fields: int) -> None:
    spans = sorted(columns.values())
    start = 0
    for first, width in spans:
        assert first == start and width >= 1
        start += width
    assert start == n_fields


def test_source_and_output_tables_are_covered_exactly():
    _spans_tile(_core.SOURCE_COLUMNS, _core.SOURCE_FIELDS)
    _spans_tile(_core.OUTPUT_COLUMNS, _core.OUTPUT_FIELDS)
    assert _core.SOURCE_COLUMNS["shape"][1] == _core.SOURCE_COLUMNS["strides"][1] == 5
    assert _core.OUTPUT_COLUMNS["origin"][1] == _core.OUTPUT_COLUMNS["image"][1] == 3


@pytest.mark.parametrize("ndim", [2, 3])
def test_spec_columns(ndim):
    patch = _core.patch_spec_columns(ndim)
    tile = _core.tile_spec_columns(ndim)
    _spans_tile(patch, 2 + ndim)
    _spans_tile(tile, 2 + 4 * ndim)
    assert patch["coords"] == tile["coords"] == (2, ndim)
    assert [tile[k][0] for k in ("coords", "crop", "size", "stitch")] == [2 + i * ndim for i in range(4)]


@pytest.mark.parametrize("ndim", [1, 4])
def test_spec_columns_refuse_other_ndim(ndim):
    with pytest.raises(ValueError, match="ndim must be 2 or 3"):
        _core.patch_spec_columns(ndim)
    with pytest.raises(ValueError, match="ndim must be 2 or 3"):
        _core.tile_spec_columns(ndim)
