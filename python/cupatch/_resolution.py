"""Maps at reduced resolution: one cell of a map covers ``d`` voxels of the image per axis.

Used by the weight maps of :class:`cupatch.patching.WeightedPatching` and the skip masks of
:func:`cupatch.predict_tiled`. A map of extent ``M`` fits an image axis of extent ``N``
with the integer divisor ``d`` when ``M == ceil(N / d)``: cell ``m`` covers the voxels
``[m * d, min((m + 1) * d, N))`` (the last cell may be cut short by the image border).
"""

from __future__ import annotations

from collections.abc import Sequence

from ._validation import ensure_tuple_rep

__all__ = ["cell_ranges", "resolution_divisor"]


def resolution_divisor(
    image: Sequence[int], map_shape: Sequence[int], name: str, divisor=None
) -> tuple[int, ...]:
    """The per-axis integer divisor ``d`` with ``map_shape == ceil(image / d)``.

    Parameters
    ----------
    image, map_shape : sequence of int
        Spatial extents, (Z)YX, of the image and of the map.
    name : str
        The map's argument name, for messages.
    divisor : int or sequence of int, optional
        The divisor, checked against the shapes; inferred when None (the smallest ``d``
        that fits, ``ceil(N / M)``: exact divisions give ``N / M``).

    Raises
    ------
    ValueError
        When the map has the wrong number of axes, when no integer divisor fits, or when
        the given ``divisor`` does not fit.
    """
    image, map_shape = tuple(int(n) for n in image), tuple(int(m) for m in map_shape)
    if len(map_shape) != len(image):
        raise ValueError(
            f"{name} has spatial shape {map_shape} but the image has {len(image)} spatial axes {image}"
        )
    if divisor is not None:
        d = ensure_tuple_rep(divisor, len(image), "divisor", minimum=1)
        bad = [a for a in range(len(image)) if -(-image[a] // d[a]) != map_shape[a]]
        if bad:
            want = tuple(-(-n // k) for n, k in zip(image, d))
            raise ValueError(
                f"divisor {d} does not fit {name}: an image of spatial shape {image} at divisor {d} needs a map "
                f"of shape {want}, got {map_shape}"
            )
        return d
    if any(m < 1 for m in map_shape):
        raise ValueError(f"{name} has an empty spatial axis: shape {map_shape}")
    d = tuple(-(-n // m) for n, m in zip(image, map_shape))
    if any(-(-n // k) != m for n, k, m in zip(image, d, map_shape)):
        raise ValueError(
            f"{name} of spatial shape {map_shape} does not fit the image of spatial shape {image}: every axis "
            f"must be the image's, or ceil(image / d) for an integer divisor d"
        )
    return d


def cell_ranges(lo, hi, d: int):
    """The map cells ``[lo // d, ceil(hi / d))`` that the voxel range ``[lo, hi)`` touches
    (NumPy arrays or ints)."""
    return lo // d, -(-hi // d)
