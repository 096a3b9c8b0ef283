"""Models on the workers: sent once, or built once per worker process by a factory.

The client describes the model with a :class:`ModelSpec`: a picklable model (a callable or
a ``torch.nn.Module``), scattered once to every worker, or a zero-argument factory (a
``"module:callable"`` string, imported on the worker, or a picklable callable) that each
worker process calls once. Either way the worker wraps it in the single-process
:class:`~cupatch.inference.model.ModelRunner` and keeps it in a per-process cache, so tasks
after the first reuse it. A factory that fails is reported with the worker's traceback
(:class:`ModelFactoryError`).
"""

from __future__ import annotations

import importlib
import os
import threading
import traceback
from dataclasses import dataclass
from typing import Any

from ..inference.model import ModelRunner, model_name

__all__ = ["ModelFactoryError", "ModelSpec", "model_spec", "worker_runner"]


class ModelFactoryError(RuntimeError):
    """A model factory failed on a worker; the message carries the worker's traceback."""


@dataclass(frozen=True)
class ModelSpec:
    """How a task gets the model: ``key`` names it in the workers' caches."""

    key: str
    name: str
    factory: Any = None  # "module:callable" or a callable; None: the model comes as a task argument


def _pickle_error(model, exc: BaseException) -> TypeError:
    return TypeError(
        f"model {model_name(model)} cannot be sent to the workers: pickling it failed ({type(exc).__name__}: {exc}). "
        f"Pass a zero-argument factory that builds it on each worker instead: a 'module:callable' string "
        f"(e.g. model='mypackage.models:build_model') or a function with factory=True"
    )


def model_spec(model, factory: bool) -> tuple[ModelSpec, Any]:
    """``(spec, payload)`` for the client: payload is the model to scatter, or None.

    Raises TypeError for a model that cannot be pickled (naming the factory alternative),
    a non-callable, or a malformed ``"module:callable"`` string.
    """
    from dask.base import tokenize  # optional dependency: only distributed runs get here
    from distributed.protocol.pickle import dumps

    if isinstance(model, str):
        module, sep, attr = model.partition(":")
        if not sep or not module or not attr:
            raise ValueError(f"model {model!r}: a factory string must be 'module:callable', e.g. 'mypackage.models:build'")
        return ModelSpec(key=f"factory:{model}", name=model, factory=model), None
    if not callable(model):
        raise TypeError(
            f"model must be a callable, a torch.nn.Module or a 'module:callable' factory string, got {type(model).__name__}"
        )
    try:
        dumps(model)
    except Exception as exc:  # any pickling failure: the model cannot reach a worker
        raise _pickle_error(model, exc) from exc
    if factory:
        return ModelSpec(key=f"factory:{tokenize(model)}", name=model_name(model), factory=model), None
    return ModelSpec(key=f"model:{tokenize(model)}", name=model_name(model)), model


def _load_factory(text: str):
    module, _, attr = text.partition(":")
    target: Any = importlib.import_module(module)
    for part in attr.split("."):
        target = getattr(target, part)
    return target


# Per worker process, for its life: factories by name (built once), and the scattered models
# of the latest calls (each call scatters its own object; older ones are let go).
_CACHE: dict[tuple[str, str], ModelRunner] = {}
_MAX_SCATTERED = 4
_LOCK = threading.Lock()  # a worker with several threads builds a factory's model once


def _worker_label() -> str:
    try:
        from distributed import get_worker

        return f"{get_worker().address} (pid {os.getpid()})"
    except ValueError:  # not inside a worker (direct calls in tests)
        return f"pid {os.getpid()}"


def worker_runner(spec: ModelSpec, model, device: str) -> ModelRunner:
    """The worker process's runner for ``spec`` on ``device``, built at its first task."""
    key = (spec.key, device)
    with _LOCK:
        runner = _CACHE.get(key)
        if runner is not None:
            return runner
        if spec.factory is not None:
            try:
                factory = _load_factory(spec.factory) if isinstance(spec.factory, str) else spec.factory
                model = factory()
            except Exception:
                raise ModelFactoryError(
                    f"model factory {spec.name} failed on worker {_worker_label()}:\n{traceback.format_exc()}"
                ) from None
        runner = ModelRunner(model, device)
        if spec.factory is None:
            scattered = [k for k in _CACHE if k[0].startswith("model:")]
            for old in scattered[: max(0, len(scattered) - _MAX_SCATTERED + 1)]:
                del _CACHE[old]
        _CACHE[key] = runner
        return runner


def cached_models() -> list[str]:
    """Keys of the models this process has built (for tests: one build per process)."""
    return [key for key, _device in _CACHE]
