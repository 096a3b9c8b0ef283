"""Patching strategies: which patch (or tile) each dataset index refers to.

The classes follow CAREamics' ``careamics.dataset.patching`` (names, constructor
signatures, counts, index order, specs). On top of that every strategy has
``spec_table(indices)``, the vectorised integer table consumed by
:func:`cupatch.gather_patches` and :func:`cupatch.stitch_tiles`, and ``set_epoch`` for
counter-based random strategies. See ``docs/contracts.md`` for the table layouts.
"""

from __future__ import annotations

from .fixed import FixedPatching
from .random import FixedRandomPatching, RandomPatching
from .sequential import SequentialPatching
from .specs import PatchSpecs, Patching, TileSpecs, is_tile_specs
from .stratified import StratifiedPatching
from .tiled import TiledPatching
from .val_split import create_val_split
from .weighted import WeightedPatching
from .whole import WholeSamplePatching

__all__ = [
    "FixedPatching",
    "FixedRandomPatching",
    "PatchSpecs",
    "Patching",
    "RandomPatching",
    "SequentialPatching",
    "StratifiedPatching",
    "TileSpecs",
    "TiledPatching",
    "WeightedPatching",
    "WholeSamplePatching",
    "create_val_split",
    "is_tile_specs",
]
