"""``cupyx.scipy`` of the stand-in CuPy."""

from . import ndimage  # noqa: F401

__all__ = ["ndimage"]
