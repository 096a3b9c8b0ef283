"""The ``cupatch`` command.

``cupatch predict`` runs tiled inference on a TIFF, Zarr or ``.npy`` image (or, with no
input, on a built-in sample image with a built-in Gaussian-denoiser model, checked against
filtering the whole image at once); ``cupatch info`` prints what the build supports.

Exit statuses: 0 done, 1 an error (a bad input, model or output; the message says which),
2 a usage error (a bad option, as argparse reports them), 130 interrupted (Ctrl-C). An
error raised by cupatch itself is one ``cupatch predict: error: ...`` line; one raised in
the user's code (the model, its module) shows a short traceback of that code, cupatch's
own frames folded; ``--debug`` shows every frame.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import os
import sys
import textwrap
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from ._backend import build_info, gpu_unavailable_reasons
from ._cli_input import open_input
from ._sample import default_model
from ._tracebacks import outside_cupatch, short_traceback
from ._windows import WINDOWS
from .inference import Plan, execute, output_axes, predict_tiled
from .inference.destinations import incomplete_marker, is_own_incomplete
from .stacks.axes import restore_array

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "build_parser", "load_model", "main"]

#: Exit statuses of the command.
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: Errors that cupatch raises about its inputs: reported as one ``cupatch COMMAND: error:
#: ...`` line when raised by cupatch itself (anything else gets a short traceback).
_USER_ERRORS = (
    ValueError,
    TypeError,
    IndexError,
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    ImportError,
    AttributeError,
    RuntimeError,
    MemoryError,
)


def _int_option(minimum: int, allowed: str):
    """An argparse type: an integer of at least ``minimum`` (``allowed`` says so in words)."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {value}")
        return value

    return parse


_POSITIVE = _int_option(1, "a positive integer (1, 2, 3, ...)")
_NON_NEGATIVE = _int_option(0, "a non-negative integer (0, 1, 2, ...)")


class UsageError(Exception):
    """A bad option found after parsing (it needs the image): exit status 2, like argparse."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``cupatch`` command."""
    parser = argparse.ArgumentParser(
        prog="cupatch",
        description="GPU patch gathering and tiled inference for 2D/3D multi-channel images.",
        epilog="Exit status: 0 done, 1 error, 2 bad option, 130 interrupted (Ctrl-C).",
    )
    parser.add_argument("--version", action="version", version=f"cupatch {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", help="on an error, print the full traceback (cupatch's own frames included)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    predict = sub.add_parser(
        "predict",
        parents=[common],
        help="tiled inference on an image file (or on the built-in sample)",
        description=(
            "Cut an image into overlapping tiles, run a model on batches of tiles and stitch the "
            "predictions. With no INPUT, a built-in sample image (1024x1024 uint16) and the built-in "
            "Gaussian-denoiser model are used, and the result is compared with filtering the whole "
            "image at once. Uses the GPU when one is usable, else the CPU."
        ),
        epilog=(
            "Exit status: 0 done, 1 error, 2 bad option, 130 interrupted (Ctrl-C). An interrupted or "
            "failed run leaves its output file marked incomplete (OUT.incomplete beside it); the next "
            "run replaces such an output without --overwrite."
        ),
    )
    predict.add_argument("input", nargs="?", metavar="INPUT", help="image: .tif/.tiff, .zarr (OME-Zarr included) or .npy (default: built-in sample)")
    predict.add_argument("--axes", help="axes of INPUT, e.g. YX, ZYX, SYXC, TZYX (default: from the file's OME-Zarr, OME/ImageJ TIFF or Zarr metadata, else YX)")
    predict.add_argument("--level", type=_NON_NEGATIVE, metavar="L", help="resolution level of an OME-Zarr INPUT (default 0, full resolution)")
    predict.add_argument("--tile", type=_POSITIVE, nargs="+", default=[256], metavar="T", help="tile size per spatial axis, (Z)YX, or one value for all; positive (default 256)")
    predict.add_argument("--overlap", type=_NON_NEGATIVE, nargs="+", default=[32], metavar="O", help="tile overlap per spatial axis, or one value for all; 0 to T-1, even with --blend crop (default 32)")
    predict.add_argument("--blend", choices=("crop", *WINDOWS), default="crop", help="overlap cropping (exact, default) or a blend window")
    predict.add_argument("--batch-size", type=_POSITIVE, default=8, metavar="N", help="tiles per model call, positive (default 8)")
    predict.add_argument(
        "--model",
        metavar="MODULE:CALLABLE",
        help="model to run: module:name or path/to/file.py:name; a class is instantiated without arguments "
        "(default: built-in Gaussian denoiser with sigma = overlap/8)",
    )
    predict.add_argument("--channels", type=_NON_NEGATIVE, nargs="+", metavar="C", help="input channels to use, 0 to (channels of INPUT) - 1 (default all)")
    predict.add_argument("--target-axes", metavar="AXES", help="axes order of the output (default: the input axes)")
    predict.add_argument("--out", metavar="PATH", help="output file: .tif/.tiff (.ome.tif), .zarr, .ome.zarr or .npy (default: do not write)")
    predict.add_argument("--compression", choices=("zlib", "zstd"), help="compress a .tif/.tiff or .zarr output")
    predict.add_argument("--skip-mask", metavar="PATH", help="mask (.npy, .tif/.tiff, .zarr; INPUT's axes, at its resolution or reduced by an integer factor): tiles where it is 0 are not run")
    predict.add_argument("--skip-value", type=float, default=0.0, metavar="V", help="output value where only skipped tiles lie (default 0; nan allowed)")
    predict.add_argument("--overwrite", action="store_true", help="replace an existing output (an incomplete one left by an interrupted run is replaced without it)")
    predict.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto", help="where to run (default auto)")
    predict.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    predict.add_argument("--no-check", action="store_true", help="skip the whole-image comparison of the built-in model")
    predict.set_defaults(parser=predict)

    info = sub.add_parser(
        "info",
        parents=[common],
        help="print the build and device information",
        description="Print build_info() as JSON, with whether a GPU is usable and, if not, why.",
    )
    info.set_defaults(parser=info)
    return parser


def load_model(spec: str):
    """Import a model named ``module:attr`` or ``path/to/file.py:attr``.

    A class is instantiated without arguments; any other object is used as is.
    """
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--model must look like module:callable or path/to/file.py:callable, got {spec!r}")
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise FileNotFoundError(f"--model file {module_name!r} does not exist")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        # Like ``python -m``: modules in the current directory are importable.
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        module = importlib.import_module(module_name)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise AttributeError(f"--model {spec!r}: {obj.__name__ if hasattr(obj, '__name__') else obj!r} has no attribute {part!r}")
        obj = getattr(obj, part)
    if isinstance(obj, type):
        obj = obj()
    if not callable(obj):
        raise TypeError(f"--model {spec!r} is a {type(obj).__name__}, not a callable model")
    return obj


def _one_or_many(values: list[int]):
    return values[0] if len(values) == 1 else tuple(values)


def _fmt_shape(shape) -> str:
    return "x".join(str(int(s)) for s in shape)


def _load_whole(stack, channels) -> np.ndarray:
    """The whole SC(Z)YX image of a stack, in host memory."""
    array = np.asarray(stack.to_device("cpu").array)
    if channels is not None:
        array = array[:, channels]
    return array


def _whole_image_difference(model, stack, result, axes, target_axes, channels, device) -> float:
    """Max |tiled - whole image| for a model that can run on the whole image."""
    whole = _load_whole(stack, channels).astype(np.float32)
    if device == "gpu":
        import cupy  # optional dependency, only on the GPU

        expected = cupy.asnumpy(model(cupy.asarray(whole)))
    else:
        expected = np.asarray(model(whole))
    out_axes = output_axes(stack.original_axes, target_axes, expected.shape[1])
    expected = restore_array(expected, stack.original_axes, stack.original_data_shape, out_axes)
    got = np.asarray(result[...]) if not isinstance(result, np.ndarray) else result
    got = got.get() if hasattr(got, "get") else got
    if got.shape != expected.shape:
        raise RuntimeError(f"tiled output shape {got.shape} differs from whole-image output shape {expected.shape}")
    return float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64)))) if got.size else 0.0


def _warm_up(model, stack, tile, channels, device) -> None:
    n_in = stack.data_shape[1] if channels is None else len(channels)
    try:
        batch = np.zeros((1, n_in, *tile), dtype=np.float32)
    except MemoryError as exc:
        raise MemoryError(
            f"one tile of --tile {_fmt_shape(tile)} ({n_in} channel{'s' if n_in != 1 else ''}, float32) does not fit in "
            f"memory ({exc}); give a smaller --tile"
        ) from None
    if device == "gpu":
        import cupy  # optional dependency, only on the GPU

        batch = cupy.asarray(batch)
    model(batch)


def _per_axis(option: str, values: list[int], ndim: int, axes: str) -> tuple[int, ...]:
    if len(values) not in (1, ndim):
        raise UsageError(
            f"argument {option}: give one value, or one per spatial axis ({ndim}: {'ZYX'[3 - ndim:]} of INPUT's axes "
            f"{axes!r}), got {len(values)}"
        )
    return tuple(values) * ndim if len(values) == 1 else tuple(values)


def _check_options(args, stack) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The checks of the numeric options that need the image; ``(tile, overlap)`` per axis.

    Run before the model is loaded or warmed up, so a bad option costs nothing and is named
    in the command's own terms (the per-value ranges are checked by argparse already).
    """
    ndim = len(stack.data_shape) - 2
    axes = stack.original_axes
    tiles = _per_axis("--tile", args.tile, ndim, axes)
    overlaps = _per_axis("--overlap", args.overlap, ndim, axes)
    if any(o >= t for o, t in zip(overlaps, tiles)):
        raise UsageError(
            f"argument --overlap: must be smaller than --tile on every axis (0 to T-1), got overlap "
            f"{_fmt_shape(overlaps)} with tile {_fmt_shape(tiles)}"
        )
    if args.blend == "crop" and any(o % 2 for o in overlaps):
        raise UsageError(
            f"argument --overlap: must be even with --blend crop (half of it is cropped from each side), got "
            f"{_fmt_shape(overlaps)}; use an even overlap or a blend window (--blend hann)"
        )
    if args.channels is not None:
        n_channels = int(stack.data_shape[1])
        bad = [c for c in args.channels if c >= n_channels]
        if bad:
            raise UsageError(
                f"argument --channels: INPUT has {n_channels} channel{'s' if n_channels != 1 else ''}, so channels are "
                f"0 to {n_channels - 1}; got {', '.join(map(str, bad))}"
            )
    return tiles, overlaps


def _check_explanation(blend: str, diff: float) -> str:
    """What the self-check number means, and why it is (not) zero, as indented lines."""
    text = (
        "the largest absolute difference, in the output's units, from running the built-in model on the "
        "whole image at once; "
    )
    if blend == "crop":
        text += (
            "crop mode keeps only the centre of each tile, so it is exact for a model whose receptive field "
            "fits in half the overlap, as the built-in one does"
        )
        if diff != 0:
            text += " (what is left is floating-point rounding)"
    else:
        text += (
            "blending differs from it by design: the model sees each tile alone (near a tile's borders the "
            f"built-in one pads with zeros instead of seeing the neighbouring pixels) and {blend} blending "
            "averages the overlapping predictions; --blend crop is exact for this model"
        )
    return textwrap.fill(text, width=96, initial_indent="  ", subsequent_indent="  ")


@dataclass
class _Output:
    """What the command knows about its output file, to say what a stop left behind."""

    path: Path | None = None
    existed: bool = False  # the path existed when the command started
    finished: bool = False  # predict_tiled returned: the output is complete

    def state(self) -> tuple[str, bool]:
        """A sentence on the output after an error or an interruption ('' without --out),
        and whether it is news: the run changed or left something at the output path."""
        if self.path is None:
            return "", False
        name = str(self.path)
        exists = self.path.exists()
        if self.finished:
            return f"the output {name!r} was complete and is kept", True
        if exists and is_own_incomplete(self.path):
            marker = str(incomplete_marker(self.path))
            return (
                f"the output {name!r} is incomplete and marked so by {marker!r}; the next run replaces it without "
                f"--overwrite",
                True,
            )
        if self.existed and not exists:
            return f"the earlier {name!r} was already removed (--overwrite) and no new output was written", True
        if self.existed:
            return f"the existing {name!r} was not changed", False
        if exists:
            return f"{name!r} was created but may be incomplete", True
        return "no output was written", False


def _predict(args, output: _Output) -> int:
    if args.out is not None:
        output.path = Path(args.out)
        output.existed = output.path.exists()
    stack, what = open_input(args.input, args.axes, args.level)
    tiles, overlaps = _check_options(args, stack)

    if args.model is None:
        model = default_model(args.overlap)
        model_label = f"{model!r} (built-in)"
    else:
        model = load_model(args.model)
        model_label = args.model
    check = args.model is None and not args.no_check and args.skip_mask is None

    bound = inspect.signature(predict_tiled).bind(
        model,
        stack,
        axes=stack.original_axes,
        tile_size=tiles,
        overlaps=overlaps,
        batch_size=args.batch_size,
        blend=args.blend,
        channels=args.channels,
        target_axes=args.target_axes,
        out=args.out,
        compression=args.compression,
        device=args.device,
        progress=not args.no_progress,
        overwrite=args.overwrite,
        skip=args.skip_mask,
        skip_value=args.skip_value,
    )
    bound.apply_defaults()
    plan = Plan.build(**bound.arguments)  # every argument checked before any work
    if args.model is None:
        # Warm the built-in model up (SciPy import, CuPy kernel compilation) so that the
        # reported throughput is that of tiled inference, not of one-time set-up.
        _warm_up(model, stack, plan.tile, plan.channels, plan.device)
    result, stats = execute(plan)
    output.finished = True
    print(f"input:      {what}")
    print(f"model:      {model_label}")
    print(
        f"tiles:      {stats.n_tiles} (tile {_fmt_shape(tiles)}, overlap {_fmt_shape(overlaps)}, "
        f"blend {args.blend}, batch size {args.batch_size})" + (f", {stats.n_skipped} skipped" if args.skip_mask else "")
    )
    print(f"device:     {stats.device}")
    print(f"wall time:  {stats.wall_s:.3f} s ({stats.tiles_per_s:.1f} tiles/s)")
    if check:
        t0 = time.perf_counter()
        diff = _whole_image_difference(model, stack, result, stack.original_axes, args.target_axes, args.channels, stats.device)
        print(f"max |tiled - whole image|: {diff:.3g} (whole image in {time.perf_counter() - t0:.3f} s)")
        print(_check_explanation(args.blend, diff))
    if args.out is not None:
        print(f"output:     {args.out} (shape {_fmt_shape(result.shape)}, {np.dtype(result.dtype)})")
    else:
        print(f"output:     not written (shape {_fmt_shape(result.shape)}, {np.dtype(result.dtype)}; use --out PATH)")
    return EXIT_OK


# --------------------------------------------------------------------------------------
# cupatch info: and why there is no GPU
# --------------------------------------------------------------------------------------

def _info() -> int:
    info = build_info()
    reasons = gpu_unavailable_reasons(info)
    info["gpu_usable"] = not reasons
    info["gpu_unavailable_reason"] = "; ".join(reasons) if reasons else None
    print(json.dumps(info, indent=2, sort_keys=True, default=str))
    if reasons:
        print(f"cupatch info: no usable GPU ({info['gpu_unavailable_reason']}); cupatch runs on the CPU", file=sys.stderr)
    else:
        print(f"cupatch info: {info['cuda_devices']} usable CUDA device(s); cupatch runs on the GPU by default", file=sys.stderr)
    if info.get("cuda_emulated"):
        print(
            "cupatch info: this build emulates CUDA on the CPU (CUPATCH_CUDA=EMULATE): its one CUDA device is the "
            "emulation, not a GPU",
            file=sys.stderr,
        )
    return EXIT_OK


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------

def _report(command: str, exc: BaseException, debug: bool) -> None:
    """Print an error that stopped the command (exit status 1)."""
    prefix = f"cupatch {command}"
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    elif outside_cupatch(exc):
        print(f"{prefix}: error in code outside cupatch (cupatch's frames folded; --debug shows them):", file=sys.stderr)
        print(short_traceback(exc), end="", file=sys.stderr)
    elif isinstance(exc, _USER_ERRORS):
        print(f"{prefix}: error: {exc}", file=sys.stderr)
        for note in getattr(exc, "__notes__", ()):
            print(f"{prefix}: {note}", file=sys.stderr)
    else:
        print(f"{prefix}: unexpected error inside cupatch (please report it with the output of --debug):", file=sys.stderr)
        print(short_traceback(exc), end="", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cupatch`` command; returns the exit status (0, 1, 2 or 130)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    output = _Output()
    prefix = f"cupatch {args.command}"
    try:
        if args.command == "info":
            return _info()
        return _predict(args, output)
    except UsageError as exc:
        args.parser.error(str(exc))  # usage and message on stderr, SystemExit(2)
    except BrokenPipeError:
        # stdout was closed early (``cupatch predict | head``): nothing left to tell anyone
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except KeyboardInterrupt:
        state, _ = output.state()
        print(f"{prefix}: interrupted (Ctrl-C){'; ' + state if state else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        _report(args.command, exc, args.debug)
        state, news = output.state()
        if news:
            print(f"{prefix}: {state}", file=sys.stderr)
        return EXIT_ERROR
