"""Tiled inference: ``predict_tiled``.

Images are cut into overlapping tiles with :class:`cupatch.TiledPatching` (CAREamics
semantics), gathered in batches (one ``gather_patches`` launch per batch, with channel
selection and normalisation fused), run through the model, and stitched back (one
``stitch_tiles`` launch per batch) either by CAREamics' overlap cropping or by a blend
window. Everything stays on one device: the GPU when usable, else the CPU.

When the output should not live on the device (``out`` is a Zarr/NumPy/TIFF destination,
or the whole output would exceed ``max_gpu_bytes``) the prediction is *streamed*: tiles
are processed in C order, so rows of tiles along the first spatial axis complete one after
the other; only an output slab covering the rows still open is kept on the device, and
every region no later tile touches is finished (blend: divided by its weights) and written
out, chunk-aligned for Zarr and through a pinned buffer for host arrays. Writes to Zarr
and files run in a background thread, overlapping the next batches.

One module per job, each depending only on those listed before it:

``destinations``
    which outputs are allowed (paths, arrays; never over an input), checked up front;
``sources``
    the inputs as stacks, and the gathers of tiles from them;
``model``
    the model call on a batch (plain callables and torch modules) and its shape check;
``skip``
    ``skip=``: the masks, callables or filters that keep tiles from the model;
``plan``
    every argument checked once, into the frozen :class:`~cupatch.inference.plan.Plan`;
``writers``
    one writer per output kind (NumPy, Zarr, ``.npy``, TIFF) and the background thread;
``sinks``
    stitching in memory or through output slabs;
``budget``
    what each image keeps on the device under ``max_gpu_bytes``;
``driver``
    :func:`predict_tiled` itself: the batches through gather, model and stitch.
"""

from __future__ import annotations

from .driver import PredictionStats, execute, predict_tiled, run_prediction
from .plan import BLEND_MODES, Plan, output_axes, resolve_device
from .sources import open_image

__all__ = [
    "BLEND_MODES",
    "Plan",
    "PredictionStats",
    "execute",
    "open_image",
    "output_axes",
    "predict_tiled",
    "resolve_device",
    "run_prediction",
]
