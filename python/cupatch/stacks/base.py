"""Shared pieces of every image stack: dtype rules, channel checks, zero-padded regions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .axes import reshaped_shape, validate_axes

__all__ = [
    "PLACEMENTS",
    "SUPPORTED_DTYPES",
    "BaseStack",
    "check_channels",
    "check_dtype",
    "gpu_available",
    "require_gpu",
]

#: Storage dtypes the gather kernels read directly.
SUPPORTED_DTYPES = tuple(
    np.dtype(d) for d in ("uint8", "uint16", "int16", "int32", "float16", "float32", "float64")
)

#: Where a stack's samples live: on the GPU, in host memory, or read from storage on demand.
PLACEMENTS = ("auto", "gpu", "cpu", "disk")


def check_dtype(dtype, source: str) -> np.dtype:
    """Return ``dtype`` as a NumPy dtype, or raise TypeError if the kernels cannot read it."""
    dtype = np.dtype(dtype)
    if dtype not in SUPPORTED_DTYPES:
        names = ", ".join(d.name for d in SUPPORTED_DTYPES)
        raise TypeError(f"unsupported dtype {dtype} in {source}; supported dtypes: {names}")
    return dtype


def check_placement(placement: str) -> str:
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    return placement


def check_channels(channels: Sequence[int] | None, n_channels: int, what: str = "channels") -> list[int] | None:
    """Validate a channel subset against ``n_channels``; ``None`` means all channels."""
    if channels is None:
        return None
    if isinstance(channels, (int, np.integer)) and not isinstance(channels, (bool, np.bool_)):
        channels = [channels]
    try:
        values = list(channels)
    except TypeError:
        raise TypeError(f"{what} must be an int or a sequence of ints, got {channels!r}") from None
    if any(isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) for c in values):
        raise TypeError(f"{what} must contain ints, got {channels!r}")
    channels = [int(c) for c in values]
    if not channels:
        raise ValueError(f"{what} must not be empty (use None for all channels)")
    for c in channels:
        if not 0 <= c < n_channels:
            raise ValueError(
                f"Channel index {c} in {what} is out of bounds: the data has {n_channels} "
                f"channel(s) (valid indices 0..{n_channels - 1}). Check the provided `{what}`."
            )
    return channels


def _int_list(values, name: str) -> list[int]:
    """``values`` as a list of ints; floats and bools raise TypeError instead of truncating."""
    try:
        items = list(values)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints, got {values!r}") from None
    if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) for v in items):
        raise TypeError(f"{name} must contain ints, got {tuple(items)!r}")
    return [int(v) for v in items]


def gpu_available() -> bool:
    """True when a CUDA device can be used (never raises)."""
    try:
        require_gpu()
    except RuntimeError:
        return False
    return True


def require_gpu() -> None:
    """Raise RuntimeError naming the reason when no CUDA device can be used."""
    try:
        from .._backend import gpu_available, gpu_unavailable_reason
    except ImportError:  # the native backend module is optional for pure array work
        gpu_available = gpu_unavailable_reason = None
    if gpu_available is not None:
        if not gpu_available():
            raise RuntimeError(f"a GPU was requested but none is usable: {gpu_unavailable_reason()}")
        return
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device found")
    except Exception as exc:  # ImportError, CUDARuntimeError, ...
        raise RuntimeError(f"a GPU was requested but none is usable: {exc}") from exc


def upload_to_gpu(array) -> Any:
    """Copy a host array into a new CuPy array (C order) on the current device.

    The copy is queued on CuPy's current stream straight from the (pageable) host memory.
    ``cupy.asarray`` would first copy the whole array into a pinned buffer from CuPy's pinned
    memory pool, which keeps that page-locked host memory cached for the rest of the process:
    for whole stacks, gigabytes of RAM nobody can use. From pageable memory the driver stages
    the copy itself and returns once the host data have been read, so ``array`` may be changed
    or freed as soon as this returns.
    """
    import cupy

    host = np.ascontiguousarray(array)
    device_array = cupy.empty(host.shape, dtype=host.dtype)
    if host.size:
        device_array.set(host, stream=cupy.cuda.get_current_stream())
    return device_array


def is_cupy_array(x: Any) -> bool:
    """True for a CuPy array, without importing CuPy when it was never imported."""
    return type(x).__module__.startswith("cupy")


class BaseStack:
    """Metadata and region reading common to all stacks.

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

    source: str
    data_shape: tuple[int, ...]
    dtype: np.dtype
    original_axes: str
    original_data_shape: tuple[int, ...]
    additional_metadata: dict
    placement: str
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
        coords = _int_list(coords, "coords")
        size = _int_list(size, "size")
        if len(coords) != ndim or len(size) != ndim:
            raise ValueError(
                f"coords {tuple(coords)} and size {tuple(size)} must both have {ndim} entries "
                f"(the stack's spatial dimensions)"
            )
        if any(s < 0 for s in size):
            raise ValueError(f"size must be non-negative, got {tuple(size)}")
        if isinstance(sample_idx, (bool, np.bool_)) or not isinstance(sample_idx, (int, np.integer)):
            raise TypeError(f"sample_idx must be an integer, got {sample_idx!r}")
        sample_idx = int(sample_idx)
        if not 0 <= sample_idx < self.n_samples:
            raise IndexError(f"sample_idx {sample_idx} out of range for {self.n_samples} samples in {self.source}")
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

    def to_device(self, placement: str):
        """Return the stack with its data on ``"gpu"`` or in ``"cpu"`` memory.

        The data keep their stored dtype (no float32 copy). Returns ``self`` when the data
        already live there.
        """
        from .memory import ArrayStack

        if placement not in ("gpu", "cpu"):
            raise ValueError(f"to_device placement must be 'gpu' or 'cpu', got {placement!r}")
        if placement == self.placement:
            return self
        if placement == "gpu":
            require_gpu()
        if self.array is not None:
            array = self.array
        else:
            array = self._load_all()
        if placement == "gpu":
            array = upload_to_gpu(array)  # one upload in the stored dtype
        elif is_cupy_array(array):
            array = array.get()
        return ArrayStack(
            array,
            source=self.source,
            original_axes=self.original_axes,
            original_data_shape=self.original_data_shape,
            additional_metadata=self.additional_metadata,
        )

    def _load_all(self) -> np.ndarray:
        """Every sample as one host SC(Z)YX array (used to place a lazy stack in memory)."""
        out = np.empty(self.data_shape, dtype=self.dtype)
        for s in range(self.n_samples):
            out[s] = self.read_sample(s)
        return out



class LazyStack(BaseStack):
    """A stack read region by region from an array-like in its *original* axis order.

    ``backing`` needs ``shape``, ``dtype`` and basic slicing with ints and slices (a NumPy
    memory map, a Zarr array, tifffile's Zarr view of a TIFF): a region read touches only the
    bytes, pages or chunks that the region covers.
    """

    placement = "disk"

    def _init_lazy(self, backing, source: str, axes: str, metadata=None) -> None:
        self._backing = backing
        self._init_metadata(source, axes, backing.shape, backing.dtype, metadata)

    def _read_box(self, sample_idx, channels, box):
        from .axes import sample_index

        axes = self.original_axes
        samples = sample_index(sample_idx, axes, self.original_data_shape)
        spatial = dict(zip("ZYX"[3 - len(box) :], box))
        if channels is None:
            chan_slice, chan_pick = slice(None), None
        else:
            lo, hi = min(channels), max(channels) + 1
            chan_slice, chan_pick = slice(lo, hi), [c - lo for c in channels]
        index, kept = [], []
        for a in axes:
            if a in samples:
                index.append(samples[a])
            elif a == "C":
                index.append(chan_slice)
                kept.append(a)
            else:
                index.append(spatial[a])
                kept.append(a)
        region = self._read_original(tuple(index))
        order = [kept.index(a) for a in "CZYX" if a in kept]
        region = region.transpose(order)
        if "C" not in kept:
            region = region[None]
        elif chan_pick is not None and chan_pick != list(range(hi - lo)):
            region = region[chan_pick]
        return region

    def _read_original(self, index: tuple) -> np.ndarray:
        """``backing[index]`` as a NumPy array (index: ints and slices, original axis order)."""
        return np.asarray(self._backing[index])

    def _load_all(self):
        from .axes import reshape_array

        return np.ascontiguousarray(reshape_array(np.asarray(self._backing[...]), self.original_axes))
