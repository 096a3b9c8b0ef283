"""Sanitizer fuzz of the native CPU kernels and the host/device shared maths.

Builds ``cpp/tests/sanitize_fuzz.cpp`` with the CPU kernel sources under AddressSanitizer
and UndefinedBehaviorSanitizer and runs it: random and extreme spec tables must cause no
out-of-bounds access, no signed overflow, and the CPU blend must equal the CUDA per-voxel
scheme bit for bit. Skipped where no C++ compiler with sanitizers is available.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CPU = ROOT / "cpp" / "src" / "cpu"


def _compiler():
    for name in (os.environ.get("CXX"), "g++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


@pytest.mark.slow
def test_cpu_kernels_are_clean_under_asan_and_ubsan(tmp_path):
    cxx = _compiler()
    if cxx is None:
        pytest.skip("no C++ compiler (g++ or clang++) on PATH")
    exe = tmp_path / "sanitize_fuzz"
    cmd = [
        cxx, "-std=c++17", "-O1", "-g", "-ffp-contract=off", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
        "-pthread", f"-I{ROOT / 'cpp' / 'include'}", f"-I{CPU}", str(ROOT / "cpp" / "tests" / "sanitize_fuzz.cpp"),
        str(CPU / "gather_cpu.cpp"), str(CPU / "stitch_cpu.cpp"), str(CPU / "parallel.cpp"),
        str(CPU / "openmp_runtime.cpp"), "-ldl", "-o", str(exe),
    ]
    build = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if build.returncode != 0 and "sanitize" in build.stderr:
        pytest.skip(f"the compiler cannot build with sanitizers: {build.stderr[-300:]}")
    assert build.returncode == 0, build.stderr[-2000:]
    env = dict(os.environ, CUPATCH_NUM_THREADS="3", ASAN_OPTIONS="detect_leaks=0")
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    assert "mismatches 0" in run.stdout
