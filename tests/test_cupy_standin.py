"""The NumPy-backed CuPy stand-in of the emulated lane (``tests/_standin``).

* Conformance (where the real CuPy imports, as in the normal lane and CI): every public name
  the stand-in provides, recursively through its modules, classes and their members, exists
  in the real CuPy with the same kind, and with a signature the real one accepts (same
  parameter names, positions and defaults) wherever both signatures can be read. A misspelt
  or removed CuPy API fails here instead of passing silently in the emulated lane.
* Behaviour: what the stand-in must do like CuPy for the emulated CUDA kernels and for
  cupatch's code to be tested honestly (no implicit NumPy conversion, host pointers in the
  CUDA Array Interface, streams, memory).

The stand-in is loaded as a second copy under other module names (``standin_cupy``,
``standin_cupyx``), next to whatever ``cupy`` is imported.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import gc
import importlib.util
import inspect
import re
import sys
import threading
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import CUPY_STANDIN

STANDIN_DIR = Path(__file__).resolve().parent / "_standin"


def _load_as(name: str, package_dir: Path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, package_dir / "__init__.py",
                                                  submodule_search_locations=[str(package_dir)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@pytest.fixture(scope="module")
def sc():
    """The stand-in's ``cupy``, loaded under another name."""
    return _load_as("standin_cupy", STANDIN_DIR / "cupy")


@pytest.fixture(scope="module")
def scx(sc):
    """The stand-in's ``cupyx`` (bound to ``standin_cupy``)."""
    return _load_as("standin_cupyx", STANDIN_DIR / "cupyx")


def _real_cupy():
    if CUPY_STANDIN:
        pytest.skip("the emulated lane replaces CuPy with the stand-in; the conformance check runs in the normal lane")
    try:
        import cupy
        import cupyx
        import cupyx.scipy.ndimage  # noqa: F401
    except Exception as exc:  # ImportError, or a broken CUDA installation
        pytest.skip(f"the real CuPy does not import here: {exc}")
    return cupy, cupyx


# ---------------------------------------------------------------------------------------
# reading signatures

_PROTOCOL_DUNDERS = {
    "__init__", "__call__", "__enter__", "__exit__", "__cuda_array_interface__", "__cuda_stream__", "__dlpack__",
    "__dlpack_device__", "__array__", "__array_ufunc__", "__array_function__", "__array_priority__", "__iter__",
    "__len__", "__getitem__", "__setitem__", "__int__", "__index__", "__float__", "__complex__", "__bool__",
    "__bytes__", "__copy__", "__deepcopy__", "__reduce__", "__format__", "__class_getitem__", "__matmul__",
    "__rmatmul__", "__divmod__", "__rdivmod__", "__neg__", "__pos__", "__abs__", "__invert__",
    *(f"__{p}{op}__" for op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "lshift", "rshift",
                                 "and", "or", "xor") for p in ("", "r", "i")),
    "__lt__", "__le__", "__eq__", "__ne__", "__gt__", "__ge__",
}
# dunders every Python class has; their presence says nothing about CuPy
_OBJECT_DUNDERS = {"__init__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__format__", "__reduce__"}


def _split_top_level(text: str) -> list[str]:
    """Split a parameter list at its top-level commas (the stand-in's own splitter)."""
    return _load_as("standin_cupy", STANDIN_DIR / "cupy")._functions._split_params(text)


def _docstring_signature(obj, drop_self: bool):
    """The signature Cython embeds in the first docstring line, e.g.
    ``_ndarray_base.get(self, stream=None, order='C', out=None, blocking=True)`` or
    ``UnownedMemory(intptr_t ptr, size_t size, owner, int device_id=-1)``."""
    doc = getattr(obj, "__doc__", None) or ""
    first = doc.strip().splitlines()[0] if doc.strip() else ""
    m = re.match(r"^[\w.]*\((.*)\)\s*(->.*)?$", first.replace("\\*", "*"))
    if m is None:
        return None
    params = []
    for p in _split_top_level(m.group(1)):
        name, eq, default = p.partition("=")
        words = name.split()
        params.append(words[-1] + (eq + default if eq else ""))  # drop C types: "int axis" -> "axis"
    if drop_self and params and params[0] == "self":
        params = params[1:]
    try:
        tree = ast.parse(f"def f({', '.join(params)}): pass")
    except SyntaxError:
        return None
    scope: dict = {}
    try:
        exec(compile(tree, "<docstring signature>", "exec"), {"float": float, "int": int, "numpy": np}, scope)  # noqa: S102
    except Exception:
        return None
    return inspect.signature(scope["f"])


def _signature(obj, *, method: bool = False):
    """``inspect.signature`` (without ``self`` for methods), else the docstring's, else None."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return _docstring_signature(obj, drop_self=True)
    if method:
        params = list(sig.parameters.values())
        if params and params[0].name in ("self", "cls"):
            sig = sig.replace(parameters=params[1:])
    if list(sig.parameters) == ["args", "kwargs"] or str(sig) == "(self, /, *args, **kwargs)":
        doc = _docstring_signature(obj, drop_self=True)
        return doc if doc is not None else None  # (*args, **kwargs) tells nothing
    return sig


def _same_default(a, b) -> bool:
    if a is b:
        return True
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return False


def _incompatibilities(ours: inspect.Signature, theirs: inspect.Signature) -> list[str]:
    """How a call valid for the stand-in's signature could fail or differ with the real one."""
    P = inspect.Parameter
    real = theirs.parameters
    real_positional = [p for p in real.values() if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    has_varargs = any(p.kind == P.VAR_POSITIONAL for p in real.values())
    has_varkw = any(p.kind == P.VAR_KEYWORD for p in real.values())
    problems = []
    position = 0
    for p in ours.parameters.values():
        if p.kind == P.VAR_POSITIONAL:
            if not has_varargs:
                problems.append(f"*{p.name}: the real one takes no *args")
            continue
        if p.kind == P.VAR_KEYWORD:
            if not has_varkw:
                problems.append(f"**{p.name}: the real one takes no **kwargs")
            continue
        target = real.get(p.name)
        if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD):
            if position < len(real_positional):
                at = real_positional[position]
                if p.kind == P.POSITIONAL_OR_KEYWORD and at.name != p.name and not has_varkw:
                    problems.append(f"{p.name}: position {position} is {at.name!r} in the real one")
                target = target or at
            elif not has_varargs:
                problems.append(f"{p.name}: the real one takes only {len(real_positional)} positional arguments")
            position += 1
        if p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY):
            if target is None or target.kind not in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY) or target.name != p.name:
                if not has_varkw:
                    problems.append(f"{p.name}: not a keyword of the real one")
                    continue
        if target is None or target.kind in (P.VAR_POSITIONAL, P.VAR_KEYWORD):
            continue
        if p.default is not P.empty:
            if target.default is P.empty:
                problems.append(f"{p.name}: has a default here ({p.default!r}) but is required by the real one")
            elif not _same_default(p.default, target.default):
                problems.append(f"{p.name}: default {p.default!r} here, {target.default!r} in the real one")
    return problems


# ---------------------------------------------------------------------------------------
# walking the stand-in


def _documented_attributes(cls) -> set[str]:
    """Attribute names listed in the "Attributes:" sections of a class's docstrings."""
    names = set()
    for k in inspect.getmro(cls):
        doc = k.__doc__ or ""
        for m in re.finditer(r"^\s*~?(?:\w+\.)?(\w+)\s*(?:\(|:)", doc.split("Attributes:", 1)[1] if "Attributes:" in doc else "", re.M):
            names.add(m.group(1))
    return names


def _real_instances(real_cupy) -> dict:
    """Instances of real CuPy classes that exist without a GPU, for instance attributes."""
    cuda = real_cupy.cuda
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for key, make in [
            ("Stream", lambda: cuda.Stream.null),
            ("ExternalStream", lambda: cuda.ExternalStream(1)),
            ("Device", lambda: cuda.Device(0)),
            ("PointerAttributes", lambda: cuda.runtime.PointerAttributes(0, 0, 0, 0)),
            ("CUDARuntimeError", lambda: cuda.runtime.CUDARuntimeError(1)),
            ("OutOfMemoryError", lambda: cuda.memory.OutOfMemoryError(1, 2, 0)),
            ("UnownedMemory", lambda: cuda.UnownedMemory(0, 0, None, 0)),
        ]:
            try:
                out[key] = make()
            except Exception:
                pass
    return out


def _standin_instances(sc) -> dict:
    """Instances of the stand-in's classes, whose instance attributes must exist in CuPy too."""
    cuda = sc.cuda
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        external = cuda.ExternalStream(1)
    a = sc.zeros(3)
    return {
        "ndarray": a,
        "Stream": cuda.Stream(non_blocking=True),
        "ExternalStream": external,
        "Event": cuda.Event(),
        "Device": cuda.Device(0),
        "PointerAttributes": cuda.runtime.pointerGetAttributes(a.data.ptr),
        "CUDARuntimeError": cuda.runtime.CUDARuntimeError(1),
        "OutOfMemoryError": cuda.memory.OutOfMemoryError(1, 2, 0),
        "Memory": a.data.mem,
        "UnownedMemory": cuda.UnownedMemory(a.data.ptr, a.nbytes, a),
        "MemoryPointer": a.data,
        "MemoryPool": sc.get_default_memory_pool(),
        "PinnedMemoryPool": sc.get_default_pinned_memory_pool(),
        "PinnedMemory": cuda.PinnedMemory(16),
        "PinnedMemoryPointer": cuda.alloc_pinned_memory(16),
        "MemoryHook": cuda.MemoryHook(),
        "Flags": a.flags,
    }


def _public_members(cls) -> dict:
    members = {}
    for k in reversed(inspect.getmro(cls)):
        if k is object or k.__module__ == "builtins":
            continue
        for name, value in vars(k).items():
            if (not name.startswith("_") or name in _PROTOCOL_DUNDERS) and name not in _OBJECT_DUNDERS | {"__init__"}:
                members[name] = value
    return members


class _Checker:
    def __init__(self, sc, scx, real_cupy, real_cupyx):
        self.problems: list[str] = []
        self.checked = 0
        self.real_instances = _real_instances(real_cupy)
        self.standin_instances = _standin_instances(sc)
        self.real_ufunc = real_cupy.ufunc
        self.standin_ufunc = sc.ufunc
        self.seen: set[int] = set()
        # module roots of the stand-in's objects ("cupy": ndarray says it is cupy.ndarray, like CuPy's)
        self.roots = {sc.__name__, scx.__name__, "cupy"}

    def fail(self, where, what):
        self.problems.append(f"{where}: {what}")

    def module(self, ours, theirs, where):
        names = getattr(ours, "__all__", None)
        if names is None:
            self.fail(where, "has no __all__ (the registry of its public names)")
            return
        public = {n for n in dir(ours) if not n.startswith("_") and n != "annotations"}
        for n in sorted(public - set(names)):
            value = getattr(ours, n)
            if isinstance(value, types.ModuleType) and value.__name__.split(".")[0] not in self.roots:
                continue  # an imported library module, not an API name
            self.fail(f"{where}.{n}", "public but not in __all__")
        for n in sorted(names):
            self.name(getattr(ours, n), theirs, n, f"{where}.{n}")

    def _ours(self, value) -> bool:
        """Defined by the stand-in (rather than taken from NumPy or the standard library)."""
        return getattr(value, "__module__", None) is not None and value.__module__.split(".")[0] in self.roots

    def name(self, value, real_owner, n, where):
        self.checked += 1
        if not hasattr(real_owner, n):
            self.fail(where, "does not exist in the real CuPy")
            return
        real = getattr(real_owner, n)
        if isinstance(value, types.ModuleType):
            if not isinstance(real, types.ModuleType):
                self.fail(where, f"is a module here but {type(real).__name__} in CuPy")
            elif id(value) not in self.seen:
                self.seen.add(id(value))
                self.module(value, real, where)
        elif isinstance(value, self.standin_ufunc):
            self.ufunc(value, real, where)
        elif isinstance(value, type) and self._ours(value):
            if not isinstance(real, type):
                self.fail(where, f"is a class here but {type(real).__name__} in CuPy")
            else:
                self.cls(value, real, where)
        elif callable(value) and self._ours(value):
            if not callable(real):
                self.fail(where, f"is callable here but {type(real).__name__} in CuPy")
            else:
                self.signatures(value, real, where)
        elif isinstance(value, (bool, int, str)) and not isinstance(value, np.generic):
            if type(value) is not type(real) or value != real:
                self.fail(where, f"is {value!r} here but {real!r} in CuPy")
        else:  # an object taken from NumPy: CuPy must re-export the very same one
            same = value is real or (isinstance(value, float) and isinstance(real, float)
                                     and (value == real or (np.isnan(value) and np.isnan(real))))
            if not same:
                self.fail(where, f"is NumPy's {value!r} here but {real!r} in CuPy")

    def signatures(self, ours, theirs, where, method=False):
        mine = _signature(ours, method=method)
        real = _signature(theirs, method=method)
        if mine is None or real is None:
            return
        for problem in _incompatibilities(mine, real):
            self.fail(where, f"signature {mine} vs CuPy's {real}: {problem}")

    def ufunc(self, value, real, where):
        if not isinstance(real, self.real_ufunc):
            self.fail(where, f"is a ufunc here but {type(real).__name__} in CuPy")
            return
        if value.nin != real.nin or value.nout != real.nout:
            self.fail(where, f"takes {value.nin} inputs / {value.nout} outputs here, {real.nin} / {real.nout} in CuPy")
        real_sig = _docstring_signature(real, drop_self=False)
        if real_sig is not None:
            for problem in _incompatibilities(inspect.signature(value), real_sig):
                self.fail(where, f"call {inspect.signature(value)} vs CuPy's {real_sig}: {problem}")
        for attr in ("name", "nin", "nout", "nargs", "types"):
            if not hasattr(real, attr):
                self.fail(f"{where}.{attr}", "not an attribute of CuPy's ufuncs")

    def cls(self, ours, theirs, where):
        if id(ours) in self.seen:
            return
        self.seen.add(id(ours))
        for base in inspect.getmro(ours):
            if base.__module__ == "builtins" and base is not object and base not in inspect.getmro(theirs):
                self.fail(where, f"derives from {base.__name__} here, not in CuPy")
        self.signatures(ours, theirs, f"{where}()")
        real_instance = self.real_instances.get(ours.__name__)
        documented = _documented_attributes(theirs)
        for n, member in sorted(_public_members(ours).items()):
            w = f"{where}.{n}"
            self.checked += 1
            if hasattr(theirs, n):
                real_member = getattr(theirs, n)
            elif n in documented or (real_instance is not None and hasattr(real_instance, n)):
                continue  # an instance attribute of CuPy's class
            else:
                self.fail(w, "does not exist in the real CuPy class")
                continue
            raw = inspect.getattr_static(theirs, n, None)
            if isinstance(member, (property, types.GetSetDescriptorType)):
                if callable(raw) and not isinstance(raw, (property, types.GetSetDescriptorType, types.MemberDescriptorType)):
                    self.fail(w, "is a property here but a method in CuPy")
            elif isinstance(member, (types.FunctionType, classmethod, staticmethod)):
                if not callable(real_member):
                    self.fail(w, "is a method here but not callable in CuPy")
                else:
                    func = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                    if not n.startswith("__") or n in ("__dlpack__", "__enter__", "__exit__", "__array__", "__cuda_stream__"):
                        self.signatures(func, real_member, w, method=not isinstance(member, staticmethod))
        instance = self.standin_instances.get(ours.__name__)
        if instance is not None and hasattr(instance, "__dict__"):
            for n in sorted(k for k in vars(instance) if not k.startswith("_")):
                self.checked += 1
                if not (hasattr(theirs, n) or n in documented or (real_instance is not None and hasattr(real_instance, n))):
                    self.fail(f"{where}.{n}", "an instance attribute here, not in the real CuPy class")


def test_every_standin_name_exists_in_the_real_cupy_with_a_compatible_signature(sc, scx):
    real_cupy, real_cupyx = _real_cupy()
    checker = _Checker(sc, scx, real_cupy, real_cupyx)
    checker.module(sc, real_cupy, "cupy")
    checker.module(scx, real_cupyx, "cupyx")
    for name in ("memory", "stream", "device", "pinned_memory", "memory_hook", "runtime"):
        if not hasattr(real_cupy.cuda, name):
            checker.fail(f"cupy.cuda.{name}", "does not exist in the real CuPy")
    checker.cls(sc._core.flags.Flags, real_cupy._core.flags.Flags, "cupy._core.flags.Flags")
    assert not checker.problems, "\n".join(checker.problems)
    assert checker.checked > 300  # the walk reached the whole registry


def test_the_checker_catches_misspelt_and_incompatible_names(sc, scx):
    """The conformance check is not vacuous: a wrong name, kind, signature or default fails."""
    real_cupy, real_cupyx = _real_cupy()
    fake = types.ModuleType("standin_cupy_broken")
    fake.ascontiguousarry = lambda a, dtype=None: a  # misspelt
    fake.ascontiguousarry.__module__ = "standin_cupy"

    def asarray(a, dtype=None, order="C"):  # CuPy's default order is None
        return a

    def zeros(shape, dtype=float, order="C", *, like=None):  # CuPy has no like=
        return shape

    def where(condition, y=None, x=None):  # swapped names
        return condition

    class Stream:
        def wait_events(self, event):  # no such method
            pass

    for f in (asarray, zeros, where):
        f.__module__ = "standin_cupy"
        setattr(fake, f.__name__, f)
    Stream.__module__ = "standin_cupy.cuda.stream"
    fake.Stream = Stream
    fake.float32 = np.float64  # not CuPy's float32
    fake.__all__ = ["ascontiguousarry", "asarray", "zeros", "where", "float32"]
    checker = _Checker(sc, scx, real_cupy, real_cupyx)
    checker.module(fake, real_cupy, "cupy")
    checker.cls(Stream, real_cupy.cuda.Stream, "cupy.cuda.Stream")
    text = "\n".join(checker.problems)
    for expected in ("cupy.ascontiguousarry: does not exist", "cupy.asarray: signature", "order: default",
                     "like: not a keyword", "cupy.where: signature", "cupy.float32", "cupy.cuda.Stream.wait_events"):
        assert expected in text, text


# ---------------------------------------------------------------------------------------
# behaviour of the stand-in


def _read_float32(ptr: int, n: int) -> list[float]:
    return list((ctypes.c_float * n).from_address(ptr))


def test_arrays_live_in_host_memory_behind_the_cuda_array_interface(sc):
    a = sc.arange(12, dtype=sc.float32).reshape(3, 4)
    cai = a.__cuda_array_interface__
    assert cai["version"] == 3 and cai["typestr"] == "<f4" and cai["shape"] == (3, 4) and cai["strides"] is None
    assert cai["data"] == (a.data.ptr, False) and a.data.ptr != 0
    assert _read_float32(a.data.ptr, 12) == list(range(12))  # the pointer is the host address of the data
    ctypes.c_float.from_address(a.data.ptr + 4 * 5).value = -1.0  # a "kernel" writes through it
    assert float(a[1, 1]) == -1.0
    view = a[:, ::-2]
    vcai = view.__cuda_array_interface__
    assert vcai["strides"] == (16, -8) and vcai["data"][0] == a.data.ptr + 12
    assert sc.empty((0, 3)).__cuda_array_interface__["data"] == (0, False)
    assert sc.cuda.runtime.pointerGetAttributes(a.data.ptr + 40).device == 0
    assert sc.cuda.runtime.pointerGetAttributes(a.data.ptr + 40).type == sc.cuda.runtime.memoryTypeDevice
    host = np.zeros(4)
    assert sc.cuda.runtime.pointerGetAttributes(host.ctypes.data).type == sc.cuda.runtime.memoryTypeUnregistered


def test_the_interface_names_the_current_stream(sc):
    a = sc.zeros(3)
    assert a.__cuda_array_interface__["stream"] == 1  # the legacy default stream (0 is forbidden by v3)
    s = sc.cuda.Stream(non_blocking=True)
    with s:
        assert a.__cuda_array_interface__["stream"] == s.ptr


def test_no_implicit_conversion_and_no_host_operands(sc):
    a = sc.ones((2, 3), dtype=sc.float32)
    host = np.ones((2, 3), np.float32)
    assert not isinstance(a, np.ndarray) and type(a).__module__ == "cupy" and type(a).__name__ == "ndarray"
    for convert in (np.asarray, lambda x: np.add(x, x, out=np.empty((2, 3), np.float32))):
        with pytest.raises(TypeError):
            convert(a)
    # numpy.array asks for copy=True, which CuPy's __array__(dtype=None) does not take: NumPy's
    # DeprecationWarning (an error in this suite) comes first, as with the real CuPy
    with pytest.raises((TypeError, DeprecationWarning)):
        np.array(a)
    for op in (lambda: a + host, lambda: host + a, lambda: a * host, lambda: a == host, lambda: sc.maximum(a, host),
               lambda: sc.where(a > 0, a, host), lambda: sc.concatenate([a, host]), lambda: sc.sum(host)):
        with pytest.raises(TypeError):
            op()
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray cannot be used for fill"):
        a[...] = host
    a[[0, 1]] = host * 2  # array (scatter) indexing copies host values, as in CuPy
    assert (a.get() == 2).all()
    b = a + 1
    c = np.float32(2) * a
    assert isinstance(b, sc.ndarray) and isinstance(c, sc.ndarray) and isinstance(np.negative(a), sc.ndarray)
    with pytest.raises(TypeError, match="no implementation"):
        np.lexsort(a)  # not in the registry: NumPy reports no implementation for device arrays
    assert not hasattr(sc, "lexsort") and not hasattr(sc, "fft")


def test_results_are_device_arrays_and_views_share_memory(sc):
    a = sc.arange(6, dtype=sc.float64).reshape(2, 3)
    total = a.sum()
    assert isinstance(total, sc.ndarray) and total.shape == () and float(total) == 15.0
    assert isinstance(sc.allclose(a, a), sc.ndarray) and bool(sc.allclose(a, a))
    element = a[1, 2]
    assert isinstance(element, sc.ndarray) and element.shape == ()
    element[...] = 42
    assert a.get()[1, 2] == 42
    t = a.T
    assert t.base is not None and sc.shares_memory(t, a) and t.data.ptr == a.data.ptr
    copy = a.copy()
    assert copy.base is None and copy.flags.owndata and not sc.shares_memory(copy, a)
    host = a.get()
    host[0, 0] = -5
    assert a.get()[0, 0] == 0  # get() copies
    with pytest.raises(TypeError, match="cannot be set"):
        a.set(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="Shape mismatch"):
        a.set(np.zeros((3, 2)))
    with pytest.raises(NotImplementedError, match="non-contiguous"):
        a.T.sort()
    assert not hasattr(a.flags, "writeable")
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        (a / 0).get()  # no floating-point warnings, as on a GPU


def test_foreign_memory_is_wrapped_without_copy(sc):
    a = sc.arange(10, dtype=sc.float32)
    mem = sc.cuda.UnownedMemory(a.data.ptr, a.nbytes, owner=a)
    view = sc.ndarray((5,), sc.float32, sc.cuda.MemoryPointer(mem, 4 * 9), strides=(-8,))
    assert view.get().tolist() == [9, 7, 5, 3, 1]
    view[0] = -1
    assert a.get()[9] == -1
    assert sc.asarray(view) is view
    wrapped = sc.asarray(types.SimpleNamespace(__cuda_array_interface__=a.__cuda_array_interface__))
    assert wrapped.data.ptr == a.data.ptr and sc.shares_memory(wrapped, a)
    stray = sc.cuda.UnownedMemory(np.zeros(4).ctypes.data, 32, owner=None)
    assert stray.device_id == sc.cuda.runtime.cudaInvalidDeviceId  # host memory is no device's
    with pytest.raises(ValueError, match="different from the current device"):
        sc.ndarray((4,), np.float64, sc.cuda.MemoryPointer(stray, 0)) + 1


def test_streams_events_and_the_current_stream(sc):
    cuda = sc.cuda
    assert cuda.Stream.null.ptr == 0 and cuda.get_current_stream() == cuda.Stream.null
    s1, s2 = cuda.Stream(), cuda.Stream(non_blocking=True)
    assert len({s1.ptr, s2.ptr, 0, 1, 2}) == 5 and s2.is_non_blocking and not s1.is_non_blocking
    seen_in_thread = []
    with s1:
        assert cuda.get_current_stream() is s1
        with s2:
            assert cuda.get_current_stream() is s2
            t = threading.Thread(target=lambda: seen_in_thread.append(cuda.get_current_stream().ptr))
            t.start()
            t.join()
        assert cuda.get_current_stream() is s1
    assert cuda.get_current_stream() is cuda.Stream.null and seen_in_thread == [0]  # per thread
    s2.use()
    assert cuda.get_current_stream() is s2
    cuda.Stream.null.use()
    event = s1.record()
    assert isinstance(event, cuda.Event) and event.done and event.ptr
    s2.wait_event(event)
    with pytest.raises(TypeError):
        s2.wait_event(s1)  # not an event
    with pytest.raises(TypeError):
        s2.wait_event(s1.ptr)
    end = cuda.Event()
    end.record(s1)
    assert cuda.get_elapsed_time(event, end) >= 0
    with pytest.raises(cuda.runtime.CUDARuntimeError):
        cuda.get_elapsed_time(event, cuda.Event(disable_timing=True))
    with pytest.warns(DeprecationWarning, match="ExternalStream is deprecated"):
        external = cuda.ExternalStream(s1.ptr)
    assert external == s1 and hash(external) == s1.ptr
    wrapped = cuda.Stream.from_external(s2)
    assert wrapped.ptr == s2.ptr and s2.__cuda_stream__() == (0, s2.ptr)
    with pytest.raises(AttributeError, match="CUDA stream protocol"):
        cuda.Stream.from_external(object())
    gone = cuda.Stream().ptr
    gc.collect()
    with pytest.raises(cuda.runtime.CUDARuntimeError, match="invalid resource handle"):
        cuda.Stream.from_external(types.SimpleNamespace(__cuda_stream__=lambda: (0, gone))).synchronize()
    with pytest.raises(cuda.runtime.CUDARuntimeError, match="invalid device ordinal"), \
            cuda.Device(cuda.runtime.getDeviceCount()):
        pass


def test_memory_pool_and_hooks_see_device_allocations(sc, scx):
    pool = sc.get_default_memory_pool()
    events = []

    class Hook(sc.cuda.MemoryHook):
        name = "standin-test-hook"

        def malloc_postprocess(self, **kw):
            events.append(("malloc", kw["size"], kw["mem_size"], kw["mem_ptr"]))

        def free_postprocess(self, **kw):
            events.append(("free", kw["mem_size"], kw["mem_ptr"]))

    gc.collect()
    before = pool.used_bytes()
    with Hook():
        a = sc.empty(1000, dtype=sc.uint8)
        assert pool.used_bytes() == before + 1024 and a.data.ptr % 512 == 0
        b = a.astype(sc.float32)  # a computed result is a device allocation too
        ptrs = (a.data.ptr, b.data.ptr)
        del a, b
    ours = [e[:-1] for e in events if e[-1] in ptrs]  # (a collection may free older arrays meanwhile)
    assert ours == [("malloc", 1000, 1024), ("malloc", 4000, 4096), ("free", 1024), ("free", 4096)]
    assert pool.used_bytes() <= before
    pinned = scx.empty_pinned((8,), dtype=np.float32)
    assert isinstance(pinned, np.ndarray)
    attrs = sc.cuda.runtime.pointerGetAttributes(pinned.ctypes.data)
    assert attrs.type == sc.cuda.runtime.memoryTypeHost and attrs.hostPointer == pinned.ctypes.data


def test_dlpack_capsules_say_cuda(sc):
    a = sc.arange(4, dtype=sc.int32)
    assert a.__dlpack_device__() == (2, 0)
    capsule = a.__dlpack__(stream=1)
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    managed = get(capsule, b"dltensor")
    assert ctypes.c_void_p.from_address(managed).value == a.data.ptr
    assert (ctypes.c_int32.from_address(managed + 8).value, ctypes.c_int32.from_address(managed + 12).value) == (2, 0)
    with pytest.raises(ValueError, match="valid stream"):
        a.__dlpack__(stream=0)
    b = sc.from_dlpack(a)
    assert b is not a and b.data.ptr == a.data.ptr
    with pytest.raises(BufferError):
        sc.from_dlpack(np.arange(3))  # host memory is not on the device


def test_module_level_api(sc, scx):
    assert sc.get_array_module(sc.zeros(1)) is sc and sc.get_array_module(np.zeros(1)) is np
    assert sc.float32 is np.float32 and sc.ndarray.__module__ == "cupy"
    assert sc.asnumpy(sc.arange(3)).tolist() == [0, 1, 2] and sc.asnumpy([1, 2]).tolist() == [1, 2]
    assert sc.cuda.runtime.getDeviceCount() >= 1 and sc.cuda.Device().id == 0
    assert sc.cuda.Device(0).compute_capability.isdigit()
    free, total = sc.cuda.runtime.memGetInfo()
    assert 0 < free <= total
    sc.testing.assert_array_equal(sc.arange(3), sc.arange(3))
    with pytest.raises(AssertionError):
        sc.testing.assert_allclose(sc.arange(3), sc.arange(3) + 1)
    image = sc.asarray(np.eye(9, dtype=np.float32)[None, None])
    smooth = scx.scipy.ndimage.gaussian_filter(image, (0, 0, 1, 1), mode="constant")
    assert isinstance(smooth, sc.ndarray) and smooth.dtype == np.float32
    from scipy import ndimage

    np.testing.assert_allclose(smooth.get(), ndimage.gaussian_filter(image.get(), (0, 0, 1, 1), mode="constant"))
    peaks = scx.scipy.ndimage.maximum_filter(image, (1, 1, 2, 3), mode="constant")
    assert isinstance(peaks, sc.ndarray) and peaks.dtype == np.float32
    np.testing.assert_array_equal(peaks.get(), ndimage.maximum_filter(image.get(), (1, 1, 2, 3), mode="constant"))


def test_work_on_streams_that_could_race_on_a_gpu_is_refused(sc):
    cuda = sc.cuda
    race = cuda._ordering.StreamOrderError
    s1, s2 = cuda.Stream(non_blocking=True), cuda.Stream(non_blocking=True)
    with s1:
        a = sc.arange(1000, dtype=sc.float32)  # written on s1
    with s2, pytest.raises(race, match="reads memory written by stream"):
        a + 1
    with pytest.raises(race, match="ndarray.get"):
        a.get()  # the legacy stream does not wait for a non-blocking stream
    with s2:
        s2.wait_event(s1.record())
        b = a + 1  # ordered by the event
        with pytest.raises(race, match="writes memory read by stream"):
            with s1:
                a.fill(0)  # s2's read may still be running
        s1.wait_event(s2.record())
        with s1:
            a.fill(0)
    s1.synchronize()
    s2.synchronize()
    assert (b.get() == np.arange(1, 1001)).all() and not a.get().any()  # the host waited for both

    blocking = cuda.Stream()
    c = sc.ones(10)  # legacy default stream
    with blocking:
        c + 1  # a blocking stream waits for earlier legacy-stream work
    with s1, pytest.raises(race):
        c + 1  # a non-blocking one does not


def test_freed_memory_is_reused_in_its_streams_order(sc):
    """CuPy's pool hands a freed block out again in the order of the stream it was allocated
    on: an allocation there must be ordered after other streams' use of the block."""
    cuda = sc.cuda
    race = cuda._ordering.StreamOrderError
    producer, consumer = cuda.Stream(non_blocking=True), cuda.Stream(non_blocking=True)
    with producer:
        batch = sc.zeros(4096, dtype=sc.float32)
    consumer.wait_event(producer.record())
    with consumer:
        batch.sum()  # the consumer reads the batch
    del batch
    gc.collect()
    with producer, pytest.raises(race, match="can reuse a freed block"):
        sc.empty(4096, dtype=sc.float32)
    with producer:
        batch = sc.zeros(4096, dtype=sc.float32)
    consumer.wait_event(producer.record())
    with consumer:
        batch.sum()
    del batch
    gc.collect()
    producer.wait_event(consumer.record())  # the loader's rule: wait for the consumer first
    with producer:
        sc.empty(4096, dtype=sc.float32)


@pytest.mark.skipif(not CUPY_STANDIN, reason="cupatch's CUDA launches exist in the emulated build")
def test_cupatch_launches_are_checked_like_the_standins_own_work():
    import cupy

    from cupatch import _core
    from cupatch.ops import gather_patches

    producer, other = cupy.cuda.Stream(non_blocking=True), cupy.cuda.Stream(non_blocking=True)
    with producer:
        data = cupy.arange(2 * 64 * 64, dtype=cupy.float32).reshape(1, 2, 64, 64)
    with other, pytest.raises(cupy.cuda._ordering.StreamOrderError, match="gather kernel .source 0."):
        gather_patches([data], np.array([[0, 0, 3, 4]]), (8, 8))
    other.wait_event(producer.record())
    with other:
        got = gather_patches([data], np.array([[0, 0, 3, 4]]), (8, 8))
        np.testing.assert_array_equal(got.get()[0], data.get()[0, :, 3:11, 4:12])
    stray = np.zeros(16, np.int64)  # host memory where a device table belongs
    with pytest.raises(cupy.cuda.runtime.CUDARuntimeError, match="illegal memory access"):
        _core.gather_cuda(stray.ctypes.data, 1, list(_core.DTYPES).index("float32"), got.data.ptr, 1, 4, 2, (1, 8, 8),
                          got.data.ptr, 1, 0, 0, got.data.ptr, list(_core.DTYPES).index("float32"), 0, 0)


@pytest.mark.skipif(not CUPY_STANDIN, reason="the stand-in is installed as cupy in the emulated lane only")
def test_the_emulated_lane_runs_on_the_standin():
    import cupy

    from cupatch import _backend, _core

    assert _core.cuda_emulated and Path(cupy.__file__).is_relative_to(STANDIN_DIR)
    assert _backend.gpu_available() and _backend.require_gpu() is cupy
    with contextlib.suppress(ImportError):
        import zarr.core.buffer.gpu  # noqa: F401 - imports the real CuPy at plugin load; no longer current
    assert sys.modules["cupy"] is cupy
