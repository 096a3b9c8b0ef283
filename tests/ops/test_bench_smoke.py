"""The ops benchmark still runs (quick sizes, CPU) and writes its JSON and table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_ops_quick_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_ops.py"), "--quick", "--device", "cpu", "--min-time", "0.01",
         "--cases", "2d-small", "--out-dir", str(tmp_path), "--tag", "smoke"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (json_path,) = tmp_path.glob("smoke-*-ops.json")
    payload = json.loads(json_path.read_text())
    methods = {(r["op"], r["method"]) for r in payload["results"]}
    for op in ("gather", "stitch-crop", "stitch-blend"):
        assert {(op, "cupatch"), (op, "loop"), (op, "copy-roof")} <= methods
    assert all(r["gbps"] > 0 for r in payload["results"])
    assert (tmp_path / json_path.name.replace(".json", ".txt")).exists()
