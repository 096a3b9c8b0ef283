"""Image stacks: arrays, TIFF, Zarr and OME-Zarr sources seen in the canonical SC(Z)YX layout.

A stack is built with :func:`as_stack` (one source) or :func:`as_stacks` (a list; Zarr groups
expand to all their arrays). Every stack exposes the :class:`ImageStack` attributes and reads
zero-padded regions with ``read_region``. Placement (:mod:`.placement`) decides where the
samples live:

``"gpu"``
    uploaded once to the GPU in the stored dtype (no float32 copy of the stack);
``"cpu"``
    in host memory (TIFF files that allow it stay memory-mapped);
``"disk"``
    read region by region on demand (only the touched TIFF pages / Zarr chunks);
``"auto"``
    arrays stay where they are, memory-mappable TIFF files are mapped, other files stay on disk.
"""

from __future__ import annotations

from .array_stack import ArrayStack
from .axes import reshape_array, restore_array, validate_axes
from .base import SUPPORTED_DTYPES, BaseStack, ImageStack
from .factory import as_stack, as_stacks, source_axes
from .lazy_stack import LazyArrayStack, LazyStack
from .ome_zarr import OmeImage, OmeZarrStack
from .placement import PLACEMENTS, upload_to_gpu
from .tiff_stack import TiffStack
from .zarr_stack import ZarrStack

__all__ = [
    "PLACEMENTS",
    "SUPPORTED_DTYPES",
    "ArrayStack",
    "BaseStack",
    "ImageStack",
    "LazyArrayStack",
    "LazyStack",
    "OmeImage",
    "OmeZarrStack",
    "TiffStack",
    "ZarrStack",
    "as_stack",
    "as_stacks",
    "reshape_array",
    "restore_array",
    "source_axes",
    "upload_to_gpu",
    "validate_axes",
]
