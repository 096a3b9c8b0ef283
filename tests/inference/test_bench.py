"""Smoke test of ``benchmarks/bench_inference.py`` so that the benchmark does not rot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_inference.py"


@pytest.mark.slow
@pytest.mark.skipif(not BENCH.exists(), reason="benchmarks/ is not part of this checkout")
def test_quick_benchmark_runs_and_agrees_with_whole_image_inference(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    spec = importlib.util.spec_from_file_location("bench_inference", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{bench.MARK_BEGIN}\nold table\n{bench.MARK_END}\nafter\n")
    bench.main(["--quick", "--device", "cpu", "--models", "identity", "--rounds", "1", "--out-dir", str(tmp_path),
                "--tag", "t", "--readme", str(readme)])  # fmt: skip
    assert "cupatch" in capsys.readouterr().out
    (report,) = tmp_path.glob("t-*-inference-quick.json")
    data = json.loads(report.read_text())
    methods = {r["method"] for r in data["rows"]}
    assert {"model-only", "cupatch crop", "cupatch uniform", "cupatch gaussian", "cupatch hann"} <= methods
    # each peer ran, or its rows were skipped with the reason
    assert ("monai gaussian" in methods) != ("monai" in data["skipped"])
    assert ("careamics" in methods) != ("careamics" in data["skipped"])
    for r in data["rows"]:
        assert r["min_s"] > 0 and r["median_s"] >= r["min_s"] and len(r["times_s"]) == 1
        if r["method"] != "model-only":
            # identity model: crop copies, every blend is a weighted mean of equal values
            assert r["max_error"] <= (0 if r["method"] in ("cupatch crop", "careamics") else 1e-5), r
    assert data["environment"]["uptime_before"]
    for ext in ("txt", "md", "png"):
        assert (tmp_path / report.name.replace(".json", f".{ext}")).exists()
    text = readme.read_text()
    assert "old table" not in text and "| identity | cupatch crop |" in text
    assert text.startswith("# x\n\nbefore\n") and text.endswith("after\n") and ".png)" in text


@pytest.mark.skipif(not BENCH.exists(), reason="benchmarks/ is not part of this checkout")
def test_ratios_pair_the_times_of_each_round():
    spec = importlib.util.spec_from_file_location("bench_inference", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def row(method, times):
        return dict(case="2d", kind="conv", method=method, times_s=times, min_s=min(times), median_s=sorted(times)[1])

    # the machine slows down in round 2: the paired ratio sees 1.1 in every round
    rows = [row("model-only", [1.0, 2.0, 1.0]), row("cupatch crop", [1.1, 2.2, 1.1])]
    (q,) = bench.ratios(rows)
    assert q["ratio"] == "cupatch crop / model-only"
    assert q["paired"] == pytest.approx(1.1)
    assert q["median"] == pytest.approx(1.1) and q["min"] == pytest.approx(1.1)
    rows = [row("model-only", [1.0, 2.0, 1.5]), row("cupatch crop", [2.1, 1.1, 1.6])]
    (q,) = bench.ratios(rows)
    assert q["paired"] == pytest.approx(1.6 / 1.5)  # the median of 2.1, 0.55 and 1.07
    assert q["median"] == pytest.approx(1.6 / 1.5) and q["min"] == pytest.approx(1.1)
