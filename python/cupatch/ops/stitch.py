"""``stitch_tiles`` (crop and blend) and ``BlendAccumulator``: predicted tiles back into images.

Crop copies each tile's kept region; blend adds window-weighted tiles and their weights,
and :class:`BlendAccumulator` divides the two once every batch is in. Output descriptors
follow the native output-table layout (:data:`cupatch._layouts.OUTPUT_COLUMNS`).
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _backend, _core
from .._layouts import OUTPUT_COLUMNS, n_tile_columns, tile_columns
from .._validation import as_int_tuple, as_list, as_patch_size, is_int, look_up_option
from .._windows import window_table as make_window_table
from ._arrays import EXTENT_LIMIT, FLOAT32, as_backend_array, byte_range, is_array_list, memory_overlaps, ptr, spatial3, spec_table

__all__ = ["BlendAccumulator", "TileStitcher", "stitch_tiles"]


def _per_output(values, n: int, ndim: int, name: str, *, minimum: int) -> list[tuple[int, ...]]:
    """``origins`` / ``image_shapes``: a list of one (Z)YX int tuple per output."""
    items = as_list(values, name, what="(Z)YX int tuples, one per output")
    if len(items) != n:
        raise ValueError(f"{name} must have one entry per output ({n}), got {len(items)}")
    return [as_int_tuple(v, f"{name}[{i}]", length=ndim, minimum=minimum) for i, v in enumerate(items)]


def _output_table(outputs, weights, origins, image_shapes, ndim: int, n_channels: int, xp, blend: bool):
    if not is_array_list(outputs):
        raise TypeError("outputs must be a list of SC(Z)YX float32 arrays (wrap a single array in a list)")
    if len(outputs) == 0:
        raise ValueError("outputs must contain at least one array")
    outs = [as_backend_array(o, xp, f"outputs[{i}]", writable=True) for i, o in enumerate(outputs)]
    for i, o in enumerate(outs):
        if np.dtype(o.dtype) != FLOAT32:
            raise TypeError(f"outputs[{i}] must be float32, got {o.dtype}")
        if o.ndim != 2 + ndim:
            raise ValueError(f"outputs[{i}] must be {'SCZYX' if ndim == 3 else 'SCYX'} ({2 + ndim}-D) like the tiles, got shape {o.shape}")
        if o.shape[1] != n_channels:
            raise ValueError(f"outputs[{i}] has {o.shape[1]} channels but the tiles have {n_channels}")
        if not o.flags.c_contiguous:
            raise ValueError(f"outputs[{i}] must be C-contiguous")
    n = len(outs)
    if origins is None:
        orig = [(0,) * ndim] * n
    else:
        orig = _per_output(origins, n, ndim, "origins", minimum=0)
    if image_shapes is None:
        shapes = [tuple(int(s) + o for s, o in zip(out.shape[2:], og)) for out, og in zip(outs, orig)]
    else:
        shapes = _per_output(image_shapes, n, ndim, "image_shapes", minimum=1)
        for i, (out, og, s) in enumerate(zip(outs, orig, shapes)):
            if any(o + e > full for o, e, full in zip(og, out.shape[2:], s)):
                raise ValueError(f"outputs[{i}] (origin {og}, shape {out.shape[2:]}) does not fit in image_shapes[{i}] = {s}")
    wts = [None] * n
    if blend:
        wts = [None] * n if weights is None else _weights(weights, outs, xp)
        _check_disjoint_memory(outs + wts)
    for i, (og, s) in enumerate(zip(orig, shapes)):
        if max(*og, *s) >= EXTENT_LIMIT:
            raise ValueError(f"origins[{i}] / image_shapes[{i}] entries must be below 2**60, got {og} / {s}")
    table = np.zeros((n, _core.OUTPUT_FIELDS), dtype=np.int64)
    for i, (o, w, og, s) in enumerate(zip(outs, wts, orig, shapes)):
        table[i, OUTPUT_COLUMNS["data"]] = ptr(o)
        table[i, OUTPUT_COLUMNS["weight"]] = 0 if w is None else ptr(w)
        table[i, OUTPUT_COLUMNS["shape"]] = (o.shape[0], o.shape[1], *spatial3(o.shape[2:]))
        table[i, OUTPUT_COLUMNS["origin"]] = (0, *og) if ndim == 2 else og
        table[i, OUTPUT_COLUMNS["image"]] = spatial3(s)
    return outs, wts, table, shapes


def _weights(weights, outs, xp) -> list:
    """The blend weight accumulators: one float32 (S, 1, *spatial) array per output."""
    n = len(outs)
    if not isinstance(weights, (list, tuple)) or len(weights) != n:
        raise ValueError(f"weights must be a list with one array per output ({n})")
    wts = [as_backend_array(w, xp, f"weights[{i}]", writable=True) for i, w in enumerate(weights)]
    for i, (w, o) in enumerate(zip(wts, outs)):
        if np.dtype(w.dtype) != FLOAT32:
            raise TypeError(f"weights[{i}] must be float32, got {w.dtype}")
        want = (o.shape[0], 1, *o.shape[2:])
        if tuple(w.shape) != want:
            raise ValueError(f"weights[{i}] must have shape {want}, got {tuple(w.shape)}")
        if not w.flags.c_contiguous:
            raise ValueError(f"weights[{i}] must be C-contiguous")
    return wts


def _check_disjoint_memory(arrays) -> None:
    """Blending adds into outputs and weights with one writer per voxel; arrays sharing
    memory (the same output given for two data_idx, a weight array inside an output...)
    would break that rule (lost updates, nondeterministic results), so refuse them."""
    spans = sorted((*byte_range(a), i) for i, a in enumerate(arrays) if a is not None and a.size)
    n_out = len(arrays) // 2
    name = lambda i: f"outputs[{i}]" if i < n_out else f"weights[{i - n_out}]"  # noqa: E731
    for (s0, e0, i0), (s1, _, i1) in zip(spans, spans[1:]):
        if s1 < e0:
            raise ValueError(f'mode="blend" needs separate memory for every output and weight array: {name(i0)} and {name(i1)} overlap')


def _check_tiles_separate(tiles, outs, wts) -> None:
    """The kernel reads the tiles while it writes the outputs (and weights): tiles sharing
    memory with one would be read after they were partly overwritten, so refuse them."""
    for label, arrays in (("outputs", outs), ("weights", wts)):
        for i, a in enumerate(arrays):
            if a is not None and memory_overlaps(tiles, a):
                raise ValueError(f"tiles share memory with {label}[{i}]; stitch_tiles reads the tiles while writing {label}, so pass separate arrays")


def _window(window_table, ndim: int, tile_size: tuple[int, ...], xp):
    """The blend window table on the tiles' backend, checked against the tile size."""
    if window_table is None:
        raise ValueError('mode="blend" needs window_table (see cupatch.window_table)')
    if _backend.is_gpu_array(window_table) and xp is np:
        raise TypeError("window_table is a GPU array but the tiles are NumPy arrays")
    # GPU tables go through as_cupy like every other argument: device check, CAI stream.
    window = _backend.as_cupy(window_table, "window_table") if _backend.is_gpu_array(window_table) else np.asarray(window_table)
    if np.dtype(window.dtype) != FLOAT32:
        raise TypeError(f"window_table must be float32, got {window.dtype}")
    if window.ndim != 3 or window.shape[0] != ndim or window.shape[1] != 4 or window.shape[2] < max(tile_size):
        raise ValueError(f"window_table must have shape ({ndim}, 4, T >= {max(tile_size)}), got {tuple(window.shape)}")
    return xp.ascontiguousarray(xp.asarray(window) if xp is not np else window)


def stitch_tiles(
    tiles: Any,
    specs: Any,
    outputs: Sequence[Any],
    *,
    mode: str = "crop",
    weights: Sequence[Any] | None = None,
    window_table: Any = None,
    image_shapes: Sequence[Sequence[int]] | None = None,
    origins: Sequence[Sequence[int]] | None = None,
) -> None:
    """Stitch a batch of predicted tiles into output images, in place, in one launch.

    Parameters
    ----------
    tiles : float32 array (B, C, *tile_size)
        Predictions; NumPy (CPU) or GPU (CuPy's current stream).
    specs : int array (B, 2 + 4 * ndim)
        Tile table: ``data_idx, sample_idx, coords, crop_coords, crop_size, stitch_coords``.
    outputs : list of float32 arrays
        One C-contiguous SC(Z)YX array per ``data_idx`` with ``C`` channels, written in
        place (each may hold only a slab of its image, see ``origins``).
    mode : {"crop", "blend"}
        ``crop`` copies each tile's kept region (every voxel written once, bit-identical on
        all backends). ``blend`` adds ``w * tile`` to ``outputs`` and ``w`` to ``weights``
        over each tile's read window clipped to the image; divide afterwards (or use
        :class:`BlendAccumulator`).
    weights : list of float32 arrays (S, 1, *spatial), optional
        Blend weight accumulators, one per output. Without them ``blend`` adds only the
        weighted tiles, for callers that divide by a weight-sum map they know from the
        tiling geometry (as :func:`cupatch.predict_tiled` does).
    window_table : float32 array (ndim, 4, T), optional
        Blend window from :func:`cupatch.window_table` (required for ``blend``).
    image_shapes : list of (Z)YX tuples, optional
        Full image extent per output (default: origin + output spatial shape); used for
        blend border flags and for checking stitch positions.
    origins : list of (Z)YX tuples, optional
        Position of each output array inside its image (default zeros); writes outside
        ``[origin, origin + shape)`` are skipped.

    Notes
    -----
    ``crop`` assumes the kept regions of the batch are disjoint (true for any tiling
    from :class:`cupatch.TiledPatching`); where a caller's kept regions overlap, each
    overlapping voxel ends up with the value of one of the overlapping tiles, which one is
    unspecified (it can differ between backends, thread counts and runs). ``blend`` is
    deterministic for any overlap; its outputs and weights must not share memory.

    Raises
    ------
    TypeError, ValueError, IndexError
        For invalid arguments (the message names the parameter).
    RuntimeError
        For GPU inputs when no GPU is usable; ``cupatch._core.CudaError`` for CUDA failures.
    """
    look_up_option(mode, ("crop", "blend"), "mode")  # before the tiles, as always
    tiles, xp = _checked_tiles(tiles)
    stitcher = TileStitcher(
        outputs, tiles.shape[1:], mode=mode, weights=weights, window_table=window_table, image_shapes=image_shapes,
        origins=origins, array_module=xp,
    )  # fmt: skip
    stitcher(tiles, specs)


def _checked_tiles(tiles):
    """``(tiles, xp)``: a float32 (B, C, [Z,] Y, X) batch, C-contiguous, and its array module."""
    is_gpu = _backend.is_gpu_array(tiles)
    xp = _backend.require_gpu("stitch_tiles") if is_gpu else np
    if not is_gpu and not isinstance(tiles, np.ndarray):
        raise TypeError(f"tiles must be a numpy.ndarray or a GPU array, got {type(tiles).__name__}")
    tiles = as_backend_array(tiles, xp, "tiles")
    if np.dtype(tiles.dtype) != FLOAT32:
        raise TypeError(f"tiles must be float32, got {tiles.dtype}")
    if tiles.ndim not in (4, 5):
        raise ValueError(f"tiles must be (B, C, Y, X) or (B, C, Z, Y, X), got shape {tiles.shape}")
    if tiles.shape[1] < 1 or any(s < 1 for s in tiles.shape[2:]):
        raise ValueError(f"tiles must have at least one channel and a non-empty tile size, got shape {tiles.shape}")
    return xp.ascontiguousarray(tiles), xp


class TileStitcher:
    """:func:`stitch_tiles` into the same outputs batch after batch, its outputs, window and
    tile table columns checked once (tiled inference stitches hundreds of batches into one
    output; each batch then costs the kernel and the checks of that batch only).

    Parameters
    ----------
    outputs, mode, weights, window_table, image_shapes, origins
        As for :func:`stitch_tiles`.
    tile_shape : sequence of int
        ``(C, *tile_size)`` of every batch to come.
    array_module : module
        ``numpy`` (CPU) or ``cupy`` (GPU): where the tiles and outputs live.
    """

    def __init__(
        self,
        outputs: Sequence[Any],
        tile_shape: Sequence[int],
        *,
        mode: str = "crop",
        weights: Sequence[Any] | None = None,
        window_table: Any = None,
        image_shapes: Sequence[Sequence[int]] | None = None,
        origins: Sequence[Sequence[int]] | None = None,
        array_module=np,
    ):
        self.blend = look_up_option(mode, ("crop", "blend"), "mode") == "blend"
        if not self.blend:
            for name, value in (("weights", weights), ("window_table", window_table)):
                if value is not None:
                    raise ValueError(f'{name} is used only with mode="blend"; mode="crop" copies the kept regions without weights')
        self.xp = xp = array_module
        self.tile_shape = tuple(int(s) for s in tile_shape)
        self.ndim = ndim = len(self.tile_shape) - 1
        self.tile_size = self.tile_shape[1:]
        self.n_cols = n_tile_columns(ndim)
        self.outs, self.wts, self.table, self.shapes = _output_table(
            outputs, weights, origins, image_shapes, ndim, self.tile_shape[0], xp, self.blend
        )
        self.window = _window(window_table, ndim, self.tile_size, xp) if self.blend else None

    def check_specs(self, specs: Any) -> None:
        """Check a tile table against the outputs (what every call does for its batch), so
        that calls with rows of it can pass ``checked=True``."""
        _, specs_host = spec_table(specs, self.n_cols, self.xp, "specs", what="tile table")
        if specs_host is not None and len(specs_host):
            _check_tile_specs(specs_host, self.outs, self.shapes, self.tile_size, self.ndim, check_crop=not self.blend)

    def __call__(self, tiles: Any, specs: Any, *, checked: bool = False) -> None:
        """Stitch one batch (one launch). ``checked``: the rows of ``specs`` come from a
        table :meth:`check_specs` accepted."""
        xp = self.xp
        tiles = as_backend_array(tiles, xp, "tiles")
        if np.dtype(tiles.dtype) != FLOAT32 or tuple(tiles.shape[1:]) != self.tile_shape:
            raise ValueError(f"tiles must be float32 (B, {', '.join(map(str, self.tile_shape))}), got {tiles.dtype} {tuple(tiles.shape)}")
        tiles = xp.ascontiguousarray(tiles)
        specs_dev, specs_host = spec_table(specs, self.n_cols, xp, "specs", what="tile table")
        n_tiles = int(specs_dev.shape[0])
        if n_tiles != tiles.shape[0]:
            raise ValueError(f"specs has {n_tiles} rows but tiles has {tiles.shape[0]} tiles")
        _check_tiles_separate(tiles, self.outs, self.wts)
        if not checked and specs_host is not None and n_tiles:
            _check_tile_specs(specs_host, self.outs, self.shapes, self.tile_size, self.ndim, check_crop=not self.blend)
        if n_tiles == 0:
            return
        window = self.window
        if xp is np:
            if self.blend:
                _core.stitch_blend_cpu(tiles, specs_dev, self.table, window)
            else:
                _core.stitch_crop_cpu(tiles, specs_dev, self.table)
            return
        device = int(xp.cuda.Device().id)
        table_dev = _cached_device_table(xp, device, self.table)
        launch = _core.stitch_blend_cuda if self.blend else _core.stitch_crop_cuda
        launch(
            ptr(tiles), n_tiles, int(tiles.shape[1]), spatial3(self.tile_size), ptr(specs_dev), self.n_cols, self.ndim,
            ptr(table_dev), len(self.outs), 0 if window is None else ptr(window),
            0 if window is None else int(window.shape[2]), int(xp.cuda.get_current_stream().ptr), device,
        )  # fmt: skip


_OUTPUT_TABLES: dict = {}


def _cached_device_table(xp, device: int, table: np.ndarray):
    """Device copy of an output table (pointers and shapes only), reused while the same
    outputs are stitched batch after batch. Cached per stream, for the reasons given in
    :meth:`SourceTable.device_copy`."""
    key = (device, int(xp.cuda.get_current_stream().ptr), table.shape, table.tobytes())
    cached = _OUTPUT_TABLES.get(key)
    if cached is None:
        if len(_OUTPUT_TABLES) >= 32:
            _OUTPUT_TABLES.pop(next(iter(_OUTPUT_TABLES)))
        cached = _OUTPUT_TABLES[key] = xp.asarray(table)
    return cached


def _check_tile_specs(specs: np.ndarray, outs, shapes, tile_size, ndim: int, *, check_crop: bool) -> None:
    columns = tile_columns(ndim)
    data_idx, sample_idx = specs[:, columns["data_idx"]][:, 0], specs[:, columns["sample_idx"]][:, 0]
    if data_idx.min() < 0 or data_idx.max() >= len(outs):
        raise IndexError(f"specs: data_idx must be in [0, {len(outs)}), got values in [{data_idx.min()}, {data_idx.max()}]")
    n_samples = np.array([o.shape[0] for o in outs], dtype=np.int64)
    bad = (sample_idx < 0) | (sample_idx >= n_samples[data_idx])
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        raise IndexError(f"specs: sample_idx {sample_idx[b]} of tile {b} is out of range for outputs[{data_idx[b]}] with {n_samples[data_idx[b]]} samples")
    if not check_crop:
        return
    crop = specs[:, columns["crop_coords"]]
    size = specs[:, columns["crop_size"]]
    stitch = specs[:, columns["stitch_coords"]]
    image = np.array(shapes, dtype=np.int64)[data_idx]
    tile = np.array(tile_size, dtype=np.int64)
    # Written so that no int64 sum can wrap (crop, size, stitch are checked >= 0 first).
    bad = (crop < 0).any(1) | (size < 0).any(1) | (size > tile - np.maximum(crop, 0)).any(1)
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        raise ValueError(f"specs: tile {b} keeps crop_coords {tuple(crop[b])} + crop_size {tuple(size[b])}, outside the tile {tuple(tile_size)}")
    bad = (stitch < 0).any(1) | (size > image - np.maximum(stitch, 0)).any(1)
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        raise ValueError(f"specs: tile {b} stitches at {tuple(stitch[b])} with size {tuple(size[b])}, outside its image {tuple(image[b])}")


def _array_module_message(xp) -> str:
    shown = xp.__name__ if isinstance(xp, types.ModuleType) else f"{xp!r} ({type(xp).__name__})"
    return f"array_module must be numpy or cupy (the module), got {shown!r}"


class BlendAccumulator:
    """Weighted tile blending over many batches, normalised at the end.

    Parameters
    ----------
    output_shapes : list of tuple
        SC(Z)YX shape of each output (C = prediction channels), indexed by ``data_idx``.
    tile_size : int or sequence of int
        (Z)YX tile size (one int: that size on every axis).
    overlaps : int or sequence of int, optional
        Taper width per axis (required by the ``linear`` and ``hann`` windows).
    window : {"linear", "hann", "gaussian", "uniform"}
        Blend window (:func:`cupatch.window_table`).
    array_module : module
        ``numpy`` (CPU) or ``cupy`` (GPU, current device).
    origins, image_shapes : list of (Z)YX tuples, optional
        When each output holds only a slab of its image (see :func:`stitch_tiles`).

    Attributes
    ----------
    outputs, weights : list of float32 arrays
        The running weighted sums and weight sums (zero-initialised).

    Examples
    --------
    >>> acc = BlendAccumulator([(1, 1, 64, 64)], (32, 32), (8, 8))   # doctest: +SKIP
    >>> acc.add(predictions, tile_specs)                                # doctest: +SKIP
    >>> (image,) = acc.finalize()                                       # doctest: +SKIP
    """

    def __init__(
        self,
        output_shapes: Sequence[Sequence[int]],
        tile_size: Sequence[int],
        overlaps: Sequence[int] | None = None,
        *,
        window: str = "hann",
        array_module=np,
        origins: Sequence[Sequence[int]] | None = None,
        image_shapes: Sequence[Sequence[int]] | None = None,
    ):
        xp = array_module
        if xp is not np:
            name = getattr(xp, "__name__", None) if isinstance(xp, types.ModuleType) else None
            try:
                cupy = _backend.require_gpu("BlendAccumulator")
            except RuntimeError:
                if name != "cupy":  # any other module is a mistake whether or not a GPU is usable
                    raise ValueError(_array_module_message(xp)) from None
                raise
            if xp is not cupy:
                raise ValueError(_array_module_message(xp))
        output_shapes = as_list(output_shapes, "output_shapes", what="SC(Z)YX shapes")
        if is_int(tile_size) and output_shapes and isinstance(output_shapes[0], (Sequence, np.ndarray)):
            tile_size = (tile_size,) * (len(output_shapes[0]) - 2)  # one int: that size on every axis
        tile = as_int_tuple(tile_size, "tile_size", minimum=1)
        if len(tile) not in (2, 3):
            raise ValueError(f"tile_size must have 2 or 3 entries, got {tile}")
        as_patch_size(tile, len(tile), "tile_size")  # the documented 2**60 / 2**30 (X) limits
        if is_int(overlaps):
            overlaps = (overlaps,) * len(tile)
        shapes = [as_int_tuple(s, f"output_shapes[{i}]", length=2 + len(tile), minimum=0) for i, s in enumerate(output_shapes)]
        if not shapes:
            raise ValueError("output_shapes must contain at least one shape")
        self.xp = xp
        self.tile_size = tile
        self.window = window
        self.table = xp.asarray(make_window_table(tile, overlaps, window))
        self.outputs = [xp.zeros(s, dtype=np.float32) for s in shapes]
        self.weights = [xp.zeros((s[0], 1, *s[2:]), dtype=np.float32) for s in shapes]
        # checked now, not at the first add()
        ndim = len(tile)
        self.origins = None if origins is None else _per_output(origins, len(shapes), ndim, "origins", minimum=0)
        self.image_shapes = (
            None if image_shapes is None else _per_output(image_shapes, len(shapes), ndim, "image_shapes", minimum=1)
        )
        self._finalized = False
        # The zero fills above are queued on the current stream: later calls on another
        # stream must wait for them (and for earlier batches).
        self._stream = xp.cuda.get_current_stream() if xp is not np else None

    def _follow_current_stream(self) -> None:
        """Order CuPy's current stream after the work queued on these arrays so far."""
        if self._stream is None:
            return
        stream = self.xp.cuda.get_current_stream()
        if stream.ptr != self._stream.ptr:
            stream.wait_event(self._stream.record())
            self._stream = stream

    def add(self, tiles: Any, specs: Any) -> None:
        """Accumulate one batch of tiles (one blend launch)."""
        if self._finalized:
            raise RuntimeError("BlendAccumulator.add called after finalize()")
        tiles = as_backend_array(tiles, self.xp, "tiles")
        if tuple(tiles.shape[2:]) != self.tile_size:
            raise ValueError(f"tiles must have tile size {self.tile_size}, got shape {tuple(tiles.shape)}")
        self._follow_current_stream()
        stitch_tiles(
            tiles, specs, self.outputs, mode="blend", weights=self.weights, window_table=self.table,
            image_shapes=self.image_shapes, origins=self.origins,
        )

    def finalize(self) -> list:
        """Divide the sums by the weights in place and return the outputs.

        Voxels no tile covered (weight 0) stay 0.
        """
        if not self._finalized:
            xp = self.xp
            self._follow_current_stream()
            for out, w in zip(self.outputs, self.weights):
                out /= xp.where(w > 0, w, xp.float32(1))
            self._finalized = True
        return self.outputs
