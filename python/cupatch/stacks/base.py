"""What every image stack shares: the stack interface, dtype and channel checks, and
zero-padded region reads (``BaseStack.read_region``) on top of one ``_read_box`` per kind.

The kinds of stack live in their own modules (:mod:`.array_stack`, :mod:`.lazy_stack`,
:mod:`.tiff_stack`, :mod:`.zarr_stack`); where their samples live is :mod:`.placement`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .._dtypes import STACK_DTYPES, dtype_names
from .._validation import as_channels, as_index, as_int_tuple
from .axes import reshaped_shape, validate_axes

__all__ = ["SUPPORTED_DTYPES", "BaseStack", "ImageStack", "check_channels", "check_dtype"]

#: Storage dtypes the gather kernels read directly (:data:`cupatch._dtypes.STACK_DTYPES`).
SUPPORTED_DTYPES = STACK_DTYPES


def check_dtype(dtype, source: str) -> np.dtype:
    """Return ``dtype`` as a NumPy dtype, or raise TypeError if the kernels cannot read it."""
    dtype = np.dtype(dtype)
    if dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"unsupported dtype {dtype} in {source}; supported dtypes: {dtype_names(SUPPORTED_DTYPES)}")
    return dtype


def check_channels(channels: Sequence[int] | None, n_channels: int, what: str = "channels") -> list[int] | None:
    """Validate a channel subset against ``n_channels``; ``None`` means all channels."""
    return as_channels(channels, n_channels, what)


@runtime_checkable
class ImageStack(Protocol):
    """What the dataset needs from a stack (see :class:`BaseStack`)."""

    source: str
    data_shape: tuple[int, ...]
    dtype: np.dtype
    original_axes: str
    original_data_shape: tuple[int, ...]
    additional_metadata: dict
    placement: str
    array: Any

    def read_region(self, sample_idx: int, coords: Sequence[int], size: Sequence[int], channels=None) -> np.ndarray: ...

    def to_device(self, placement: str) -> ImageStack: ...


class BaseStack(ImageStack):
    """Metadata and region reading common to all stacks (an explicit :class:`ImageStack`).

    Subclasses set the attributes below and implement :meth:`_read_box`, which returns the
    in-bounds box of one sample as a NumPy C(Z)YX array of the stored dtype.

    Attributes
    ----------
    source : str
        ``"array"`` for in-memory arrays, the file path for TIFF, the ``file://`` URI of the
        array for Zarr.
    data_shape : tuple of int
        Shape in the canonical SC(Z)YX layout.
    dtype : numpy.dtype
        Dtype of the stored data (never converted to float32).
    original_axes : str
        Axes of the original data.
    original_data_shape : tuple of int
        Shape of the original data, in ``original_axes`` order.
    additional_metadata : dict
        Extra metadata (Zarr: ``chunks`` and ``shards`` in original axis order).
    placement : str
        ``"gpu"``, ``"cpu"`` or ``"disk"``.
    array : numpy.ndarray, cupy.ndarray or None
        The SC(Z)YX array when resident in memory, else None.
    """

    array: Any = None

    def _init_metadata(self, source: str, axes: str, shape: Sequence[int], dtype, metadata=None) -> None:
        self.source = str(source)
        self.original_axes = validate_axes(axes)
        self.original_data_shape = tuple(int(s) for s in shape)
        self.data_shape = reshaped_shape(self.original_data_shape, self.original_axes)
        self.dtype = check_dtype(dtype, self.source)
        self.additional_metadata = dict(metadata or {})

    @property
    def n_samples(self) -> int:
        return self.data_shape[0]

    @property
    def n_channels(self) -> int:
        return self.data_shape[1]

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return self.data_shape[2:]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.data_shape)) * self.dtype.itemsize

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(source={self.source!r}, data_shape={self.data_shape}, "
            f"dtype={self.dtype}, axes={self.original_axes!r}, placement={self.placement!r})"
        )

    # -- reading -----------------------------------------------------------------------------
    def _read_box(self, sample_idx: int, channels: list[int] | None, box: list[slice]) -> np.ndarray:
        raise NotImplementedError

    def read_region(
        self,
        sample_idx: int,
        coords: Sequence[int],
        size: Sequence[int],
        channels: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Read one region as a NumPy C(Z)YX array of the stored dtype, zero-padded.

        Parameters
        ----------
        sample_idx : int
            Index along the merged S axis.
        coords : sequence of int
            Top-left(-front) corner, (Z)YX; may be negative or run past the image.
        size : sequence of int
            Region size, (Z)YX.
        channels : sequence of int, optional
            Channel subset (the channel axis is kept); None reads all channels.

        Returns
        -------
        numpy.ndarray
            ``(C, *size)``; voxels outside the image are 0. Only the in-bounds part is read.
        """
        ndim = len(self.spatial_shape)
        coords = as_int_tuple(coords, "coords")
        size = as_int_tuple(size, "size")
        if len(coords) != ndim or len(size) != ndim:
            raise ValueError(
                f"coords {tuple(coords)} and size {tuple(size)} must both have {ndim} entries "
                f"(the stack's spatial dimensions)"
            )
        if any(s < 0 for s in size):
            raise ValueError(f"size must be non-negative, got {tuple(size)}")
        sample_idx = as_index(sample_idx, self.n_samples, "sample_idx", what=f"samples in {self.source}")
        channels = check_channels(channels, self.n_channels)
        n_out = self.n_channels if channels is None else len(channels)
        out = np.zeros((n_out, *size), dtype=self.dtype)
        box, dst = [], [slice(None)]
        for c, p, n in zip(coords, size, self.spatial_shape):
            lo, hi = max(c, 0), min(c + p, n)
            if hi <= lo:
                return out
            box.append(slice(lo, hi))
            dst.append(slice(lo - c, hi - c))
        out[tuple(dst)] = self._read_box(sample_idx, channels, box)
        return out

    def read_sample(self, sample_idx: int) -> np.ndarray:
        """One whole sample, C(Z)YX, NumPy, stored dtype."""
        return self.read_region(sample_idx, [0] * len(self.spatial_shape), self.spatial_shape)

    def to_device(self, placement: str) -> BaseStack:  # pragma: no cover - abstract
        """Return the stack with its data on ``"gpu"`` or in ``"cpu"`` memory (an
        :class:`~cupatch.stacks.array_stack.ArrayStack`, stored dtype, no float32 copy);
        ``self`` when the data already live there."""
        raise NotImplementedError

    def _metadata_kwargs(self) -> dict:
        """What an in-memory copy of this stack keeps: everything but the data."""
        return {
            "source": self.source,
            "original_axes": self.original_axes,
            "original_data_shape": self.original_data_shape,
            "additional_metadata": self.additional_metadata,
        }

    def _load_all(self) -> np.ndarray:
        """Every sample as one host SC(Z)YX array (used to place a lazy stack in memory)."""
        out = np.empty(self.data_shape, dtype=self.dtype)
        for s in range(self.n_samples):
            out[s] = self.read_sample(s)
        return out
