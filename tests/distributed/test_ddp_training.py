"""A real 2-process torch.distributed (gloo, CPU) job fed by BatchLoader(rank, world_size=2).

Each rank builds the same PatchDataset and a BatchLoader for its shard, records the patch
indices and batches of two epochs, and trains a DDP model for a few steps. The checks: the
ranks' patches are disjoint and together cover each epoch (as DistributedSampler), the
batches are identical from one job to the next, and the ranks' parameters stay equal and
match one process training on both ranks' batches at once (the gradients were averaged).
"""

from __future__ import annotations

import numpy as np
import pytest

import cupatch

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
mp = pytest.importorskip("torch.multiprocessing")

WORLD, BATCH, STEPS, SEED = 2, 4, 3, 11


def _dataset():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 1000, (4, 32, 64), dtype=np.uint16)
    targets = (images // 2).astype(np.uint16)
    return cupatch.PatchDataset(
        images, lambda shapes: cupatch.RandomPatching(shapes, (16, 16), seed=5), axes="SYX", targets=targets,
        normalization=cupatch.MeanStdNormalization(), augmentations=cupatch.Augmentations(seed=2), device="cpu",
        progress=False,
    )  # fmt: skip


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 3, padding=1))


def _rank(rank: int, rendezvous: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD)
    try:
        for run in ("first", "second"):  # two runs from scratch: fresh dataset, loader and model
            _run(rank, f"{out_dir}/{run}-rank{rank}.npz")
    finally:
        dist.destroy_process_group()


def _run(rank: int, path: str) -> None:
    loader = cupatch.BatchLoader(_dataset(), BATCH, seed=SEED, rank=rank, world_size=WORLD, as_torch=True, prefetch=0)
    record = {}
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        record[f"indices{epoch}"] = loader.indices()
        xs, ys = zip(*[(x.numpy().copy(), y.numpy().copy()) for x, y in loader])
        record[f"x{epoch}"], record[f"y{epoch}"] = np.concatenate(xs), np.concatenate(ys)
    model = torch.nn.parallel.DistributedDataParallel(_net())
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    loader.set_epoch(0)
    for step, (x, y) in enumerate(loader):
        if step == STEPS:
            break
        optimiser.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()  # DDP averages the gradients
        optimiser.step()
    for k, p in enumerate(model.module.parameters()):
        record[f"param{k}"] = p.detach().numpy().copy()
    np.savez(path, **record)


def _job(tmp_path) -> tuple[list[dict], list[dict]]:
    mp.spawn(_rank, args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=WORLD, join=True)
    return tuple([dict(np.load(tmp_path / f"{run}-rank{r}.npz")) for r in range(WORLD)] for run in ("first", "second"))


@pytest.mark.slow
def test_ddp_job_with_sharded_batch_loaders(tmp_path):
    first, second = _job(tmp_path)
    dataset = _dataset()
    n = len(dataset)
    assert n % (WORLD * BATCH) == 0  # no DistributedSampler padding: the shards partition the epoch
    for epoch in (0, 1):
        shards = [r[f"indices{epoch}"] for r in first]
        assert not set(shards[0]) & set(shards[1])
        assert sorted(np.concatenate(shards).tolist()) == list(range(n))
        for r in range(WORLD):  # what rank r got are the dataset's patches at its indices
            dataset.set_epoch(epoch)
            x, y = dataset.gather_arrays(shards[r])
            np.testing.assert_array_equal(first[r][f"x{epoch}"], x)
            np.testing.assert_array_equal(first[r][f"y{epoch}"], y)
    assert not np.array_equal(first[0]["indices0"], first[0]["indices1"])  # a new shuffle each epoch
    for a, b in zip(first, second):  # run to run: the same batches, the same training
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])

    params = [k for k in first[0] if k.startswith("param")]
    for key in params:  # gradients synchronised: the ranks' parameters stay equal
        np.testing.assert_array_equal(first[0][key], first[1][key])
    # ... and equal to one process stepping on both ranks' batches together
    net = _net()
    initial = [p.detach().clone() for p in net.parameters()]
    optimiser = torch.optim.SGD(net.parameters(), lr=0.1)
    for step in range(STEPS):
        rows = slice(step * BATCH, (step + 1) * BATCH)
        x = torch.from_numpy(np.concatenate([r["x0"][rows] for r in first]))
        y = torch.from_numpy(np.concatenate([r["y0"][rows] for r in first]))
        optimiser.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        optimiser.step()
    for key, p, p0 in zip(params, net.parameters(), initial):
        assert not torch.equal(p0, torch.from_numpy(first[0][key]))  # it did train
        np.testing.assert_allclose(first[0][key], p.detach().numpy(), rtol=1e-5, atol=1e-6)
