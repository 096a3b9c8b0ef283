"""Tiled inference on a Dask cluster: ``cupatch.distributed.predict_tiled``.

The same tiled prediction as :func:`cupatch.predict_tiled`, split across the workers of a
``dask.distributed`` cluster (Dask's own scheduler; ``dask-cuda``'s ``LocalCUDACluster``
gives each worker its own GPU). Each task owns a box of whole output Zarr chunks, runs
every tile of the global tiling that contributes to it (halo tiles are recomputed, never
exchanged) and writes its chunks straight into the output: no two tasks write the same
chunk, and no image data crosses the network beyond what a dask-array input needs.

One module per job, each depending only on those listed before it:

``regions``
    the task regions (whole output chunks) and the tiles and input window of each;
``models``
    the model on the workers: scattered once, or built once per process by a factory;
``inputs``
    what the workers can read (paths, Zarr, dask arrays), and each task's input window;
``tasks``
    what one task does on its worker: predict one region and write its chunks;
``record``
    the completion record (a Zarr attribute) behind ``resume=True``;
``driver``
    :func:`predict_tiled` itself, on the client.

Dask is an optional dependency (``pip install "cupatch[distributed]"``), imported only
when a run starts.
"""

from __future__ import annotations

from .driver import DistributedStats, predict_tiled, run_distributed
from .models import ModelFactoryError
from .record import ATTRIBUTE as RECORD_ATTRIBUTE

__all__ = ["RECORD_ATTRIBUTE", "DistributedStats", "ModelFactoryError", "predict_tiled", "run_distributed"]
