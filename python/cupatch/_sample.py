"""Built-in sample data and default model for ``cupatch predict``.

The sample image is generated, not shipped: a deterministic synthetic fluorescence-like
image (Gaussian blobs on a dim background, Poisson-like shot noise and read noise) that
takes a few tens of milliseconds to make. The default model is a Gaussian denoiser whose
kernel radius fits inside half the tile overlap, so tiled crop-mode inference gives the
same result as filtering the whole image at once; the command uses that to check itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._backend import is_cupy_array
from ._validation import as_int_tuple, ensure_tuple_rep, is_int

__all__ = ["GaussianDenoiser", "default_model", "sample_image"]

#: Kernel half-width in units of sigma (the SciPy default).
TRUNCATE = 4.0


def sample_image(shape: Sequence[int] = (1024, 1024), *, n_blobs: int | None = None, seed: int = 0) -> np.ndarray:
    """A deterministic synthetic fluorescence-like image.

    Parameters
    ----------
    shape : sequence of int, default (1024, 1024)
        Spatial shape, (Z)YX (2 or 3 axes).
    n_blobs : int, optional
        Number of Gaussian blobs; by default about one per 2000 pixels (voxels).
    seed : int, default 0
        Seed of the generator; the same arguments always give the same image.

    Returns
    -------
    numpy.ndarray
        uint16 array of ``shape``.
    """
    shape = as_int_tuple(shape, "shape")  # floats refused, never truncated
    if len(shape) not in (2, 3) or any(s < 1 for s in shape):
        raise ValueError(f"shape must be 2 or 3 positive ints, got {shape}")
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    if n_blobs is None:
        n_blobs = max(1, size // 2000)
    image = np.zeros(shape, dtype=np.float32)
    # Blobs are drawn in small windows (3 sigma), so the cost scales with the blob count,
    # not with blobs x pixels.
    centres = rng.uniform(0, 1, size=(n_blobs, len(shape))) * np.asarray(shape)
    sigmas = rng.uniform(1.5, 4.0, size=n_blobs)
    heights = rng.uniform(200.0, 2000.0, size=n_blobs)
    for centre, sigma, height in zip(centres, sigmas, heights):
        radius = int(np.ceil(3 * sigma))
        lo = [max(int(c) - radius, 0) for c in centre]
        hi = [min(int(c) + radius + 1, n) for c, n in zip(centre, shape)]
        grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
        r2 = sum((g - c) ** 2 for g, c in zip(grids, centre))
        image[tuple(slice(a, b) for a, b in zip(lo, hi))] += (height * np.exp(-0.5 * r2 / sigma**2)).astype(
            np.float32
        )
    background = 100.0
    signal = image + background
    # Shot noise (Gaussian approximation of Poisson) plus camera read noise.
    noisy = signal + np.sqrt(signal) * rng.standard_normal(shape, dtype=np.float32)
    noisy += 5.0 * rng.standard_normal(shape, dtype=np.float32)
    return np.clip(np.rint(noisy), 0, np.iinfo(np.uint16).max).astype(np.uint16)


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = int(TRUNCATE * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _gaussian_filter_numpy(x: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
    """Separable Gaussian with zero padding (SciPy ``mode="constant"``), float64 sums."""
    out = x
    for axis, sigma in enumerate(sigmas):
        if sigma <= 0:
            continue
        kernel = _gaussian_kernel(sigma)
        radius = len(kernel) // 2
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out.astype(np.float64), pad)
        acc = np.zeros(out.shape, dtype=np.float64)
        n = out.shape[axis]
        for k, w in enumerate(kernel):
            index = [slice(None)] * out.ndim
            index[axis] = slice(k, k + n)
            acc += w * padded[tuple(index)]
        out = acc.astype(x.dtype)
    return out


class GaussianDenoiser:
    """Gaussian smoothing over the spatial axes of a ``(B, C, [Z,] Y, X)`` batch.

    A plain callable model: CuPy arrays are filtered on the GPU with
    ``cupyx.scipy.ndimage.gaussian_filter``, NumPy arrays on the CPU with
    ``scipy.ndimage.gaussian_filter`` (or an equivalent NumPy loop when SciPy is absent).
    Borders are zero-padded (``mode="constant"``), like tiles at an image border.

    Parameters
    ----------
    sigma : float
        Standard deviation in pixels (voxels); the kernel extends ``round(4 * sigma)``
        pixels each side.
    """

    def __init__(self, sigma: float) -> None:
        sigma = float(sigma)
        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma = sigma

    @property
    def radius(self) -> int:
        """Half-width of the kernel in pixels (0 when ``sigma`` is 0)."""
        return int(TRUNCATE * self.sigma + 0.5) if self.sigma > 0 else 0

    def __repr__(self) -> str:
        return f"GaussianDenoiser(sigma={self.sigma:g})"

    def __call__(self, batch):
        if batch.ndim not in (4, 5):
            raise ValueError(f"GaussianDenoiser expects a (B, C, [Z,] Y, X) batch, got shape {tuple(batch.shape)}")
        sigmas = (0.0, 0.0) + (self.sigma,) * (batch.ndim - 2)
        if self.sigma == 0:
            return batch.copy()
        if is_cupy_array(batch):
            from cupyx.scipy import ndimage as cundi  # optional dependency, only with CuPy batches

            return cundi.gaussian_filter(batch, sigmas, mode="constant", cval=0.0, truncate=TRUNCATE)
        try:
            from scipy import ndimage  # optional dependency (a NumPy loop stands in)
        except ImportError:
            return _gaussian_filter_numpy(np.asarray(batch), sigmas)
        return ndimage.gaussian_filter(np.asarray(batch), sigmas, mode="constant", cval=0.0, truncate=TRUNCATE)


def default_model(overlap: Sequence[int] | int) -> GaussianDenoiser:
    """The built-in model for a tiling with ``overlap``.

    Its sigma is ``min(overlap) / 8``, so the kernel radius (4 sigma) is at most half the
    overlap: in crop mode every kept pixel of a tile sees exactly the neighbourhood it
    would see in the whole image, and tiled inference equals whole-image filtering.
    """
    overlaps = ensure_tuple_rep(overlap, 1, "overlap") if is_int(overlap) else as_int_tuple(overlap, "overlap")
    if not overlaps or min(overlaps) < 0:
        raise ValueError(f"overlap must be non-negative, got {overlap!r}")
    return GaussianDenoiser(min(overlaps) / (2.0 * TRUNCATE))
