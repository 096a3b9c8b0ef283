"""The filter benchmark still runs (quick sizes, CPU) and writes its JSON and table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_filters_quick_runs(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_filters.py"), "--quick", "--device", "cpu",
           "--filters", "max", "mask", "--out-dir", str(tmp_path), "--tag", "smoke"]
    if os.environ.get("CAREAMICS_PATH"):
        cmd += ["--careamics-path", os.environ["CAREAMICS_PATH"]]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (json_path,) = tmp_path.glob("smoke-*-filters-quick.json")
    payload = json.loads(json_path.read_text())
    assert {(r["data"].split()[0], r["filter"]) for r in payload["results"]} == {
        (d, f) for d in ("2d", "3d") for f in ("max", "mask")
    }
    assert all(r["regions_per_s"] > 0 for r in payload["results"])
    assert payload["uptime_before"] and (tmp_path / json_path.name.replace(".json", ".txt")).exists()
    if payload["careamics"]:  # same n_patches as CAREamics (the script checks) and a ratio
        assert all("speedup" in r or "careamics_error" in r for r in payload["results"])
