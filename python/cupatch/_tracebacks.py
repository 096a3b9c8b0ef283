"""Short tracebacks of the user's code, for the ``cupatch`` command.

An error raised in a model (or its module) is shown with the user's frames and with
cupatch's and importlib's own frames folded into ``... N frames in cupatch ...`` lines, so
the user sees their file and line rather than the library's internals.
"""

from __future__ import annotations

import importlib
import traceback
from pathlib import Path

__all__ = ["outside_cupatch", "short_traceback"]

_PACKAGE_DIR = Path(__file__).resolve().parent
_IMPORTLIB_DIR = Path(importlib.__file__).resolve().parent


def _frame_owner(filename: str) -> str | None:
    """The library a frame belongs to in a short traceback: ``"cupatch"`` or ``"importlib"``
    (folded), or None for the user's code and everything else (shown)."""
    if filename.startswith("<frozen importlib"):
        return "importlib"
    if filename.startswith("<"):
        return None
    try:
        path = Path(filename).resolve()
    except (OSError, ValueError):
        return None
    if path.is_relative_to(_PACKAGE_DIR):
        return "cupatch"
    if path.is_relative_to(_IMPORTLIB_DIR):
        return "importlib"
    return None


def outside_cupatch(exc: BaseException) -> bool:
    """True when the error was raised in code that is not cupatch's (the model, its module)."""
    return isinstance(exc, SyntaxError) or any(
        _frame_owner(frame.filename) is None for frame in traceback.extract_tb(exc.__traceback__)
    )


def short_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` with cupatch's (and importlib's) frames folded into
    ``... N frames in cupatch ...`` lines, then ``ErrorType: message`` and its notes."""
    summary = traceback.TracebackException.from_exception(exc)
    lines = ["Traceback (most recent call last):\n"]
    folded: list = [None, 0]  # owner, count

    def fold() -> None:
        owner, count = folded
        if count:
            lines.append(f"  ... {count} frame{'s' if count > 1 else ''} in {owner} ...\n")
        folded[:] = [None, 0]

    for frame in summary.stack:
        owner = _frame_owner(frame.filename)
        if owner is None:
            fold()
            lines.append(summary.stack.format_frame_summary(frame))
        else:
            if owner != folded[0]:
                fold()
                folded[0] = owner
            folded[1] += 1
    fold()
    lines.extend(summary.format_exception_only())
    return "".join(lines)
