"""Specs per second of every patching strategy: vectorised ``spec_table`` vs a per-index
``get_patch_spec`` loop (ours and, where it can be imported, CAREamics').

Run::

    python benchmarks/bench_patching.py                      # ours only
    python benchmarks/bench_patching.py --careamics-path DIR # DIR holds a `careamics` package

CAREamics' patching modules only need NumPy; ``--careamics-path`` loads them from an
unpacked wheel (``pip install --no-deps --target DIR careamics``) without importing the
rest of CAREamics (torch, lightning). The script prints a table and writes JSON (machine,
versions, shapes, numbers) plus the table as text to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import sys
import time
import types
from pathlib import Path

import numpy as np

import cupatch  # noqa: E402
from cupatch.patching import (  # noqa: E402
    FixedRandomPatching,
    RandomPatching,
    SequentialPatching,
    StratifiedPatching,
    TiledPatching,
    WeightedPatching,
    WholeSamplePatching,
)

CAREAMICS_MODULES = {
    "random": ("random_patching", "RandomPatching"),
    "fixed_random": ("random_patching", "FixedRandomPatching"),
    "sequential": ("sequential_patching", "SequentialPatching"),
    "tiled": ("tiled_patching", "TiledPatching"),
    "whole": ("whole_sample_patching", "WholeSamplePatching"),
    "stratified": ("stratified_patching", "StratifiedPatching"),
}


def load_careamics(path: str | None):
    """Return ``(module getter, version)`` for CAREamics' patching modules, or ``(None, None)``."""
    try:
        import careamics.dataset.patching  # noqa: F401

        version = getattr(sys.modules["careamics"], "__version__", "unknown")
    except Exception:
        if path is None:
            return None, None
        root = Path(path)
        if not (root / "careamics" / "dataset" / "patching").is_dir():
            print(f"no careamics package under {root}", file=sys.stderr)
            return None, None
        # namespace stubs so that only the NumPy-only patching modules are executed
        for name, sub in [
            ("careamics", "careamics"),
            ("careamics.dataset", "careamics/dataset"),
            ("careamics.dataset.patching", "careamics/dataset/patching"),
        ]:
            stub = types.ModuleType(name)
            stub.__path__ = [str(root / sub)]
            sys.modules.setdefault(name, stub)
        dist = sorted(root.glob("careamics-*.dist-info"))
        version = dist[-1].name.removeprefix("careamics-").removesuffix(".dist-info") if dist else "unknown"

    def get(kind: str):
        module, cls = CAREAMICS_MODULES[kind]
        return getattr(importlib.import_module(f"careamics.dataset.patching.{module}"), cls)

    try:
        get("random")
    except Exception as exc:  # pragma: no cover - depends on the installed version
        print(f"CAREamics patching not importable: {exc}", file=sys.stderr)
        return None, None
    return get, version


CASES = {
    # name: (constructor args, constructor kwargs)
    "random": ([(64, 1, 1024, 1024)], (64, 64)),
    "fixed_random": ([(64, 1, 1024, 1024)], (64, 64)),
    "stratified": ([(64, 1, 1024, 1024)], (64, 64)),
    "sequential": ([(64, 1, 1024, 1024)], (64, 64), (16, 16)),
    "tiled": ([(1, 1, 14_000, 14_000)], (32, 32), (4, 4)),
    "whole": ([(64, 1, 1024, 1024)] * 50,),
    # a 20% foreground mask at a quarter of the resolution, shared by the 64 samples
    "weighted": ([(64, 1, 1024, 1024)], (64, 64)),
}
WEIGHTS = np.random.default_rng(0).random((256, 256)) < 0.2
OURS = {
    "random": lambda a: RandomPatching(*a, seed=1),
    "fixed_random": lambda a: FixedRandomPatching(*a, seed=1),
    "stratified": lambda a: StratifiedPatching(*a, seed=1),
    "sequential": lambda a: SequentialPatching(*a),
    "tiled": lambda a: TiledPatching(*a),
    "whole": lambda a: WholeSamplePatching(*a),
    "weighted": lambda a: WeightedPatching(*a, WEIGHTS, seed=1),
}


def timed(fn, repeat: int = 3):
    """Best-of-``repeat`` wall time and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--careamics-path", default=os.environ.get("CAREAMICS_PATH"))
    parser.add_argument("--table-size", type=int, default=1_000_000, help="indices per spec_table call")
    parser.add_argument("--loop-size", type=int, default=20_000, help="indices per get_patch_spec loop")
    parser.add_argument("--out-dir", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()

    careamics_get, careamics_version = load_careamics(args.careamics_path)
    rng = np.random.default_rng(0)
    rows = []
    for name, case in CASES.items():
        t_build, ours = timed(lambda: OURS[name](case), repeat=1)
        n = ours.n_patches
        idx = rng.integers(0, n, args.table_size)
        t_table, table = timed(lambda: ours.spec_table(idx))
        loop_idx = rng.integers(0, n, min(args.loop_size, args.table_size)).tolist()
        t_loop, _ = timed(lambda: [ours.get_patch_spec(i) for i in loop_idx], repeat=1)
        row = {
            "strategy": name,
            "data_shapes": [list(s) for s in case[0][:3]] + ([f"... x{len(case[0])}"] if len(case[0]) > 3 else []),
            "args": [list(a) for a in case[1:]],
            "n_patches": n,
            "build_s": t_build,
            "table_indices": len(idx),
            "table_s": t_table,
            "table_specs_per_s": len(idx) / t_table,
            "loop_indices": len(loop_idx),
            "loop_specs_per_s": len(loop_idx) / t_loop,
        }
        if careamics_get is not None and name in CAREAMICS_MODULES:  # CAREamics has no weighted sampling
            cls = careamics_get(name)
            kwargs = {"seed": 1} if name in ("random", "fixed_random", "stratified") else {}
            t_cbuild, theirs = timed(lambda: cls(*case, **kwargs), repeat=1)
            assert theirs.n_patches == n, (name, theirs.n_patches, n)
            t_cloop, _ = timed(lambda: [theirs.get_patch_spec(i) for i in loop_idx], repeat=1)
            row |= {"careamics_build_s": t_cbuild, "careamics_loop_specs_per_s": len(loop_idx) / t_cloop}
            del theirs
        rows.append(row)
        print(f"{name:>12}: table {row['table_specs_per_s']:.3g} specs/s, loop {row['loop_specs_per_s']:.3g} specs/s")

    header = f"{'strategy':>12} {'n_patches':>10} {'build s':>8} {'spec_table /s':>14} {'loop /s':>10} {'table/loop':>10}"
    if careamics_get is not None:
        header += f" {'CAREamics build s':>17} {'CAREamics loop /s':>17} {'table/CAREamics':>15}"
    lines = [header, "-" * len(header)]
    for r in rows:
        line = (
            f"{r['strategy']:>12} {r['n_patches']:>10} {r['build_s']:>8.3f} {r['table_specs_per_s']:>14.3g} "
            f"{r['loop_specs_per_s']:>10.3g} {r['table_specs_per_s'] / r['loop_specs_per_s']:>10.0f}"
        )
        if "careamics_loop_specs_per_s" in r:
            line += (
                f" {r['careamics_build_s']:>17.3f} {r['careamics_loop_specs_per_s']:>17.3g}"
                f" {r['table_specs_per_s'] / r['careamics_loop_specs_per_s']:>15.0f}"
            )
        lines.append(line)
    table_text = "\n".join(lines)
    print()
    print(table_text)

    today = datetime.date.today().isoformat()
    cores = os.cpu_count()
    stem = f"cpu-{cores}core-{today}-patching"
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = {
        "benchmark": "patching",
        "date": today,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": cores,
            "device": "cpu",
        },
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cupatch": cupatch.__version__,
            "careamics": careamics_version,
        },
        "notes": "spec_table: one vectorised call on random indices (with repeats); loop: get_patch_spec per index. "
        "Times are best of 3 for spec_table, single run for loops and construction. CAREamics' fixed_random, "
        "sequential, tiled and whole strategies pre-build a list of dicts (their loop is a list lookup); ours "
        "compute specs on demand. Compare ratios from the same run only: the machine may be shared.",
        "results": rows,
    }
    (out_dir / f"{stem}.json").write_text(json.dumps(info, indent=2) + "\n")
    (out_dir / f"{stem}.txt").write_text(
        f"cupatch patching benchmark, {today}, {platform.platform()}, {cores} cores, numpy {np.__version__}, "
        f"CAREamics {careamics_version}\n\n{table_text}\n"
    )
    print(f"\nwrote {out_dir / stem}.json and .txt")


if __name__ == "__main__":
    main()
