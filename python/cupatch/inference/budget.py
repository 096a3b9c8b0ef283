"""What one image keeps on the working device, decided against the plan's memory budget.

The input is gathered from a whole resident copy when it already lives on the working
device, or when uploading it takes at most a quarter of the budget; otherwise from per-row
slabs read as the tiles reach them. The output is stitched in memory when there is no
destination and it fits next to the input and the batches; otherwise it is streamed
through an output slab into a writer, which is refused up front when not even the batches
and one slab fit.
"""

from __future__ import annotations

import math

import numpy as np

from .._backend import is_cupy_array
from .._dtypes import STACK_DTYPES
from ..stacks import axes as axes_mod
from ..stacks import upload_to_gpu
from .plan import ImagePlan, Plan, output_axes
from .sinks import MemorySink, SlabSink
from .skip import check_fill
from .sources import RowSource, WholeSource
from .writers import Layout, Writer, open_writer

__all__ = ["open_sink", "open_source", "open_stream"]


def open_source(plan: Plan, image: ImagePlan) -> WholeSource | RowSource:
    """Where the image's tiles are gathered from; uploads (or downloads) a whole array
    when it is to be resident on the working device."""
    stack, tiling, gpu = image.stack, image.tiling, plan.device == "gpu"
    array = stack.array
    if array is not None:
        if not gpu and image.on_gpu:
            array = array.get()
        elif gpu and not image.on_gpu and array.nbytes <= plan.budget / 4:
            array = upload_to_gpu(array)  # no pinned copy of the whole image
        if gpu == is_cupy_array(array):
            if np.dtype(array.dtype) not in STACK_DTYPES:
                array = array.astype(np.float32)
            return WholeSource(array, plan.tile, plan.channels, plan.scale, plan.shift)
    return RowSource(
        stack, plan.xp, plan.tile, plan.channels, plan.scale, plan.shift,
        tiling.row_coords, tiling.n_per_sample, tiling.row_size,
    )  # fmt: skip


def open_stream(plan: Plan, image: ImagePlan, pred, resident_bytes: int) -> Writer | None:
    """The writer the image's output streams into, or None to stitch it in memory.

    Decided once the first prediction gives the output channels and dtype. Creates the
    output file when the destination is a path.
    """
    tiling = image.tiling
    c_out = int(pred.shape[1])
    # restored before any stitching, so a layout the output cannot take fails at once
    out_axes = output_axes(image.axes, plan.target_axes, c_out)
    out_shape = axes_mod.restored_shape((tiling.n_samples, c_out, *tiling.spatial), image.axes, image.shape, out_axes)
    blend_weights = 1 if plan.mode == "blend" else 0
    voxels = int(np.prod(tiling.spatial))
    full_bytes = tiling.n_samples * voxels * 4 * (c_out + blend_weights)
    # Working memory per batch (input, output, float32 copy) and a worst-case slab.
    batch_bytes = plan.batch_size * int(np.prod(tiling.tile)) * 4 * (c_out * 2 + 1)
    rows_per_batch = math.ceil(plan.batch_size / tiling.row_size) + 1
    slab_rows = min(tiling.spatial[0], rows_per_batch * tiling.tile[0])
    samples_per_batch = math.ceil(plan.batch_size / tiling.n_per_sample) + 1
    slab_bytes = min(tiling.n_samples, samples_per_batch) * slab_rows * (voxels // tiling.spatial[0])
    slab_bytes *= 4 * (c_out + blend_weights)

    if image.out is None and full_bytes + resident_bytes + batch_bytes <= plan.budget:
        return None
    if batch_bytes + slab_bytes > plan.budget:
        raise ValueError(
            f"tile_size {tiling.tile} with batch_size {plan.batch_size} needs about {batch_bytes + slab_bytes:.3g} "
            f"bytes of working memory (batches plus one output slab), more than max_gpu_bytes={plan.budget:.3g}; "
            f"lower batch_size or tile_size, or raise max_gpu_bytes"
        )
    layout = Layout(image.axes, image.shape, out_axes, len(tiling.tile), ome=getattr(image.stack, "ome", None))
    step = tiling.tile[0] - tiling.overlap[0]
    return open_writer(
        image.out, out_shape, np.dtype(pred.dtype), layout, step=step, overwrite=plan.overwrite,
        compression=plan.compression,
    )  # fmt: skip


def open_sink(plan: Plan, image: ImagePlan, pred, writer: Writer | None, tile_table) -> MemorySink | SlabSink:
    """The sink stitching the image: in memory (``writer`` None) or streaming into ``writer``.
    ``tile_table``: the rows of the tiling's tile table the batches will take."""
    c_out = int(pred.shape[1])
    fill = None  # skip_value, where tiles may be skipped
    if getattr(plan, "skip", None) is not None:
        fill = plan.skip.value
        check_fill(fill, pred.dtype if writer is None else writer.target.dtype)
    if writer is None:
        return MemorySink(plan.xp, plan.mode, plan.window, image.tiling, c_out, pred.dtype, tile_table, fill=fill)
    table = plan.window_table
    if table is not None and plan.xp is not np:
        table = plan.xp.asarray(table)  # upload the blend window once, not per batch
    return SlabSink(plan.xp, plan.mode, table, image.tiling, c_out, writer, fill=fill)
