"""Native gather and stitch throughput against the loops users write, and the copy roof.

For each case (2D/3D; small, medium and large batches; uint16 sources -> float32) this
measures, in the same run:

* ``cupatch``: one :func:`cupatch.gather_patches` / :func:`cupatch.stitch_tiles` call;
* ``loop``: the per-patch (per-tile) slicing loop one would write with NumPy (CPU) or
  CuPy (GPU): ``out[b] = src[d, s, :, y:y+P, x:x+P]`` into a preallocated float32 batch,
  ``out[...] = tile[...]`` for crop stitching and ``out += w * tile; weight += w`` for blend;
* ``copy-roof``: a plain copy (device-to-device on the GPU, ``numpy.copyto`` on the CPU)
  moving the same number of bytes; on the CPU each copy reads a source the caches do not
  hold (a pool of buffers of 256 MB or more, in turn), as a gather from a large image
  does, while copying one small buffer repeatedly would measure cache bandwidth (kept in
  the JSON as ``warm_roof_gbps``).

Effective bandwidth counts bytes read + bytes written by the operation (gather: source
voxels read + output written; crop: kept tile voxels read + written; blend: tile voxels read
+ output and weight read and written over each tile's window). ``roof %`` is the
operation's bandwidth over the copy's, ``x loop`` the speed-up over the loop. Results are
checked against the loop before timing. On the GPU, times are device times (CUDA events) per
call in the steady state: cupatch calls and copies are timed 8 back to back (the host
queues the next launch while the device works, as in a training or inference loop); the
per-item loops, bound by their launches, are timed one call at a time.

Usage::

    python benchmarks/bench_ops.py [--quick] [--device auto|cpu|gpu] [--out-dir DIR] [--tag TAG]

Prints a table and writes ``<tag>-<YYYY-MM-DD>-ops.{json,txt}`` into ``--out-dir``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
from pathlib import Path

import numpy as np

# cupatch must be installed (its native module is built at install time); only the
# harness next to this file is imported by path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402

from cupatch import window_table  # noqa: E402
from cupatch.ops import SourceTable, gather_patches, stitch_tiles  # noqa: E402

# name -> (source SC(Z)YX shape, patch size, batch)
GATHER_CASES = {
    "2d-small": ((16, 1, 1024, 1024), (64, 64), 256),
    "2d-medium": ((4, 1, 2048, 2048), (256, 256), 256),
    "2d-large": ((4, 1, 4096, 4096), (256, 256), 1024),
    "3d-small": ((2, 1, 64, 512, 512), (8, 32, 32), 256),
    "3d-medium": ((1, 1, 64, 1024, 1024), (32, 128, 128), 32),
    "3d-large": ((1, 1, 128, 1024, 1024), (32, 128, 128), 128),
}
QUICK_GATHER = {
    "2d-small": ((4, 1, 256, 256), (64, 64), 256),
    "2d-medium": ((2, 1, 1024, 1024), (128, 128), 128),
    "3d-small": ((1, 1, 32, 128, 128), (8, 32, 32), 128),
}

# name -> (output SC(Z)YX shape, tile size, overlaps)
STITCH_CASES = {
    "2d-small": ((1, 1, 512, 512), (64, 64), (16, 16)),
    "2d-medium": ((1, 1, 4096, 4096), (256, 256), (32, 32)),
    "2d-large": ((2, 1, 4096, 4096), (256, 256), (32, 32)),
    "3d-small": ((1, 1, 64, 256, 256), (16, 64, 64), (4, 8, 8)),
    "3d-medium": ((1, 1, 64, 512, 512), (32, 128, 128), (8, 16, 16)),
    "3d-large": ((1, 1, 96, 768, 768), (32, 128, 128), (8, 16, 16)),
}
QUICK_STITCH = {
    "2d-small": ((1, 1, 256, 256), (64, 64), (16, 16)),
    "3d-small": ((1, 1, 32, 128, 128), (16, 32, 32), (4, 8, 8)),
}


def result_rows(base: dict, nbytes: int, t_ours: float, t_loop: float, roof: float) -> list[dict]:
    """The cupatch, loop and copy-roof rows of one case (``roof`` in GB/s)."""
    return [
        {**base, "method": "cupatch", "seconds": t_ours, "gbps": nbytes / t_ours / 1e9,
         "roof_fraction": nbytes / t_ours / 1e9 / roof, "speedup_vs_loop": t_loop / t_ours},
        {**base, "method": "loop", "seconds": t_loop, "gbps": nbytes / t_loop / 1e9,
         "roof_fraction": nbytes / t_loop / 1e9 / roof},
        {**base, "method": "copy-roof", "seconds": nbytes / roof / 1e9, "gbps": roof, "roof_fraction": 1.0},
    ]  # fmt: skip


def gather_loop(xp, sources, specs, patch, out):
    """Per-patch slicing loop (all patches lie inside the image)."""
    ndim = len(patch)
    for b, row in enumerate(specs.tolist()):
        d, s, coords = row[0], row[1], row[2 : 2 + ndim]
        out[b] = sources[d][(s, slice(None), *(slice(c, c + p) for c, p in zip(coords, patch)))]
    return out


def crop_loop(tiles, specs, outputs):
    ndim = tiles.ndim - 2
    for b, row in enumerate(specs.tolist()):
        crop, size, stitch = row[2 + ndim : 2 + 2 * ndim], row[2 + 2 * ndim : 2 + 3 * ndim], row[2 + 3 * ndim :]
        outputs[row[0]][(row[1], slice(None), *(slice(t, t + n) for t, n in zip(stitch, size)))] = tiles[
            (b, slice(None), *(slice(c, c + n) for c, n in zip(crop, size)))
        ]


def blend_loop(xp, tiles, specs, outputs, weights, table, shapes):
    """Per-tile weighted accumulation (window product per tile, as a user would write it)."""
    ndim = tiles.ndim - 2
    tile = tiles.shape[2:]
    for b, row in enumerate(specs.tolist()):
        coords = row[2 : 2 + ndim]
        image = shapes[row[0]][2:]
        w, src, dst = None, [], []
        for d in range(ndim):
            c, t, n = coords[d], tile[d], image[d]
            flag = int(c <= 0) + 2 * int(c + t >= n)
            lo, hi = max(c, 0), min(c + t, n)
            shape = [1] * ndim
            shape[d] = hi - lo
            axis_w = table[d, flag, lo - c : hi - c].reshape(shape)
            w = axis_w if w is None else w * axis_w
            src.append(slice(lo - c, hi - c))
            dst.append(slice(lo, hi))
        outputs[row[0]][(row[1], slice(None), *dst)] += w[None] * tiles[(b, slice(None), *src)]
        weights[row[0]][(row[1], 0, *dst)] += w


def inside_specs(rng, shape, patch, batch):
    n_samples, spatial = shape[0], shape[2:]
    cols = [np.zeros(batch, np.int64), rng.integers(0, n_samples, batch)]
    cols += [rng.integers(0, n - p + 1, batch) for n, p in zip(spatial, patch)]
    return np.stack(cols, 1).astype(np.int64)


def to_host(a):
    return a.get() if hasattr(a, "get") else a


def bench_gather(xp, cases, min_time, roof_cache):
    rows = []
    for name, (shape, patch, batch) in cases.items():
        rng = np.random.default_rng(0)
        host = rng.integers(0, 60000, size=shape, dtype=np.uint16)
        src = xp.asarray(host)
        del host
        table = SourceTable([src])
        specs = inside_specs(rng, shape, patch, batch)
        specs_dev = xp.asarray(specs)
        out = xp.empty((batch, 1, *patch), dtype=np.float32)
        loop_out = xp.empty_like(out)
        gather_patches(table, specs_dev, patch, out=out)
        gather_loop(xp, [src], specs, patch, loop_out)
        assert bool((out == loop_out).all()), f"gather {name}: cupatch and the loop disagree"
        nbytes = out.size * (2 + 4)  # uint16 read, float32 written
        t_ours = H.time_per_call(xp, lambda: gather_patches(table, specs_dev, patch, out=out), min_time=min_time)
        t_loop = H.time_per_call(xp, lambda: gather_loop(xp, [src], specs, patch, loop_out), min_time=min_time, calls=1)
        roof = roof_cache.setdefault(nbytes, H.copy_roof(xp, nbytes, min_time=min_time))
        warm = H.copy_roof(xp, nbytes, min_time=min_time, cold=False)
        base = dict(op="gather", case=name, batch=batch, item=f"{'x'.join(map(str, patch))} u16->f32", mbytes=nbytes / 1e6,
                    warm_roof_gbps=warm)  # fmt: skip
        rows.extend(result_rows(base, nbytes, t_ours, t_loop, roof))
        del src, table, out, loop_out
    return rows


def bench_stitch(xp, cases, min_time, roof_cache):
    rows = []
    for name, (shape, tile, overlaps) in cases.items():
        rng = np.random.default_rng(1)
        specs = H.tile_table([shape], tile, overlaps)
        tiles = xp.asarray(rng.standard_normal((len(specs), shape[1], *tile), dtype=np.float32))
        specs_dev = xp.asarray(specs)
        ndim = len(tile)
        kept = int(np.prod(specs[:, 2 + 2 * ndim : 2 + 3 * ndim], axis=1).sum()) * shape[1]
        # crop
        out, loop_out = [xp.zeros(shape, dtype=np.float32)], [xp.zeros(shape, dtype=np.float32)]
        stitch_tiles(tiles, specs_dev, out)
        crop_loop(tiles, specs, loop_out)
        assert bool((out[0] == loop_out[0]).all()), f"crop {name}: cupatch and the loop disagree"
        nbytes = kept * 8
        t_ours = H.time_per_call(xp, lambda: stitch_tiles(tiles, specs_dev, out), min_time=min_time)
        t_loop = H.time_per_call(xp, lambda: crop_loop(tiles, specs, loop_out), min_time=min_time, calls=1)
        roof = roof_cache.setdefault(nbytes, H.copy_roof(xp, nbytes, min_time=min_time))
        base = dict(op="stitch-crop", case=name, batch=len(specs), item=f"{'x'.join(map(str, tile))} f32", mbytes=nbytes / 1e6)
        rows.extend(result_rows(base, nbytes, t_ours, t_loop, roof))
        # blend (hann); each call accumulates, which does not change the work done
        table = window_table(tile, overlaps, "hann")
        table_dev = xp.asarray(table)
        w_shape = (shape[0], 1, *shape[2:])
        outs, wts = [xp.zeros(shape, dtype=np.float32)], [xp.zeros(w_shape, dtype=np.float32)]
        loop_outs, loop_wts = [xp.zeros(shape, dtype=np.float32)], [xp.zeros(w_shape, dtype=np.float32)]
        stitch_tiles(tiles, specs_dev, outs, mode="blend", weights=wts, window_table=table_dev)
        blend_loop(xp, tiles, specs, loop_outs, loop_wts, table_dev, [shape])
        np.testing.assert_allclose(to_host(outs[0]), to_host(loop_outs[0]), rtol=1e-5, atol=1e-5)
        window_voxels = len(specs) * int(np.prod(tile))  # every tile lies inside the image here
        nbytes = window_voxels * (4 * shape[1] + 2 * 4 * (shape[1] + 1))
        blend = lambda: stitch_tiles(tiles, specs_dev, outs, mode="blend", weights=wts, window_table=table_dev)  # noqa: E731
        t_ours = H.time_per_call(xp, blend, min_time=min_time)
        t_loop = H.time_per_call(
            xp, lambda: blend_loop(xp, tiles, specs, loop_outs, loop_wts, table_dev, [shape]), min_time=min_time, calls=1
        )
        roof = roof_cache.setdefault(nbytes, H.copy_roof(xp, nbytes, min_time=min_time))
        base = dict(op="stitch-blend", case=name, batch=len(specs), item=f"{'x'.join(map(str, tile))} f32 hann", mbytes=nbytes / 1e6)
        rows.extend(result_rows(base, nbytes, t_ours, t_loop, roof))
        del tiles, out, loop_out, outs, wts, loop_outs, loop_wts
    return rows


COLUMNS = [
    ("op", "op", ""),
    ("case", "case", ""),
    ("batch", "B", "d"),
    ("item", "patch/tile", ""),
    ("mbytes", "MB moved", ".1f"),
    ("method", "method", ""),
    ("seconds", "time ms", ""),
    ("gbps", "GB/s", ".2f"),
    ("roof_fraction", "roof %", ".1%"),
    ("speedup_vs_loop", "x loop", ".1f"),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small cases only (a smoke run)")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    parser.add_argument("--ops", nargs="+", choices=("gather", "stitch"), default=["gather", "stitch"])
    parser.add_argument("--cases", nargs="+", default=None, help="case names to run (default: all)")
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds of repetitions per timing")
    H.add_result_arguments(parser)
    parser.add_argument("--note", default="", help="free text recorded with the results (e.g. machine load)")
    args = parser.parse_args(argv)

    ok, reason = H.gpu_usable()
    device = args.device
    if device == "auto":
        device = "gpu" if ok else "cpu"
    if device == "gpu" and not ok:
        parser.error(f"--device gpu but no GPU is usable: {reason}")
    if device == "gpu":
        import cupy as xp
    else:
        xp = np
    gather_cases = QUICK_GATHER if args.quick else GATHER_CASES
    stitch_cases = QUICK_STITCH if args.quick else STITCH_CASES
    if args.cases:
        gather_cases = {k: v for k, v in gather_cases.items() if k in args.cases}
        stitch_cases = {k: v for k, v in stitch_cases.items() if k in args.cases}

    info = H.machine_info()
    roof_cache: dict[int, float] = {}
    rows = []
    if "gather" in args.ops:
        rows += bench_gather(xp, gather_cases, args.min_time, roof_cache)
    if "stitch" in args.ops:
        rows += bench_stitch(xp, stitch_cases, args.min_time, roof_cache)
    for r in rows:
        r["seconds"] = float(r["seconds"])
    shown = [{**r, "seconds": f"{1e3 * r['seconds']:.3f}"} for r in rows]
    where = info["gpu"]["name"] if device == "gpu" else f"cpu ({info['machine']}, {info['cpu_count']} cores)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    header = f"# bench_ops on {where}, {'quick' if args.quick else 'full'} sizes"
    if load is not None:
        header += f", 1-min load average at the end {load:.1f}"
    if args.note:
        header += f"\n# {args.note}"
    table = header + "\n" + H.format_table(shown, COLUMNS)
    print(table)
    tag = args.tag or H.default_tag(device, info)
    stem = f"{tag}-{_dt.date.today().isoformat()}-ops"
    payload = {"benchmark": "bench_ops", "device": device, "quick": args.quick, "note": args.note, "load_average": load,
               "steady_calls_per_timing": H.steady_calls(xp),
               "machine": info, "results": rows}
    json_path, _ = H.write_results(args.out_dir, stem, payload, table)
    print(f"wrote {json_path} (+ .txt)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
