"""Patch and tile specifications and the ``Patching`` protocol (CAREamics-compatible)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypedDict, runtime_checkable

import numpy as np

__all__ = ["PatchSpecs", "Patching", "TileSpecs", "is_tile_specs"]


class PatchSpecs(TypedDict):
    """Where one patch lies in a set of image stacks.

    Attributes
    ----------
    data_idx : int
        Index of the image stack.
    sample_idx : int
        Index along the stack's merged sample axis S.
    coords : tuple of int
        Top-left(-front) corner of the read window, (Z)YX, in the stack's spatial
        coordinates.
    patch_size : tuple of int
        Size of the read window, (Z)YX.
    """

    data_idx: int
    sample_idx: int
    coords: Sequence[int]
    patch_size: Sequence[int]


class TileSpecs(PatchSpecs):
    """A tile of a tiled prediction: a patch plus where its kept region goes.

    Attributes
    ----------
    crop_coords : tuple of int
        Tile-relative top-left corner of the region that is kept when stitching.
    crop_size : tuple of int
        Size of the kept region.
    stitch_coords : tuple of int
        Image-relative destination of the kept region.
    total_tiles : int
        Number of tiles with this ``data_idx`` (all samples included).
    """

    crop_coords: Sequence[int]
    crop_size: Sequence[int]
    stitch_coords: Sequence[int]
    total_tiles: int


def is_tile_specs(spec: Mapping[str, Any]) -> bool:
    """Return True when ``spec`` carries the tile fields.

    As in CAREamics, a spec is a tile spec when ``crop_coords``, ``crop_size`` and
    ``stitch_coords`` are all present (``total_tiles`` is not required).

    Parameters
    ----------
    spec : mapping
        A patch or tile spec.

    Returns
    -------
    bool
    """
    if not isinstance(spec, Mapping):
        raise TypeError(f"spec must be a PatchSpecs or TileSpecs dict, got {type(spec).__name__}")
    return "crop_coords" in spec and "crop_size" in spec and "stitch_coords" in spec


@runtime_checkable
class Patching(Protocol):
    """What every patching strategy provides.

    ``n_patches``, ``get_patch_spec`` and ``get_patch_indices`` are CAREamics' protocol;
    ``spec_table`` (an integer table for a batch of indices, see ``docs/contracts.md``),
    ``set_epoch``, ``patch_size`` and ``ndim`` are cupatch additions.
    """

    @property
    def n_patches(self) -> int:
        """Number of patches, i.e. the largest valid index plus one."""
        ...

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        ...

    @property
    def patch_size(self) -> tuple[int, ...] | None:
        """Patch size, (Z)YX (``None`` when it varies per stack, e.g. whole samples)."""
        ...

    def get_patch_spec(self, index: int) -> PatchSpecs:
        """Spec of the patch with this index."""
        ...

    def get_patch_indices(self, data_idx: int) -> Sequence[int]:
        """All indices whose spec has this ``data_idx``."""
        ...

    def spec_table(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """int64 spec table for a batch of indices."""
        ...

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch that random choices depend on."""
        ...
