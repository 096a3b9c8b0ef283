"""Output files: ``predict_tiled(out=PATH)`` streaming into each kind of file, against the
peer a user would write otherwise — predict in memory, then save the whole result with
tifffile / zarr / ome-zarr-py with the same options.

For each format (``.npy``, ``.zarr``, ``.ome.zarr``, ``.tif`` uncompressed, zlib and zstd,
``.ome.tif`` zstd): wall time of the streamed run, of the in-memory run plus the peer's
write, their ratio, and the file size. The in-memory run without any file is the floor.
Every file is read back (tifffile, zarr) and compared with the in-memory result; each
format is written once, untimed, before it is timed (the first use imports its libraries).
Streaming is for outputs larger than memory; here it is compared where both fit. Results
go to ``benchmarks/results/`` as JSON and a table.

Run::

    python benchmarks/bench_outputs.py            # 2 x 2048 x 2048 float32, CYX
    python benchmarks/bench_outputs.py --quick    # 2 x 1024 x 1024
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import tifffile
import zarr

sys.path.insert(0, str(Path(__file__).parent))
from _harness import add_result_arguments, default_tag, format_table, machine_info, write_results  # noqa: E402

import cupatch  # noqa: E402
from cupatch._sample import sample_image  # noqa: E402
from cupatch.inference import resolve_device  # noqa: E402


def model(x):
    return x * 2.0


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _peer_ome_zarr(path, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from ome_zarr.writer import write_image

        write_image(data, zarr.open_group(str(path), mode="w"), axes="cyx", scale_factors=[], scale={"c": 1.0, "y": 1.0, "x": 1.0})


# name, suffix, predict_tiled keywords, peer writer (whole result in memory -> file)
FORMATS = [
    ("npy", ".npy", {}, lambda p, d: np.save(p, d)),
    ("zarr", ".zarr", {}, lambda p, d: zarr.save_array(str(p), d)),
    ("ome.zarr", ".ome.zarr", {}, _peer_ome_zarr),
    ("tif", ".tif", {}, lambda p, d: tifffile.imwrite(p, d, imagej=True, metadata={"axes": "CYX"})),
    ("tif zlib", ".tif", {"compression": "zlib"},
     lambda p, d: tifffile.imwrite(p, d, imagej=True, metadata={"axes": "CYX"}, compression="zlib")),
    ("tif zstd", ".tif", {"compression": "zstd"},
     lambda p, d: tifffile.imwrite(p, d, imagej=True, metadata={"axes": "CYX"}, compression="zstd")),
    ("ome.tif zstd", ".ome.tif", {"compression": "zstd"},
     lambda p, d: tifffile.imwrite(p, d, ome=True, metadata={"axes": "CYX"}, compression="zstd", tile=(256, 256))),
]  # fmt: skip


def _read_back(path: Path, suffix: str) -> np.ndarray:
    if suffix == ".npy":
        return np.load(path)
    if suffix == ".ome.zarr":
        return np.asarray(zarr.open_group(str(path), mode="r")["0"])
    if suffix == ".zarr":
        return np.asarray(zarr.open_array(str(path), mode="r"))
    return tifffile.imread(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    parser.add_argument("--quick", action="store_true", help="2 x 1024 x 1024 instead of 2 x 2048 x 2048")
    parser.add_argument("--repeats", type=int, default=3)
    add_result_arguments(parser)
    args = parser.parse_args()

    device = resolve_device(args.device)
    n = 1024 if args.quick else 2048
    rng = np.random.default_rng(0)
    # smooth content (compressible as microscopy is), not white noise
    image = np.stack([sample_image((n, n), seed=c) for c in range(2)]).astype(np.float32)
    image += rng.standard_normal(image.shape, dtype=np.float32)
    common = dict(axes="CYX", tile_size=256, overlaps=32, batch_size=8, device=device, progress=False)
    work = Path(tempfile.mkdtemp(prefix="cupatch-bench-outputs-"))
    try:
        cupatch.predict_tiled(model, image, **common)  # warm-up
        floor = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            reference = cupatch.predict_tiled(model, image, **common)
            floor = min(floor, time.perf_counter() - t0)
        reference = np.asarray(reference.get() if hasattr(reference, "get") else reference)
        rows = []
        for name, suffix, kwargs, peer in FORMATS:
            streamed = peer_s = float("inf")
            warm = work / f"warm-{len(rows)}{suffix}"  # first use imports the writer's libraries: not timed
            cupatch.predict_tiled(model, image, out=str(warm), **common, **kwargs)
            peer(work / f"warm-peer-{len(rows)}{suffix}", reference)
            for r in range(args.repeats):
                path = work / f"ours{r}{suffix}"
                t0 = time.perf_counter()
                cupatch.predict_tiled(model, image, out=str(path), **common, **kwargs)
                streamed = min(streamed, time.perf_counter() - t0)
                ours_bytes = _size(path)
                np.testing.assert_allclose(_read_back(path, suffix), reference, rtol=1e-6)
                peer_path = work / f"peer{r}{suffix}"
                t0 = time.perf_counter()
                result = cupatch.predict_tiled(model, image, **common)
                peer(peer_path, np.asarray(result.get() if hasattr(result, "get") else result))
                peer_s = min(peer_s, time.perf_counter() - t0)
                peer_bytes = _size(peer_path)
                for p in (path, peer_path):
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
            rows.append({
                "format": name, "streamed_s": streamed, "peer_s": peer_s, "speedup_vs_peer": peer_s / streamed,
                "over_in_memory": streamed / floor, "file_mb": ours_bytes / 2**20, "peer_file_mb": peer_bytes / 2**20,
            })  # fmt: skip
            print(f"{name:>13}: streamed {streamed:.3f} s, peer {peer_s:.3f} s (x{peer_s / streamed:.2f}), "
                  f"{ours_bytes / 2**20:.1f} MB")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)

    columns = [
        ("format", "format", ""), ("streamed_s", "streamed s", ".3f"), ("peer_s", "in memory + peer write s", ".3f"),
        ("speedup_vs_peer", "peer / streamed", ".2f"), ("over_in_memory", "streamed / no file", ".2f"),
        ("file_mb", "file MB", ".1f"), ("peer_file_mb", "peer file MB", ".1f"),
    ]  # fmt: skip
    info = machine_info()
    table = format_table(rows, columns)
    head = (
        f"cupatch output files, {info['date']}, {info['platform']}, {info['cpu_count']} cores, device {device}\n"
        f"image 2x{n}x{n} float32 (CYX, {image.nbytes / 2**20:.0f} MB), tile 256, overlap 32, model x*2; "
        f"in memory without a file: {floor:.3f} s; best of {args.repeats}\n"
    )
    print(head + table)
    tag = args.tag or default_tag(device, info)
    payload = {"machine": info, "device": device, "shape": list(image.shape), "in_memory_s": floor, "rows": rows}
    write_results(args.out_dir, f"{tag}-{info['date'][:10]}-outputs", payload, head + table)


if __name__ == "__main__":
    main()
