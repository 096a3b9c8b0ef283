"""Smoke test of ``benchmarks/bench_inference.py`` so that the benchmark does not rot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_inference.py"


@pytest.mark.slow
@pytest.mark.skipif(not BENCH.exists(), reason="benchmarks/ is not part of this checkout")
def test_quick_benchmark_runs_and_agrees_with_the_baseline(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_inference", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--quick", "--device", "cpu", "--models", "identity", "--repeats", "1", "--out-dir", str(tmp_path), "--tag", "t"])
    assert "cupatch" in capsys.readouterr().out
    (report,) = tmp_path.glob("t-*-inference-quick.json")
    rows = json.loads(report.read_text())["rows"]
    methods = {r["method"] for r in rows}
    assert {"cupatch", "cupatch-stream", "careamics-cpu"} <= methods
    for r in rows:
        assert r["seconds"] > 0 and r["tiles"] > 0
        if r["method"] == "cupatch-stream":
            assert r["max_abs_diff"] == 0  # streaming gives the in-memory result exactly
        if r["method"] == "careamics-cpu":
            # Same tiles, same model: crop is identical, blending agrees to float rounding.
            assert r["max_abs_diff"] <= (0 if r["blend"] == "crop" else 1e-2)
    assert (tmp_path / report.name.replace(".json", ".txt")).exists()
