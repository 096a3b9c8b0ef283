"""What cupatch's CUDA entry points read and write, for the CuPy stand-in's checks.

In the emulated build (``CUPATCH_CUDA=EMULATE``) ``cupatch._core.gather_cuda``,
``stitch_crop_cuda`` and ``stitch_blend_cuda`` run the real kernels on the host, at once;
``cuda_stream_wait`` orders nothing because nothing is left to order. ``install`` wraps them
so that, around each launch, the stand-in

* checks that every buffer the launch uses (its arguments, and the arrays its source or
  output tables point to) lies inside a live device or pinned allocation, as a GPU would
  (an illegal address is ``cudaErrorIllegalAddress``, not a read of arbitrary host memory);
* records the launch's reads and writes on its stream, so that stream-order mistakes
  (work on another stream not waited for) fail the test instead of passing only because
  the emulated device is synchronous (see ``cupy/cuda/_ordering.py``);
* records ``cuda_stream_wait(producer, consumer)`` as the wait it is.

The table layouts come from the build (``_core.SOURCE_COLUMNS`` / ``OUTPUT_COLUMNS``: the
columns of the data pointer, shape (S, C, Z, Y, X) and element strides of each source, and of
the data and weight pointers and shape of each output; builds from before they were
exported use the same layout, written out below).
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np


_SOURCE_COLUMNS = {"data": (0, 1), "shape": (1, 5), "strides": (6, 5)}
_OUTPUT_COLUMNS = {"data": (0, 1), "weight": (1, 1), "shape": (2, 5)}


def _itemsizes(core) -> list[int]:
    return [2 if name == "bfloat16" else np.dtype(name).itemsize for name in core.DTYPES]


#: pointers below this are not addresses of anything (the null page); they are left to the
#: bindings, which check their other arguments before touching a pointer (and the tests of
#: those checks pass such pointers on purpose)
_NULL_PAGE = 1 << 16


def _table(memory, ptr: int, rows: int, cols: int, what: str) -> np.ndarray | None:
    if ptr < _NULL_PAGE or rows <= 0:
        return None
    _check(memory, ptr, rows * cols * 8, what)
    return np.ctypeslib.as_array((ctypes.c_int64 * (rows * cols)).from_address(ptr)).reshape(rows, cols).copy()


def _check(memory, ptr: int, nbytes: int, what: str) -> None:
    if nbytes <= 0 or ptr < _NULL_PAGE:
        return
    found = memory._region(ptr)
    if found is None or ptr + nbytes > found[1]:
        from cupy.cuda.runtime import CUDARuntimeError  # the stand-in's

        error = CUDARuntimeError(700)
        where = "outside any device allocation" if found is None else "past the end of its allocation"
        error.add_note(f"{what}: [{ptr:#x}, +{nbytes}) is {where}")
        raise error


def _columns(table: np.ndarray, layout: dict, name: str) -> np.ndarray:
    start, count = layout[name]
    return table[:, start : start + count]


def _strided_extent(ptr: int, shape, strides, itemsize: int) -> tuple[int, int]:
    lo = hi = ptr
    for n, s in zip(shape, strides):
        if s < 0:
            lo += (n - 1) * s * itemsize
        else:
            hi += (n - 1) * s * itemsize
    return lo, hi + itemsize - lo


def install(core, cupy) -> None:
    """Wrap the CUDA entry points of ``core`` (idempotent)."""
    if getattr(core, "_standin_kernel_accesses", False):
        return
    memory = cupy.cuda.memory
    ordering = cupy.cuda._ordering
    sizes = _itemsizes(core)

    def launch(kernel, name, describe):
        @functools.wraps(kernel)
        def wrapper(*args, **kwargs):
            accesses, stream = describe(*args, **kwargs)  # [(ptr, nbytes, write, what)], stream
            for ptr, nbytes, _, what in accesses:
                _check(memory, ptr, nbytes, f"{name}: {what}")
            kernel(*args, **kwargs)
            for ptr, nbytes, write, what in accesses:
                if ptr >= _NULL_PAGE:
                    memory._access(ptr, nbytes, write, stream, f"cupatch's {name} kernel ({what})")

        return wrapper

    def gather(sources, n_sources, source_dtype, specs, n_patches, spec_cols, ndim, patch, channels, n_channels,
               affine, aug, out, out_dtype, stream, device):
        table = _table(memory, sources, n_sources, core.SOURCE_FIELDS, "gather: the source table")
        acc = [(sources, n_sources * core.SOURCE_FIELDS * 8, False, "source table")]
        if table is not None:
            cols = getattr(core, "SOURCE_COLUMNS", _SOURCE_COLUMNS)
            for i, (ptr, shape, strides) in enumerate(zip(_columns(table, cols, "data")[:, 0], _columns(table, cols, "shape"),
                                                          _columns(table, cols, "strides"))):
                if ptr and all(shape):
                    lo, nbytes = _strided_extent(int(ptr), shape, strides, sizes[source_dtype])
                    acc.append((lo, nbytes, False, f"source {i}"))
        acc.append((specs, n_patches * spec_cols * 8, False, "specs"))
        acc.append((channels, n_channels * 8, False, "channels"))
        if affine:
            acc.append((affine, 2 * n_channels * 4, False, "affine"))
        if aug:
            acc.append((aug, n_patches, False, "augmentation flags"))
        acc.append((out, n_patches * n_channels * int(np.prod(patch)) * sizes[out_dtype], True, "out"))
        return acc, stream

    def stitch(blend):
        def describe(tiles, n_tiles, channels, tile, specs, spec_cols, ndim, outputs, n_outputs, window, window_len,
                     stream, device):
            table = _table(memory, outputs, n_outputs, core.OUTPUT_FIELDS, "stitch: the output table")
            acc = [(tiles, n_tiles * channels * int(np.prod(tile)) * 4, False, "tiles"),
                   (specs, n_tiles * spec_cols * 8, False, "specs"),
                   (outputs, n_outputs * core.OUTPUT_FIELDS * 8, False, "output table")]
            if window:
                acc.append((window, ndim * 4 * window_len * 4, False, "window table"))
            if table is not None:
                cols = getattr(core, "OUTPUT_COLUMNS", _OUTPUT_COLUMNS)
                data, weight = _columns(table, cols, "data")[:, 0], _columns(table, cols, "weight")[:, 0]
                for i, (out, w, shape) in enumerate(zip(data, weight, _columns(table, cols, "shape"))):
                    s, c, z, y, x = (int(v) for v in shape)
                    voxels = s * z * y * x
                    if out and voxels * c:
                        if blend:
                            acc.append((int(out), voxels * c * 4, False, f"output {i}"))
                        acc.append((int(out), voxels * c * 4, True, f"output {i}"))
                    if w and voxels:
                        acc.append((int(w), voxels * 4, False, f"weights {i}"))
                        acc.append((int(w), voxels * 4, True, f"weights {i}"))
            return acc, stream

        return describe

    stream_wait = core.cuda_stream_wait

    @functools.wraps(stream_wait)
    def cuda_stream_wait(producer, consumer, device):
        stream_wait(producer, consumer, device)
        ordering.stream_wait_stream(producer, consumer)

    core.gather_cuda = launch(core.gather_cuda, "gather", gather)
    core.stitch_crop_cuda = launch(core.stitch_crop_cuda, "crop stitch", stitch(False))
    core.stitch_blend_cuda = launch(core.stitch_blend_cuda, "blend stitch", stitch(True))
    core.cuda_stream_wait = cuda_stream_wait
    core._standin_kernel_accesses = True
