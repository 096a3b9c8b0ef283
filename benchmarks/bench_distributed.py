"""Tiled inference on a Dask cluster: ``cupatch.distributed.predict_tiled`` with 1 and 2 CPU
workers against single-process ``cupatch.predict_tiled``, on one 3-D uint16 Zarr volume.

Compared in the same run, with the same volume, tiling and model, all writing a Zarr output:

* ``single-process``: ``cupatch.predict_tiled`` streaming into a ``.zarr`` path;
* ``dask N worker(s)``: a ``LocalCluster`` of N worker processes with one thread each.

The model costs more than the I/O: a two-layer 3x3x3 torch CNN (1 -> 8 -> 1 channels), one
torch thread in every process (the single process too), built once per worker by a
``"module:callable"`` factory. Each distributed run is warm: a small run first builds the
model on every worker (as a long job's first tasks would). Both distributed runs use the
same regions, the automatic choice for 2 workers (at least two tasks per worker, largest
regions first, split along the axes with the most tiles), so 1 and 2 workers do the same
work.

Reported per run: wall time, tiles/s (tiles of the global tiling per second), tiles run
(halo tiles are recomputed by both neighbouring tasks), tasks, the scheduler overhead per
task (the wall time of 200 empty tasks on the same cluster, per task; the mean idle gap
between consecutive region tasks on a worker, from Dask's task stream, is in the JSON), bytes
moved between worker processes (Dask's transfer logs: ``transfer_incoming_log`` and
``transfer_outgoing_bytes_total``), the pickled size of one task's arguments (its
metadata) and of its reply; the speed-up of 2 workers over 1 and over the single process; and the machine's
load average (``os.getloadavg``) before and after, since other work may share the cores.

Run::

    python benchmarks/bench_distributed.py            # 128 x 1024 x 1024 uint16 (256 MB)
    python benchmarks/bench_distributed.py --quick    # 32 x 256 x 256
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _harness import add_result_arguments, default_tag, format_table, machine_info, write_results  # noqa: E402

HERE = Path(__file__).resolve().parent


def build_model():
    """The benchmark model (a zero-argument factory): a small 3-D CNN on one torch thread."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv3d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(8, 1, 3, padding=1)
    )
    return net.eval()


def make_volume(path: Path, shape, seed: int = 0):
    import zarr

    rng = np.random.default_rng(seed)
    array = zarr.create_array(
        store=str(path), shape=shape, chunks=(32, 256, 256), dtype=np.uint16, fill_value=0, overwrite=True
    )
    for z in range(0, shape[0], 32):  # written slab by slab: never the whole volume in memory twice
        array[z : z + 32] = rng.integers(0, 4096, (min(32, shape[0] - z), *shape[1:]), dtype=np.uint16)
    return array


def _transfer_bytes(client) -> int:
    def count(dask_worker):
        incoming = sum(int(entry.get("total", 0)) for entry in dask_worker.transfer_incoming_log)
        return incoming + int(dask_worker.transfer_outgoing_bytes_total)

    return int(sum(client.run(count).values()))


def _noop(i):
    return i


def _round_trip_s(client, n: int = 200) -> float:
    """Scheduler overhead per task: the wall time of ``n`` empty tasks on the cluster, per task."""
    client.gather(client.map(_noop, range(20), pure=False))  # warm
    t0 = time.perf_counter()
    client.gather(client.map(_noop, range(n), pure=False))
    return (time.perf_counter() - t0) / n


def _gaps(task_stream: list[dict]) -> tuple[float, int]:
    """Mean idle gap (s) between consecutive region tasks on a worker, and the task count."""
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for task in task_stream:
        if not str(task["key"]).startswith("cupatch-region"):
            continue
        for part in task["startstops"]:
            if part["action"] == "compute":
                by_worker.setdefault(task["worker"], []).append((part["start"], part["stop"]))
    gaps = []
    for spans in by_worker.values():
        spans.sort()
        gaps.extend(b[0] - a[1] for a, b in zip(spans, spans[1:]))
    n = sum(len(s) for s in by_worker.values())
    return (float(np.mean(gaps)) if gaps else float("nan")), n


def run_dask(n_workers: int, volume: str, out: Path, args, region_shape):
    import distributed

    from cupatch.distributed import run_distributed

    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), old]))
    try:
        cluster = distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    finally:
        os.environ.pop("PYTHONPATH") if old is None else os.environ.__setitem__("PYTHONPATH", old)
    with cluster, distributed.Client(cluster) as client:
        # warm-up: every worker builds (and caches) the model on a small volume first
        warm = Path(out).with_name(f"warm-{n_workers}.zarr")
        make_volume(Path(out).with_name(f"warm-{n_workers}-in.zarr"), (16, 64, 64 * n_workers))
        run_distributed(
            "bench_distributed:build_model", str(Path(out).with_name(f"warm-{n_workers}-in.zarr")), out=warm,
            axes="ZYX", tile_size=(16, 64, 64), overlaps=(4, 8, 8), region_shape=(16, 64, 64), chunks=(16, 64, 64),
            progress=False, overwrite=True,
        )  # fmt: skip
        before = _transfer_bytes(client)
        with distributed.get_task_stream(client) as stream:
            _, stats = run_distributed(
                "bench_distributed:build_model", volume, out=out, axes="ZYX", tile_size=args.tile,
                overlaps=args.overlap, batch_size=args.batch_size, blend=args.blend, region_shape=region_shape,
                progress=False, overwrite=True,
            )  # fmt: skip
        moved = _transfer_bytes(client) - before
        gap, n_tasks = _gaps(stream.data)
        round_trip = _round_trip_s(client)
    return stats, moved, gap, n_tasks, round_trip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="32 x 256 x 256 instead of 128 x 1024 x 1024")
    parser.add_argument("--shape", type=int, nargs=3, default=None)
    parser.add_argument("--blend", default="crop")
    parser.add_argument("--batch-size", type=int, default=4)
    add_result_arguments(parser)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds; the best of each is reported")
    args = parser.parse_args(argv)
    shape = tuple(args.shape or ((32, 256, 256) if args.quick else (128, 1024, 1024)))
    args.tile, args.overlap = (32, 128, 128), (8, 16, 16)

    import torch
    import zarr

    from cupatch.inference import run_prediction

    info = machine_info()
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("CUPATCH_BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        volume = str(tmp / "volume.zarr")
        make_volume(Path(volume), shape)
        torch.set_num_threads(1)
        net = build_model()
        region_shape = None
        for round_ in range(args.rounds):  # the methods alternate, so that drifting load hits all of them
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            _, single = run_prediction(
                net, volume, axes="ZYX", tile_size=args.tile, overlaps=args.overlap, batch_size=args.batch_size,
                blend=args.blend, out=tmp / "single.zarr", device="cpu", progress=False, overwrite=True,
            )  # fmt: skip
            single_s = time.perf_counter() - t0
            reference = zarr.open_array(str(tmp / "single.zarr"))[...]
            runs.setdefault("single-process", []).append({
                "method": "single-process", "workers": 1, "seconds": single_s, "tiles": single.n_tiles,
                "tiles_per_s": single.n_tiles / single_s, "tiles_run": single.n_tiles, "tasks": 1, "round": round_,
                "load1_before": load,
            })  # fmt: skip
            for n_workers in (2, 1):  # the 2-worker automatic regions, reused for 1 worker
                load = os.getloadavg()[0]
                out = tmp / f"dask-{n_workers}.zarr"
                stats, moved, gap, _, round_trip = run_dask(n_workers, volume, out, args, region_shape)
                region_shape = stats.region_shapes[0]
                result = zarr.open_array(str(out))[...]
                method = f"dask {n_workers} worker{'s' if n_workers > 1 else ''}"
                runs.setdefault(method, []).append({
                    "method": method, "workers": n_workers, "seconds": stats.wall_s, "tiles": stats.n_tiles,
                    "tiles_per_s": stats.tiles_per_s, "tiles_run": stats.n_tiles_run, "tasks": stats.n_tasks,
                    "task_gap_ms": gap * 1e3, "overhead_ms": round_trip * 1e3, "bytes_moved": moved,
                    "task_bytes": stats.task_bytes, "reply_bytes": len(pickle.dumps(stats.results[0])),
                    "region_shape": list(region_shape), "round": round_, "load1_before": load,
                    "bit_identical": bool(np.array_equal(result, reference)) if args.blend == "crop" else None,
                    "max_abs_diff": float(np.abs(result.astype(np.float64) - reference).max()),
                    "task_s": stats.task_s,
                })  # fmt: skip
    # best of the rounds per method (the least disturbed by other work on the machine)
    rows = [min(r, key=lambda row: row["seconds"]) for r in runs.values()]
    for row in rows:
        row["all_seconds"] = [r["seconds"] for r in runs[row["method"]]]
    load_after = os.getloadavg()
    by = {r["method"]: r for r in rows}
    one, two = by["dask 1 worker"], by["dask 2 workers"]
    summary = {
        "speedup_2_over_1_worker": one["seconds"] / two["seconds"],
        "speedup_2_workers_over_single_process": by["single-process"]["seconds"] / two["seconds"],
        "halo_share": two["tiles_run"] / two["tiles"] - 1,
        "rounds": args.rounds,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }
    payload = {
        "benchmark": "distributed",
        "machine": info,
        "volume": {"shape": shape, "dtype": "uint16", "chunks": [32, 256, 256], "format": "zarr"},
        "tile": args.tile, "overlap": args.overlap, "batch_size": args.batch_size, "blend": args.blend,
        "model": "Conv3d(1,8,3)+ReLU+Conv3d(8,1,3), torch, 1 thread per process",
        "rows": rows,
        "summary": summary,
    }  # fmt: skip
    columns = [
        ("method", "method", ""), ("seconds", "s", ".2f"), ("tiles_per_s", "tiles/s", ".2f"),
        ("tiles_run", "tiles run", "d"), ("tasks", "tasks", "d"), ("overhead_ms", "overhead/task ms", ".2f"),
        ("bytes_moved", "bytes moved", "d"), ("task_bytes", "task B", "d"), ("reply_bytes", "reply B", "d"), ("bit_identical", "identical", ""),
    ]  # fmt: skip
    table = format_table(rows, columns)
    table += (
        f"\n\nvolume {shape} uint16 Zarr, tile {args.tile}, overlap {args.overlap}, blend {args.blend}, regions "
        f"{two['region_shape']} ({two['tasks']} tasks; {summary['halo_share']:.0%} extra tiles from halos)\n"
        f"best of {args.rounds} round(s); seconds per round: "
        + "; ".join(f"{r['method']} {', '.join(f'{x:.1f}' for x in r['all_seconds'])}" for r in rows)
        + "\n"
        f"speed-up 2 workers / 1 worker: {summary['speedup_2_over_1_worker']:.2f}x; 2 workers / single process: "
        f"{summary['speedup_2_workers_over_single_process']:.2f}x\n"
        f"load average before {tuple(round(x, 2) for x in load_before)}, after {tuple(round(x, 2) for x in load_after)}"
    )
    print(table)
    stem = f"{args.tag or default_tag('cpu', info)}-{_dt.date.today().isoformat()}-distributed{'-quick' if args.quick else ''}"
    write_results(args.out_dir, stem, payload, table)


if __name__ == "__main__":
    main()
