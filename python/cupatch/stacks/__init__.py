"""Image stacks: arrays, TIFF and Zarr sources seen in the canonical SC(Z)YX layout."""

from __future__ import annotations

from .axes import reshape_array, restore_array, validate_axes

__all__ = ["reshape_array", "restore_array", "validate_axes"]
