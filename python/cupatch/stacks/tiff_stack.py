"""TIFF stacks through tifffile: memory-mapped when the file allows, else read lazily."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .axes import reshape_array
from .lazy_stack import LazyStack

__all__ = ["TiffStack", "is_tiff_path", "tiff_axes"]

TIFF_SUFFIXES = (".tif", ".tiff")


def tiff_axes(path) -> str | None:
    """The axes a TIFF file's metadata give its first series, as cupatch letters, or None.

    Read from OME-XML and ImageJ hyperstack metadata (where tifffile's ``S``, samples per
    pixel, is the channel axis C) and from tifffile's own shaped metadata when it names the
    axes (``tifffile.imwrite(..., metadata={"axes": ...})``, cupatch's outputs); a file
    without axes metadata, or with axes outside ``STCZYX``, gives None.
    """
    import tifffile  # optional dependency, needed for TIFF files only

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = str(series.axes).upper()
            if tif.is_ome or tif.is_imagej:
                if "S" in axes:  # samples per pixel (RGB, extra samples) are channels
                    if "C" in axes:
                        return None
                    axes = axes.replace("S", "C")
            elif not (tif.is_shaped and isinstance(tif.shaped_metadata, tuple) and tif.shaped_metadata
                      and "axes" in tif.shaped_metadata[0]):
                return None  # tifffile guesses axes (Q, I, S) for files that do not name them
    except (tifffile.TiffFileError, OSError, ValueError, IndexError):
        return None
    if len(set(axes)) != len(axes) or any(c not in "STCZYX" for c in axes) or not {"Y", "X"} <= set(axes):
        return None
    return axes


def is_tiff_path(obj) -> bool:
    """True for a str/PathLike ending in ``.tif``/``.tiff`` (case-insensitive)."""
    return isinstance(obj, (str, os.PathLike)) and str(obj).lower().endswith(TIFF_SUFFIXES)


class TiffStack(LazyStack):
    """The first image series of a TIFF file, read region by region.

    Uncompressed, contiguous files are memory-mapped (``tifffile.memmap``): a region read
    touches only its pages of the file, and placing the stack on the host ("cpu") keeps the
    memory map instead of decoding the file. Other files are read through tifffile's Zarr view
    of the series (``aszarr``), which decodes only the TIFF pages/tiles a region covers.

    Parameters
    ----------
    path : str or os.PathLike
        The TIFF file.
    axes : str
        Axes of the file's first series, e.g. ``"ZYX"`` or ``"TYXC"``.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If tifffile cannot parse it.
    """

    def __init__(self, path, axes: str) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"TIFF file not found: {str(path)!r}")
        import tifffile  # optional dependency, needed for TIFF files only
        import zarr  # optional dependency: tifffile's Zarr view of compressed files

        self._tiff = None
        try:
            try:
                backing = tifffile.memmap(path, mode="r")
                self.memory_mapped = True
            except ValueError:  # compressed, tiled or non-contiguous: not memory-mappable
                self._tiff = tifffile.TiffFile(path)
                backing = zarr.open(self._tiff.series[0].aszarr(), mode="r")
                self.memory_mapped = False
        except (tifffile.TiffFileError, OSError, ValueError, IndexError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            self.close()
            raise ValueError(f"cannot read TIFF file {str(path)!r}: {exc}") from exc
        if self.memory_mapped and not isinstance(backing, np.memmap):
            backing = np.asarray(backing)
        self._init_lazy(backing, str(path), axes)

    @property
    def maps_in_place(self) -> bool:
        """True when the SC(Z)YX view of the memory map is a view (no copy): then holding the
        stack in host memory costs nothing, and ``placement="auto"`` does so."""
        if not self.memory_mapped:
            return False
        return bool(np.shares_memory(reshape_array(self._backing, self.original_axes), self._backing))

    def _load_all(self):
        if self.memory_mapped:
            # keeps the memory map (a view) whenever the axes allow a reshape without a copy
            return reshape_array(self._backing, self.original_axes)
        return super()._load_all()

    def close(self) -> None:
        """Close the underlying file (only needed for files that are not memory-mapped)."""
        if self._tiff is not None:
            self._tiff.close()
            self._tiff = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass
