"""Register, spill, stack and shared-memory figures of every CUDA kernel, from ptxas.

Compiles each ``cpp/src/cuda/*.cu`` with the flags of the real build (C++17,
``--fmad=false``) for one architecture and ``-Xptxas -v``, and writes one row per kernel
instantiation. No GPU is needed; nvcc is. These are compile-time resource figures, not
timings: they bound occupancy (registers and shared memory per block) and show spills.

    python benchmarks/ptxas_report.py --arch 90 --out benchmarks/results/ptxas-sm_90-2026-12-01
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CUDA = ROOT / "cpp" / "src" / "cuda"

_ENTRY = re.compile(r"Compiling entry function '(\S+)' for '(\S+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers(?:, used (\d+) barriers)?(?:, \d+ bytes cumulative stack size)?(?:, (\d+) bytes smem)?")


def _demangle(names: list[str]) -> list[str]:
    tool = shutil.which("cu++filt") or shutil.which("c++filt")
    if tool is None:
        return names
    out = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def kernel_resources(source: Path, arch: str, nvcc: str) -> list[dict]:
    """ptxas figures of every entry function compiled from ``source``."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [nvcc, "-std=c++17", f"-arch=sm_{arch}", "--fmad=false", "-Xptxas", "-v", f"-I{ROOT / 'cpp' / 'include'}",
               "-c", str(source), "-o", str(Path(tmp) / "k.o")]
        run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"nvcc failed on {source.name}:\n{run.stderr[-3000:]}")
    rows, row = [], None
    for line in run.stderr.splitlines():
        if m := _ENTRY.search(line):
            row = {"file": source.name, "mangled": m.group(1), "arch": m.group(2)}
            rows.append(row)
        elif row is not None and (m := _FRAME.search(line)):
            row.update(stack_frame_bytes=int(m[1]), spill_store_bytes=int(m[2]), spill_load_bytes=int(m[3]))
        elif row is not None and (m := _USED.search(line)):
            row.update(registers=int(m[1]), barriers=int(m[2] or 0), shared_bytes=int(m[3] or 0))
    for r, name in zip(rows, _demangle([r["mangled"] for r in rows])):
        r["kernel"] = re.sub(r"\(anonymous namespace\)::|cupatch::", "", name)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="90", help="SM architecture, e.g. 90 (default)")
    parser.add_argument("--out", type=Path, required=True, help="output path without suffix (.json and .txt are written)")
    parser.add_argument("--nvcc", default=shutil.which("nvcc") or "nvcc")
    args = parser.parse_args(argv)
    nvcc_version = subprocess.run([args.nvcc, "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
    rows = [r for source in sorted(CUDA.glob("*.cu")) for r in kernel_resources(source, args.arch, args.nvcc)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"nvcc": nvcc_version, "kernels": rows}, indent=1) + "\n")
    lines = [f"ptxas resources, sm_{args.arch}, {nvcc_version}, flags -std=c++17 --fmad=false",
             f"{'kernel':<72} {'regs':>4} {'smem B':>7} {'stack B':>7} {'spill st':>8} {'spill ld':>8}"]
    for r in rows:
        lines.append(f"{r['kernel'][:72]:<72} {r.get('registers', 0):>4} {r.get('shared_bytes', 0):>7} "
                     f"{r.get('stack_frame_bytes', 0):>7} {r.get('spill_store_bytes', 0):>8} {r.get('spill_load_bytes', 0):>8}")
    args.out.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
