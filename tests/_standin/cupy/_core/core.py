"""``cupy.ndarray`` and ``cupy.ufunc`` of the stand-in.

An ``ndarray`` is a NumPy view (``_a``) of stand-in device memory (``data``, a
``MemoryPointer``): its ``__cuda_array_interface__`` hands out the host address, which the
emulated CUDA kernels of cupatch read and write in place. What CuPy refuses, this refuses
too: implicit conversion to NumPy (``numpy.asarray`` raises TypeError), NumPy arrays as
operands of device computations (TypeError, "Unsupported type"), filling from a non-scalar
NumPy array, sorting views. Computations run in NumPy without its floating-point warnings
(a GPU does not warn either); reductions return 0-d arrays, like CuPy's.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import inspect
import numbers
import types

import numpy

from ..cuda import _ordering
from ..cuda import memory as _memory
from ..cuda import runtime as _runtime
from ..cuda import stream as _stream
from ..cuda.device import Device
from . import flags as _flags

_SCALAR_TYPES = frozenset({int, float, bool, complex} | {numpy.dtype(c).type for c in "?bBhHiIlLqQefdFD"})
_DLPACK_CUDA = 2
_IMPLICIT = "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy array explicitly."


def _cupy_module():
    return importlib.import_module(__package__.rpartition(".")[0])


def _quiet(fn, *args, **kwargs):
    """Run a NumPy computation without floating-point warnings (CuPy on a GPU has none)."""
    with numpy.errstate(all="ignore"):
        return fn(*args, **kwargs)


# -- device arrays <-> NumPy views -----------------------------------------------------------------
def _check_device(x: "ndarray") -> None:
    current = _runtime.getDevice()
    where = x._data.device_id
    if where != current:
        raise ValueError(
            f"The device where the array resides ({where}) is different from the current device ({current}). "
            "Peer access is unavailable between these devices."
        )


def _extent(a: numpy.ndarray) -> tuple[int, int]:
    lo = hi = a.__array_interface__["data"][0]
    for n, stride in zip(a.shape, a.strides):
        if stride < 0:
            lo += (n - 1) * stride
        else:
            hi += (n - 1) * stride
    return lo, hi + a.itemsize


def _touch(x: "ndarray", write: bool, by: str, stream=None) -> None:
    """Work queued on ``stream`` (default: the current one) reads or writes ``x``'s bytes."""
    if x._a.size == 0:
        return
    lo, hi = _extent(x._a)
    _memory._access(lo, hi - lo, write, _stream._current_stream_ptr() if stream is None else stream, by)


def _sync_current(by: str) -> None:
    """CuPy waits on the host here (to learn a result size or value)."""
    _ordering.host_sync(_stream._current_stream_ptr())


def _make(a: numpy.ndarray, mem, base) -> "ndarray":
    obj = object.__new__(ndarray)
    obj._a = a
    offset = a.__array_interface__["data"][0] - mem.ptr if (mem.ptr and a.size) else 0
    obj._data = _memory.MemoryPointer(mem, offset)
    obj._base = base
    return obj


def _result(r, inputs=()):
    """A NumPy result as a stand-in array: a view of the device memory it shares, or else
    copied into a new device allocation (from the pool: aligned, counted, seen by hooks).
    Other results pass through."""
    if isinstance(r, numpy.ndarray):
        for x in inputs:
            if isinstance(x, ndarray) and r is x._a:
                return x
        root = _memory._root(r)
        mem = _memory._memory_of_root.get(id(root))
        if mem is not None:
            base = None
            for x in inputs:
                if isinstance(x, ndarray) and x._data.mem is mem:
                    base = x._base if x._base is not None else x
                    break
            return _make(r, mem, base)
        order = "F" if r.flags.f_contiguous and not r.flags.c_contiguous else "C"
        out = ndarray(r.shape, r.dtype, order=order)
        out._a[...] = r
        _touch(out, True, "the result of a CuPy operation")
        return out
    if isinstance(r, numpy.generic):
        return _result(numpy.asarray(r))
    if isinstance(r, tuple):
        return tuple(_result(v, inputs) for v in r)
    if isinstance(r, list):
        return [_result(v, inputs) for v in r]
    return r


def _from_cai(obj) -> "ndarray":
    """A zero-copy view of an object exposing ``__cuda_array_interface__``."""
    cai = obj.__cuda_array_interface__
    if cai.get("mask") is not None:
        raise ValueError("CuPy currently does not support masked arrays.")
    dtype = numpy.dtype(cai["typestr"])
    shape = tuple(int(s) for s in cai["shape"])
    ptr, _readonly = cai["data"]
    strides = cai.get("strides")
    if strides is None:
        strides = _contiguous_strides(shape, dtype.itemsize)
    strides = tuple(int(s) for s in strides)
    if not all(shape):
        return empty(shape, dtype)
    low = ptr + sum((n - 1) * s for n, s in zip(shape, strides) if s < 0)
    high = ptr + sum((n - 1) * s for n, s in zip(shape, strides) if s > 0) + dtype.itemsize
    mem = _memory.UnownedMemory(low, high - low, obj)
    return ndarray(shape, dtype, _memory.MemoryPointer(mem, ptr - low), strides=strides)


def _contiguous_strides(shape, itemsize, order="C"):
    strides, acc = [], itemsize
    dims = reversed(shape) if order == "C" else shape
    for n in dims:
        strides.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(strides)) if order == "C" else tuple(strides)


def _device_array(x, name="a", access="read") -> numpy.ndarray:
    """``x`` must be a device array (the NumPy view of it is returned); ``access``: how the
    operation uses it ("read", "write" or None for no device work)."""
    if isinstance(x, ndarray):
        _check_device(x)
        if access is not None:
            _touch(x, access == "write", f"{name} ({'written' if access == 'write' else 'read'})")
        return x._a
    raise TypeError(f"{name} must be a cupy.ndarray, got {type(x)}")


def _operand(x):
    """A kernel operand: a device array (or CUDA Array Interface object) or a scalar."""
    if isinstance(x, ndarray):
        _check_device(x)
        _touch(x, False, "an operand of a CuPy operation")
        return x._a
    if hasattr(x, "__cuda_array_interface__"):
        return _operand(_from_cai(x))
    if type(x) in _SCALAR_TYPES:
        return x
    raise TypeError(f"Unsupported type {type(x)}")


def _out(out):
    if out is None:
        return None
    return _device_array(out, "the out= array of a CuPy operation", access="write")


def _normalize_shape(shape):
    if isinstance(shape, numbers.Integral):
        return (int(shape),)
    return tuple(int(s) for s in shape)


# -- ufuncs ------------------------------------------------------------------------------------
class ufunc:
    """An element-wise function (NumPy's, on device arrays and scalars only). The instances
    come from the stand-in's registry (``_functions._UFUNC_NAMES``)."""

    def __init__(self, *args, **kwargs):
        raise TypeError("the stand-in's ufuncs are made by its registry only")

    @classmethod
    def _from_numpy(cls, np_ufunc, name=None):
        self = object.__new__(cls)
        self._setup(np_ufunc, name)
        return self

    def _setup(self, np_ufunc, name):
        self._ufunc = np_ufunc
        self.name = name or np_ufunc.__name__
        self.__name__ = self.name
        self.nin = np_ufunc.nin
        self.nout = np_ufunc.nout
        self.nargs = np_ufunc.nargs
        self.types = list(np_ufunc.types)
        P = inspect.Parameter
        names = ["x"] if self.nin == 1 else [f"x{i + 1}" for i in range(self.nin)]
        self.__signature__ = inspect.Signature(
            [P(n, P.POSITIONAL_ONLY) for n in names]
            + [P("out", P.POSITIONAL_OR_KEYWORD, default=None),
               P("casting", P.KEYWORD_ONLY, default="same_kind"),
               P("dtype", P.KEYWORD_ONLY, default=None)]
        )

    def __repr__(self):
        return f"<ufunc '{self.name}'>"

    def __call__(self, *args, out=None, casting="same_kind", dtype=None):
        if len(args) == self.nin + 1 and out is None:
            *args, out = args
        if len(args) != self.nin:
            raise TypeError(f"Wrong number of arguments for {self.name!r}. It must be either {self.nin} or {self.nargs} (with outputs), but given {len(args)}.")
        if isinstance(out, tuple):
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            (out,) = out
        ops = [_operand(a) for a in args]
        r = _quiet(self._ufunc, *ops, out=_out(out), casting=casting, dtype=dtype)
        return _result(r, (*args, out))


def _ufuncs() -> dict:
    return _cupy_module()._functions._UFUNCS


def _should_use_rop(x, y):
    try:
        y_ufunc = y.__array_ufunc__
    except AttributeError:
        return getattr(x, "__array_priority__", 0) < getattr(y, "__array_priority__", 0)
    return y_ufunc is None


def _binary(name):
    def op(self, other):
        if isinstance(other, ndarray):
            return _ufuncs()[name](self, other)
        if _should_use_rop(self, other):
            return NotImplemented
        return getattr(numpy, name)(self, other)  # -> __array_ufunc__

    def rop(self, other):
        if _should_use_rop(self, other):
            return NotImplemented
        return getattr(numpy, name)(other, self)

    def iop(self, other):
        return _ufuncs()[name](self, other, out=self)

    return op, rop, iop


def _compare(name):
    def op(self, other):
        if isinstance(other, ndarray):
            return _ufuncs()[name](self, other)
        if _should_use_rop(self, other):
            return NotImplemented
        if isinstance(other, numpy.ndarray) and other.ndim == 0:
            other = other.item()
        return getattr(numpy, name)(self, other)

    return op


# -- the array ---------------------------------------------------------------------------------
class ndarray:
    """Multi-dimensional array on the (emulated) CUDA device."""

    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        shape = _normalize_shape(shape)
        if any(n < 0 for n in shape):
            raise ValueError("Negative dimensions are not allowed")
        if order is None:
            order = "C"
        if order not in ("C", "F", "c", "f"):
            raise ValueError(f"order not understood. order={order}")
        order = order.upper()
        dtype = numpy.dtype(dtype)
        if strides is not None:
            if memptr is None:
                raise ValueError("memptr is required if strides is given.")
            strides = tuple(int(s) for s in strides)
            if len(strides) != len(shape):
                raise ValueError("len(shape) != len(strides)")
        else:
            strides = _contiguous_strides(shape, dtype.itemsize, order)
        size = 1
        for n in shape:
            size *= n
        if memptr is None:
            memptr = _memory.alloc(size * dtype.itemsize)
        elif not isinstance(memptr, _memory.MemoryPointer):
            raise TypeError(f"memptr must be a cupy.cuda.MemoryPointer, got {type(memptr).__name__}")
        mem = memptr.mem
        if size == 0:
            a = numpy.ndarray(shape, dtype, strides=strides)
        else:
            a = numpy.ndarray(shape, dtype, buffer=mem._bytes(), offset=memptr.ptr - mem.ptr, strides=strides)
        self._a = a
        self._data = memptr
        self._base = None

    # -- attributes ---------------------------------------------------------------------------
    @property
    def __cuda_array_interface__(self):
        stream_ptr = _stream._current_stream_ptr()
        desc = {
            "shape": self.shape,
            "typestr": self.dtype.str,
            "descr": self.dtype.descr,
            "stream": stream_ptr if stream_ptr != 0 else _runtime.streamLegacy,
            "version": 3,
            "strides": None if self._a.flags.c_contiguous else self.strides,
            "data": (self.data.ptr, False) if self.size > 0 else (0, False),
        }
        return desc

    @property
    def shape(self):
        return self._a.shape

    @property
    def strides(self):
        return self._a.strides

    @property
    def ndim(self):
        return self._a.ndim

    @property
    def size(self):
        return self._a.size

    @property
    def itemsize(self):
        return self._a.itemsize

    @property
    def nbytes(self):
        return self._a.nbytes

    @property
    def dtype(self):
        return self._a.dtype

    @property
    def base(self):
        return self._base

    @property
    def data(self):
        return self._data

    @property
    def device(self):
        return Device(self._data.device_id)

    @property
    def flags(self):
        return _flags.Flags(self._a.flags.c_contiguous, self._a.flags.f_contiguous, self._base is None)

    @property
    def T(self):
        return self if self.ndim < 2 else _result(self._a.T, (self,))

    @property
    def mT(self):
        if self.ndim < 2:
            raise ValueError("matrix transpose with ndim < 2 is undefined")
        return _result(self._a.swapaxes(-1, -2), (self,))

    @property
    def real(self):
        return _result(self._a.real, (self,))

    @property
    def imag(self):
        return _result(self._a.imag, (self,))

    def __class_getitem__(cls, item):
        return types.GenericAlias(cls, item)

    # -- host transfers ----------------------------------------------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True):
        on = _stream._current_stream_ptr() if stream is None else _stream._check_handle(stream.ptr)
        _touch(self, False, "ndarray.get (a device-to-host copy)", on)
        if blocking:
            _ordering.host_sync(on)
        if out is not None:
            if not isinstance(out, numpy.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            if self.dtype != out.dtype:
                raise TypeError(f"{out.dtype} array cannot be obtained from {self.dtype} array")
            if self.shape != out.shape:
                raise ValueError(f"Shape mismatch. Expected shape: {self.shape}, actual shape: {out.shape}")
            if not (out.flags.c_contiguous or out.flags.f_contiguous):
                raise RuntimeError("`out` cannot be specified when copying to non-contiguous ndarray")
            numpy.copyto(out, self._a)
            return out
        if self.size == 0:
            return numpy.ndarray(self.shape, dtype=self.dtype)
        order = order.upper()
        if order == "A":
            order = "F" if self._a.flags.f_contiguous and not self._a.flags.c_contiguous else "C"
        if order not in ("C", "F"):
            raise ValueError(f"unsupported order: {order}")
        return numpy.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        if not isinstance(arr, numpy.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if self.dtype != arr.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if self.shape != arr.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        if not (self._a.flags.c_contiguous or self._a.flags.f_contiguous):
            raise RuntimeError("Cannot set to non-contiguous array")
        on = _stream._current_stream_ptr() if stream is None else _stream._check_handle(stream.ptr)
        _touch(self, True, "ndarray.set (a host-to-device copy)", on)
        numpy.copyto(self._a, arr)

    def item(self):
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        return self.get().item()

    def tolist(self):
        return self.get().tolist()

    def tobytes(self, order="C"):
        return self.get().tobytes(order)

    def __array__(self, dtype=None):
        raise TypeError(_IMPLICIT)

    # -- DLPack ------------------------------------------------------------------------------
    def __dlpack_device__(self):
        return (_DLPACK_CUDA, self._data.device_id)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        if stream is not None and (not isinstance(stream, int) or stream < -1 or stream == 0):
            raise ValueError(
                f"On CUDA, the valid stream for the DLPack protocol is -1, 1, 2, or any larger value, but {stream} was provided"
            )
        if stream is not None and stream not in (-1, 1, 2):
            _stream._check_handle(stream)
        if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
            raise BufferError(f"cannot export to device {tuple(dl_device)}")
        source = self.copy() if copy else self
        current = _stream._current_stream_ptr()
        if stream is not None and stream >= 0 and _ordering._norm(stream) != _ordering._norm(current):
            _ordering.stream_wait_stream(current, stream)  # the consumer's stream waits for CuPy's
        return _cuda_capsule(source._a, source._data.device_id)

    def toDlpack(self):
        return _cuda_capsule(self._a, self._data.device_id)

    # -- conversion --------------------------------------------------------------------------
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if casting is not None:
            raise TypeError("casting is not supported yet")
        if subok is not None:
            raise TypeError("subok is not supported yet")
        dtype = numpy.dtype(dtype)
        if order is None:
            order = "K"
        if dtype == self.dtype and not copy:
            flags = self._a.flags
            if order in "Kk" or (order in "Aa" and (flags.c_contiguous or flags.f_contiguous)) or \
                    (order in "Cc" and flags.c_contiguous) or (order in "Ff" and flags.f_contiguous):
                return self
        _touch(self, False, "ndarray.astype")
        return _result(_quiet(self._a.astype, dtype, order=order, copy=True))

    def copy(self, order="C"):
        return self.astype(self.dtype, order=order)

    def view(self, dtype=None, type=None):
        if type is not None:
            raise NotImplementedError("type is not supported")
        v = self._a.view() if dtype is None else self._a.view(dtype)
        return _make(v, self._data.mem, self._base if self._base is not None else self)

    def fill(self, value):
        if isinstance(value, numpy.ndarray):
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            value = value.item()
        v = _operand(value)
        _touch(self, True, "ndarray.fill")
        self._a[...] = v

    # -- shape ---------------------------------------------------------------------------------
    def reshape(self, *shape, order="C", copy=None):
        if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
            shape = shape[0]
        r = self._a.reshape(shape, order=order, copy=copy)
        if r.size and not numpy.shares_memory(r, self._a):
            _touch(self, False, "ndarray.reshape (a copy)")
        return _result(r, (self,))

    def transpose(self, *axes):
        if len(axes) == 1 and (axes[0] is None or not isinstance(axes[0], numbers.Integral)):
            axes = axes[0]
        return _result(self._a.transpose(axes) if axes not in ((), None) else self._a.transpose(), (self,))

    def swapaxes(self, axis1, axis2):
        return _result(self._a.swapaxes(axis1, axis2), (self,))

    def flatten(self, order="C"):
        _touch(self, False, "ndarray.flatten")
        return _result(self._a.flatten(order))

    def ravel(self, order="C"):
        r = self._a.ravel(order)
        if r.size and not numpy.shares_memory(r, self._a):
            _touch(self, False, "ndarray.ravel (a copy)")
        return _result(r, (self,))

    def squeeze(self, axis=None):
        return _result(self._a.squeeze(axis), (self,))

    def diagonal(self, offset=0, axis1=0, axis2=1):
        return _result(self._a.diagonal(offset=offset, axis1=axis1, axis2=axis2), (self,))

    # -- item selection ------------------------------------------------------------------------
    def take(self, indices, axis=None, out=None):
        _touch(self, False, "ndarray.take")
        return _result(_quiet(self._a.take, _operand(indices), axis=axis, out=_out(out)), (self, out))

    def put(self, indices, values, mode="wrap"):
        if mode not in ("wrap", "clip", "raise"):
            raise ValueError("invalid mode")
        _touch(self, True, "ndarray.put")
        _quiet(self._a.put, _operand(indices), _operand(values), mode=mode)

    def repeat(self, repeats, axis=None):
        _touch(self, False, "ndarray.repeat")
        return _result(self._a.repeat(repeats, axis=axis))

    def choose(self, choices, out=None, mode="raise"):
        _touch(self, False, "ndarray.choose")
        return _result(_quiet(self._a.choose, [_operand(c) for c in choices], out=_out(out), mode=mode), (self, out))

    def compress(self, condition, axis=None, out=None):
        _touch(self, False, "ndarray.compress")
        return _result(self._a.compress(_device_array(condition, "ndarray.compress(condition)"), axis=axis, out=_out(out)), (self, out))

    def sort(self, axis=-1, kind=None):
        if self.ndim == 0:
            raise numpy.exceptions.AxisError("Sorting arrays with the rank of zero is not supported")
        if not self._a.flags.c_contiguous:
            raise NotImplementedError("Sorting non-contiguous array is not supported.")
        _touch(self, True, "ndarray.sort")
        self._a.sort(axis=axis, kind="stable")

    def argsort(self, axis=-1, kind=None):
        _touch(self, False, "ndarray.argsort")
        return _result(self._a.argsort(axis=axis, kind="stable"))

    def partition(self, kth, axis=-1):
        if self.ndim == 0:
            raise numpy.exceptions.AxisError("Sorting arrays with the rank of zero is not supported")
        if not self._a.flags.c_contiguous:
            raise NotImplementedError("Sorting non-contiguous array is not supported.")
        _touch(self, True, "ndarray.partition")
        self._a.partition(kth, axis=axis)

    def argpartition(self, kth, axis=-1):
        _touch(self, False, "ndarray.argpartition")
        return _result(self._a.argpartition(kth, axis=axis))

    def searchsorted(self, v, side="left", sorter=None):
        _touch(self, False, "ndarray.searchsorted")
        return _result(self._a.searchsorted(_operand(v), side=side, sorter=None if sorter is None else _device_array(sorter, "ndarray.searchsorted(sorter)")))

    def nonzero(self):
        _touch(self, False, "ndarray.nonzero")
        _sync_current("ndarray.nonzero")
        return _result(self._a.nonzero())

    # -- calculation ---------------------------------------------------------------------------
    def max(self, axis=None, out=None, keepdims=False):
        _touch(self, False, "ndarray.max")
        return _result(_quiet(self._a.max, axis=axis, out=_out(out), keepdims=keepdims), (self, out))

    def min(self, axis=None, out=None, keepdims=False):
        _touch(self, False, "ndarray.min")
        return _result(_quiet(self._a.min, axis=axis, out=_out(out), keepdims=keepdims), (self, out))

    def argmax(self, axis=None, out=None, dtype=None, keepdims=False):
        _touch(self, False, "ndarray.argmax")
        r = _quiet(self._a.argmax, axis=axis, keepdims=keepdims)
        return _reduction_out(r if dtype is None else numpy.asarray(r).astype(dtype), out)

    def argmin(self, axis=None, out=None, dtype=None, keepdims=False):
        _touch(self, False, "ndarray.argmin")
        r = _quiet(self._a.argmin, axis=axis, keepdims=keepdims)
        return _reduction_out(r if dtype is None else numpy.asarray(r).astype(dtype), out)

    def ptp(self, axis=None, out=None, keepdims=False):
        _touch(self, False, "ndarray.ptp")
        return _result(_quiet(numpy.ptp, self._a, axis=axis, out=_out(out), keepdims=keepdims), (self, out))

    def clip(self, min=None, max=None, out=None):
        _touch(self, False, "ndarray.clip")
        lo = None if min is None else _operand(min)
        hi = None if max is None else _operand(max)
        return _result(_quiet(self._a.clip, lo, hi, out=_out(out)), (self, out))

    def round(self, decimals=0, out=None):
        _touch(self, False, "ndarray.round")
        return _result(_quiet(self._a.round, decimals=decimals, out=_out(out)), (self, out))

    def trace(self, offset=0, axis1=0, axis2=1, dtype=None, out=None):
        _touch(self, False, "ndarray.trace")
        return _result(_quiet(self._a.trace, offset=offset, axis1=axis1, axis2=axis2, dtype=dtype, out=_out(out)), (self, out))

    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        _touch(self, False, "ndarray.sum")
        return _result(_quiet(self._a.sum, axis=axis, dtype=dtype, out=_out(out), keepdims=keepdims), (self, out))

    def prod(self, axis=None, dtype=None, out=None, keepdims=None):
        _touch(self, False, "ndarray.prod")
        return _result(_quiet(self._a.prod, axis=axis, dtype=dtype, out=_out(out), keepdims=bool(keepdims)), (self, out))

    def cumsum(self, axis=None, dtype=None, out=None):
        _touch(self, False, "ndarray.cumsum")
        return _result(_quiet(self._a.cumsum, axis=axis, dtype=dtype, out=_out(out)), (self, out))

    def cumprod(self, axis=None, dtype=None, out=None):
        _touch(self, False, "ndarray.cumprod")
        return _result(_quiet(self._a.cumprod, axis=axis, dtype=dtype, out=_out(out)), (self, out))

    def mean(self, axis=None, dtype=None, out=None, keepdims=False):
        _touch(self, False, "ndarray.mean")
        return _result(_quiet(self._a.mean, axis=axis, dtype=dtype, out=_out(out), keepdims=keepdims), (self, out))

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        _touch(self, False, "ndarray.var")
        return _result(_quiet(self._a.var, axis=axis, dtype=dtype, out=_out(out), ddof=ddof, keepdims=keepdims), (self, out))

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        _touch(self, False, "ndarray.std")
        return _result(_quiet(self._a.std, axis=axis, dtype=dtype, out=_out(out), ddof=ddof, keepdims=keepdims), (self, out))

    def all(self, axis=None, out=None, keepdims=False):
        _touch(self, False, "ndarray.all")
        return _result(self._a.all(axis=axis, out=_out(out), keepdims=keepdims), (self, out))

    def any(self, axis=None, out=None, keepdims=False):
        _touch(self, False, "ndarray.any")
        return _result(self._a.any(axis=axis, out=_out(out), keepdims=keepdims), (self, out))

    def conj(self):
        _touch(self, False, "ndarray.conj")
        return _result(self._a.conj(), (self,))

    def conjugate(self):
        _touch(self, False, "ndarray.conjugate")
        return _result(self._a.conjugate(), (self,))

    def dot(self, b, out=None):
        _touch(self, False, "ndarray.dot")
        return _result(_quiet(numpy.dot, self._a, _device_array(b, "ndarray.dot(b)"), out=_out(out)), (self, out))

    # -- operators -----------------------------------------------------------------------------
    __add__, __radd__, __iadd__ = _binary("add")
    __sub__, __rsub__, __isub__ = _binary("subtract")
    __mul__, __rmul__, __imul__ = _binary("multiply")
    __truediv__, __rtruediv__, __itruediv__ = _binary("true_divide")
    __floordiv__, __rfloordiv__, __ifloordiv__ = _binary("floor_divide")
    __mod__, __rmod__, __imod__ = _binary("remainder")
    __pow__, __rpow__, __ipow__ = _binary("power")
    __lshift__, __rlshift__, __ilshift__ = _binary("left_shift")
    __rshift__, __rrshift__, __irshift__ = _binary("right_shift")
    __and__, __rand__, __iand__ = _binary("bitwise_and")
    __or__, __ror__, __ior__ = _binary("bitwise_or")
    __xor__, __rxor__, __ixor__ = _binary("bitwise_xor")
    __lt__ = _compare("less")
    __le__ = _compare("less_equal")
    __eq__ = _compare("equal")
    __ne__ = _compare("not_equal")
    __gt__ = _compare("greater")
    __ge__ = _compare("greater_equal")
    __hash__ = None

    def __matmul__(self, other):
        if not isinstance(other, ndarray) and _should_use_rop(self, other):
            return NotImplemented
        return _cupy_module().matmul(self, other)

    def __rmatmul__(self, other):
        return _cupy_module().matmul(other, self)

    def __divmod__(self, other):
        return (self // other, self % other)

    def __rdivmod__(self, other):
        return (other // self, other % self)

    def __neg__(self):
        return _ufuncs()["negative"](self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ufuncs()["absolute"](self)

    def __invert__(self):
        return _ufuncs()["invert"](self)

    def __bool__(self):
        return bool(self.get())

    def __int__(self):
        return int(self.get())

    def __float__(self):
        return float(self.get())

    def __complex__(self):
        return complex(self.get())

    def __bytes__(self):
        return bytes(self.get())

    def __repr__(self):
        return repr(self._a.copy())  # like get(), but not counted as device work: repr is for people

    def __str__(self):
        return str(self._a.copy())

    def __format__(self, format_spec):
        return format(self.get(), format_spec)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        return (_cupy_module().array, (self.get(),))

    # -- containers and indexing ---------------------------------------------------------------
    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __getitem__(self, slices):
        index, advanced = _index(slices)
        if not advanced and not any(s is Ellipsis for s in index):
            index = index + (Ellipsis,)  # a 0-d view rather than a NumPy scalar
        if advanced:
            _touch(self, False, "ndarray.__getitem__ (an array index)")
            if any(getattr(s, "dtype", None) == numpy.bool_ for s in index):
                _sync_current("boolean indexing")
        return _result(self._a[index], (self,))

    def __setitem__(self, slices, value):
        index, advanced = _index(slices)
        if isinstance(value, ndarray):
            v = _device_array(value, "the value assigned by ndarray.__setitem__")
        elif hasattr(value, "__cuda_array_interface__"):
            v = _from_cai(value)._a
        elif advanced:
            v = value  # copied from the host, like CuPy's scatter
        else:  # CuPy fills the selection with a scalar
            if isinstance(value, numpy.ndarray):
                if value.shape != ():
                    raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
                value = value.item()
            v = _operand(value)
        _touch(self, True, "ndarray.__setitem__")
        _quiet(self._a.__setitem__, index, v)

    # -- NumPy protocols -----------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inout = inputs
        if "out" in kwargs:
            out = kwargs["out"]
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            inout += out
            kwargs["out"] = out[0]
        if method != "__call__":
            return NotImplemented
        cp_ufunc = _ufuncs().get(ufunc.__name__)
        if cp_ufunc is None:
            return NotImplemented
        for x in inout:
            if not (hasattr(x, "__cuda_array_interface__") or type(x) in _SCALAR_TYPES or isinstance(x, numpy.ndarray)):
                return NotImplemented
        if ufunc.__name__ in ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal"):
            inputs = tuple(x.item() if isinstance(x, numpy.ndarray) and x.ndim == 0 else x for x in inputs)
        return cp_ufunc(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        module = _cupy_module()
        try:
            target = functools.reduce(getattr, func.__module__.split(".")[1:], module)
            cupy_func = getattr(target, func.__name__)
        except AttributeError:
            return NotImplemented
        if cupy_func is func:
            return NotImplemented
        for t in types:
            if t not in (ndarray, numpy.ndarray):
                return NotImplemented
        return cupy_func(*args, **kwargs)


ndarray.__module__ = "cupy"


def _reduction_out(r, out):
    if out is None:
        return _result(r)
    out_a = _out(out)
    out_a[...] = r
    return out


def _index(slices):
    """The index with device arrays replaced by their NumPy views, and whether it is an
    advanced (array) index."""
    items = slices if isinstance(slices, tuple) else (slices,)
    out, advanced = [], False
    for s in items:
        if isinstance(s, ndarray):
            s = _device_array(s, "an index array")
            advanced = True
        elif hasattr(s, "__cuda_array_interface__"):
            s = _from_cai(s)._a
            advanced = True
        elif isinstance(s, (numpy.ndarray, list)):
            advanced = True
        elif isinstance(s, bool) or isinstance(s, numpy.bool_):
            advanced = True
        out.append(s)
    return tuple(out), advanced


# -- DLPack capsules of device memory ---------------------------------------------------------------
_PyCapsule_GetPointer = ctypes.pythonapi.PyCapsule_GetPointer
_PyCapsule_GetPointer.restype = ctypes.c_void_p
_PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _cuda_capsule(a: numpy.ndarray, device_id: int):
    """A DLPack capsule of ``a`` that says (truthfully, for the emulated device) that the
    memory is CUDA memory: NumPy's capsule with the device field set to kDLCUDA."""
    capsule = a.__dlpack__()
    managed = _PyCapsule_GetPointer(capsule, b"dltensor")
    # DLManagedTensor starts with DLTensor {void *data; DLDevice {int32 type, int32 id}; ...}
    ctypes.c_int32.from_address(managed + 8).value = _DLPACK_CUDA
    ctypes.c_int32.from_address(managed + 12).value = int(device_id)
    return capsule


def empty(shape, dtype=float, order="C"):
    return ndarray(shape, dtype, order=order)


__all__ = ["ndarray", "ufunc"]
