"""``cupy._core.flags`` of the stand-in: the memory-layout flags of an array."""

from __future__ import annotations


class Flags:
    """``c_contiguous``, ``f_contiguous`` and ``owndata``, read-only (no ``writeable``:
    CuPy arrays have no such flag)."""

    def __init__(self, c_contiguous, f_contiguous, owndata):
        self._c_contiguous = bool(c_contiguous)
        self._f_contiguous = bool(f_contiguous)
        self._owndata = bool(owndata)

    @property
    def c_contiguous(self):
        return self._c_contiguous

    @property
    def f_contiguous(self):
        return self._f_contiguous

    @property
    def owndata(self):
        return self._owndata

    @property
    def fnc(self):
        return self._f_contiguous and not self._c_contiguous

    @property
    def forc(self):
        return self._f_contiguous or self._c_contiguous

    def __getitem__(self, name):
        if name == "C_CONTIGUOUS":
            return self._c_contiguous
        if name == "F_CONTIGUOUS":
            return self._f_contiguous
        if name == "OWNDATA":
            return self._owndata
        if name == "FNC":
            return self.fnc
        if name == "FORC":
            return self.forc
        raise KeyError(f"{name} is not defined for cupy.ndarray.flags")

    def __repr__(self):
        return "\n".join(
            f"  {k} : {self[k]}" for k in ("C_CONTIGUOUS", "F_CONTIGUOUS", "OWNDATA")
        )


__all__ = ["Flags"]
