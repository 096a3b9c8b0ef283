"""The model runner: calls the user's model on one batch of tiles on the working device.

A model is a plain callable on arrays (CuPy on the GPU, NumPy on the CPU) or a
``torch.nn.Module`` (tensors through DLPack, on CuPy's current stream). A torch module is
run in ``eval()`` mode under ``torch.inference_mode()``, on tiles cast to its parameters'
dtype (float64, float16, bfloat16 models work as float32 ones do); the train/eval mode of
each of its submodules is restored after every call, so a model handed over in ``train()``
mode is predicted in eval mode and goes on training afterwards.
:class:`ModelRunner` hides the difference, hands back an array of the working device, and
:func:`check_prediction` checks the prediction's shape against the batch's, naming the
model in every error. Torch and CuPy are imported only when a model or the device needs
them.
"""

from __future__ import annotations

import contextlib

import numpy as np

from .._backend import is_cupy_array

__all__ = ["ModelRunner", "check_prediction", "model_name"]


def model_name(model) -> str:
    name = getattr(model, "__qualname__", None) or getattr(model, "__name__", None)
    if name is None:
        name = type(model).__name__
    return str(name)


def _is_torch_module(model) -> bool:
    # Checked by class name so that torch is never imported for other models.
    return any(cls.__name__ == "Module" and cls.__module__.startswith("torch.nn") for cls in type(model).__mro__)


class ModelRunner:
    """Calls the model on a ``(B, C, ...)`` batch of the working device's array type."""

    def __init__(self, model, device: str):
        if not callable(model):
            raise TypeError(f"model must be callable (a function on arrays or a torch.nn.Module), got {type(model).__name__}")
        self.model, self.device = model, device
        self.name = model_name(model)
        self.torch = None
        if _is_torch_module(model):
            import torch  # optional dependency, only for torch models

            self.torch = torch
            floating = [t.dtype for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
            # tiles are float32; a model of another float dtype gets them in its own
            self.input_dtype = floating[0] if floating and floating[0] != torch.float32 else None
            wanted = "cuda" if device == "gpu" else "cpu"
            for p in list(model.parameters())[:1] + list(model.buffers())[:1]:
                if p.device.type != wanted:
                    raise ValueError(
                        f"model {self.name} has parameters on {p.device} but predict_tiled runs on "
                        f"{'the GPU' if device == 'gpu' else 'the CPU'}; move it with model.to({wanted!r}) "
                        f"or pass device={'cpu' if wanted == 'cpu' else 'gpu'}"
                    )
                if wanted == "cuda" and p.device.index is not None:
                    import cupy  # optional dependency, only on the GPU

                    current = cupy.cuda.Device().id
                    if p.device.index != current:
                        raise ValueError(
                            f"model {self.name} is on {p.device} but the tiles are on cuda:{current} "
                            f"(CuPy's current device); move the model with model.to('cuda:{current}') "
                            f"or run inside `with cupy.cuda.Device({p.device.index}):`"
                        )

    def _torch_stream_context(self):
        """Run torch on CuPy's current stream (GPU), where the batches are gathered and stitched.

        On different streams, memory would be reused while the other library still reads it:
        CuPy's pool hands a dropped batch out again in CuPy's stream order while the model may
        still be reading it on torch's stream, and torch's caching allocator reuses a dropped
        prediction in torch's stream order while the stitch may still be reading it.
        """
        if self.device != "gpu":
            return contextlib.nullcontext()
        import cupy  # optional dependency, only on the GPU

        torch = self.torch
        device = cupy.cuda.Device().id
        ptr = int(cupy.cuda.get_current_stream().ptr)
        if int(torch.cuda.current_stream(device).cuda_stream) == ptr:
            return contextlib.nullcontext()
        return torch.cuda.stream(torch.cuda.ExternalStream(ptr, device=device))

    @contextlib.contextmanager
    def _eval_mode(self):
        """The model in ``eval()`` for one call; every submodule's own mode restored after it."""
        training = [m for m in self.model.modules() if m.training]
        if not training:  # the usual case at inference: nothing to switch or restore
            yield
            return
        self.model.eval()
        try:
            yield
        finally:
            for module in training:
                module.training = True

    def __call__(self, batch):
        if self.torch is not None:
            torch = self.torch
            # everything torch does with the batch and the prediction (including the bfloat16
            # cast) stays on the stream CuPy uses next
            with torch.inference_mode(), self._torch_stream_context(), self._eval_mode():
                x = torch.from_dlpack(batch) if self.device == "gpu" else torch.from_numpy(batch)
                if self.input_dtype is not None:
                    x = x.to(self.input_dtype)
                y = self.model(x)
                if not isinstance(y, torch.Tensor):
                    raise TypeError(f"model {self.name} returned {type(y).__name__}; expected a tensor")
                y = y.detach()
                if y.dtype == torch.bfloat16:  # neither NumPy nor CuPy has bfloat16
                    y = y.float()
                if self.device == "gpu":
                    import cupy  # optional dependency, only on the GPU

                    return cupy.from_dlpack(y)
                return y.cpu().numpy()
        y = self.model(batch)
        return self._to_device(y)

    def _to_device(self, y):
        if self.device == "gpu":
            import cupy  # optional dependency, only on the GPU

            if is_cupy_array(y):
                return y
            if hasattr(y, "__cuda_array_interface__"):
                return cupy.asarray(y)
            if hasattr(y, "__dlpack__") and not isinstance(y, np.ndarray):
                return cupy.from_dlpack(y)
            if isinstance(y, np.ndarray):
                return cupy.asarray(y)
        else:
            if isinstance(y, np.ndarray):
                return y
            if is_cupy_array(y):
                return y.get()
            if hasattr(y, "__dlpack__"):
                return np.from_dlpack(y)
        raise TypeError(f"model {self.name} returned {type(y).__name__}; expected an array of shape (B, C, *tile)")


def check_prediction(
    pred, runner: ModelRunner, batch_shape: tuple[int, ...], tile: tuple[int, ...], *, channels: int | None = None,
    batch: int = 0,
) -> None:
    """Refuse a prediction that cannot be stitched, naming the model and the batch.

    ``channels`` is the channel count of the first batch's prediction (None for the first
    batch itself): every batch of a run must keep it. ``batch`` numbers the batch in the run
    of one image (0 for the first).
    """
    dtype = np.dtype(pred.dtype)
    if dtype.kind == "c":
        raise TypeError(
            f"model {runner.name} returned complex values (dtype {dtype}); predict_tiled stitches real values "
            f"only and would drop the imaginary part: return the real and imaginary parts as channels, or abs()"
        )
    if dtype.kind not in "biuf":
        raise TypeError(f"model {runner.name} returned dtype {dtype}; expected a real numeric dtype (bool, int or float)")
    shape = tuple(pred.shape)
    if len(shape) != 2 + len(tile):
        raise ValueError(
            f"model {runner.name} returned shape {shape} for a batch of shape {batch_shape}; expected "
            f"{2 + len(tile)} dimensions (B, C, {'Z, ' if len(tile) == 3 else ''}Y, X)"
        )
    if shape[0] != batch_shape[0]:
        raise ValueError(
            f"model {runner.name} returned batch size {shape[0]} for a batch of {batch_shape[0]} tiles "
            f"(input shape {batch_shape}, output shape {shape})"
        )
    if shape[2:] != tuple(tile):
        raise ValueError(
            f"model {runner.name} changed the spatial shape: tile {tuple(tile)} in, {shape[2:]} out "
            f"(input shape {batch_shape}, output shape {shape}); tiled inference needs outputs the size of the tile"
        )
    if shape[1] < 1:
        raise ValueError(f"model {runner.name} returned no channels (output shape {shape})")
    if channels is not None and shape[1] != channels:
        raise ValueError(
            f"model {runner.name} returned {shape[1]} channels for batch {batch} (output shape {shape}) but "
            f"{channels} for batch 0; the output channel count must be the same for every batch"
        )
