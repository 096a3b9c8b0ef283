"""End-to-end tiled inference: cupatch ``predict_tiled`` against the loops users write.

Compared in the same run, on the same image, tiling and model:

* ``cupatch``: :func:`cupatch.inference.run_prediction` (one gather and one stitch launch per
  batch). A second, synchronised run splits the time into gather / model / stitch.
* ``cupatch-stream``: the same, streaming into a host array (output slabs only on the
  device; its peak GPU memory shows the bound).
* ``careamics-cpu``: CAREamics' CPU path: per-tile NumPy extraction (zero-padded), batches
  stacked for the model, then per-tile stitching (``stitch_prediction``'s crop copy; for blend
  modes a per-tile weighted accumulation). On the GPU the model runs on the GPU with host
  transfers per batch, as in CAREamics' prediction loop.
* ``monai-loop`` (GPU only): a per-tile CuPy slice/pad/stack loop with per-tile accumulation
  into GPU output and count buffers, in the style of MONAI ``sliding_window_inference``.
* ``copy-roof`` (GPU only): a device-to-device copy of the input and output bytes, the
  physical floor for any method.

Models: ``identity`` and a small convolution (a torch two-layer 3x3(x3) CNN when torch is
installed, else a separable 3-tap smoothing written in CuPy/NumPy).

Usage::

    python benchmarks/bench_inference.py [--quick] [--device auto|cpu|gpu] [--out-dir DIR]

Prints a table and writes ``<device>-<YYYY-MM-DD>-inference.{json,txt}`` to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from cupatch._backend import is_cupy_array  # noqa: E402
from cupatch._sample import sample_image  # noqa: E402
from cupatch._windows import window_table  # noqa: E402
from cupatch.inference import resolve_device, run_prediction  # noqa: E402
from cupatch.inference.model import ModelRunner  # noqa: E402
from cupatch.patching.tiled import tile_axis  # noqa: E402

# --------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------


def identity(x):
    return x


class SeparableSmooth:
    """3-tap [1/4, 1/2, 1/4] smoothing along every spatial axis, zero padded (CuPy/NumPy)."""

    name = "conv3-separable"

    def __call__(self, x):
        xp = sys.modules["cupy"] if is_cupy_array(x) else np
        out = x.astype(xp.float32, copy=True)
        for axis in range(2, x.ndim):
            padded = xp.pad(out, [(1, 1) if a == axis else (0, 0) for a in range(x.ndim)])
            n = x.shape[axis]
            sl = [slice(None)] * x.ndim

            def part(k):
                sl[axis] = slice(k, k + n)
                return padded[tuple(sl)]

            out = 0.25 * part(0) + 0.5 * part(1) + 0.25 * part(2)
        return out


def small_conv(ndim: int, device: str):
    """A small CNN: torch when installed, else :class:`SeparableSmooth`."""
    try:
        import torch
    except ImportError:
        return SeparableSmooth(), "conv3-separable (torch not installed)"
    conv = torch.nn.Conv2d if ndim == 2 else torch.nn.Conv3d
    torch.manual_seed(0)
    model = torch.nn.Sequential(conv(1, 8, 3, padding=1), torch.nn.ReLU(), conv(8, 1, 3, padding=1)).eval()
    if device == "gpu":
        model = model.cuda()
    return model, f"torch-cnn{ndim}d(1-8-1, 3x3)"


# --------------------------------------------------------------------------------------
# baselines
# --------------------------------------------------------------------------------------


def _tiles(shape, tile, overlap):
    axes = [tile_axis(n, p, o) for n, p, o in zip(shape, tile, overlap)]
    return list(itertools.product(*[list(map(tuple, a.tolist())) for a in axes]))


def _extract(xp, image, combo, tile):
    """Zero-padded read of one tile of a (C, *spatial) image."""
    patch = xp.zeros((image.shape[0], *tile), dtype=xp.float32)
    src, dst = [slice(None)], [slice(None)]
    for (c, *_), p, n in zip(combo, tile, image.shape[1:]):
        lo, hi = max(c, 0), min(c + p, n)
        src.append(slice(lo, hi))
        dst.append(slice(lo - c, hi - c))
    patch[tuple(dst)] = image[tuple(src)]
    return patch


def _window_weight(table, combo, tile, shape):
    """Per-tile separable window (clipped to the image), as float32 NumPy."""
    w = None
    src = []
    for d, ((c, *_), p, n) in enumerate(zip(combo, tile, shape)):
        flag = int(c <= 0) + 2 * int(c + p >= n)
        lo, hi = max(c, 0), min(c + p, n)
        axis_w = table[d, flag, lo - c : hi - c]
        s = [1] * len(tile)
        s[d] = hi - lo
        axis_w = axis_w.reshape(s)
        w = axis_w if w is None else w * axis_w
        src.append(slice(lo - c, hi - c))
    return w.astype(np.float32), src


def careamics_path(runner, image, tile, overlap, batch_size, blend, device):
    """Per-tile NumPy extraction, batched model, per-tile NumPy stitching (host)."""
    combos = _tiles(image.shape[1:], tile, overlap)
    table = window_table(tile, overlap, blend) if blend != "crop" else None
    out = None
    weights = None
    stitch_s = 0.0
    for start in range(0, len(combos), batch_size):
        chunk = combos[start : start + batch_size]
        batch = np.stack([_extract(np, image, c, tile) for c in chunk])
        if device == "gpu":
            import cupy

            pred = cupy.asnumpy(runner(cupy.asarray(batch)))
        else:
            pred = np.asarray(runner(batch))
        t0 = time.perf_counter()
        if out is None:
            out = np.zeros((pred.shape[1], *image.shape[1:]), np.float32)
            if table is not None:
                weights = np.zeros((1, *image.shape[1:]), np.float32)
        for combo, tile_pred in zip(chunk, pred):
            if table is None:  # stitch_prediction: copy the kept region
                src = (slice(None),) + tuple(slice(cr, cr + sz) for _, cr, sz, _ in combo)
                dst = (slice(None),) + tuple(slice(sc, sc + sz) for _, _, sz, sc in combo)
                out[dst] = tile_pred[src]
            else:
                w, src = _window_weight(table, combo, tile, image.shape[1:])
                dst = tuple(slice(max(c, 0), max(c, 0) + s.stop - s.start) for (c, *_), s in zip(combo, src))
                out[(slice(None), *dst)] += w[None] * tile_pred[(slice(None), *src)]
                weights[(slice(None), *dst)] += w
        stitch_s += time.perf_counter() - t0
    if weights is not None:
        t0 = time.perf_counter()
        out /= weights
        stitch_s += time.perf_counter() - t0
    return out, stitch_s


def monai_loop(runner, image_gpu, tile, overlap, batch_size, blend):
    """MONAI-style loop on the GPU: per-tile slice/pad, stack, model, per-tile accumulate."""
    import cupy

    combos = _tiles(image_gpu.shape[1:], tile, overlap)
    table = window_table(tile, overlap, "uniform" if blend == "crop" else blend)
    out = count = None
    stitch_s = 0.0
    for start in range(0, len(combos), batch_size):
        chunk = combos[start : start + batch_size]
        batch = cupy.stack([_extract(cupy, image_gpu, c, tile) for c in chunk])
        pred = runner(batch)
        cupy.cuda.get_current_stream().synchronize()
        t0 = time.perf_counter()
        if out is None:
            out = cupy.zeros((pred.shape[1], *image_gpu.shape[1:]), cupy.float32)
            count = cupy.zeros((1, *image_gpu.shape[1:]), cupy.float32)
        for combo, tile_pred in zip(chunk, pred):
            w, src = _window_weight(table, combo, tile, image_gpu.shape[1:])
            w = cupy.asarray(w)
            dst = tuple(slice(max(c, 0), max(c, 0) + s.stop - s.start) for (c, *_), s in zip(combo, src))
            out[(slice(None), *dst)] += w[None] * tile_pred[(slice(None), *src)].astype(cupy.float32)
            count[(slice(None), *dst)] += w
        cupy.cuda.get_current_stream().synchronize()
        stitch_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    out /= count
    cupy.cuda.get_current_stream().synchronize()
    return out, stitch_s + time.perf_counter() - t0


def copy_roof(image_gpu, out_bytes):
    """Seconds for a device copy of the input bytes plus one of the output bytes."""
    import cupy

    src_out = cupy.empty(out_bytes // 4, cupy.float32)
    dst_out = cupy.empty_like(src_out)
    dst_in = cupy.empty_like(image_gpu)
    best = float("inf")
    for _ in range(3):
        cupy.cuda.get_current_stream().synchronize()
        t0 = time.perf_counter()
        dst_in[...] = image_gpu
        dst_out[...] = src_out
        cupy.cuda.get_current_stream().synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


# --------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------


def _sync(device):
    if device == "gpu":
        import cupy

        cupy.cuda.get_current_stream().synchronize()


def _gpu_pool_reset(device):
    if device == "gpu":
        import cupy

        cupy.cuda.get_current_stream().synchronize()
        cupy.get_default_memory_pool().free_all_blocks()


def _gpu_pool_peak(device):
    if device != "gpu":
        return None
    import cupy

    # The pool keeps what it allocated until freed: its size after a run is the peak.
    return int(cupy.get_default_memory_pool().total_bytes())


def _cases(device: str, quick: bool):
    if device == "gpu":
        if quick:
            return [("2d", (2048, 2048), (256, 256), (32, 32), 16), ("3d", (64, 256, 256), (32, 128, 128), (8, 16, 16), 4)]
        return [("2d", (8192, 8192), (256, 256), (32, 32), 16), ("3d", (256, 1024, 1024), (32, 128, 128), (8, 16, 16), 4)]
    if quick:
        return [("2d", (512, 512), (128, 128), (16, 16), 8), ("3d", (32, 96, 96), (16, 64, 64), (4, 8, 8), 4)]
    return [("2d", (2048, 2048), (256, 256), (32, 32), 8), ("3d", (64, 256, 256), (32, 128, 128), (8, 16, 16), 4)]


def run(device: str, quick: bool, repeats: int, model_kinds=("identity", "conv")):
    import tqdm  # noqa: F401  (imported here so the first timed run does not pay for it)

    rows = []
    for name, shape, tile, overlap, batch in _cases(device, quick):
        t0 = time.perf_counter()
        image = sample_image(shape, seed=1)
        print(f"# {name} image {shape} uint16 generated in {time.perf_counter() - t0:.1f} s", flush=True)
        image_sc = image[None, None]  # SC(Z)YX
        models = [(identity, "identity")] if "identity" in model_kinds else []
        if "conv" in model_kinds:
            models.append(small_conv(len(shape), device))
        image_gpu = None
        if device == "gpu":
            import cupy

            image_gpu = cupy.asarray(image_sc)
        for (model, model_name), blend in itertools.product(models, ["crop", "hann"]):
            runner = ModelRunner(model, device)
            common = dict(
                shape=list(shape), tile=list(tile), overlap=list(overlap), batch_size=batch, blend=blend, model=model_name
            )
            # cupatch, input already on the working device (host NumPy on the CPU).
            data = image_gpu[0, 0] if image_gpu is not None else image
            axes = "ZYX"[3 - len(shape) :]
            kwargs = dict(axes=axes, tile_size=tile, overlaps=overlap, batch_size=batch, blend=blend, device=device, progress=False)
            run_prediction(model, data, **kwargs)  # warm-up (kernels, allocator)
            best, result = float("inf"), None
            _gpu_pool_reset(device)
            for _ in range(repeats):
                _sync(device)
                t0 = time.perf_counter()
                result, stats = run_prediction(model, data, **kwargs)
                _sync(device)
                best = min(best, time.perf_counter() - t0)
            peak = _gpu_pool_peak(device)
            _, timed = run_prediction(model, data, timing=True, **kwargs)
            busy = timed.gather_s + timed.model_s + timed.stitch_s
            rows.append(
                dict(
                    common, method="cupatch", seconds=best, tiles=stats.n_tiles, tiles_per_s=stats.n_tiles / best,
                    stitch_share=timed.stitch_s / busy if busy else None,
                    gather_share=timed.gather_s / busy if busy else None,
                    model_share=timed.model_s / busy if busy else None, peak_gpu_bytes=peak,
                )
            )  # fmt: skip
            reference = result.get() if hasattr(result, "get") else np.asarray(result)
            print(_fmt_row(rows[-1]), flush=True)
            del result

            # cupatch streaming into a host array (slabs; pinned copies on the GPU).
            host_out = np.empty(reference.shape, np.float32)
            _gpu_pool_reset(device)
            _sync(device)
            t0 = time.perf_counter()
            run_prediction(model, data, out=host_out, **kwargs)
            _sync(device)
            seconds = time.perf_counter() - t0
            rows.append(
                dict(
                    common, method="cupatch-stream", seconds=seconds, tiles=stats.n_tiles,
                    tiles_per_s=stats.n_tiles / seconds, peak_gpu_bytes=_gpu_pool_peak(device),
                    max_abs_diff=float(np.max(np.abs(host_out - reference))),
                )
            )  # fmt: skip
            print(_fmt_row(rows[-1]), flush=True)
            del host_out

            # CAREamics-style CPU path.
            t0 = time.perf_counter()
            out, stitch_s = careamics_path(runner, image_sc[0], tile, overlap, batch, blend, device)
            seconds = time.perf_counter() - t0
            diff = float(np.max(np.abs(out[0] - reference)))
            rows.append(
                dict(
                    common, method="careamics-cpu", seconds=seconds, tiles=stats.n_tiles,
                    tiles_per_s=stats.n_tiles / seconds, stitch_share=stitch_s / seconds, max_abs_diff=diff,
                )
            )  # fmt: skip
            print(_fmt_row(rows[-1]), flush=True)

            if device == "gpu":
                import cupy

                _gpu_pool_reset(device)
                t0 = time.perf_counter()
                out, stitch_s = monai_loop(runner, image_gpu[0], tile, overlap, batch, blend)
                seconds = time.perf_counter() - t0
                peak = _gpu_pool_peak(device)
                rows.append(
                    dict(
                        common, method="monai-loop", seconds=seconds, tiles=stats.n_tiles,
                        tiles_per_s=stats.n_tiles / seconds, stitch_share=stitch_s / seconds, peak_gpu_bytes=peak,
                        max_abs_diff=float(cupy.max(cupy.abs(out[0] - cupy.asarray(reference)))),
                    )
                )  # fmt: skip
                print(_fmt_row(rows[-1]), flush=True)
                if model_name == "identity":
                    roof = copy_roof(image_gpu, int(np.prod(shape)) * 4)
                    rows.append(
                        dict(
                            common, method="copy-roof", seconds=roof, tiles=stats.n_tiles,
                            tiles_per_s=stats.n_tiles / roof,
                            gbytes_per_s=(2 * image_gpu.nbytes + 2 * int(np.prod(shape)) * 4) / roof / 1e9,
                        )
                    )  # fmt: skip
                    print(_fmt_row(rows[-1]), flush=True)
                del out
        del image_gpu
    return rows


HEADER = f"{'case':<34} {'model':<28} {'blend':<6} {'method':<15} {'time s':>9} {'tiles/s':>10} {'stitch %':>9} {'peak GPU MB':>12}"


def _fmt_row(r):
    case = f"{'x'.join(map(str, r['shape']))} t{'x'.join(map(str, r['tile']))} o{r['overlap'][-1]} b{r['batch_size']}"
    share = "" if r.get("stitch_share") is None else f"{100 * r['stitch_share']:.1f}"
    peak = "" if r.get("peak_gpu_bytes") is None else f"{r['peak_gpu_bytes'] / 2**20:.0f}"
    return (
        f"{case:<34} {r['model'][:28]:<28} {r['blend']:<6} {r['method']:<15} {r['seconds']:>9.3f} "
        f"{r['tiles_per_s']:>10.1f} {share:>9} {peak:>12}"
    )


def _environment(device):
    env = dict(
        python=platform.python_version(), numpy=np.__version__, platform=platform.platform(),
        cpu_count=os.cpu_count(), processor=platform.processor() or platform.machine(), device=device,
    )  # fmt: skip
    try:
        from cupatch._backend import build_info

        env["build_info"] = build_info()
    except Exception as exc:  # the report is still useful without it
        env["build_info"] = f"unavailable: {exc}"
    if device == "gpu":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        env["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        env["cupy"] = cupy.__version__
    try:
        import torch

        env["torch"] = torch.__version__
    except ImportError:
        env["torch"] = None
    return env


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small images (a smoke run)")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    parser.add_argument("--repeats", type=int, default=2, help="timed cupatch runs per case (best is kept)")
    parser.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--models", nargs="+", choices=("identity", "conv"), default=["identity", "conv"])
    parser.add_argument("--tag", default=None, help="file name prefix (default: gpu name or cpu-<cores>core)")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    env = _environment(device)
    print(f"# device: {device}; {'quick' if args.quick else 'full'} sizes "
          f"({'GPU: 8192^2 and 256x1024^2' if device == 'gpu' else 'CPU: reduced sizes'})")  # fmt: skip
    print(HEADER)
    rows = run(device, args.quick, args.repeats, tuple(args.models))
    tag = args.tag or (
        env.get("gpu", "gpu").lower().replace(" ", "-") if device == "gpu" else f"cpu-{os.cpu_count()}core"
    )
    stem = f"{tag}-{_dt.date.today().isoformat()}-inference{'-quick' if args.quick else ''}"
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = dict(benchmark="bench_inference", quick=args.quick, environment=env, rows=rows)
    (out_dir / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    table = "\n".join([HEADER, *(_fmt_row(r) for r in rows)])
    (out_dir / f"{stem}.txt").write_text(
        f"# bench_inference on {device} ({env.get('gpu', env['processor'])}, {env['cpu_count']} cores), "
        f"{'quick' if args.quick else 'full'} sizes\n{table}\n"
    )
    print(f"# wrote {out_dir / stem}.{{json,txt}}")


if __name__ == "__main__":
    main()
