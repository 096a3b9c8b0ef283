"""Stitching sinks: where predicted tiles are stitched, one ``stitch_tiles`` launch a batch.

:class:`MemorySink` stitches into full-size outputs on the working device (crop, or blend
divided once by the tiling's :class:`~cupatch.inference.weightmap.WeightMap`; a
``BlendAccumulator`` when tiles are skipped). :class:`SlabSink` streams: it keeps only an
output slab per sample covering the rows of tiles still open, and hands every region no
later tile touches (blend: divided by its weights), cast to the output dtype and copied
to the host, to a :class:`~cupatch.inference.writers.Writer`.
"""

from __future__ import annotations

import numpy as np

from .. import _core
from .._layouts import tile_columns
from .._windows import window_table
from ..ops import BlendAccumulator, TileStitcher, stitch_tiles
from .plan import Tiling
from .weightmap import WeightMap
from .writers import BackgroundWriter, Writer

__all__ = ["HostCopier", "MemorySink", "SlabSink", "cast"]


def _float_bounds(float_dtype: np.dtype, int_dtype: np.dtype):
    """The largest and smallest values of ``float_dtype`` inside ``int_dtype``'s range.

    ``float32(2**31 - 1)`` rounds up to ``2**31``, which no int32 holds (the cast wrapped to
    INT32_MIN); the bound is then the next float below. Returns ``(low, high, top)``: clip
    to ``[low, high]``, and every value ``>= top`` (None when the maximum is exact) is above
    the range and saturates to its maximum.
    """
    info, ftype = np.iinfo(int_dtype), np.dtype(float_dtype).type
    low, high = ftype(info.min), ftype(info.max)
    top = None
    if int(high) > info.max:
        top, high = high, np.nextafter(high, ftype(0))
    if int(low) < info.min:  # never for two's complement minima (powers of two), kept for safety
        low = np.nextafter(low, ftype(0))
    return low, high, top


def cast(block, dtype, xp):
    """``block`` in ``dtype``; integer outputs are rounded and saturate at their range (a
    value above the maximum gives the maximum, below the minimum the minimum)."""
    dtype = np.dtype(dtype)
    if block.dtype == dtype:
        return block
    if np.issubdtype(dtype, np.integer) and block.dtype.kind == "f":
        low, high, top = _float_bounds(block.dtype, dtype)
        out = xp.clip(xp.rint(block), low, high).astype(dtype)
        if top is not None:
            out = xp.where(block >= top, dtype.type(np.iinfo(dtype).max), out)
        return out
    return block.astype(dtype)


class HostCopier:
    """Device-to-host copies through one reusable pinned buffer (GPU), or plain views (CPU)."""

    def __init__(self, xp):
        self.xp = xp
        self.buffer = None

    def __call__(self, block):
        if self.xp is np:
            return block
        import cupyx  # optional dependency, only on the GPU

        block = self.xp.ascontiguousarray(block)
        if self.buffer is None or self.buffer.nbytes < block.nbytes:
            self.buffer = cupyx.empty_pinned(block.nbytes, dtype=np.uint8)
        host = self.buffer[: block.nbytes].view(block.dtype).reshape(block.shape)
        block.get(out=host)
        return host


class MemorySink:
    """Stitches into full-size outputs on the working device.

    With ``fill`` (tile skipping), voxels no stitched tile wrote get ``fill``: in crop mode
    the output starts full of it, in blend mode where the weights stay 0. ``tile_table``
    holds the rows of the tiling's tile table that :meth:`add` will be given, checked once.
    """

    def __init__(self, xp, mode: str, window: str | None, tiling: Tiling, c_out: int, dtype, tile_table,
                 fill: float | None = None):
        shape = (tiling.n_samples, c_out, *tiling.spatial)
        self.xp, self.mode, self.dtype, self.fill = xp, mode, np.dtype(dtype), fill
        self.acc = self.weight_map = self.table = None
        if mode == "crop":
            self.output = xp.zeros(shape, dtype=np.float32) if not fill else xp.full(shape, fill, dtype=np.float32)
        elif fill is None:  # every tile is stitched: divide once by the geometry's weight sums
            self.output = xp.zeros(shape, dtype=np.float32)
            table = window_table(tiling.tile, tiling.overlap, window)
            self.table = table if xp is np else xp.asarray(table)
            self.weight_map = WeightMap(tiling, table, xp)
        else:  # skipped tiles: the weights say which voxels a stitched tile covers
            self.acc = BlendAccumulator([shape], tiling.tile, tiling.overlap, window=window, array_module=xp)
        self.stitcher = None
        if self.acc is None:
            if xp is np:
                # its pages mapped now, on every core, rather than fault by fault inside the stitches
                _core.prefault_for_writing(self.output)
            # the output and the tiling's tile table checked once, not once a batch
            blend = self.weight_map is not None
            self.stitcher = TileStitcher(
                [self.output], (c_out, *tiling.tile), mode="blend" if blend else "crop",
                window_table=self.table if blend else None, array_module=xp,
            )  # fmt: skip
            self.stitcher.check_specs(tile_table)  # the rows add() will take

    def add(self, tiles, table, tile_index, next_tile=None) -> None:
        """Stitch a batch: ``table`` holds rows of the tiling's tile table."""
        if self.acc is not None:
            self.acc.add(tiles, table)
        else:
            self.stitcher(tiles, table, checked=True)

    def finish(self):
        """The stitched SC(Z)YX output on the working device, in the output dtype."""
        if self.weight_map is not None:
            self.weight_map.divide(self.output)
            self.weight_map = None  # divided once
        output = self.output if self.acc is None else self.acc.finalize()[0]
        if self.acc is not None and self.fill:  # finalize leaves 0 where no tile has weight
            output = self.xp.where(self.acc.weights[0] > 0, output, self.xp.float32(self.fill))
        return cast(output, self.dtype, self.xp)

    def abort(self) -> None:
        pass


class SlabSink:
    """Stitches into per-sample output slabs and writes finished regions out.

    A slab of sample ``s`` holds image rows ``[lo, lo + capacity)`` along the first spatial
    axis. After each batch, everything before the first row any remaining tile writes to is
    final: it is divided by its weights (blend), cast, and written (rounded down to the
    writer's ``chunk0`` so Zarr writes stay chunk-aligned), and the slab moves on.

    With ``fill`` (tile skipping) tiles may be missing: ``add`` is told the next tile that
    will come, rows that no slab holds (no stitched tile wrote them) are written as
    ``fill``, and so are voxels of zero weight (blend).
    """

    def __init__(self, xp, mode: str, table, tiling: Tiling, c_out: int, writer: Writer, fill: float | None = None):
        self.xp, self.mode, self.table, self.fill = xp, mode, table, fill
        self.done: dict[int, int] = {}  # sample -> rows written so far (with fill)
        self.first_open = 0  # samples before it are written completely (with fill)
        self.fill_block = None
        self.tiling, self.c_out = tiling, c_out
        self.dtype = np.dtype(writer.target.dtype)
        self.chunk0 = max(1, int(writer.chunk0))
        self.writer = writer
        # Slow destinations (Zarr, files) are written from a background thread.
        self.background = writer.background
        self.writes = BackgroundWriter(writer) if self.background else writer
        self.ranges = tiling.crop_range if mode == "crop" else tiling.blend_range
        self.slabs: dict[int, list] = {}  # sample -> [lo, values, weights]
        # Every tile stitched: blended rows are divided by the geometry's weight sums, no
        # weights are accumulated (with skipped tiles they say where a stitched tile wrote).
        self.weight_map = WeightMap(tiling, table, xp) if mode == "blend" and fill is None else None
        self.copy_to_host = HostCopier(xp)
        self.peak_rows = 0
        columns = tile_columns(len(tiling.tile))
        self.data_col, self.sample_col = columns["data_idx"].start, columns["sample_idx"].start

    def _alloc(self, rows: int):
        rest = self.tiling.spatial[1:]
        shape = (1, self.c_out, rows, *rest)
        crop_fill = self.mode == "crop" and self.fill
        values = self.xp.full(shape, self.fill, dtype=np.float32) if crop_fill else self.xp.zeros(shape, dtype=np.float32)
        accumulate = self.mode == "blend" and self.weight_map is None
        weights = self.xp.zeros((1, 1, rows, *rest), dtype=np.float32) if accumulate else None
        return values, weights

    def _ensure(self, sample: int, need_lo: int, need_hi: int) -> list:
        n0 = self.tiling.spatial[0]
        slab = self.slabs.get(sample)
        if slab is None:
            if self.fill is not None:  # start chunk-aligned after the rows written (as fill)
                need_lo = max(self.done.get(sample, 0), need_lo - need_lo % self.chunk0)
            rows = min(n0 - need_lo, max(need_hi - need_lo, self.tiling.tile[0] + self.chunk0))
            slab = [need_lo, *self._alloc(rows)]
            self.slabs[sample] = slab
        lo, values, weights = slab
        if need_lo < lo:
            raise AssertionError(f"slab of sample {sample} starts at {lo} but row data from {need_lo} is still needed")
        if need_hi > lo + values.shape[2]:
            rows = min(n0 - lo, max(need_hi - lo, int(values.shape[2] * 1.5)))
            new_values, new_weights = self._alloc(rows)
            new_values[:, :, : values.shape[2]] = values
            if weights is not None:
                new_weights[:, :, : weights.shape[2]] = weights
            slab[1], slab[2] = new_values, new_weights
        self.peak_rows = max(self.peak_rows, sum(s[1].shape[2] for s in self.slabs.values()))
        return slab

    def add(self, tiles, table, tile_index, next_tile=None) -> None:
        """Stitch a batch; ``next_tile`` is the next tile to come (default: the one after the
        batch's last), everything before it is final."""
        t = self.tiling
        samples = tile_index // t.n_per_sample
        rows = (tile_index % t.n_per_sample) // t.row_size
        specs = np.array(table, dtype=np.int64, copy=True)
        outputs, weights, origins = [], [], []
        for slot, sample in enumerate(dict.fromkeys(samples.tolist())):
            mask = samples == sample
            first, last = int(rows[mask].min()), int(rows[mask].max())
            need_lo = int(self.ranges[first, 0])
            need_hi = int(self.ranges[first : last + 1, 1].max())
            lo, values, w = self._ensure(sample, need_lo, need_hi)
            # each sample's slab is its own single-sample output
            specs[mask, self.data_col] = slot
            specs[mask, self.sample_col] = 0
            outputs.append(values)
            weights.append(w)
            origins.append((lo,) + (0,) * (len(t.spatial) - 1))
        image_shapes = [t.spatial] * len(outputs)
        if self.mode == "crop":
            stitch_tiles(tiles, specs, outputs, mode="crop", image_shapes=image_shapes, origins=origins)
        else:
            stitch_tiles(
                tiles,
                specs,
                outputs,
                mode="blend",
                weights=None if self.weight_map is not None else weights,
                window_table=self.table,
                image_shapes=image_shapes,
                origins=origins,
            )
        self._flush(int(tile_index[-1]) + 1 if next_tile is None else int(next_tile))

    def _final(self, sample: int, next_tile: int) -> int:
        """Rows of ``sample`` that no tile from ``next_tile`` on writes to (chunk-aligned)."""
        t = self.tiling
        if next_tile >= (sample + 1) * t.n_per_sample:
            return t.spatial[0]
        row = (next_tile - sample * t.n_per_sample) // t.row_size
        final = int(self.ranges[row, 0])
        return final - final % self.chunk0

    def _flush(self, next_tile: int) -> None:
        t = self.tiling
        n0 = t.spatial[0]
        if self.fill is not None:
            self._fill_gaps(next_tile)
        for sample in sorted(self.slabs):
            final = self._final(sample, next_tile)
            slab = self.slabs[sample]
            lo, values, weights = slab
            if final <= lo:
                continue
            k = final - lo
            if self.fill is not None and k >= values.shape[2]:  # rows past the slab: no tile wrote them
                self._write(sample, lo, lo + values.shape[2], values, weights)
                self._write_fill(sample, lo + values.shape[2], final)
                del self.slabs[sample]
                continue
            self._write(sample, lo, final, values, weights)
            if final == n0:
                del self.slabs[sample]
                continue
            # Move the still-open rows to the front of a fresh slab that ends inside the image.
            keep = values.shape[2] - k
            new_values, new_weights = self._alloc(min(values.shape[2], n0 - final))
            new_values[:, :, :keep] = values[:, :, k:]
            if weights is not None:
                new_weights[:, :, :keep] = weights[:, :, k:]
            slab[:] = [final, new_values, new_weights]

    def _write(self, sample: int, lo: int, final: int, values, weights) -> None:
        """Write rows ``[lo, final)`` of a slab (blend: divided by the weights), cast."""
        k = final - lo
        block = values[0, :, :k]
        if self.weight_map is not None:  # rows below k are not used again: divide in place
            self.weight_map.divide(block, lo)
        elif weights is not None and self.fill is None:
            block = block / weights[0, :, :k]
        elif weights is not None:  # skipped tiles: fill where no stitched tile has weight
            w = weights[0, :, :k]
            positive = w > 0
            block = self.xp.where(positive, block / self.xp.where(positive, w, self.xp.float32(1)), self.xp.float32(self.fill))
        host = self.copy_to_host(cast(block, self.dtype, self.xp))
        if self.background and self.xp is not np:
            host = host.copy()  # the pinned buffer is reused by the next flush
        self.writes.write(sample, lo, final, host)
        self.done[sample] = final

    def _fill_gaps(self, next_tile: int) -> None:
        """Write ``fill`` into rows of started samples before their slab (or up to what is
        final, without a slab): rows no stitched tile wrote."""
        t = self.tiling
        n0 = t.spatial[0]
        while self.first_open < t.n_samples and self.done.get(self.first_open, 0) >= n0:
            self.first_open += 1
        for sample in range(self.first_open, min(t.n_samples, -(-next_tile // t.n_per_sample))):
            slab = self.slabs.get(sample)
            final = self._final(sample, next_tile)
            upto = final if slab is None else min(final, slab[0])
            self._write_fill(sample, self.done.get(sample, 0), upto)

    def _write_fill(self, sample: int, a: int, b: int) -> None:
        """Write rows ``[a, b)`` of ``fill``, in chunk-aligned pieces of one host block."""
        if b <= a:
            return
        t = self.tiling
        piece = self.chunk0 * -(-t.tile[0] // self.chunk0)
        if self.fill_block is None:
            block = np.full((self.c_out, piece, *t.spatial[1:]), self.fill, dtype=np.float32)
            self.fill_block = cast(block, self.dtype, np)
        row = a
        while row < b:
            end = min(b, (row // piece + 1) * piece)
            self.writes.write(sample, row, end, np.ascontiguousarray(self.fill_block[:, : end - row]))
            row = end
        self.done[sample] = b

    def finish(self):
        """Wait for the last writes and flush; returns the destination array."""
        if self.background:
            self.writes.close()
        if self.slabs:
            raise RuntimeError(f"streaming ended with unfinished samples {sorted(self.slabs)}")
        self.writer.close()
        return self.writer.target

    def abort(self) -> None:
        """Stop the background writer after an error (its own error, if any, is dropped)."""
        if self.background:
            try:
                self.writes.close()
            except BaseException:  # the error that stopped the run is the one to report
                pass
