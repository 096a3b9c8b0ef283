"""The ``cupatch`` command.

``cupatch predict`` runs tiled inference on a TIFF, Zarr or ``.npy`` image (or, with no
input, on a built-in sample image with a built-in Gaussian-denoiser model, checked against
filtering the whole image at once); ``cupatch info`` prints what the build supports.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__
from ._backend import build_info
from ._sample import default_model, sample_image
from ._windows import WINDOWS
from .inference import open_image, output_axes, resolve_device, run_prediction
from .stacks.axes import restore_array

__all__ = ["build_parser", "load_model", "main"]

#: Errors reported as one ``cupatch: error: ...`` line (exit status 1) instead of a traceback.
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``cupatch`` command."""
    parser = argparse.ArgumentParser(
        prog="cupatch",
        description="GPU patch gathering and tiled inference for 2D/3D multi-channel images.",
    )
    parser.add_argument("--version", action="version", version=f"cupatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    predict = sub.add_parser(
        "predict",
        help="tiled inference on an image file (or on the built-in sample)",
        description=(
            "Cut an image into overlapping tiles, run a model on batches of tiles and stitch the "
            "predictions. With no INPUT, a built-in sample image (1024x1024 uint16) and the built-in "
            "Gaussian-denoiser model are used, and the result is compared with filtering the whole "
            "image at once. Uses the GPU when one is usable, else the CPU."
        ),
    )
    predict.add_argument("input", nargs="?", metavar="INPUT", help="image: .tif/.tiff, .zarr or .npy (default: built-in sample)")
    predict.add_argument("--axes", help="axes of INPUT, e.g. YX, ZYX, SYXC, TZYX (default YX)")
    predict.add_argument("--tile", type=int, nargs="+", default=[256], metavar="T", help="tile size per spatial axis, (Z)YX, or one value for all (default 256)")
    predict.add_argument("--overlap", type=int, nargs="+", default=[32], metavar="O", help="tile overlap per spatial axis, or one value for all (default 32)")
    predict.add_argument("--blend", choices=("crop", *WINDOWS), default="crop", help="overlap cropping (exact, default) or a blend window")
    predict.add_argument("--batch-size", type=int, default=8, metavar="N", help="tiles per model call (default 8)")
    predict.add_argument(
        "--model",
        metavar="MODULE:CALLABLE",
        help="model to run: module:name or path/to/file.py:name; a class is instantiated without arguments "
        "(default: built-in Gaussian denoiser with sigma = overlap/8)",
    )
    predict.add_argument("--channels", type=int, nargs="+", metavar="C", help="input channels to use (default all)")
    predict.add_argument("--target-axes", metavar="AXES", help="axes order of the output (default: the input axes)")
    predict.add_argument("--out", metavar="PATH", help="output file: .tif/.tiff, .zarr or .npy (default: do not write)")
    predict.add_argument("--overwrite", action="store_true", help="replace an existing output")
    predict.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto", help="where to run (default auto)")
    predict.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    predict.add_argument("--no-check", action="store_true", help="skip the whole-image comparison of the built-in model")

    sub.add_parser("info", help="print the build and device information", description="Print build_info() as JSON.")
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
    batch = np.zeros((1, n_in, *tile), dtype=np.float32)
    if resolve_device(device) == "gpu":
        import cupy  # optional dependency, only on the GPU

        batch = cupy.asarray(batch)
    model(batch)


def _predict(args) -> int:
    if args.input is None:
        axes = (args.axes or "YX").upper()
        if axes != "YX":
            raise ValueError(f"the built-in sample image is 2-D (axes 'YX'); --axes {args.axes!r} does not fit it")
        data = sample_image()
        what = "built-in sample image (synthetic fluorescence, deterministic)"
    else:
        axes = args.axes or "YX"
        data = args.input
        if not Path(data).exists() and "://" not in data:
            raise FileNotFoundError(f"INPUT {data!r} does not exist")
        what = f"{data}"
    try:
        stack = open_image(data, axes)
    except ValueError as exc:
        if args.axes is None:
            raise ValueError(f"{exc} (give the axes of INPUT with --axes)") from exc
        raise
    what += f" (axes {stack.original_axes}, shape {_fmt_shape(stack.original_data_shape)}, {stack.dtype})"

    if args.model is None:
        model = default_model(args.overlap)
        model_label = f"{model!r} (built-in)"
    else:
        model = load_model(args.model)
        model_label = args.model
    check = args.model is None and not args.no_check

    tile = _one_or_many(args.tile)
    overlap = _one_or_many(args.overlap)
    ndim = len(stack.data_shape) - 2
    tiles = tuple(args.tile) * ndim if len(args.tile) == 1 else tuple(args.tile)
    overlaps = tuple(args.overlap) * ndim if len(args.overlap) == 1 else tuple(args.overlap)
    if args.model is None and len(tiles) == ndim:
        # Warm the built-in model up (SciPy import, CuPy kernel compilation) so that the
        # reported throughput is that of tiled inference, not of one-time set-up.
        _warm_up(model, stack, tiles, args.channels, args.device)
    result, stats = run_prediction(
        model,
        stack,
        axes=stack.original_axes,
        tile_size=tile,
        overlap=overlap,
        batch_size=args.batch_size,
        blend=args.blend,
        channels=args.channels,
        target_axes=args.target_axes,
        out=args.out,
        device=args.device,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    print(f"input:      {what}")
    print(f"model:      {model_label}")
    print(
        f"tiles:      {stats.n_tiles} (tile {_fmt_shape(tiles)}, overlap {_fmt_shape(overlaps)}, "
        f"blend {args.blend}, batch size {args.batch_size})"
    )
    print(f"device:     {stats.device}")
    print(f"wall time:  {stats.wall_s:.3f} s ({stats.tiles_per_s:.1f} tiles/s)")
    if check:
        t0 = time.perf_counter()
        diff = _whole_image_difference(model, stack, result, stack.original_axes, args.target_axes, args.channels, stats.device)
        print(f"max |tiled - whole image|: {diff:.3g} (whole image in {time.perf_counter() - t0:.3f} s)")
    if args.out is not None:
        print(f"output:     {args.out} (shape {_fmt_shape(result.shape)}, {np.dtype(result.dtype)})")
    else:
        print(f"output:     not written (shape {_fmt_shape(result.shape)}, {np.dtype(result.dtype)}; use --out PATH)")
    return 0


def _info() -> int:
    print(json.dumps(build_info(), indent=2, sort_keys=True, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cupatch`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "info":
            return _info()
        return _predict(args)
    except _USER_ERRORS as exc:
        print(f"cupatch {args.command}: error: {exc}", file=sys.stderr)
        for note in getattr(exc, "__notes__", ()):
            print(f"cupatch {args.command}: {note}", file=sys.stderr)
        return 1
