"""In-memory stacks: NumPy arrays (host, including memory maps) and CuPy arrays (GPU)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._backend import is_cupy_array
from .axes import reshape_array, validate_axes
from .base import BaseStack
from .placement import move_array, must_move

__all__ = ["ArrayStack"]


class ArrayStack(BaseStack):
    """A stack whose SC(Z)YX data are one NumPy or CuPy array.

    Parameters
    ----------
    array : numpy.ndarray or cupy.ndarray
        Data already in SC(Z)YX layout (use :meth:`from_array` for other axes).
    source : str
        What the data came from (``"array"`` for user arrays).
    original_axes : str, optional
        Axes of the original data (default ``"SCYX"``/``"SCZYX"``).
    original_data_shape : sequence of int, optional
        Original shape (default: ``array.shape``).
    additional_metadata : dict, optional
        Extra metadata carried into regions.
    """

    def __init__(
        self,
        array,
        *,
        source: str = "array",
        original_axes: str | None = None,
        original_data_shape: Sequence[int] | None = None,
        additional_metadata: dict | None = None,
    ) -> None:
        if array.ndim not in (4, 5):
            raise ValueError(f"ArrayStack needs a 4-D SCYX or 5-D SCZYX array, got shape {tuple(array.shape)}")
        if original_axes is None:
            original_axes = "SCYX" if array.ndim == 4 else "SCZYX"
            original_data_shape = tuple(array.shape)
        elif original_data_shape is None:
            raise ValueError("original_data_shape is required with original_axes")
        self._init_metadata(source, original_axes, original_data_shape, array.dtype, additional_metadata)
        if tuple(array.shape) != self.data_shape:
            raise ValueError(
                f"array shape {tuple(array.shape)} does not match axes {self.original_axes!r} with "
                f"original shape {self.original_data_shape} (expected {self.data_shape})"
            )
        self.array = array
        self.placement = "gpu" if is_cupy_array(array) else "cpu"

    @classmethod
    def from_array(cls, array, axes: str, *, source: str = "array", additional_metadata=None) -> ArrayStack:
        """Wrap a NumPy/CuPy array with arbitrary ``axes`` (reshaped to SC(Z)YX, a view if possible)."""
        axes = validate_axes(axes)
        if not (isinstance(array, np.ndarray) or is_cupy_array(array)):
            array = np.asarray(array)
        return cls(
            reshape_array(array, axes),
            source=source,
            original_axes=axes,
            original_data_shape=array.shape,
            additional_metadata=additional_metadata,
        )

    def to_device(self, placement: str) -> ArrayStack:
        """The stack with its array on ``"gpu"`` or in ``"cpu"`` memory (stored dtype);
        ``self`` when it already lives there."""
        if not must_move(placement, self.placement):
            return self
        return ArrayStack(move_array(self.array, placement), **self._metadata_kwargs())

    def _read_box(self, sample_idx, channels, box):
        region = self.array[(sample_idx, slice(None) if channels is None else channels, *box)]
        return region.get() if is_cupy_array(region) else np.asarray(region)

    def _load_all(self):
        return self.array
