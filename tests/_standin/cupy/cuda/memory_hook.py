"""``cupy.cuda.memory_hook`` of the stand-in: hooks called by the stand-in's memory pool."""

from __future__ import annotations

import collections
import threading

_thread = threading.local()


def get_memory_hooks():
    """The hooks registered in this thread (name -> hook), like CuPy's."""
    hooks = getattr(_thread, "hooks", None)
    if hooks is None:
        hooks = _thread.hooks = collections.OrderedDict()
    return hooks


def _active():
    hooks = getattr(_thread, "hooks", None)
    return list(hooks.values()) if hooks else []


class MemoryHook:
    """Base class of hooks for memory allocations (registered with ``with hook:``)."""

    name = "MemoryHook"

    def __enter__(self):
        hooks = get_memory_hooks()
        if self.name in hooks:
            raise KeyError(f"memory hook {self.name} already exists")
        hooks[self.name] = self
        return self

    def __exit__(self, *_):
        del get_memory_hooks()[self.name]

    def alloc_preprocess(self, **kwargs):
        pass

    def alloc_postprocess(self, **kwargs):
        pass

    def malloc_preprocess(self, **kwargs):
        pass

    def malloc_postprocess(self, **kwargs):
        pass

    def free_preprocess(self, **kwargs):
        pass

    def free_postprocess(self, **kwargs):
        pass


__all__ = ["MemoryHook", "get_memory_hooks"]
