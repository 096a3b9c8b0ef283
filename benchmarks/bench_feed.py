"""Training feed: patches per second delivered to a consumer, cupatch against the usual loops.

Every pipeline draws random patches from uint16 stacks, normalises them (mean/std), applies
random flips / quarter turns and hands float32 batches ``(B, C, [Z,] Y, X)`` to a consumer
that reads the whole batch (``batch.mean()``, as a model's first layer would), on the device
the model runs on. Compared in the same run:

* ``cupatch``: :class:`cupatch.BatchLoader` over a :class:`cupatch.PatchDataset` (one fused
  gather call per batch, default ``prefetch=1``). On the CPU: stacks in memory (also without
  the prefetch thread, which competes with the consumer for the cores on small machines), and
  a Zarr store read region by region from disk (``zarr-disk``, through the shared
  decoded-chunk cache, which holds the whole benchmark stack once warm). On the GPU: stacks resident on the GPU in
  uint16, and stacks in host memory fed through pinned staging buffers (``host-staged``).
* ``careamics-style``: CAREamics' per-item NumPy pipeline (index -> coords, slice, zero-pad
  into a new float32 array, normalise, flip/rot90 + contiguous copy, metadata dict) batched
  with torch's ``DataLoader(num_workers=4, collate_fn=default_collate)`` when torch is
  installed, else with a ``concurrent.futures`` process pool of 4 workers (the output says
  which). On the GPU the collated batch is copied host-to-device (pinned, as Lightning does).
  The same pipeline in the main process (0 workers) is reported as well.
* ``cupy-per-patch`` (GPU only): the same steps written as a per-patch CuPy loop on a
  GPU-resident float32 stack, then ``cupy.stack``.
* ``copy-roof`` (GPU only): a device-to-device copy of the batch bytes (read + write), the
  physical ceiling for producing a batch.

Usage::

    python benchmarks/bench_feed.py [--quick] [--device auto|cpu|gpu] [--out-dir DIR]

Prints a table and writes ``<tag>-<YYYY-MM-DD>-feed.{json,txt}`` to ``--out-dir``, where the
tag is ``cpu-<n>core`` or the GPU name.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import cupatch  # noqa: E402
from cupatch.augmentation import Augmentations  # noqa: E402
from cupatch.dataset import PatchDataset  # noqa: E402
from cupatch.loader import BatchLoader  # noqa: E402
from cupatch.normalization import MeanStdNormalization  # noqa: E402
from cupatch.patching import RandomPatching  # noqa: E402

N_WORKERS = 4
EPS = 1e-6

# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------


def make_stack(shape, seed=0) -> np.ndarray:
    """A uint16 SC(Z)YX stack with some structure (smooth background + noise)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(200, 800, shape, dtype=np.uint16)
    ramp = (np.arange(shape[-1], dtype=np.uint32) * 4000 // shape[-1]).astype(np.uint16)
    return base + ramp


def cases(quick: bool) -> list[dict]:
    if quick:
        return [
            dict(name="2D 128x128 B=128", shape=(8, 1, 512, 512), axes="SCYX", patch=(128, 128), batch=128, batches=24),
            dict(name="3D 32x64x64 B=32", shape=(2, 1, 64, 256, 256), axes="SCZYX", patch=(32, 64, 64), batch=32, batches=24),
        ]
    return [
        dict(name="2D 128x128 B=128", shape=(16, 1, 1024, 1024), axes="SCYX", patch=(128, 128), batch=128, batches=80),
        dict(name="3D 32x64x64 B=32", shape=(2, 1, 128, 512, 512), axes="SCZYX", patch=(32, 64, 64), batch=32, batches=80),
    ]


# --------------------------------------------------------------------------------------
# the CAREamics-style per-item pipeline
# --------------------------------------------------------------------------------------


class PerItemDataset:
    """CAREamics' per-item steps in NumPy: extract + pad, normalise, augment, metadata."""

    def __init__(self, stack: np.ndarray, patch, mean: float, std: float, seed: int = 0):
        self.stack, self.patch = stack, tuple(patch)
        self.mean, self.std = mean, std
        self.seed = seed
        spatial = stack.shape[2:]
        self.per_sample = int(np.prod([-(-n // p) for n, p in zip(spatial, self.patch)]))
        self.n = stack.shape[0] * self.per_sample

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        rng = np.random.default_rng((self.seed, index))  # per-item generator, like a worker's
        sample_idx = index // self.per_sample
        spatial = self.stack.shape[2:]
        coords = [int(rng.integers(0, max(0, n - p), endpoint=True)) for n, p in zip(spatial, self.patch)]
        # extract: slice, then pad into a new float32 array (pad_patch)
        window = self.stack[(sample_idx, slice(None)) + tuple(slice(c, c + p) for c, p in zip(coords, self.patch))]
        patch = np.zeros((window.shape[0], *self.patch), dtype=np.float32)
        patch[(slice(None),) + tuple(slice(0, s) for s in window.shape[1:])] = window
        # normalise (new array)
        patch = ((patch - self.mean) / (self.std + EPS)).astype(np.float32)
        # XYFlip then XYRandomRotate90, contiguous copies
        if rng.random() < 0.5:
            patch = np.ascontiguousarray(np.flip(patch, axis=-2 if rng.random() < 0.5 else -1))
        if rng.random() < 0.5:
            patch = np.ascontiguousarray(np.rot90(patch, k=int(rng.integers(1, 4)), axes=(-2, -1)))
        meta = {
            "source": "array",
            "data_shape": tuple(self.stack.shape),
            "dtype": str(self.stack.dtype),
            "axes": "SCYX" if len(self.patch) == 2 else "SCZYX",
            "region_spec": {"data_idx": 0, "sample_idx": sample_idx, "coords": tuple(coords), "patch_size": self.patch},
        }
        return patch, meta


def _numpy_collate(items):
    return np.stack([p for p, _ in items]), [m for _, m in items]


_POOL_DATASET = None


def _pool_init(dataset):
    global _POOL_DATASET
    _POOL_DATASET = dataset


def _pool_batch(indices):
    return _numpy_collate([_POOL_DATASET[i] for i in indices])


def per_item_batches(dataset: PerItemDataset, batch: int, n_batches: int, workers: int, device: str, warmup: int):
    """Yield collated float32 batches of the per-item pipeline on ``device``.

    Returns (iterator factory, description of the worker mechanism).
    """
    n_needed = (n_batches + warmup) * batch
    order = np.random.default_rng(1).permutation(max(n_needed, len(dataset)))[:n_needed] % len(dataset)
    try:
        import torch
        from torch.utils.data import DataLoader, default_collate
    except ImportError:
        torch = None

    if torch is not None:
        subset = torch.utils.data.Subset(dataset, order.tolist())
        loader = DataLoader(
            subset, batch_size=batch, num_workers=workers, collate_fn=default_collate,
            persistent_workers=workers > 0, pin_memory=device == "gpu", shuffle=False,
        )
        mechanism = f"torch DataLoader, {workers} workers" if workers else "main process (torch default_collate)"

        def gen():
            for x, _meta in loader:
                if device == "gpu":
                    import cupy

                    x = cupy.from_dlpack(x.cuda(non_blocking=True))
                else:
                    x = x.numpy()
                yield x

        return gen, mechanism

    from concurrent.futures import ProcessPoolExecutor

    chunks = [order[i * batch : (i + 1) * batch].tolist() for i in range(n_batches + warmup)]
    mechanism = f"concurrent.futures process pool, {workers} workers" if workers else "main process"

    def gen():
        if workers:
            with ProcessPoolExecutor(workers, initializer=_pool_init, initargs=(dataset,)) as pool:
                for x, _meta in pool.map(_pool_batch, chunks):
                    yield to_device(x, device)
        else:
            for c in chunks:
                yield to_device(_numpy_collate([dataset[i] for i in c])[0], device)

    return gen, mechanism


def to_device(x, device):
    if device == "gpu":
        import cupy

        return cupy.asarray(x)
    return x


# --------------------------------------------------------------------------------------
# GPU-only baselines
# --------------------------------------------------------------------------------------


def cupy_per_patch_batches(stack: np.ndarray, patch, batch: int, n_batches: int, mean: float, std: float):
    import cupy

    dev = cupy.asarray(stack).astype(cupy.float32)  # what a naive GPU port keeps resident
    rng = np.random.default_rng(2)
    spatial = stack.shape[2:]

    def gen():
        while True:
            patches = []
            for _ in range(batch):
                s = int(rng.integers(0, stack.shape[0]))
                coords = [int(rng.integers(0, n - p + 1)) for n, p in zip(spatial, patch)]
                p = dev[(s, slice(None)) + tuple(slice(c, c + q) for c, q in zip(coords, patch))]
                p = (p - mean) / (std + EPS)
                if rng.random() < 0.5:
                    p = cupy.flip(p, axis=-1)
                if rng.random() < 0.5:
                    p = cupy.rot90(p, k=int(rng.integers(1, 4)), axes=(-2, -1))
                patches.append(cupy.ascontiguousarray(p))
            yield cupy.stack(patches)

    return gen


def copy_roof_batches(batch_shape):
    import cupy

    src = cupy.ones(batch_shape, dtype=cupy.float32)
    dst = cupy.empty_like(src)

    def gen():
        while True:
            dst[...] = src
            yield dst

    return gen


# --------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------


def consume(x) -> None:
    """The model-shaped consumer: read the whole batch on its device."""
    x.mean()


def measure(make_iter: Callable, batch: int, n_batches: int, warmup: int, device: str) -> dict:
    """Steady-state patches/s: the rate over the second half of ``n_batches`` timed batches.

    Prefetching pipelines (the DataLoader's workers hold up to ``4 * 2`` batches) build a head
    start during warm-up; by the second half of the run their queues have reached their
    steady state, so the rate there is the sustained one.
    """
    it = iter(make_iter())
    sync = _sync(device)
    for _ in range(warmup):
        consume(next(it))
    sync()
    stamps = [time.perf_counter()]
    for _ in range(n_batches):
        consume(next(it))
        sync()
        stamps.append(time.perf_counter())
    close = getattr(it, "close", None)
    if close is not None:
        close()
    half = n_batches // 2
    steady = (n_batches - half) * batch / (stamps[-1] - stamps[half])
    overall = n_batches * batch / (stamps[-1] - stamps[0])
    return {"seconds": stamps[-1] - stamps[0], "batches": n_batches, "patches_per_s": steady,
            "patches_per_s_all_batches": overall}


def _sync(device):
    if device == "gpu":
        import cupy

        return lambda: cupy.cuda.get_current_stream().synchronize()
    return lambda: None


def cupatch_iter(ds: PatchDataset, batch: int, prefetch: int = 1):
    loader = BatchLoader(ds, batch, seed=0, drop_last=True, prefetch=prefetch)
    if len(loader) == 0:
        raise ValueError(f"the dataset has {len(ds)} patches, fewer than one batch of {batch}")

    def gen():
        epoch = 0
        while True:
            loader.set_epoch(epoch)
            for (x,) in loader:  # no targets: the loader yields 1-tuples (input,)
                yield x
            epoch += 1

    return gen


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------


def run(device: str, quick: bool) -> dict:
    results = []
    warmup = 2
    for case in cases(quick):
        stack = make_stack(case["shape"])
        mean, std = float(stack.mean()), float(stack.std())
        patch, batch, n_batches = case["patch"], case["batch"], case["batches"]
        axes = case["axes"]
        bytes_per_batch = batch * int(np.prod(patch)) * 4
        rows = []

        def add(name, detail, res):
            res.update(pipeline=name, detail=detail)
            res["GB_s_out"] = res["patches_per_s"] * bytes_per_batch / batch / 1e9
            rows.append(res)
            print(f"  {case['name']:<18} {name:<22} {res['patches_per_s']:>12,.0f} patches/s   ({detail})", flush=True)

        norm = MeanStdNormalization(means=[mean], stds=[std])
        aug = Augmentations(seed=0)
        make = lambda shapes: RandomPatching(shapes, patch, seed=0)  # noqa: E731
        placements = ["gpu", "cpu"] if device == "gpu" else ["cpu"]
        for placement in placements:
            ds = PatchDataset(stack, make, axes=axes, normalization=norm, augmentations=aug, device=device,
                              placement=placement, progress=False)
            detail = {"gpu": "uint16 stack resident on the GPU", "cpu": "stack in host memory" if device == "cpu"
                      else "host stack, pinned staging + async upload"}[placement]
            name = "cupatch" if placement == device or (device == "gpu" and placement == "gpu") else "cupatch host-staged"
            add(name, detail, measure(cupatch_iter(ds, batch), batch, n_batches, warmup, device))
            if device == "cpu":
                add("cupatch prefetch=0", detail + ", no prefetch thread",
                    measure(cupatch_iter(ds, batch, prefetch=0), batch, n_batches, warmup, device))
        if device == "cpu":
            import zarr

            with tempfile.TemporaryDirectory() as tmp:
                chunks = (1, 1, 256, 256) if len(patch) == 2 else (1, 1, 32, 128, 128)
                arr = zarr.create_array(os.path.join(tmp, "s.zarr"), shape=stack.shape, chunks=chunks, dtype=stack.dtype)
                arr[...] = stack
                ds = PatchDataset(os.path.join(tmp, "s.zarr"), make, axes=axes, normalization=norm, augmentations=aug,
                                  device=device, placement="disk", progress=False)
                from cupatch.stacks.zarr_stack import chunk_cache

                chunk_cache.clear()
                cache_mib = chunk_cache.max_bytes // 2**20
                add("cupatch zarr-disk", f"Zarr chunks {chunks}, {cache_mib} MiB decoded-chunk cache "
                    f"({'stack fits' if stack.nbytes <= chunk_cache.max_bytes else 'stack larger'}), 8 reader threads",
                    measure(cupatch_iter(ds, batch), batch, n_batches, warmup, device))
                ds.close()

        per_item = PerItemDataset(stack, patch, mean, std)
        for workers in (N_WORKERS, 0):
            gen, mechanism = per_item_batches(per_item, batch, n_batches, workers, device, warmup)
            add("careamics-style" + ("" if workers else " 0w"), mechanism, measure(gen, batch, n_batches, warmup, device))
        if device == "gpu":
            add("cupy-per-patch", "per-patch CuPy slice/normalise/augment + stack",
                measure(cupy_per_patch_batches(stack, patch, batch, n_batches, mean, std), batch, n_batches, warmup, device))
            add("copy-roof", "device-to-device copy of the batch bytes",
                measure(copy_roof_batches((batch, 1, *patch)), batch, n_batches, warmup, device))
        ref = next(r["patches_per_s"] for r in rows if r["pipeline"] == "careamics-style")
        for r in rows:
            r["speedup_vs_careamics_style"] = r["patches_per_s"] / ref
        results.append({"case": case["name"], "stack_shape": case["shape"], "patch": patch, "batch": batch, "rows": rows})
    return {"results": results}


def environment(device: str) -> dict:
    info = {
        "date": _dt.date.today().isoformat(),
        "device": device,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cupatch": cupatch.__version__,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    if device == "gpu":
        import cupy

        info["cupy"] = cupy.__version__
        info["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return info


def table(report: dict) -> str:
    lines = [f"cupatch training feed benchmark ({report['env']['device']}, {report['env'].get('gpu') or str(report['env']['cpu_count']) + ' CPU cores'}, "
             f"{report['env']['date']}{', quick' if report['quick'] else ''})", ""]
    header = f"{'case':<18} {'pipeline':<22} {'patches/s':>12} {'GB/s out':>9} {'vs careamics':>13}  detail"
    lines += [header, "-" * len(header)]
    for res in report["results"]:
        for r in res["rows"]:
            lines.append(
                f"{res['case']:<18} {r['pipeline']:<22} {r['patches_per_s']:>12,.0f} {r['GB_s_out']:>9.2f} "
                f"{r['speedup_vs_careamics_style']:>12.1f}x  {r['detail']}"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small stacks and few batches")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    parser.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    from cupatch import gpu_available

    device = ("gpu" if gpu_available() else "cpu") if args.device == "auto" else args.device
    env = environment(device)
    print(f"device: {device}; torch: {env['torch']}", flush=True)
    report = {"env": env, "quick": args.quick, **run(device, args.quick)}
    text = table(report)
    print()
    print(text)
    tag = f"cpu-{os.cpu_count()}core" if device == "cpu" else env["gpu"].lower().replace(" ", "-")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{tag}-{env['date']}-feed"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, default=list))
    stem.with_suffix(".txt").write_text(text + "\n")
    print(f"\nwrote {stem}.json and {stem}.txt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
