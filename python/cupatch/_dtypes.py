"""The element types cupatch reads and writes, in one place.

The native dtype list (``cpp/include/cupatch/dtype.h``, exported as ``_core.DTYPES``) is the
single source of truth: its position is the dtype code the kernels take. bfloat16 needs
``ml_dtypes``; without it, it is simply absent from every list.
"""

from __future__ import annotations

import numpy as np

from . import _core

__all__ = ["DTYPE_CODES", "OUTPUT_DTYPES", "SOURCE_DTYPES", "STACK_DTYPES", "dtype_names"]


def _resolve(name: str) -> np.dtype | None:
    if name == "bfloat16":
        try:
            import ml_dtypes  # optional dependency
        except ImportError:
            return None
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


#: numpy dtype -> native dtype code, for every dtype this process can represent.
DTYPE_CODES: dict[np.dtype, int] = {
    dt: code for code, dt in enumerate(_resolve(name) for name in _core.DTYPES) if dt is not None
}

#: Element types accepted for gather sources.
SOURCE_DTYPES: tuple[np.dtype, ...] = tuple(DTYPE_CODES)

#: Element types gather can produce (float32, float16 and, with ml_dtypes, bfloat16).
OUTPUT_DTYPES: tuple[np.dtype, ...] = tuple(
    d for d in SOURCE_DTYPES if d in (np.dtype(np.float32), np.dtype(np.float16)) or d.name == "bfloat16"
)

#: Storage dtypes of image stacks: what the kernels read directly from files and arrays
#: (bfloat16 is an output type only).
STACK_DTYPES: tuple[np.dtype, ...] = tuple(d for d in SOURCE_DTYPES if d.name != "bfloat16")


def dtype_names(dtypes) -> str:
    """``"uint8, uint16, ..."``: a dtype list for error messages."""
    return ", ".join(np.dtype(d).name for d in dtypes)
