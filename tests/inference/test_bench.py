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
    bench = _load_bench()
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
    bench = _load_bench()

    def row(method, times, model_times=None):
        return dict(case="2d", kind="conv", method=method, times_s=times, min_s=min(times), median_s=sorted(times)[1],
                    model_times_s=model_times or times)  # fmt: skip

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


@pytest.mark.skipif(not BENCH.exists(), reason="benchmarks/ is not part of this checkout")
def test_outside_ratio_leaves_the_models_own_variation_out():
    bench = _load_bench()
    base = dict(case="3d", kind="conv")
    # the model ran 1.5x slower inside cupatch in round 2; cupatch's own time was 0.1, 0.2, 0.1
    rows = [dict(base, method="model-only", times_s=[1.0, 1.0, 2.0], model_times_s=[1.0, 1.0, 2.0]),
            dict(base, method="cupatch gaussian", times_s=[1.1, 1.7, 2.1], model_times_s=[1.0, 1.5, 2.0])]  # fmt: skip
    for r in rows:
        r.update(min_s=min(r["times_s"]), median_s=sorted(r["times_s"])[1])
    (q,) = bench.ratios(rows)
    assert q["outside"] == pytest.approx(1.1)  # the median of 1.1, 1.2 and 1.05
    assert q["paired"] == pytest.approx(1.1)  # the median of 1.1, 1.7 and 1.05


@pytest.mark.skipif(not BENCH.exists(), reason="benchmarks/ is not part of this checkout")
def test_model_clock_sums_the_forward_calls_only(monkeypatch):
    torch = pytest.importorskip("torch")
    bench = _load_bench()
    ticks = iter(range(0, 1000, 10))  # a clock that advances 10 s per reading
    monkeypatch.setattr(bench.time, "perf_counter", lambda: float(next(ticks)))
    model = torch.nn.Identity()
    clock = bench.ModelClock(model, "cpu")
    for _ in range(3):
        model(torch.zeros(2))  # one reading before, one after: 10 s a call
    assert clock.seconds() == 30.0
    clock.reset()
    assert clock.seconds() == 0.0
    clock.remove()
    model(torch.zeros(2))  # no hooks left: the clock is not read
    assert clock.seconds() == 0.0 and next(ticks) == 60


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_inference", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench
