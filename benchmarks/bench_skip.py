"""Tile skipping: ``predict_tiled`` with and without ``skip=`` on a 3-D volume that is 80%
background.

The volume holds one off-centre ellipsoid of foreground (20% of the voxels) in low
background noise;
the model is a small 3-D CNN (torch when installed). Compared in the same run, on the same
volume, tiling and model:

* ``no skip``: every tile runs;
* ``mask``: a full-resolution foreground mask;
* ``mask /4``: the same mask at a quarter of the resolution per axis;
* ``callable``: ``skip=lambda tiles: tiles.max(...) < threshold`` on the raw tiles.

For each: wall and process CPU time, tiles run and skipped, all tiles per second, the
speed-up over no skip (wall and CPU) and the ideal speed-up (all tiles / tiles run). The
outputs are checked to agree with the unskipped one on the foreground. Results go to ``benchmarks/results/`` as JSON and a
table.

Run::

    python benchmarks/bench_skip.py            # device auto, crop and hann
    python benchmarks/bench_skip.py --quick    # smaller volume
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _harness import add_result_arguments, default_tag, format_table, machine_info, write_results  # noqa: E402

from cupatch.inference import resolve_device, run_prediction  # noqa: E402


def volume(shape, foreground=0.2, seed=0):
    """float32 volume with an ellipsoid (a tissue fragment, off centre) of ``foreground`` of
    the voxels in low background noise, and its mask."""
    semi = np.array([0.5, 0.4, 0.4]) * (foreground / (4 / 3 * np.pi * 0.5 * 0.4 * 0.4)) ** (1 / 3)
    centre = np.array([0.5, 0.36, 0.36])
    grids = np.meshgrid(*[(np.arange(n) + 0.5) / n for n in shape], indexing="ij")
    mask = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, semi)) < 1
    rng = np.random.default_rng(seed)
    image = (rng.random(shape, dtype=np.float32) * 0.01).astype(np.float32)
    image[mask] += 1.0 + 0.2 * rng.standard_normal(int(mask.sum())).astype(np.float32)
    return image, mask


def model_for(device: str):
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a bench dependency
        return (lambda x: x * 2.0), "x * 2 (torch not installed)"
    torch.manual_seed(0)
    conv = torch.nn.Conv3d
    model = torch.nn.Sequential(conv(1, 8, 3, padding=1), torch.nn.ReLU(), conv(8, 1, 3, padding=1)).eval()
    if device == "gpu":
        model = model.cuda()
    return model, "torch-cnn3d(1-8-1, 3x3x3)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    parser.add_argument("--quick", action="store_true", help="a 64x128x128 volume instead of 128x256x256")
    parser.add_argument("--repeats", type=int, default=3)
    add_result_arguments(parser)
    args = parser.parse_args()

    device = resolve_device(args.device)
    shape = (64, 128, 128) if args.quick else (128, 256, 256)
    image, mask = volume(shape)
    reduced = mask.reshape(shape[0] // 4, 4, shape[1] // 4, 4, shape[2] // 4, 4).any(axis=(1, 3, 5))
    model, model_name = model_for(device)
    tile, overlaps, batch = (48, 48, 48), (8, 8, 8), 4
    skips = {
        "no skip": None,
        "mask": mask,
        "mask /4": reduced,
        "callable": lambda tiles: tiles.max(axis=(1, 2, 3, 4)) < 0.5,
    }
    rows = []
    for blend in ("crop", "hann"):
        common = dict(axes="ZYX", tile_size=tile, overlaps=overlaps, batch_size=batch, blend=blend,
                      device=device, progress=False)  # fmt: skip
        run_prediction(model, image, **common)  # warm-up (threads, allocator)
        # rounds over every variant, best of the rounds: load from elsewhere hits all alike
        best, cpu, results = {name: float("inf") for name in skips}, {name: float("inf") for name in skips}, {}
        for _ in range(args.repeats):
            for name, skip in skips.items():
                t0, c0 = time.perf_counter(), time.process_time()
                results[name] = run_prediction(model, image, skip=skip, **common)
                best[name] = min(best[name], time.perf_counter() - t0)
                cpu[name] = min(cpu[name], time.process_time() - c0)
        base = results["no skip"][0]
        ref = base.get() if hasattr(base, "get") else base
        for name in skips:
            out, stats = results[name]
            got = out.get() if hasattr(out, "get") else out
            np.testing.assert_allclose(got[mask], ref[mask], rtol=1e-4, atol=1e-4)
            wall = best[name]
            rows.append({
                "blend": blend, "skip": name, "wall_s": wall, "n_tiles": stats.n_tiles, "n_run": stats.n_run,
                "n_skipped": stats.n_skipped, "tiles_per_s": stats.n_tiles / wall, "skip_s": stats.skip_s,
                "speedup": best["no skip"] / wall, "cpu_s": cpu[name], "cpu_speedup": cpu["no skip"] / cpu[name],
                "ideal_speedup": stats.n_tiles / stats.n_run,
            })  # fmt: skip
            print(f"{blend:>5} {name:>9}: {wall:.3f} s, run {stats.n_run}/{stats.n_tiles}, x{best['no skip'] / wall:.2f}, "
                  f"CPU x{cpu['no skip'] / cpu[name]:.2f}")  # fmt: skip

    columns = [
        ("blend", "blend", ""), ("skip", "skip", ""), ("wall_s", "wall s", ".3f"), ("n_tiles", "tiles", "d"),
        ("n_run", "run", "d"), ("n_skipped", "skipped", "d"), ("tiles_per_s", "tiles/s", ".1f"),
        ("skip_s", "decide s", ".3f"), ("speedup", "speed-up", ".2f"), ("cpu_s", "CPU s", ".3f"),
        ("cpu_speedup", "CPU speed-up", ".2f"), ("ideal_speedup", "ideal", ".2f"),
    ]  # fmt: skip
    info = machine_info()
    table = format_table(rows, columns)
    head = (
        f"cupatch tile skipping, {info['date']}, {info['platform']}, {info['cpu_count']} cores, device {device}\n"
        f"volume {shape} float32, {mask.mean():.1%} foreground (one off-centre ellipsoid), tile {tile}, overlaps {overlaps}, "
        f"batch {batch}, model {model_name}; best of {args.repeats} interleaved rounds\n"
    )
    print()
    print(head + table)
    payload = {
        "benchmark": "skip",
        "machine": info,
        "volume": list(shape),
        "foreground": float(mask.mean()),
        "tile": tile,
        "overlaps": overlaps,
        "batch_size": batch,
        "model": model_name,
        "notes": "speed-up = wall(no skip) / wall(skip), same run; CPU speed-up the same on process CPU time "
        "(all threads), which other work on a shared machine disturbs less; ideal = all tiles / tiles run. A tile runs "
        "when the mask has foreground in its output region (crop: kept region, blend: window), so tiles "
        "touching the ellipsoid run. 'callable' reads every tile once more to decide.",
        "results": rows,
    }
    stem = f"{args.tag or default_tag(device, info)}-{_dt.date.today().isoformat()}-skip"
    paths = write_results(args.out_dir, stem, payload, head + table)
    print(f"\nwrote {paths[0]} and {paths[1].name}")


if __name__ == "__main__":
    main()
