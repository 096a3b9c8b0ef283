"""Check that the emulated lane can fail: deliberately broken kernels must be caught.

Each mutant is one textual change to a CUDA source (a lane that skips elements, a removed
barrier, a missing shared-memory initialisation, a thread that skips a barrier). For each,
the C++ differential test is rebuilt in a scratch copy of cpp/ and run with the fiber
executor in ascending, descending and shuffled order; the mutant counts as caught when any
order fails (a mismatch, or the emulation aborting on a barrier/ballot misuse). Exits
non-zero if a mutant survives or a mutation no longer applies to the sources.

    python scripts/emulated_mutants.py [--build-dir build/emulated-mutants]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # relative to the repo root
    old: str
    new: str


MUTANTS = (
    Mutant("gather: a lane skips elements of rows wider than 40", "cpp/src/cuda/gather_cuda.cuh",
           "for (int qx = L.x0; qx < width; qx += L.group) {",
           "for (int qx = L.x0; qx < width; qx += L.group + (width > 40)) {"),
    Mutant("crop: the last element of each row is not stored", "cpp/src/cuda/stitch_cuda.cu",
           "if (tx >= lo[j] && tx < hi[j]) dst[j][tx - lo[j]] = v[j];",
           "if (tx >= lo[j] && tx + 1 < hi[j]) dst[j][tx - lo[j]] = v[j];"),
    Mutant("blend: barrier after the candidate count update removed", "cpp/src/cuda/stitch_cuda.cu",
           "            s_count += total;\n        }\n        __syncthreads();",
           "            s_count += total;\n        }\n"),
    Mutant("blend: candidate count never initialised", "cpp/src/cuda/stitch_cuda.cu",
           "    if (tid == 0) s_count = 0;\n", ""),
    Mutant("blend: one thread skips the first barrier", "cpp/src/cuda/stitch_cuda.cu",
           "    if (tid == 0) s_count = 0;\n    __syncthreads();",
           "    if (tid == 0) s_count = 0;\n    if (tid != 40) __syncthreads();"),
)


def _configure(src: Path, build: Path) -> None:
    import pybind11

    subprocess.run(
        ["cmake", "-S", str(src), "-B", str(build), "-G", "Ninja", "-DCUPATCH_CUDA=EMULATE", "-DCUPATCH_BUILD_TESTS=ON",
         "-DCMAKE_BUILD_TYPE=Release", "-DSKBUILD_PROJECT_NAME=cupatch", "-DSKBUILD_PROJECT_VERSION=0.0.0",
         f"-Dpybind11_DIR={pybind11.get_cmake_dir()}", f"-DPython_EXECUTABLE={sys.executable}"],
        check=True, capture_output=True, text=True)


def _caught(exe: Path) -> tuple[bool, str]:
    for order in ("ascending", "descending", "shuffled"):
        env = dict(os.environ, CUPATCH_EMULATE_ORDER=order, CUPATCH_EMULATE_SEED="3")
        run = subprocess.run([str(exe), "--cases", "2", "--small"], capture_output=True, text=True, env=env, timeout=600)
        if run.returncode != 0:
            last = (run.stderr.strip() or run.stdout.strip()).splitlines()[-1:]
            return True, f"{order}: {last[0] if last else f'exit {run.returncode}'}"
    return False, "passed in every order"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build" / "emulated-mutants")
    args = parser.parse_args(argv)
    src = args.build_dir / "src"
    build = args.build_dir / "build"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    # Plain copies: fresh modification times, so objects built from an earlier run's mutant
    # are always rebuilt.
    shutil.copytree(ROOT / "cpp", src / "cpp", copy_function=shutil.copyfile)
    shutil.copyfile(ROOT / "CMakeLists.txt", src / "CMakeLists.txt")
    if not (build / "build.ninja").exists():
        _configure(src, build)
    # The unmutated sources must pass, or "caught" below would mean nothing.
    subprocess.run(["cmake", "--build", str(build), "--target", "emulated_diff"], check=True, capture_output=True, text=True)
    failed, how = _caught(build / "emulated_diff")
    if failed:
        print(f"BASELINE the unmutated differential test fails ({how})")
        return 1
    survivors = 0
    for m in MUTANTS:
        target = src / m.file
        original = (ROOT / m.file).read_text()
        if original.count(m.old) != 1:
            print(f"STALE    {m.name}: the text to mutate is not found exactly once in {m.file}")
            survivors += 1
            continue
        target.write_text(original.replace(m.old, m.new))
        try:
            subprocess.run(["cmake", "--build", str(build), "--target", "emulated_diff"], check=True, capture_output=True,
                           text=True)
            caught, how = _caught(build / "emulated_diff")
        finally:
            target.write_text(original)
        print(f"{'caught' if caught else 'SURVIVED':<8} {m.name} ({how})")
        survivors += not caught
    print(f"mutants: {len(MUTANTS) - survivors} of {len(MUTANTS)} caught")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
