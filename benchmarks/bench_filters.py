"""Background filtering throughput: ``cupatch.filter_background`` (batched) against CAREamics'
own ``filter_background`` loop (one region at a time), on the same data, in the same run.

Data: a few 2-D 2048x2048 images and a 3-D volume from cupatch's built-in sample (blobs on
a dim background, float32 as CAREamics' in-memory stacks), stratified patching with patch
64 (2-D) or (16, 64, 64) (3-D), so every region is a 2P box. Filters: max, mean/std,
Shannon, and mask (a thresholded copy of the images; CAREamics' ``filter_background_with_mask``).
For each the script checks that both give the same ``n_patches`` and reports regions per
second (best of ``--repeats`` runs) and the ratio. The machine is shared: ``uptime`` is recorded before and after.

Run::

    python benchmarks/bench_filters.py --careamics-path /path/to/unpacked/careamics
    python benchmarks/bench_filters.py --quick        # small sizes (smoke test)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _harness import add_result_arguments, default_tag, format_table, gpu_usable, machine_info, write_results  # noqa: E402

from cupatch import StratifiedPatching, as_stacks, filter_background  # noqa: E402
from cupatch._sample import sample_image  # noqa: E402
from cupatch.filters import MaskPatchFilter, MaxPatchFilter, MeanStdPatchFilter, ShannonPatchFilter  # noqa: E402


def load_careamics(path: str | None):
    """CAREamics' factory, extractor, loader, patching and filter-config modules, or None."""
    import importlib

    names = {
        "filter_bg": "careamics.dataset.factory.filter_bg",
        "extractor": "careamics.dataset.patch_extractor",
        "loader": "careamics.dataset.image_stack_loader",
        "patching": "careamics.dataset.patching",
        "config": "careamics.config.data.patch_filter",
    }
    if path is not None:
        root = Path(path)
        for name, sub in [("careamics", "careamics"), ("careamics.utils", "careamics/utils"),
                          ("careamics.config", "careamics/config"), ("careamics.config.data", "careamics/config/data"),
                          ("careamics.dataset", "careamics/dataset"), ("careamics.dataset.factory", "careamics/dataset/factory")]:
            stub = types.ModuleType(name)
            stub.__path__ = [str(root / sub)]
            sys.modules.setdefault(name, stub)
        utils = sys.modules["careamics.utils"]
        if not hasattr(utils, "get_logger"):
            utils.get_logger = importlib.import_module("careamics.utils.logging").get_logger
    try:
        return {k: importlib.import_module(v) for k, v in names.items()}
    except Exception as exc:
        print(f"CAREamics not importable ({exc!r}): ours only", file=sys.stderr)
        return None


def datasets(quick: bool):
    n2, size2 = (2, 256) if quick else (4, 2048)
    z, yx = (16, 128) if quick else (64, 512)
    # sparse blobs (about half the regions are background) on a dim, noisy background
    images = [sample_image((size2, size2), n_blobs=300 * size2 // 2048, seed=s).astype(np.float32)[None, None]
              for s in range(n2)]
    volume = [sample_image((z, yx, yx), n_blobs=300 * z * yx // (64 * 512), seed=9).astype(np.float32)[None, None]]
    return [
        {"name": f"2d {n2}x{size2}^2", "arrays": images, "axes": "SCYX", "patch": (64, 64) if not quick else (32, 32)},
        {"name": f"3d {z}x{yx}^2", "arrays": volume, "axes": "SCZYX", "patch": (16, 64, 64) if not quick else (8, 32, 32)},
    ]


FILTERS = {
    "max": (MaxPatchFilter(500.0), lambda c: c.MaxPatchFilterConfig(threshold=500.0)),
    "mean_std": (MeanStdPatchFilter(101.0, 20.0), lambda c: c.MeanStdPatchFilterConfig(mean_threshold=101.0, std_threshold=20.0)),
    "shannon": (ShannonPatchFilter(5.6), lambda c: c.ShannonPatchFilterConfig(threshold=5.6)),
    "mask": (MaskPatchFilter(0.05), lambda c: c.MaskPatchFilterConfig(coverage=0.05)),
}


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception as exc:  # pragma: no cover - uptime missing
        return f"unavailable ({exc})"


def run_ours(case, patch_filter, data, xp):
    shapes = [a.shape for a in case["arrays"]]
    strategy = StratifiedPatching(shapes, case["patch"], seed=0)
    stacks = as_stacks([a if xp is np else xp.asarray(a) for a in data], case["axes"])
    if xp is not np:
        xp.cuda.Device().synchronize()
    t0 = time.perf_counter()
    filter_background(strategy, stacks, patch_filter, progress=False)
    return time.perf_counter() - t0, strategy.n_patches


def run_careamics(cm, case, config, data, mask: bool):
    extractor = cm["extractor"].PatchExtractor(cm["loader"].load_arrays(case["arrays"], case["axes"]))
    strategy = cm["patching"].StratifiedPatching(extractor.shapes, case["patch"], seed=0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if mask:
            masks = cm["extractor"].PatchExtractor(cm["loader"].load_arrays(data, case["axes"]))
            cm["filter_bg"].filter_background_with_mask(config, strategy, masks)
        else:
            cm["filter_bg"].filter_background(config, strategy, extractor)
    return time.perf_counter() - t0, strategy.n_patches


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--careamics-path", default=None)
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None, help="best of N runs per side (default 3, quick 1)")
    parser.add_argument("--filters", nargs="*", default=list(FILTERS), choices=list(FILTERS))
    add_result_arguments(parser)
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)

    import logging

    logging.getLogger().setLevel(logging.WARNING)
    ok, why = gpu_usable()
    devices = ["cpu"] + (["gpu"] if ok and args.device in ("auto", "gpu") else [])
    if args.device == "gpu" and not ok:
        print(f"no usable GPU: {why}", file=sys.stderr)
        return 1
    if args.device == "cpu":
        devices = ["cpu"]
    cm = load_careamics(args.careamics_path)
    info = machine_info()
    load_before = uptime()
    rows = []
    for case in datasets(args.quick):
        n_regions = sum(int(np.prod([(n + 1) // p for n, p in zip(a.shape[2:], case["patch"])])) for a in case["arrays"])
        for name in args.filters:
            patch_filter, make_config = FILTERS[name]
            data = [(a > 500).astype(np.float32) for a in case["arrays"]] if name == "mask" else case["arrays"]
            theirs, error = None, None
            if cm:
                try:
                    runs = [run_careamics(cm, case, make_config(cm["config"]), data, name == "mask") for _ in range(repeats)]
                    theirs = (min(r[0] for r in runs), runs[0][1])
                except Exception as exc:  # CAREamics' own failure: recorded, ours still measured
                    error = f"{type(exc).__name__}: {exc}"
            for device in devices:
                xp = np
                if device == "gpu":
                    import cupy as xp
                run_ours(case, patch_filter, data, xp)  # warm-up (imports, first launches)
                runs = [run_ours(case, patch_filter, data, xp) for _ in range(repeats)]
                seconds, n_patches = min(r[0] for r in runs), runs[0][1]
                row = {"data": case["name"], "filter": name, "device": device, "regions": n_regions,
                       "n_patches": n_patches, "seconds": seconds, "regions_per_s": n_regions / seconds}
                if error is not None:
                    row["careamics_error"] = error
                if theirs is not None:
                    if theirs[1] != n_patches:
                        raise AssertionError(f"{case['name']} {name}: n_patches {n_patches} != CAREamics' {theirs[1]}")
                    row.update(careamics_seconds=theirs[0], careamics_regions_per_s=n_regions / theirs[0],
                               speedup=theirs[0] / seconds)
                rows.append(row)
                print(rows[-1], flush=True)
    load_after = uptime()
    columns = [("data", "data", ""), ("filter", "filter", ""), ("device", "device", ""), ("regions", "regions", "d"),
               ("n_patches", "n_patches", "d"), ("regions_per_s", "cupatch regions/s", ".4g"),
               ("careamics_regions_per_s", "CAREamics regions/s", ".4g"), ("speedup", "cupatch/CAREamics", ".1f"),
               ("careamics_error", "CAREamics failed", "")]
    header = (f"cupatch background-filter benchmark, {_dt.date.today()}, {info['platform']}, {info['cpu_count']} cores, "
              f"numpy {info['numpy']}, best of {repeats} runs per side (CAREamics first, then cupatch, per row)\nuptime before: {load_before}\nuptime after:  {load_after}\n")
    table = header + "\n" + format_table(rows, columns)
    print(table)
    tag = args.tag or default_tag("cpu", info)
    stem = f"{tag}-{_dt.date.today()}-filters" + ("-quick" if args.quick else "")
    payload = {"machine": info, "repeats": repeats, "uptime_before": load_before, "uptime_after": load_after, "quick": args.quick,
               "careamics": cm is not None, "results": rows}
    paths = write_results(args.out_dir, stem, payload, table)
    print("wrote", *paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
