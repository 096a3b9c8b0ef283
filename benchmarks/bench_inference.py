"""End-to-end tiled inference: cupatch against MONAI and CAREamics, in one process.

Every method gets the same float32 image, tile size, overlap, batch size and model:

* ``model-only``: the model alone on the same number of tiles (batches of ``batch``
  pre-cut tiles): the floor for any method that runs the model tile by tile.
* ``cupatch crop`` / ``uniform`` / ``gaussian`` / ``hann``: :func:`cupatch.inference.run_prediction`.
* ``monai constant`` / ``monai gaussian``: ``monai.inferers.sliding_window_inference``
  (overlap = overlap / tile per axis), when MONAI is importable.
* ``careamics``: CAREamics' prediction path (tiling → DataLoader → model →
  ``stitch_prediction``, see ``_peers.py``), when importable.

Models: ``identity`` and a small torch CNN (2D: 1→16→1, 3D: 1→8→1 channels, 3×3(×3)
kernels, zero padding). ``max error`` is the largest absolute difference from whole-image
inference (the model on the whole image, computed in slabs with a halo the CNN cannot see
past). Timing is round-robin: each round runs every method once, in turn, so that load from
other processes spreads over all methods; the table reports the minimum and the median,
and each ratio also as the median over rounds of the ratio within a round ("paired").
``uptime`` is recorded before and after.

Forward hooks on the model time the model's own calls inside every method, so each method's
time *outside the model* (gathering, stitching, its Python) is measured apart from the
model's, whose time varies from round to round far more than that outside time on a small
machine. ``outside`` ratios compare (model-only + the method's outside time) with
model-only, in the same round.

``--keep-freed-memory`` makes glibc keep freed memory for reuse instead of returning it
to the system (``mallopt``, as ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...:
glibc.malloc.trim_threshold=...`` would): a CPU torch model then no longer page-faults its
activations in on every call, runs several times faster, and whatever a method adds
beside it weighs that much more.

Usage::

    python benchmarks/bench_inference.py [--quick] [--rounds N] [--device auto|cpu|gpu]
        [--keep-freed-memory] [--out-dir DIR] [--readme README.md]

writes ``<tag>-<date>-inference[-keepfreed].{json,txt,md,png}`` (``--readme``: also
replaces the table and figure between the ``bench_inference`` markers of the README).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import add_result_arguments, default_tag, machine_info  # noqa: E402
from _peers import load_careamics, load_monai  # noqa: E402

from cupatch._sample import sample_image  # noqa: E402
from cupatch.inference import resolve_device, run_prediction  # noqa: E402
from cupatch.patching.tiled import tile_axis  # noqa: E402

CUPATCH_MODES = ("crop", "uniform", "gaussian", "hann")
MARK_BEGIN, MARK_END = "<!-- bench_inference:begin -->", "<!-- bench_inference:end -->"


def _cases(quick: bool):
    """(name, shape, tile, overlap, batch)."""
    if quick:
        return [("2d", (1024, 1024), (256, 256), (32, 32), 16), ("3d", (32, 256, 256), (32, 128, 128), (8, 32, 32), 4)]
    return [("2d", (4096, 4096), (256, 256), (32, 32), 16), ("3d", (64, 512, 512), (32, 128, 128), (8, 32, 32), 4)]


# --------------------------------------------------------------------------------------
# models and references
# --------------------------------------------------------------------------------------


def make_model(kind: str, ndim: int, device: str):
    import torch

    if kind == "identity":
        return torch.nn.Identity(), "identity"
    conv = torch.nn.Conv2d if ndim == 2 else torch.nn.Conv3d
    hidden = 16 if ndim == 2 else 8
    torch.manual_seed(0)
    model = torch.nn.Sequential(conv(1, hidden, 3, padding=1), torch.nn.ReLU(), conv(hidden, 1, 3, padding=1)).eval()
    return (model.cuda() if device == "gpu" else model), f"cnn {ndim}d 1-{hidden}-1"


def whole_image(model, image, device, halo: int = 4, slab: int = 256) -> np.ndarray:
    """The model on the whole image, in slabs along the first axis with a halo wider than
    the CNN's reach (2 voxels), so the result is that of one whole-image call."""
    import torch

    n0, out = image.shape[0], np.empty(image.shape, np.float32)
    with torch.no_grad():
        for lo in range(0, n0, slab):
            hi = min(n0, lo + slab)
            a, b = max(0, lo - halo), min(n0, hi + halo)
            x = torch.from_numpy(np.ascontiguousarray(image[a:b]))[None, None]
            y = model(x.cuda() if device == "gpu" else x)[0, 0].cpu().numpy()
            out[lo:hi] = y[lo - a : lo - a + hi - lo]
    return out


def n_tiles(shape, tile, overlap) -> int:
    return int(np.prod([len(tile_axis(n, t, o)) for n, t, o in zip(shape, tile, overlap)]))


def model_only(model, image, tile, overlap, batch, device):
    """The model on n_tiles tiles (batches cut from the image once, outside the timing)."""
    import torch

    count = n_tiles(image.shape, tile, overlap)
    tiles = np.zeros((batch, 1, *tile), np.float32)
    region = tuple(slice(0, min(t, n)) for t, n in zip(tile, image.shape))
    tiles[(slice(None), 0, *region)] = image[region]
    x = torch.from_numpy(tiles)
    x = x.cuda() if device == "gpu" else x

    def run():
        with torch.no_grad():
            for start in range(0, count, batch):
                y = model(x[: min(batch, count - start)])
                if device == "gpu":
                    torch.cuda.synchronize()
        return y

    return run


class ModelClock:
    """Total time spent inside ``model``'s forward calls, from forward hooks.

    On the GPU the hooks record CUDA events (no synchronisation added); ``seconds()`` then
    synchronises and sums the intervals."""

    def __init__(self, model, device: str):
        import torch

        self._torch, self._gpu = torch, device == "gpu"
        self._cpu_s, self._start, self._events = 0.0, 0.0, []
        self._handles = [model.register_forward_pre_hook(self._before), model.register_forward_hook(self._after)]

    def _before(self, module, args):
        if self._gpu:
            self._events.append([self._torch.cuda.Event(enable_timing=True), self._torch.cuda.Event(enable_timing=True)])
            self._events[-1][0].record()
        else:
            self._start = time.perf_counter()

    def _after(self, module, args, output):
        if self._gpu:
            self._events[-1][1].record()
        else:
            self._cpu_s += time.perf_counter() - self._start

    def reset(self) -> None:
        self._cpu_s, self._events = 0.0, []

    def seconds(self) -> float:
        if not self._gpu:
            return self._cpu_s
        self._torch.cuda.synchronize()
        return sum(a.elapsed_time(b) for a, b in self._events) / 1e3

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def keep_freed_memory() -> bool:
    """glibc keeps freed blocks of up to 1 GiB for reuse (never mapped anew per call, the
    heap never trimmed). False where this is not glibc."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


# --------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------


def _methods(model, image, tile, overlap, batch, device, monai, careamics):
    axes = "ZYX"[3 - image.ndim :]
    data = image
    if device == "gpu":
        import cupy

        data = cupy.asarray(image)

    def cupatch(mode):
        def run():
            out, _ = run_prediction(
                model, data, axes=axes, tile_size=tile, overlaps=overlap, batch_size=batch, blend=mode, device=device,
                progress=False,
            )  # fmt: skip
            return out.get() if hasattr(out, "get") else np.asarray(out)

        return run

    methods = {"model-only": model_only(model, image, tile, overlap, batch, device)}
    methods.update({f"cupatch {m}": cupatch(m) for m in CUPATCH_MODES})
    if monai is not None:
        for mode in ("constant", "gaussian"):
            methods[f"monai {mode}"] = lambda mode=mode: monai(model, image, tile, overlap, batch, mode, device)
    if careamics is not None:
        methods["careamics"] = lambda: careamics(model, image, tile, overlap, batch, device)
    return methods


def run(device: str, quick: bool, rounds: int, model_kinds):
    import torch

    monai, monai_why = load_monai()
    careamics, careamics_why = load_careamics()
    skipped = {k: v for k, v in (("monai", monai_why), ("careamics", careamics_why)) if v}
    for peer, why in skipped.items():
        print(f"# {peer} rows skipped: {why}", flush=True)
    rows = []
    for name, shape, tile, overlap, batch in _cases(quick):
        image = (sample_image(shape, seed=1).astype(np.float32) / np.float32(65535)).astype(np.float32)
        for kind in model_kinds:
            model, model_name = make_model(kind, len(shape), device)
            reference = whole_image(model, image, device)
            methods = _methods(model, image, tile, overlap, batch, device, monai, careamics)
            clock = ModelClock(model, device)
            times = {m: [] for m in methods}
            model_times = {m: [] for m in methods}
            errors = {}
            for fn_name, fn in methods.items():  # warm-up, and the error against whole-image inference
                out = fn()
                if fn_name != "model-only":
                    errors[fn_name] = float(np.max(np.abs(np.asarray(out, np.float32).reshape(shape) - reference)))
            for _ in range(rounds):
                for fn_name, fn in methods.items():
                    clock.reset()
                    t0 = time.perf_counter()
                    fn()
                    times[fn_name].append(time.perf_counter() - t0)
                    model_times[fn_name].append(clock.seconds())
            clock.remove()
            for fn_name, ts in times.items():
                rows.append(
                    dict(
                        case=name, shape=list(shape), tile=list(tile), overlap=list(overlap), batch_size=batch,
                        tiles=n_tiles(shape, tile, overlap), model=model_name, kind=kind, method=fn_name,
                        min_s=min(ts), median_s=statistics.median(ts), times_s=ts, max_error=errors.get(fn_name),
                        model_times_s=model_times[fn_name],
                        outside_median_s=statistics.median(t - m for t, m in zip(ts, model_times[fn_name])),
                    )
                )  # fmt: skip
                print(_fmt_row(rows[-1]), flush=True)
            del model
            if device == "gpu":
                torch.cuda.empty_cache()
    return rows, skipped


def ratios(rows):
    """The done-when ratios, per case and model: of the medians, of the minima, the median
    over rounds of the ratio within each round (``paired``), and for ratios to model-only,
    the median over rounds of (model-only + the method's time outside the model) /
    model-only (``outside``: the model's own round-to-round variation left out)."""
    out = []
    groups = {}
    for r in rows:
        groups.setdefault((r["case"], r["kind"]), {})[r["method"]] = r
    for (case, kind), g in groups.items():
        pairs = [("cupatch crop", "monai constant"), ("cupatch uniform", "monai constant"),
                 ("cupatch gaussian", "monai gaussian"), ("cupatch hann", "monai gaussian"),
                 ("cupatch crop", "careamics")]  # fmt: skip
        if kind != "identity":
            pairs += [(f"cupatch {m}", "model-only") for m in CUPATCH_MODES]
        for a, b in pairs:
            if a in g and b in g:
                # the same round's times: both ran next to each other, so machine drift cancels
                per_round = [ta / tb for ta, tb in zip(g[a]["times_s"], g[b]["times_s"])]
                outside = None
                if b == "model-only":
                    outside = statistics.median(
                        (tb + ta - ma) / tb for ta, ma, tb in zip(g[a]["times_s"], g[a]["model_times_s"], g[b]["times_s"])
                    )
                out.append(dict(case=case, kind=kind, ratio=f"{a} / {b}", median=g[a]["median_s"] / g[b]["median_s"],
                                min=g[a]["min_s"] / g[b]["min_s"], paired=statistics.median(per_round),
                                outside=outside))  # fmt: skip
    return out


def _fmt_row(r):
    err = "" if r["max_error"] is None else f"{r['max_error']:.2e}"
    return (f"{r['case']:<4} {r['model']:<18} {r['method']:<18} {r['min_s']:>9.3f} {r['median_s']:>9.3f} "
            f"{r['outside_median_s']:>9.3f} {r['tiles'] / r['median_s']:>9.1f} {err:>10}")  # fmt: skip


HEADER = (f"{'case':<4} {'model':<18} {'method':<18} {'min s':>9} {'median s':>9} {'outside':>9} {'tiles/s':>9} "
          f"{'max error':>10}")  # fmt: skip


def markdown(rows, ratio_rows, env) -> str:
    lines = ["| case | model | method | min s | median s | outside the model, median s | max error vs whole image |",
             "|---|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        err = "" if r["max_error"] is None else f"{r['max_error']:.1e}"
        shape = "×".join(map(str, r["shape"]))
        lines.append(f"| {r['case']} {shape} | {r['model']} | {r['method']} | {r['min_s']:.3f} | {r['median_s']:.3f} | "
                     f"{r['outside_median_s']:.3f} | {err} |")  # fmt: skip
    lines += ["", "| case | model | ratio | median | min | paired | outside |", "|---|---|---|---:|---:|---:|---:|"]
    for q in ratio_rows:
        outside = "" if q.get("outside") is None else f"{q['outside']:.3f}"
        lines.append(f"| {q['case']} | {q['kind']} | {q['ratio']} | {q['median']:.2f} | {q['min']:.2f} | {q['paired']:.2f} "
                     f"| {outside} |")  # fmt: skip
    return "\n".join(lines)


def figure(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["kind"], r["case"]) for r in rows}, key=lambda p: (p[0] != "identity", p[1]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (kind, case) in zip(axes[0], panels):
        sel = [r for r in rows if r["kind"] == kind and r["case"] == case]
        names = [r["method"] for r in sel]
        colors = ["#1f77b4" if n.startswith("cupatch") else "#7f7f7f" if n == "model-only" else "#ff7f0e" for n in names]
        y = np.arange(len(sel))
        ax.barh(y, [r["median_s"] for r in sel], color=colors)
        ax.plot([r["min_s"] for r in sel], y, "k|", markersize=10, label="min")
        ax.set_yticks(y, names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("seconds (bar: median, tick: min)")
        ax.set_title(f"{kind}, {case} {'×'.join(map(str, sel[0]['shape']))}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def update_readme(readme: Path, table: str, image: str, note: str) -> None:
    text = readme.read_text()
    if MARK_BEGIN not in text or MARK_END not in text:
        raise SystemExit(f"{readme} has no {MARK_BEGIN} ... {MARK_END} section to replace")
    head, rest = text.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    body = f"{MARK_BEGIN}\n{note}\n\n{table}\n\n![bench_inference]({image})\n{MARK_END}"
    readme.write_text(head + body + tail)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small images (a smoke run)")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    parser.add_argument("--rounds", type=int, default=3, help="round-robin rounds (min and median over them)")
    parser.add_argument("--models", nargs="+", choices=("identity", "conv"), default=["identity", "conv"])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="glibc keeps freed memory for reuse (mallopt): no page faults per model call")  # fmt: skip
    add_result_arguments(parser)
    parser.add_argument("--readme", default=None, help="README whose bench_inference section is regenerated")
    args = parser.parse_args(argv)

    import torch

    kept = keep_freed_memory() if args.keep_freed_memory else False
    if args.keep_freed_memory and not kept:
        raise SystemExit("--keep-freed-memory needs glibc's mallopt")
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    info = machine_info()
    info.update(keep_freed_memory=kept)
    info.update(torch=torch.__version__, torch_threads=torch.get_num_threads(), uptime_before=_uptime())
    print(f"# device {device}, torch {torch.__version__} with {torch.get_num_threads()} threads; {info['uptime_before']}")
    print(HEADER)
    rows, skipped = run(device, args.quick, args.rounds, tuple(args.models))
    info["uptime_after"] = _uptime()
    ratio_rows = ratios(rows)
    for q in ratio_rows:
        outside = "" if q["outside"] is None else f"  outside {q['outside']:.3f}"
        print(f"# {q['case']} {q['kind']:<8} {q['ratio']:<36} median {q['median']:.2f}  min {q['min']:.2f}  "
              f"paired {q['paired']:.2f}{outside}")  # fmt: skip
    tag = args.tag or default_tag(device, info)
    stem = (f"{tag}-{_dt.date.today().isoformat()}-inference{'-keepfreed' if kept else ''}"
            f"{'-quick' if args.quick else ''}")  # fmt: skip
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = dict(benchmark="bench_inference", quick=args.quick, rounds=args.rounds, environment=info, skipped=skipped,
                  rows=rows, ratios=ratio_rows)  # fmt: skip
    (out_dir / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    table = markdown(rows, ratio_rows, info)
    command = "python benchmarks/bench_inference.py" + (" --keep-freed-memory" if kept else "") + " --readme README.md"
    note = (f"`{command}` on {device} ({info['cpu_count']} cores, torch "
            f"{info['torch_threads']} threads), {args.rounds} round-robin rounds, {_dt.date.today().isoformat()}; "
            f"load before: `{info['uptime_before']}`, after: `{info['uptime_after']}`"
            + "".join(f"; {k} skipped: {v}" for k, v in skipped.items()))  # fmt: skip
    (out_dir / f"{stem}.md").write_text(note + "\n\n" + table + "\n")
    txt = "\n".join([f"# {note}", HEADER, *(_fmt_row(r) for r in rows)])
    (out_dir / f"{stem}.txt").write_text(txt + "\n")
    figure(rows, out_dir / f"{stem}.png")
    if args.readme:
        readme = Path(args.readme)
        image = os.path.relpath(out_dir / f"{stem}.png", readme.resolve().parent)
        update_readme(readme, table, image, note)
    print(f"# wrote {out_dir / stem}.{{json,txt,md,png}}")


if __name__ == "__main__":
    main()
