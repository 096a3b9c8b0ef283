"""cupatch: GPU patch gathering and tiled-inference stitching for 2D/3D images.

The public names are loaded on first use, so ``import cupatch`` stays cheap and never
touches CUDA.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._core import version as __version__  # one source of truth: the build, from pyproject.toml

# public name -> submodule that defines it
_EXPORTS = {
    "build_info": "_backend",
    "gpu_available": "_backend",
    "gather_patches": "ops",
    "stitch_tiles": "ops",
    "BlendAccumulator": "ops",
    "SourceTable": "ops",
    "window_table": "_windows",
    "WINDOWS": "_windows",
    "PatchSpecs": "patching",
    "TileSpecs": "patching",
    "is_tile_specs": "patching",
    "Patching": "patching",
    "RandomPatching": "patching",
    "FixedRandomPatching": "patching",
    "SequentialPatching": "patching",
    "TiledPatching": "patching",
    "WholeSamplePatching": "patching",
    "StratifiedPatching": "patching",
    "FixedPatching": "patching",
    "create_val_split": "patching",
    "filter_background": "filters",
    "MaxPatchFilter": "filters",
    "MeanStdPatchFilter": "filters",
    "ShannonPatchFilter": "filters",
    "MaskPatchFilter": "filters",
    "WeightedPatching": "patching",
    "ImageRegionData": "region",
    "collate_regions": "region",
    "decollate_regions": "region",
    "as_stack": "stacks",
    "as_stacks": "stacks",
    "MeanStdNormalization": "normalization",
    "MinMaxNormalization": "normalization",
    "QuantileNormalization": "normalization",
    "NoNormalization": "normalization",
    "Augmentations": "augmentation",
    "PatchDataset": "dataset",
    "BatchLoader": "loader",
    "predict_tiled": "inference",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cupatch' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - static analysers see the real imports
    from ._backend import build_info, gpu_available
    from ._windows import WINDOWS, window_table
    from .augmentation import Augmentations
    from .dataset import PatchDataset
    from .filters import (
        MaskPatchFilter,
        MaxPatchFilter,
        MeanStdPatchFilter,
        ShannonPatchFilter,
        filter_background,
    )
    from .inference import predict_tiled
    from .loader import BatchLoader
    from .normalization import (
        MeanStdNormalization,
        MinMaxNormalization,
        NoNormalization,
        QuantileNormalization,
    )
    from .ops import BlendAccumulator, SourceTable, gather_patches, stitch_tiles
    from .patching import (
        FixedPatching,
        FixedRandomPatching,
        Patching,
        PatchSpecs,
        RandomPatching,
        SequentialPatching,
        StratifiedPatching,
        TiledPatching,
        TileSpecs,
        WeightedPatching,
        WholeSamplePatching,
        create_val_split,
        is_tile_specs,
    )
    from .region import ImageRegionData, collate_regions, decollate_regions
    from .stacks import as_stack, as_stacks
