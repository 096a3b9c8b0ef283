"""The public functions of the stand-in: an explicit registry, generated from NumPy where the
semantics are the same.

``_UFUNC_NAMES`` lists CuPy's element-wise functions that are NumPy's ufuncs on device arrays
and scalars. ``_FUNCTIONS`` lists other functions by CuPy's signature, with the role of each
parameter marked:

``@``  a device array (a NumPy array or a Python scalar is refused, as CuPy refuses it)
``&``  a sequence of device arrays
``%``  a kernel operand: a device array, a CUDA Array Interface object or a scalar
``~``  a device array or a host value (host values go to NumPy as they are)
``?``  (with ``@`` or ``%``) None is accepted too
``!``  accepted, not passed on to NumPy (CuPy-only options with no effect here)
``^``  passed on to NumPy by keyword (and every parameter after it)

A trailing ``-> 0d`` wraps a Python scalar result in a 0-d array (CuPy returns arrays where
NumPy returns Python scalars), ``-> host`` returns the result as it is. Unmarked parameters
are host values passed on as they are; positional-or-keyword parameters are passed on
positionally up to the first ``!`` or ``^`` one. The remaining functions are written out.
"""

from __future__ import annotations

import re

import numpy

from ._core import core as _core
from ._core.core import _device_array, _from_cai, _operand, _out, _quiet, _result, _sync_current, ndarray
from .cuda import memory as _memory
from .cuda import pinned_memory as _pinned_memory

_UFUNC_NAMES = """
add subtract multiply divide true_divide floor_divide negative positive power remainder mod fmod
absolute abs rint sign exp exp2 expm1 log log2 log10 log1p sqrt square cbrt reciprocal
sin cos tan arcsin arccos arctan arctan2 hypot sinh cosh tanh arcsinh arccosh arctanh
deg2rad rad2deg degrees radians floor ceil trunc maximum minimum fmax fmin
isnan isinf isfinite signbit copysign nextafter ldexp
greater greater_equal less less_equal equal not_equal logical_and logical_or logical_xor logical_not
bitwise_and bitwise_or bitwise_xor invert left_shift right_shift conjugate conj
""".split()

_FUNCTIONS = r"""
# shape and order
reshape(@a, newshape, order='C', *, copy=None)
ravel(@a, order='C')
transpose(@a, axes=None)
moveaxis(@a, source, destination)
swapaxes(@a, axis1, axis2)
expand_dims(@a, axis)
squeeze(@a, axis=None)
broadcast_to(@array, shape)
flip(@a, axis=None)
fliplr(@a)
flipud(@a)
rot90(@a, k=1, axes=(0, 1))
roll(@a, shift, axis=None)
tile(@A, reps)
repeat(@a, repeats, axis=None)
stack(&tup, axis=0, ?@out=None, *, dtype=None, casting='same_kind')
concatenate(&tup, axis=0, ?@out=None, *, dtype=None, casting='same_kind')
vstack(&tup, *, dtype=None, casting='same_kind')
hstack(&tup, *, dtype=None, casting='same_kind')
split(@ary, indices_or_sections, axis=0)
array_split(@ary, indices_or_sections, axis=0)
pad(@array, pad_width, mode='constant', **kwargs)
diagonal(@a, offset=0, axis1=0, axis2=1)
diag(@v, k=0)
tril(@m, k=0)
triu(@m, k=0)
# sorting, searching, counting
sort(@a, axis=-1, kind=None)
argsort(@a, axis=-1, kind=None)
partition(@a, kth, axis=-1)
argpartition(@a, kth, axis=-1)
nonzero(@a)
argwhere(@a)
flatnonzero(@a)
count_nonzero(@a, axis=None) -> 0d
searchsorted(@a, %v, side='left', ?@sorter=None)
unique(@ar, return_index=False, return_inverse=False, return_counts=False, axis=None, *, equal_nan=True)
take(@a, %indices, axis=None, ?@out=None)
# reductions and statistics
sum(@a, axis=None, dtype=None, ?@out=None, keepdims=False)
prod(@a, axis=None, dtype=None, ?@out=None, keepdims=False)
mean(@a, axis=None, dtype=None, ?@out=None, keepdims=False)
nansum(@a, axis=None, dtype=None, ?@out=None, keepdims=False)
nanmean(@a, axis=None, dtype=None, ?@out=None, keepdims=False)
std(@a, axis=None, dtype=None, ?@out=None, ddof=0, keepdims=False)
var(@a, axis=None, dtype=None, ?@out=None, ddof=0, keepdims=False)
cumsum(@a, axis=None, dtype=None, ?@out=None)
cumprod(@a, axis=None, dtype=None, ?@out=None)
diff(@a, n=1, axis=-1, ?%prepend=None, ?%append=None)
min(@a, axis=None, ?@out=None, keepdims=False)
max(@a, axis=None, ?@out=None, keepdims=False)
amin(@a, axis=None, ?@out=None, keepdims=False)
amax(@a, axis=None, ?@out=None, keepdims=False)
nanmin(@a, axis=None, ?@out=None, keepdims=False)
nanmax(@a, axis=None, ?@out=None, keepdims=False)
ptp(@a, axis=None, ?@out=None, keepdims=False)
median(@a, axis=None, ?@out=None, overwrite_input=False, keepdims=False)
percentile(@a, ~q, axis=None, ?@out=None, overwrite_input=False, method='linear', keepdims=False, *, !interpolation=None)
quantile(@a, ~q, axis=None, ?@out=None, overwrite_input=False, method='linear', keepdims=False, *, !interpolation=None)
average(@a, axis=None, ?@weights=None, returned=False, *, keepdims=False)
all(@a, axis=None, ?@out=None, keepdims=False)
any(@a, axis=None, ?@out=None, keepdims=False)
# element-wise (not ufuncs in CuPy)
clip(@a, ?%a_min, ?%a_max, ?@out=None)
around(@a, decimals=0, ?@out=None)
round(@a, decimals=0, ?@out=None)
nan_to_num(@x, copy=True, nan=0.0, posinf=None, neginf=None)
isclose(%a, %b, rtol=1e-05, atol=1e-08, equal_nan=False)
allclose(%a, %b, rtol=1e-05, atol=1e-08, equal_nan=False) -> 0d
array_equal(@a1, @a2, equal_nan=False) -> 0d
# linear algebra
dot(@a, @b, ?@out=None)
outer(@a, @b, ?@out=None)
inner(@a, @b)
tensordot(@a, @b, axes=2)
# creation
empty(shape, dtype=float, order='C')
zeros(shape, dtype=float, order='C')
ones(shape, dtype=float, order='C')
full(shape, %fill_value, dtype=None, order='C')
empty_like(@prototype, dtype=None, order='K', !subok=None, shape=None)
zeros_like(@a, dtype=None, order='K', !subok=None, shape=None)
ones_like(@a, dtype=None, order='K', !subok=None, shape=None)
full_like(@a, %fill_value, dtype=None, order='K', !subok=None, shape=None)
arange(start, stop=None, step=1, ^dtype=None)
linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0)
eye(N, M=None, k=0, dtype=float, order='C')
identity(n, dtype=float)
# host-side queries
ndim(~a) -> host
shape(~a) -> host
isscalar(element) -> host
"""

#: NumPy names that CuPy re-exports as the very same objects (types, constants, dtype tools)
_NUMPY_OBJECTS = """
dtype finfo iinfo promote_types issubdtype
bool_ bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64
complex64 complex128 intp uintp byte ubyte short ushort intc uintc int_ uint longlong ulonglong
half single double csingle cdouble number integer signedinteger unsignedinteger floating
complexfloating generic inexact
inf nan pi e newaxis euler_gamma
""".split()


# -- the generator -----------------------------------------------------------------------------
def _split_params(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _convert(role: str, value, name: str, inputs: list, func: str = ""):
    if "?" in role and value is None:
        return None
    if name == "out":
        inputs.append(value)
        return _out(value)
    if "@" in role:
        inputs.append(value)
        return _device_array(value, f"cupy.{func}({name})" if func else name)
    if "&" in role:
        if isinstance(value, ndarray) or not hasattr(value, "__iter__"):
            raise TypeError(f"{name} must be a sequence of cupy.ndarray, got {type(value)}")
        value = list(value)
        inputs.extend(value)
        return [_device_array(v, f"cupy.{func}({name}[{i}])" if func else f"{name}[{i}]") for i, v in enumerate(value)]
    if "%" in role:
        inputs.append(value)
        return _operand(value)
    if "~" in role and isinstance(value, ndarray):
        inputs.append(value)
        return _device_array(value, f"cupy.{func}({name})" if func else name)
    return value


def _dispatch(np_func, ret, params, varargs=None, varkw=None):
    inputs: list = []
    args: list = []
    kwargs: dict = {}
    positional = True
    for role, kind, name, value in params:
        converted = _convert(role, value, name, inputs, np_func.__name__)
        if "!" in role:
            positional = False
            continue
        if "^" in role:
            positional = False
        if kind == "pos" and positional:
            args.append(converted)
        else:
            positional = False
            kwargs[name] = converted
    if varargs is not None:
        role, values = varargs
        args.extend(_convert(role, v, f"args[{i}]", inputs, np_func.__name__) for i, v in enumerate(values))
    if varkw:
        kwargs.update(varkw)
    if np_func.__name__ in _SYNCING:
        _sync_current(np_func.__name__)
    r = _quiet(np_func, *args, **kwargs)
    if ret == "host":
        return r
    if ret == "0d" and isinstance(r, (bool, int, float, complex)):
        r = numpy.asarray(r)
    return _result(r, inputs)


#: functions for which CuPy waits on the host (to learn the size of the result)
_SYNCING = frozenset({"nonzero", "argwhere", "flatnonzero", "unique", "count_nonzero"})

_LINE = re.compile(r"^(\w+)\((.*)\)\s*(?:->\s*(\w+))?$")


def _generate(spec: str, namespace: dict) -> list[str]:
    names = []
    for line in spec.strip().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            raise ValueError(f"bad registry line: {line!r}")
        name, params_text, ret = m.group(1), m.group(2), m.group(3) or "array"
        clean, entries, kw_only = [], [], False
        varargs = varkw = "None"
        for p in _split_params(params_text):
            if p == "*":
                kw_only = True
                clean.append(p)
                continue
            role = re.match(r"[@&%~?!^]*", p).group(0)
            bare = p[len(role):]
            clean.append(bare)
            if bare.startswith("**"):
                varkw = bare[2:]
                continue
            if bare.startswith("*"):
                varargs = f"({role!r}, {bare[1:]})"
                kw_only = True
                continue
            pname = bare.split("=")[0].strip()
            entries.append(f"({role!r}, {'kw' if kw_only else 'pos'!r}, {pname!r}, {pname})")
        src = (
            f"def {name}({', '.join(clean)}):\n"
            f"    return _dispatch(_numpy.{name}, {ret!r}, [{', '.join(entries)}], {varargs}, {varkw})\n"
        )
        scope = {"_dispatch": _dispatch, "_numpy": numpy}
        exec(compile(src, f"<cupy stand-in: {name}>", "exec"), scope)  # noqa: S102 - generated from the table above
        fn = scope[name]
        fn.__module__ = __name__
        fn.__qualname__ = name
        fn.__doc__ = f"CuPy's ``{name}``, computed by ``numpy.{name}`` on the device arrays' memory."
        namespace[name] = fn
        names.append(name)
    return names


_UFUNCS: dict[str, _core.ufunc] = {}
for _name in _UFUNC_NAMES:
    _np_ufunc = getattr(numpy, _name)
    _existing = next((u for u in _UFUNCS.values() if u._ufunc is _np_ufunc), None)
    _UFUNCS[_name] = _existing if _existing is not None else _core.ufunc._from_numpy(_np_ufunc)

#: every public name of the package's functions (the package namespace is built from it, so
#: the generated ``sum``, ``min``, ``bool`` ... do not shadow builtins in this module)
_EXPORTS: dict = dict(_UFUNCS)
_GENERATED = _generate(_FUNCTIONS, _EXPORTS)
_EXPORTS.update({name: getattr(numpy, name) for name in _NUMPY_OBJECTS})


# -- written out -----------------------------------------------------------------------------------
def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    """A device array from a device array (a copy unless ``copy`` is False and none is
    needed), a CUDA Array Interface object, or host data (always copied to the device)."""
    if subok:
        raise NotImplementedError("subok is not supported")
    if order is None:
        order = "K"
    if hasattr(obj, "__cuda_array_interface__") and not isinstance(obj, ndarray):
        obj = _from_cai(obj)
    if isinstance(obj, ndarray):
        a = obj.astype(obj.dtype if dtype is None else dtype, order=order, copy=bool(copy))
        if copy is False and a is not obj:
            raise ValueError("Unable to avoid copy while creating an array as requested.")
        if ndmin > a.ndim:
            a = a.reshape((1,) * (ndmin - a.ndim) + a.shape)
        return a
    if copy is False:
        raise ValueError("Unable to avoid copy while creating an array from host data.")
    if isinstance(obj, (list, tuple)) and _only_device_arrays(obj):
        return _result(_quiet(numpy.array, _device_views(obj), dtype=dtype, order="C" if order in "KkAa" else order, ndmin=ndmin))
    host = numpy.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin)  # __array__ refuses device arrays
    return _result(host)


def _only_device_arrays(seq) -> bool:
    found = False
    for v in seq:
        if isinstance(v, (list, tuple)):
            if not _only_device_arrays(v):
                return False
            found = True
        elif isinstance(v, ndarray):
            found = True
        else:
            return False
    return found


def _device_views(seq):
    return [_device_views(v) if isinstance(v, (list, tuple)) else _device_array(v) for v in seq]


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    """``a`` itself when it is a device array of the dtype (and order), else a device copy."""
    return array(a, dtype, copy=False if copy is None and _no_copy_needed(a, dtype, order) else (True if copy is None else copy),
                 order=order, blocking=blocking)


def asanyarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    return asarray(a, dtype, order, copy=copy, blocking=blocking)


def _no_copy_needed(a, dtype, order) -> bool:
    if hasattr(a, "__cuda_array_interface__") and not isinstance(a, ndarray):
        a = _from_cai(a)
    if not isinstance(a, ndarray):
        return False
    if dtype is not None and numpy.dtype(dtype) != a.dtype:
        return False
    flags = a._a.flags
    return order in (None, "K", "k", "A", "a") or (order in "Cc" and flags.c_contiguous) or (order in "Ff" and flags.f_contiguous)


def ascontiguousarray(a, dtype=None):
    src = _device_array(a, "cupy.ascontiguousarray(a)")
    dtype = a.dtype if dtype is None else numpy.dtype(dtype)
    if dtype == a.dtype and src.flags.c_contiguous and a.ndim > 0:
        return a
    return _result(_quiet(numpy.ascontiguousarray, src, dtype=dtype))


def asfortranarray(a, dtype=None):
    src = _device_array(a, "cupy.asfortranarray(a)")
    dtype = a.dtype if dtype is None else numpy.dtype(dtype)
    if dtype == a.dtype and src.flags.f_contiguous and a.ndim > 0:
        return a
    return _result(_quiet(numpy.asfortranarray, src, dtype=dtype))


def copy(a, order="K"):
    return _result(numpy.array(_device_array(a, "cupy.copy(a)"), order=order, copy=True))


def where(condition, x=None, y=None):
    missing = (x is None, y is None).count(True)
    if missing == 1:
        raise ValueError("Must provide both 'x' and 'y' or neither.")
    if missing == 2:
        return _EXPORTS["nonzero"](condition)
    return _result(_quiet(numpy.where, _device_array(condition, "cupy.where(condition)").astype(bool), _operand(x), _operand(y)),
                   (condition, x, y))


def copyto(dst, src, casting="same_kind", where=None):
    s = _operand(src)
    d = _device_array(dst, "cupy.copyto(dst)", access="write")
    w = True if where is None else _device_array(where, "cupy.copyto(where)")
    _quiet(numpy.copyto, d, s, casting=casting, where=w)


def bincount(x, weights=None, minlength=None):
    xa = _device_array(x, "cupy.bincount(x)")
    if xa.ndim != 1:
        raise ValueError("object too deep for desired array")
    _sync_current("bincount")  # CuPy reads the maximum back to size the result
    if xa.size and int(xa.min()) < 0:
        raise ValueError("The first argument of bincount must be non-negative")
    w = None if weights is None else _device_array(weights, "cupy.bincount(weights)")
    if minlength is not None and minlength < 0:
        raise ValueError("minlength must be non-negative")
    return _result(_quiet(numpy.bincount, xa, w, minlength or 0))


def argmax(a, axis=None, dtype=None, out=None, keepdims=False):
    return _device_check(a).argmax(axis=axis, out=out, dtype=dtype, keepdims=keepdims)


def argmin(a, axis=None, dtype=None, out=None, keepdims=False):
    return _device_check(a).argmin(axis=axis, out=out, dtype=dtype, keepdims=keepdims)


def _device_check(a):
    _device_array(a, "a", None)
    return a


def astype(x, dtype, /, *, copy=True):
    return _device_check(x).astype(dtype, copy=copy)


def matmul(*args, out=None, dtype=None):
    if len(args) != 2:
        raise TypeError(f"matmul takes 2 positional arguments, got {len(args)}")
    a, b = (_device_array(v, f"cupy.matmul(x{i + 1})") for i, v in enumerate(args))
    r = _quiet(numpy.matmul, a, b, out=_out(out), dtype=dtype)
    return _result(r, (*args, out))


def result_type(*arrays_and_dtypes):
    return numpy.result_type(*[v._a if isinstance(v, ndarray) else v for v in arrays_and_dtypes])


def can_cast(from_, to, casting="safe"):
    return numpy.can_cast(from_.dtype if isinstance(from_, ndarray) else from_, to, casting)


def shares_memory(a, b, max_work=None):
    return bool(numpy.shares_memory(_device_array(a, "a", None), _device_array(b, "b", None), max_work))


def may_share_memory(a, b, max_work=None):
    return bool(numpy.may_share_memory(_device_array(a, "a", None), _device_array(b, "b", None), max_work))


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    """A host copy of a device array (host data are returned as NumPy arrays)."""
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out, blocking=blocking)
    if hasattr(a, "__cuda_array_interface__"):
        return array(a).get(stream=stream, order=order, out=out, blocking=blocking)
    temp = numpy.asarray(a, order=order)
    if out is not None:
        out[...] = temp
        return out
    return temp


def get_array_module(*args):
    """This module when one of ``args`` is a device array, else NumPy."""
    for a in args:
        if isinstance(a, ndarray):
            return _core._cupy_module()
    return numpy


def from_dlpack(array, *, device=None, copy=None):
    """A device array sharing the memory of a DLPack producer on the (emulated) device.

    Only the stand-in's own arrays can be imported: foreign CUDA producers (torch, JAX)
    cannot exist on a machine whose "GPU" is the emulated build.
    """
    if device is not None and tuple(device) != (2, 0):
        raise BufferError(f"cannot import to device {device}")
    if isinstance(array, ndarray):
        _device_array(array, "array", None)
        a = array.copy() if copy else array
        return _core._make(a._a.view(), a._data.mem, a._base if a._base is not None else a)
    dev = getattr(array, "__dlpack_device__", None)
    if dev is None:
        raise TypeError(f"{type(array).__name__} does not support the DLPack protocol")
    kind = int(dev()[0])
    if kind not in (2, 13):
        raise BufferError(f"the array is not on a CUDA device (DLPack device type {kind})")
    raise NotImplementedError("the CuPy stand-in can import DLPack capsules of its own arrays only")


def get_default_memory_pool():
    return _memory._default_pool


def get_default_pinned_memory_pool():
    return _pinned_memory._default_pool


_WRITTEN = [
    "array", "asarray", "asanyarray", "ascontiguousarray", "asfortranarray", "copy", "where", "copyto", "bincount",
    "argmax", "argmin", "astype", "matmul", "result_type", "can_cast", "shares_memory", "may_share_memory",
    "asnumpy", "get_array_module", "from_dlpack", "get_default_memory_pool", "get_default_pinned_memory_pool",
]

_EXPORTS.update({name: globals()[name] for name in _WRITTEN})
