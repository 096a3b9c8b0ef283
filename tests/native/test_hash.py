"""The native counter-based hash (cpp/include/cupatch/random.h) equals cupatch._random."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cupatch import _core, _random

@pytest.mark.parametrize("stream", list(_random.Stream))
def test_native_hash4_matches_python_for_every_stream(stream):
    index = np.arange(-50, 1000, dtype=np.int64)
    for seed, epoch in [(0, 0), (1, 2), (2**64 - 1, 2**63), (12345, 7)]:
        np.testing.assert_array_equal(_core.hash4(seed, epoch, index, int(stream)), _random.hash4(seed, epoch, index, int(stream)))


def test_negative_counters_wrap_modulo_2_64():
    idx = np.array([[3, -4]], dtype=np.int64)
    np.testing.assert_array_equal(_core.hash4(-1, -2, idx, -3), _core.hash4(2**64 - 1, 2**64 - 2, idx, 2**64 - 3))
    assert _core.hash4(-1, -2, idx, -3).shape == (1, 2)


def test_known_value():
    # splitmix64 of 0 is the first output of the reference SplitMix64 generator seeded with 0
    h = _random.splitmix64(np.array([0], dtype=np.uint64))
    assert int(h[0]) == 0xE220A8397B1DCDAF
    assert int(_core.hash4(0, 0, np.array([0], np.int64), 0)[0]) == int(_random.hash4(0, 0, 0, 0)[0])


_UNIFORM_INT_PROGRAM = r"""
#include <cinttypes>
#include <cstdio>
#include "cupatch/random.h"
int main() {
    std::uint64_t h, n;
    while (std::scanf("%" SCNu64 " %" SCNu64, &h, &n) == 2) std::printf("%" PRIu64 "\n", cupatch::uniform_int(h, n));
    return 0;
}
"""


def test_native_uniform_int_header_matches_python_beyond_2_32(tmp_path):
    # random.h's uniform_int is the host/device twin of cupatch._random.uniform_int: the same
    # values for ranges below and above 2**32 (where the 128-bit product is used).
    cxx = next((c for c in (os.environ.get("CXX"), "g++", "clang++") if c and shutil.which(c)), None)
    if cxx is None:
        pytest.skip("no C++ compiler (g++ or clang++) on PATH")
    include = Path(__file__).resolve().parents[2] / "cpp" / "include"
    source, exe = tmp_path / "uniform_int.cpp", tmp_path / "uniform_int"
    source.write_text(_UNIFORM_INT_PROGRAM)
    build = subprocess.run([cxx, "-std=c++17", "-O1", f"-I{include}", str(source), "-o", str(exe)], capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr[-2000:]
    rng = np.random.default_rng(1)
    h = np.concatenate([rng.integers(0, 2**64 - 1, 500, dtype=np.uint64, endpoint=True), np.array([0, 2**64 - 1], np.uint64)])
    ns = [1, 3, 2**31 + 5, 2**32 - 1, 2**32, 2**32 + 1, 2**45 + 7, 2**61 - 1, 2**62]
    pairs = [(int(x), n) for x in h for n in ns]
    run = subprocess.run([str(exe)], input="".join(f"{x} {n}\n" for x, n in pairs), capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    native = [int(v) for v in run.stdout.split()]
    expected = [int(_random.uniform_int(np.array([x], np.uint64), n)[0]) for x, n in pairs]
    assert native == expected
