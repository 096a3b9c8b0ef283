"""Random flips and quarter turns in the YX plane, drawn per patch from ``(seed, epoch, index)``.

The choices follow CAREamics' ``XYFlip`` and ``XYRandomRotate90`` (applied in that order):

* flip: applied when ``uniform01 < p_flip``; the axis is Y or X, chosen uniformly when both are
  allowed;
* rotation: applied when ``uniform01 < p_rot90``, by ``k = 1 + uniform_int(3)`` quarter turns
  (``numpy.rot90(patch, k, axes=(-2, -1))``).

Unlike CAREamics, which draws from one ``numpy.random.Generator`` per transform (so results
depend on call order and on DataLoader workers), every draw here is a pure function of
``(seed, epoch, index)`` through :func:`cupatch._random.hash4`, so an index gets the same
augmentation whatever batch, worker or rank it is served by, and a new one each epoch. The
flags are passed to the gather kernel, which applies them to input and target alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._backend import array_module
from ._random import Stream, hash4_indices, resolve_seed, uniform01, uniform_int
from ._validation import as_bool, as_int, as_int_tuple, as_probability, is_int, look_up_option

__all__ = ["Augmentations", "apply_augmentations"]


class Augmentations:
    """Per-patch flip and rot90 choices.

    Parameters
    ----------
    flip : bool
        Enable random flips.
    rot90 : bool
        Enable random quarter turns (needs a square YX patch size).
    p_flip, p_rot90 : float
        Probability in [0, 1] that a patch is flipped / rotated.
    flip_axes : str
        Axes a flip may reverse: ``"YX"`` (default, one of the two chosen uniformly), ``"Y"``
        or ``"X"``.
    seed : int, optional
        Seed; ``None`` draws fresh entropy once, fixed for the object's life.
    """

    def __init__(
        self,
        flip: bool = True,
        rot90: bool = True,
        *,
        p_flip: float = 0.5,
        p_rot90: float = 0.5,
        flip_axes: str = "YX",
        seed: int | None = None,
    ) -> None:
        self.p_flip, self.p_rot90 = as_probability(p_flip, "p_flip"), as_probability(p_rot90, "p_rot90")
        look_up_option(flip_axes, ("YX", "XY", "Y", "X"), "flip_axes")
        self.flip, self.rot90 = as_bool(flip, "flip"), as_bool(rot90, "rot90")
        self.flip_axes = "YX" if flip_axes == "XY" else flip_axes
        self.seed = resolve_seed(seed)

    @property
    def enabled(self) -> bool:
        """True when some augmentation can happen."""
        return (self.flip and self.p_flip > 0) or (self.rot90 and self.p_rot90 > 0)

    def check_patch_size(self, patch_size: Sequence[int] | None) -> None:
        """Raise ValueError if rotations are enabled and the YX patch size is not square
        (one int is that size on every axis: square)."""
        if patch_size is None:
            return
        if is_int(patch_size):
            as_int(patch_size, "patch_size", minimum=1)
            return
        patch_size = as_int_tuple(patch_size, "patch_size", minimum=1)
        if len(patch_size) not in (2, 3):
            raise ValueError(f"patch_size must have 2 or 3 entries ((Z)YX), got {patch_size}")
        if self.rot90 and self.p_rot90 > 0:
            if patch_size[-1] != patch_size[-2]:
                raise ValueError(
                    f"rot90 augmentation needs a square YX patch size (Y == X), got patch_size "
                    f"{tuple(patch_size)}; use Augmentations(rot90=False) for non-square patches"
                )

    def draw(self, indices, epoch: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Augmentation flags for dataset ``indices`` in ``epoch``.

        Returns
        -------
        flip_y, flip_x : numpy.ndarray of bool, shape (B,)
        rot90 : numpy.ndarray of int32, shape (B,), values 0..3
        """
        indices = np.asarray(indices)
        if indices.size and indices.dtype.kind not in "iu":
            raise TypeError(f"indices must be integers, got dtype {indices.dtype}")
        indices = indices.astype(np.int64).reshape(-1)
        epoch = as_int(epoch, "epoch")  # taken modulo 2**64, like every counter
        n = indices.size
        flip_y = np.zeros(n, dtype=bool)
        flip_x = np.zeros(n, dtype=bool)
        rot = np.zeros(n, dtype=np.int32)
        if n == 0:
            return flip_y, flip_x, rot
        if self.flip and self.p_flip > 0:
            apply = uniform01(hash4_indices(self.seed, epoch, indices, Stream.AUG_FLIP_APPLY)) < self.p_flip
            if self.flip_axes == "YX":
                along_x = uniform_int(hash4_indices(self.seed, epoch, indices, Stream.AUG_FLIP_AXIS), 2) == 1
            else:
                along_x = np.full(n, self.flip_axes == "X")
            flip_y = apply & ~along_x
            flip_x = apply & along_x
        if self.rot90 and self.p_rot90 > 0:
            apply = uniform01(hash4_indices(self.seed, epoch, indices, Stream.AUG_ROT_APPLY)) < self.p_rot90
            k = 1 + uniform_int(hash4_indices(self.seed, epoch, indices, Stream.AUG_ROT_K), 3)
            rot = np.where(apply, k, 0).astype(np.int32)
        return flip_y, flip_x, rot

    def __repr__(self) -> str:
        return (
            f"Augmentations(flip={self.flip}, rot90={self.rot90}, p_flip={self.p_flip}, "
            f"p_rot90={self.p_rot90}, flip_axes={self.flip_axes!r}, seed={self.seed})"
        )


def apply_augmentations(patch, flip_y: bool, flip_x: bool, rot90: int):
    """Apply one patch's flags to a C(Z)YX (or B C (Z)YX) array, as the gather kernel does.

    Returns a contiguous copy of ``patch`` (NumPy or CuPy).
    """
    if flip_y:
        patch = patch[..., ::-1, :]
    if flip_x:
        patch = patch[..., :, ::-1]
    if int(rot90) % 4:
        patch = array_module(patch).rot90(patch, k=int(rot90) % 4, axes=(-2, -1))
    return patch.copy()
