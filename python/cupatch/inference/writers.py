"""Writers: how a streamed prediction reaches its destination, one class per output kind.

A streamed prediction arrives as finished blocks ``(C, a:b, ...)`` of one sample: rows
``[a, b)`` of the first spatial axis, SC(Z)YX. Every writer puts them into its array in the
output's own axes order (:class:`ArrayWriter`); the kinds differ in how the array is made
and how it is best written, which is all a slab sink needs to know (the :class:`Writer`
protocol): a NumPy array is filled in place, a ``.zarr`` path becomes a Zarr array chunked
along the tile step (with ``dimension_names``), a ``.ome.zarr`` path an NGFF image of one
level, ``.npy`` and ``.tif`` paths become memory-mapped files (a compressed ``.tif`` is
written from an uncompressed temporary file when it is complete: TIFF pages cannot be
encoded out of order). File metadata (axes, units, scale) is :mod:`.metadata`. Writes to
anything backed by storage run in a :class:`BackgroundWriter` thread, overlapping the next
batches. A file a writer creates is marked incomplete from its creation until
:meth:`~ArrayWriter.close` (:func:`~cupatch.inference.destinations.mark_incomplete`), so
an interrupted run leaves a partial output that says what it is.
"""

from __future__ import annotations

import queue
import threading
import warnings
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from .destinations import clear_path, is_zarr_array, mark_complete, mark_incomplete, path_kind
from .metadata import ngff_axes, ngff_metadata, tiff_kwargs

__all__ = [
    "FILE_WRITERS",
    "ZARR_CHUNK_BYTES",
    "ArrayWriter",
    "BackgroundWriter",
    "Layout",
    "NpyWriter",
    "OmeZarrWriter",
    "TiffWriter",
    "Writer",
    "ZarrWriter",
    "open_writer",
    "zarr_chunks",
]

#: Largest chunk (bytes) of a Zarr output created by predict_tiled.
ZARR_CHUNK_BYTES = 16 * 2**20


class Writer(Protocol):
    """What a slab sink needs from a destination."""

    target: Any  # the destination array (what predict_tiled returns for it)
    label: str  # how PredictionStats.streamed names it
    path: Path | None  # the file this writer created, if any
    chunk0: int  # writes start and end on multiples of this along the first spatial axis
    background: bool  # backed by storage: write from a background thread

    def write(self, sample_idx: int, a: int, b: int, block: np.ndarray) -> None:
        """Store the finished rows ``[a, b)`` of one sample, ``block`` C(Z)YX on the host."""

    def close(self) -> None:
        """Make everything written durable (flush); a created file is then complete."""


@dataclass(frozen=True)
class Layout:
    """How SC(Z)YX blocks of one image map onto its restored output array."""

    axes: str  # the image's own axes (S and T are samples)
    shape: tuple[int, ...]  # its shape in them
    target_axes: str  # the output's axes
    ndim: int  # spatial dimensions
    ome: Any = None  # the input's OmeImage (OME-Zarr inputs): units and scale for the output file

    @property
    def first_spatial(self) -> str:
        return "ZYX"[3 - self.ndim]


def zarr_chunks(
    shape: tuple[int, ...], target_axes: str, chunk0: int, first_spatial: str, itemsize: int = 4
) -> tuple[int, ...]:
    """Chunks of a created Zarr output: one sample, all channels, ``chunk0`` (the tile
    step) along the first spatial axis so that slab writes are chunk-aligned, and the other
    spatial axes halved until a chunk is at most ``ZARR_CHUNK_BYTES``."""
    chunks = []
    for letter, n in zip(target_axes, shape):
        if letter in "ST":
            chunks.append(1)
        elif letter == "C":
            chunks.append(n)
        elif letter == first_spatial:
            chunks.append(max(1, min(chunk0, n)))
        else:
            chunks.append(max(1, min(n, 1024)))
    others = [i for i, a in enumerate(target_axes) if a in "ZYX" and a != first_spatial]
    while int(np.prod(chunks)) * itemsize > ZARR_CHUNK_BYTES:
        largest = max(others, key=lambda i: chunks[i])
        if chunks[largest] <= 64:
            break
        chunks[largest] = (chunks[largest] + 1) // 2
    return tuple(chunks)


class ArrayWriter:
    """Writes blocks into an array in the restored layout: a NumPy array, given or new.

    The base of every kind: only how the array is made, its chunking and its label differ.
    """

    kind: ClassVar[str] = "numpy"  # the label of a destination given as an array

    def __init__(self, target, layout: Layout, *, label: str | None = None, path: Path | None = None):
        self.target, self.path = target, path
        self.label = label or self.kind
        self.chunk0 = 1
        # Plain in-memory arrays are filled synchronously; anything backed by storage is not.
        self.background = type(target) is not np.ndarray
        sizes = dict(zip(layout.axes, layout.shape))
        self.n_t = sizes.get("T", 1)
        self.target_axes = layout.target_axes
        self.spatial = "ZYX"[3 - layout.ndim :]
        block = ("C" if "C" in layout.target_axes else "") + self.spatial
        self.drop_c = "C" not in layout.target_axes
        self.perm = [block.index(a) for a in layout.target_axes if a in block]

    def write(self, sample_idx: int, a: int, b: int, block: np.ndarray) -> None:
        self.write_box(sample_idx, (a,), (b,), block)

    def write_box(self, sample_idx: int, lo: tuple[int, ...], hi: tuple[int, ...], block: np.ndarray) -> None:
        """Store the box ``[lo, hi)`` of one sample (leading spatial axes; the rest whole),
        ``block`` C(Z)YX on the host; used by distributed tasks that own a box of chunks."""
        index = {"S": sample_idx // self.n_t, "T": sample_idx % self.n_t}
        box = dict(zip(self.spatial, (slice(a, b) for a, b in zip(lo, hi))))
        key = []
        for letter in self.target_axes:
            if letter in "ST":
                key.append(index[letter])
            else:
                key.append(box.get(letter, slice(None)))
        if self.drop_c:
            block = block[0]
        self.target[tuple(key)] = block.transpose(self.perm)

    def close(self) -> None:
        """Flush; a file this writer created is complete from now on (its marker goes)."""
        if hasattr(self.target, "flush"):  # memory-mapped files
            self.target.flush()
        if self.path is not None:
            mark_complete(self.path)


class ZarrWriter(ArrayWriter):
    """A Zarr array, given or created for a ``.zarr`` path; writes are chunk-aligned."""

    kind: ClassVar[str] = "zarr"

    def __init__(self, target, layout: Layout, *, label: str | None = None, path: Path | None = None):
        super().__init__(target, layout, label=label, path=path)
        self.chunk0 = int(target.chunks[layout.target_axes.index(layout.first_spatial)])

    @classmethod
    def create(cls, path: Path, shape, dtype, layout: Layout, step: int, compression: str | None = None) -> ZarrWriter:
        import zarr  # optional dependency, only for .zarr outputs

        chunks = zarr_chunks(shape, layout.target_axes, step, layout.first_spatial, np.dtype(dtype).itemsize)
        array = zarr.create_array(
            store=str(path),
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            fill_value=0,
            dimension_names=list(layout.target_axes),
            **_zarr_compressors(compression),
        )
        return cls(array, layout, label=str(path), path=path)


def _zarr_compressors(compression: str | None) -> dict:
    if compression is None:
        return {}  # zarr's default (zstd)
    from zarr.codecs import GzipCodec, ZstdCodec

    return {"compressors": ZstdCodec() if compression == "zstd" else GzipCodec()}


class OmeZarrWriter(ZarrWriter):
    """A new ``.ome.zarr`` image (NGFF 0.5, one resolution level ``"0"``), axes in NGFF's
    TCZYX order, units/scale/translation from an OME input; writes as :class:`ZarrWriter`."""

    @classmethod
    def create(cls, path: Path, shape, dtype, layout: Layout, step: int, compression: str | None = None) -> OmeZarrWriter:
        import zarr  # optional dependency, only for .zarr outputs

        with warnings.catch_warnings():  # ome-zarr's module deprecates its own Scaler as it loads
            warnings.simplefilter("ignore", DeprecationWarning)
            from ome_zarr.format import FormatV05  # the ``ome`` extra (checked in Plan.build)
            from ome_zarr.writer import write_multiscales_metadata

        axes = ngff_axes(layout.target_axes)
        shape = tuple(shape[layout.target_axes.index(a)] for a in axes)
        layout = replace(layout, target_axes=axes)
        chunks = zarr_chunks(shape, axes, step, layout.first_spatial, np.dtype(dtype).itemsize)
        group = zarr.open_group(str(path), mode="w", zarr_format=3)
        array = group.create_array(
            "0", shape=shape, chunks=chunks, dtype=dtype, fill_value=0, dimension_names=[a.lower() for a in axes],
            **_zarr_compressors(compression),
        )  # fmt: skip
        ngff, transforms = ngff_metadata(axes, layout.ome)
        name = layout.ome.name if layout.ome is not None and layout.ome.name else "prediction"
        datasets = [{"path": "0", "coordinateTransformations": transforms}]
        write_multiscales_metadata(group, datasets, fmt=FormatV05(), axes=ngff, name=name)
        return cls(array, layout, label=str(path), path=path)


class NpyWriter(ArrayWriter):
    """A new ``.npy`` file, memory-mapped."""

    @classmethod
    def create(cls, path: Path, shape, dtype, layout: Layout, step: int, compression: str | None = None) -> NpyWriter:
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        return cls(array, layout, label=str(path), path=path)


class TiffWriter(ArrayWriter):
    """A new ``.tif``/``.tiff`` file with the output axes in its metadata
    (:func:`~cupatch.inference.metadata.tiff_kwargs`: ImageJ hyperstack, OME-TIFF or
    tifffile's description; BigTIFF when large).

    Uncompressed files are memory-mapped and filled in place. A compressed file is filled
    as an uncompressed temporary ``.NAME.cupatch-uncompressed.npy`` beside it and encoded
    (zlib or zstd, through imagecodecs) in one pass by :meth:`close`; ``target`` is then a
    read-only Zarr view of the TIFF.
    """

    def __init__(self, target, layout: Layout, *, label=None, path=None, encode: dict | None = None):
        super().__init__(target, layout, label=label, path=path)
        self.encode = encode  # tifffile.imwrite keywords of a compressed file, None: memory-mapped

    @staticmethod
    def temporary(path: Path) -> Path:
        return path.with_name(f".{path.name}.cupatch-uncompressed.npy")

    @classmethod
    def create(cls, path: Path, shape, dtype, layout: Layout, step: int, compression: str | None = None) -> TiffWriter:
        import tifffile  # optional dependency, only for .tif outputs

        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        _, kwargs = tiff_kwargs(path_kind(path), layout.target_axes, dtype, nbytes, layout.ome)
        if compression is None:
            array = tifffile.memmap(path, shape=shape, dtype=dtype, **kwargs)
            return cls(array, layout, label=str(path), path=path)
        temporary = cls.temporary(path)
        temporary.unlink(missing_ok=True)  # left by an interrupted run
        array = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype, shape=shape)
        path.touch()  # the output exists (and is marked incomplete) from now on
        spatial = [shape[layout.target_axes.index(a)] for a in "YX"]
        if "imagej" not in kwargs and min(spatial) >= 256:
            kwargs["tile"] = (256, 256)  # tiled: a region read decodes only the tiles it touches
        return cls(array, layout, label=str(path), path=path, encode={**kwargs, "compression": compression})

    def close(self) -> None:
        if self.encode is None:
            super().close()
            return
        import tifffile  # optional dependency, only for .tif outputs
        import zarr

        self.target.flush()
        tifffile.imwrite(self.path, self.target, **self.encode)
        temporary = Path(self.target.filename)
        del self.target
        temporary.unlink(missing_ok=True)
        store = tifffile.imread(self.path, aszarr=True)
        self.target = zarr.open(store, mode="r")
        weakref.finalize(self.target, store.close)  # the view holds the file open until it goes
        mark_complete(self.path)


#: The writer that creates each kind of output file, by extension (``OUT_SUFFIXES``).
FILE_WRITERS = {
    ".ome.zarr": OmeZarrWriter,
    ".zarr": ZarrWriter,
    ".npy": NpyWriter,
    ".ome.tif": TiffWriter,
    ".ome.tiff": TiffWriter,
    ".tif": TiffWriter,
    ".tiff": TiffWriter,
}


def open_writer(
    out, shape: tuple[int, ...], dtype, layout: Layout, *, step: int, overwrite: bool, compression: str | None = None
) -> Writer:
    """The writer for one image's destination: ``out`` from the plan (None: a new host
    array), the restored output ``shape`` and ``dtype``, ``step`` the tile step along the
    first spatial axis (the chunk size of a created Zarr output), ``compression`` of a
    created ``.tif``/``.zarr`` file."""
    if out is None:
        return ArrayWriter(np.empty(shape, dtype=dtype), layout, label="host")
    if isinstance(out, Path):
        clear_path(out, overwrite)
        writer = FILE_WRITERS[path_kind(out)].create(out, shape, dtype, layout, step, compression)
        mark_incomplete(out)  # until close(): a run stopped before then leaves it marked
        return writer
    if tuple(out.shape) != tuple(shape):
        raise ValueError(
            f"out has shape {tuple(out.shape)} but the prediction restored to axes {layout.target_axes!r} has shape "
            f"{tuple(shape)}"
        )
    return ZarrWriter(out, layout) if is_zarr_array(out) else ArrayWriter(out, layout)


class BackgroundWriter:
    """Runs a writer's ``write`` calls in order in one background thread.

    Encoding and storing Zarr chunks (or filling a memory-mapped file) then overlaps the
    next batches' gather, model and stitch. At most ``max_pending`` blocks wait in the
    queue, which bounds the extra host memory. The first error is re-raised in the
    calling thread by the next ``write`` or by ``close``.
    """

    def __init__(self, writer: Writer, max_pending: int = 2):
        self.writer = writer
        self.pending: queue.Queue = queue.Queue(maxsize=max_pending)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="cupatch-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.pending.get()
            if item is None:
                return
            if self.error is None:
                try:
                    self.writer.write(*item)
                except BaseException as exc:  # handed to the caller, never lost
                    self.error = exc

    def write(self, sample_idx: int, a: int, b: int, block: np.ndarray) -> None:
        if self.error is not None:
            raise self.error
        self.pending.put((sample_idx, a, b, block))

    def close(self) -> None:
        """Wait for every queued write; re-raise the first write error."""
        if self.thread.is_alive():
            self.pending.put(None)
            self.thread.join()
        if self.error is not None:
            raise self.error
