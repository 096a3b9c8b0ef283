"""BatchLoader: DistributedSampler-equivalent ordering, determinism, prefetching, torch interop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import requires_gpu, to_numpy

from cupatch.augmentation import Augmentations
from cupatch.dataset import PatchDataset
from cupatch.loader import BatchLoader, epoch_permutation, shard_indices
from cupatch.normalization import MeanStdNormalization
from cupatch.patching import RandomPatching
from cupatch.region import collate_regions


def _distributed_sampler_reference(order, rank, world_size, drop_last):
    """torch.utils.data.DistributedSampler.__iter__ after the permutation, in plain Python."""
    indices = list(order)
    n = len(indices)
    if drop_last and n % world_size != 0:
        num_samples = math.ceil((n - world_size) / world_size)
    else:
        num_samples = math.ceil(n / world_size)
    total_size = num_samples * world_size
    if not drop_last:
        padding_size = total_size - len(indices)
        if padding_size <= len(indices):
            indices += indices[:padding_size]
        else:
            indices += (indices * math.ceil(padding_size / len(indices)))[:padding_size]
    else:
        indices = indices[:total_size]
    return indices[rank:total_size:world_size]


@pytest.mark.parametrize("n", [1, 2, 5, 7, 12, 13])
@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
@pytest.mark.parametrize("drop_last", [False, True])
def test_shard_indices_match_distributed_sampler(n, world_size, drop_last):
    order = np.random.default_rng(n).permutation(n)
    for rank in range(world_size):
        got = shard_indices(order, rank, world_size, drop_last)
        assert got.tolist() == _distributed_sampler_reference(order.tolist(), rank, world_size, drop_last)


@pytest.mark.parametrize("world_size", [20, 97, 2**62])
def test_a_world_larger_than_the_epoch_pads_without_a_padded_copy(world_size):
    """More ranks than patches: each rank gets the patch DistributedSampler's cyclic padding
    gives it, read from the order itself (a padded copy of 2**62 entries could not be made)."""
    order = np.random.default_rng(0).permutation(7)
    for rank in (0, 6, 7, 13, world_size - 1):
        assert shard_indices(order, rank, world_size, False).tolist() == [int(order[rank % 7])]
        assert shard_indices(order, rank, world_size, True).tolist() == []
    if world_size < 100:  # the reference builds the padded list
        for rank in range(world_size):
            assert shard_indices(order, rank, world_size, False).tolist() == _distributed_sampler_reference(
                order.tolist(), rank, world_size, False
            )


def test_shard_indices_against_torch_sampler():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    from torch.utils.data import DistributedSampler

    for n, world_size, drop_last in [(10, 3, False), (10, 3, True), (2, 5, False), (16, 4, False)]:
        for rank in range(world_size):
            sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=False, drop_last=drop_last)
            assert shard_indices(np.arange(n), rank, world_size, drop_last).tolist() == list(sampler)
    assert torch.__version__


def test_epoch_permutation_is_a_function_of_seed_and_epoch():
    p = epoch_permutation(50, 3, 0)
    assert sorted(p.tolist()) == list(range(50))
    np.testing.assert_array_equal(p, epoch_permutation(50, 3, 0))
    assert not np.array_equal(p, epoch_permutation(50, 3, 1))
    assert not np.array_equal(p, epoch_permutation(50, 4, 0))


def _dataset(device="cpu", targets=True, seed=7, **kwargs):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 1000, (4, 32, 32)).astype(np.uint16)
    return PatchDataset(a, lambda s: RandomPatching(s, (8, 8), seed=seed), axes="SYX",
                        targets=(a // 2) if targets else None, normalization=MeanStdNormalization(),
                        augmentations=Augmentations(seed=seed), device=device, progress=False, **kwargs)


def _patches_by_index(loader):
    """{dataset index: input patch} for one epoch of a loader."""
    out = {}
    for (x, _), idx in zip(loader, loader.batches()):
        for i, patch in zip(idx.tolist(), to_numpy(x)):
            out[i] = patch
    return out


def test_len_and_batches():
    ds = _dataset()
    assert len(ds) == 64
    assert len(BatchLoader(ds, 10, seed=0)) == 7
    assert len(BatchLoader(ds, 10, seed=0, drop_last=True)) == 6
    loader = BatchLoader(ds, 10, seed=0, rank=1, world_size=3)
    assert len(loader) == math.ceil(22 / 10) and len(loader.indices()) == 22
    batches = list(BatchLoader(ds, 10, seed=0, drop_last=True))
    assert len(batches) == 6 and all(x.shape == (10, 1, 8, 8) for x, _ in batches)
    unshuffled = BatchLoader(ds, 16, shuffle=False)
    np.testing.assert_array_equal(np.concatenate(unshuffled.batches()), np.arange(64))


def test_without_targets_every_entry_point_gives_a_one_tuple():
    """One convention (CAREamics'): ds[i], get_batch and the loader all give (input,)."""
    ds = _dataset(targets=False)
    (x,) = next(iter(BatchLoader(ds, 4, seed=1, shuffle=False)))
    assert isinstance(x, np.ndarray) and x.shape == (4, 1, 8, 8)
    (xr,) = next(iter(BatchLoader(ds, 4, seed=1, shuffle=False, return_regions=True)))
    assert xr.data.shape == (4, 1, 8, 8) and len(xr.source) == 4
    np.testing.assert_array_equal(xr.data, x)
    (xb,) = ds.get_batch([0, 1, 2, 3])
    np.testing.assert_array_equal(xb.data, x)
    items = [ds[i] for i in range(4)]
    assert all(len(item) == 1 for item in items)
    (collated,) = collate_regions(items)  # the natural way to batch items gives get_batch's tuple
    np.testing.assert_array_equal(collated.data, x)
    assert collated.source == xb.source


def test_with_targets_every_entry_point_gives_a_pair():
    ds = _dataset()
    x, y = next(iter(BatchLoader(ds, 4, seed=1, shuffle=False)))
    xr, yr = next(iter(BatchLoader(ds, 4, seed=1, shuffle=False, return_regions=True)))
    xb, yb = ds.get_batch([0, 1, 2, 3])
    xc, yc = collate_regions([ds[i] for i in range(4)])
    for batch, region, got, collated in ((x, xr, xb, xc), (y, yr, yb, yc)):
        np.testing.assert_array_equal(region.data, batch)
        np.testing.assert_array_equal(got.data, batch)
        np.testing.assert_array_equal(collated.data, batch)


def test_same_patches_whatever_the_world_size():
    ds = _dataset()
    single = _patches_by_index(BatchLoader(ds, 5, seed=3))
    sharded = {}
    for rank in range(3):
        sharded.update(_patches_by_index(BatchLoader(ds, 4, seed=3, rank=rank, world_size=3)))
    assert set(sharded) == set(single) == set(range(len(ds)))
    for i in single:
        np.testing.assert_array_equal(single[i], sharded[i])
    # ranks see disjoint indices apart from the padding (64 = 3 * 22 - 2)
    shards = [set(BatchLoader(ds, 4, seed=3, rank=r, world_size=3).indices().tolist()) for r in range(3)]
    assert sum(len(s) for s in shards) == 66 and len(set.union(*shards)) == 64


def test_set_epoch_changes_order_and_patches():
    ds = _dataset()
    loader = BatchLoader(ds, 8, seed=5)
    order0 = loader.indices().copy()
    p0 = _patches_by_index(loader)
    np.testing.assert_array_equal(order0, loader.indices())  # no implicit epoch advance
    loader.set_epoch(1)
    assert ds.epoch == 1 and ds.patching.epoch == 1
    assert not np.array_equal(order0, loader.indices())
    p1 = _patches_by_index(loader)
    assert any(not np.array_equal(p0[i], p1[i]) for i in p0)
    loader.set_epoch(0)
    again = _patches_by_index(loader)
    assert all(np.array_equal(p0[i], again[i]) for i in p0)
    other = BatchLoader(_dataset(), 8, seed=5)
    np.testing.assert_array_equal(other.indices(), order0)


@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_prefetch_gives_the_same_batches(prefetch):
    ds = _dataset()
    reference = [(ds.gather_arrays(idx)) for idx in BatchLoader(ds, 6, seed=2).batches()]
    got = list(BatchLoader(ds, 6, seed=2, prefetch=prefetch))
    assert len(got) == len(reference)
    for (x, y), (rx, ry) in zip(got, reference):
        np.testing.assert_array_equal(x, rx)
        np.testing.assert_array_equal(y, ry)


def test_early_break_and_errors_in_the_producer():
    ds = _dataset()
    for i, _ in enumerate(BatchLoader(ds, 2, seed=2, prefetch=2)):
        if i == 1:
            break

    class Broken:
        device, epoch = "cpu", 0

        def __len__(self):
            return 8

        def gather_arrays(self, idx):
            raise OSError("disk vanished")

    with pytest.raises(OSError, match="disk vanished"):
        list(BatchLoader(Broken(), 2, seed=0))


def test_argument_errors():
    ds = _dataset()
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        BatchLoader(ds, 0)
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        BatchLoader(ds, 2.5)
    with pytest.raises(ValueError, match="rank must be in"):
        BatchLoader(ds, 2, seed=0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="world_size must be >= 1"):
        BatchLoader(ds, 2, world_size=0)
    with pytest.raises(ValueError, match="seed is required"):
        BatchLoader(ds, 2, world_size=2)
    with pytest.raises(ValueError, match="prefetch must be >= 0"):
        BatchLoader(ds, 2, prefetch=-1)
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        BatchLoader(ds, 2).set_epoch(-1)


def test_torch_interop_cpu():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    ds = _dataset()
    loader = BatchLoader(ds, 8, seed=1, as_torch=True)
    x, y = next(iter(loader))
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and tuple(x.shape) == (8, 1, 8, 8)
    ref_x, _ = ds.gather_arrays(loader.batches()[0])
    np.testing.assert_array_equal(x.numpy(), ref_x)
    # zero copy: the tensor views the NumPy batch
    arr = ds.gather_arrays([0, 1])[0]
    assert torch.from_dlpack(arr).data_ptr() == arr.ctypes.data
    # a tiny training step runs on the batches
    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    assert model.weight.grad is not None


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("placement", ["auto", "cpu"])
@pytest.mark.parametrize("prefetch", [0, 2])
def test_gpu_loader_matches_cpu(placement, prefetch):
    import cupy

    gpu_loader = BatchLoader(_dataset("gpu", placement=placement), 6, seed=4, prefetch=prefetch)
    cpu_loader = BatchLoader(_dataset("cpu"), 6, seed=4)
    for epoch in range(2):
        gpu_loader.set_epoch(epoch)
        cpu_loader.set_epoch(epoch)
        for (xg, yg), (xc, yc) in zip(gpu_loader, cpu_loader):
            assert isinstance(xg, cupy.ndarray)
            # work on the consumer stream after the hand-over sees the complete batch
            np.testing.assert_array_equal((xg * 1).get(), xc)
            np.testing.assert_array_equal(yg.get(), yc)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.real_gpu(reason="torch CUDA tensors: the emulated device is not a CUDA device torch can use")
def test_gpu_torch_interop_on_a_side_stream():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA support")
    loader = BatchLoader(_dataset("gpu"), 8, seed=1, as_torch=True, prefetch=2)
    cpu = list(BatchLoader(_dataset("cpu"), 8, seed=1))
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        for (x, y), (xc, yc) in zip(loader, cpu):
            assert x.is_cuda and x.dtype == torch.float32
            np.testing.assert_array_equal((x + 0).cpu().numpy(), xc)


# -- GPU prefetch protocol, checked on the CPU with a stand-in for cupy / torch --------------


class _FakeEvent:
    def __init__(self, stream, n_ops):
        self.stream, self.n_ops = stream, n_ops


class _FakeStream:
    """Records the operations queued on it; ``with`` makes it the current stream."""

    def __init__(self, log, name):
        self.log, self.name, self.ops = log, name, 0

    def record(self):
        self.log.append(("record", self.name))
        return _FakeEvent(self, self.ops)

    def wait_event(self, event):
        self.log.append(("wait", self.name, event.stream.name, event.n_ops))

    def __enter__(self):
        self.log.current.append(self)
        return self

    def __exit__(self, *exc):
        self.log.current.pop()


class _Log(list):
    def __init__(self):
        super().__init__()
        self.default = _FakeStream(self, "consumer")
        self.current = [self.default]


def _fake_cupy(log):
    import types
    import warnings

    cuda = types.SimpleNamespace()
    created = []

    class Stream(_FakeStream):
        def __init__(self, non_blocking=False):
            super().__init__(log, f"side{len(created)}")
            created.append(self)

        @classmethod
        def from_external(cls, obj):
            return _FakeStream(log, f"external:{obj.__cuda_stream__()[1]}")

    def external_stream(ptr, device_id=-1):
        warnings.warn("ExternalStream is deprecated", DeprecationWarning, stacklevel=2)
        return _FakeStream(log, f"external:{ptr}")

    cuda.Stream = Stream
    cuda.ExternalStream = external_stream
    cuda.get_current_stream = lambda: log.current[-1]
    cuda.Device = lambda: types.SimpleNamespace(id=0)
    return types.SimpleNamespace(cuda=cuda, __name__="cupy"), created


class _FakeGpuDataset:
    """Batches are the index arrays; production is logged with the stream current then."""

    device = "gpu"

    def __init__(self, log, n=10):
        self.log, self.n, self.epoch = log, n, 0

    def __len__(self):
        return self.n

    def set_epoch(self, epoch):
        self.epoch = epoch

    def gather_arrays(self, idx):
        stream = self.log.current[-1]
        stream.ops += 1
        self.log.append(("produce", stream.name, tuple(idx.tolist())))
        return np.asarray(idx) * 10, np.asarray(idx)


def _check_protocol(log, batches, consumer_name, prefetch):
    """Every production happens on the side stream after it waited for the consumer's queue,
    and the consumer waits for each batch's completion event before the batch is handed over."""
    productions = [i for i, e in enumerate(log) if e[0] == "produce"]
    assert [log[i][2] for i in productions] == [tuple(b.tolist()) for b in batches]
    for i in productions:
        assert log[i][1].startswith("side")
        assert log[i - 1][:3] == ("wait", log[i][1], consumer_name)  # side waits on the consumer
        assert log[i - 2] == ("record", consumer_name)
    waits = [e for e in log if e[0] == "wait" and e[1] == consumer_name]
    assert len(waits) == len(batches)
    assert [w[3] for w in waits] == list(range(1, len(batches) + 1))  # after batch k's kernels


@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_gpu_prefetch_protocol_with_stand_in(monkeypatch, prefetch):
    import sys

    log = _Log()
    fake, created = _fake_cupy(log)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    loader = BatchLoader(_FakeGpuDataset(log), 3, shuffle=False, prefetch=prefetch)
    got = []
    for x, y in loader:
        # at hand-over the consumer has just waited on this batch's ready event
        last_wait = [e for e in log if e[0] == "wait" and e[1] == "consumer"][-1]
        assert last_wait[3] == len(got) + 1
        got.append(y.tolist())
    assert got == [b.tolist() for b in loader.batches()]
    _check_protocol(log, loader.batches(), "consumer", prefetch)
    # a second epoch reuses the loader's side stream instead of creating (and destroying) one
    list(loader)
    assert len(created) == 1


def test_gpu_prefetch_as_torch_uses_torchs_stream_without_deprecated_api(monkeypatch):
    import sys
    import types

    log = _Log()
    fake, _ = _fake_cupy(log)

    class TorchStream:
        cuda_stream = 1234

        def __cuda_stream__(self):
            return (0, self.cuda_stream)

    requested = []

    def current_stream(device=None):
        requested.append(device)
        return TorchStream()

    fake_torch = types.SimpleNamespace(
        cuda=types.SimpleNamespace(current_stream=current_stream), from_dlpack=lambda a: ("tensor", a)
    )
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    loader = BatchLoader(_FakeGpuDataset(log, n=7), 2, shuffle=False, prefetch=1, as_torch=True)
    out = list(loader)  # warnings are errors: the deprecated ExternalStream would fail here
    assert [t[1][0] for t in out] == ["tensor"] * len(loader.batches())
    assert set(requested) == {0}  # the stream of the device the batches are on
    _check_protocol(log, loader.batches(), "external:1234", 1)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("prefetch", [1, 3])
def test_gpu_loader_consumer_on_a_busy_non_default_stream(prefetch):
    """Batches equal get_batch's even when the consumer's stream is slow: the hand-over must
    wait for the gather, and the prefetch stream must not reuse memory of batches the slow
    consumer is still reading (CuPy's pool is stream-ordered)."""
    import cupy

    dataset = _dataset("gpu")
    loader = BatchLoader(dataset, 4, seed=3, prefetch=prefetch)
    expected = [tuple(to_numpy(a) for a in dataset.gather_arrays(idx)) for idx in loader.batches()]
    stream = cupy.cuda.Stream(non_blocking=True)
    kept = []
    with stream:
        for (x, y), (xe, ye) in zip(loader, expected):
            busy = cupy.zeros((1 << 22,), dtype=cupy.float32)
            for _ in range(20):  # queue a long-running kernel ahead of the reads below
                busy = cupy.sin(busy) + 1
            kept.append((x.copy(), y.copy()))
            del x, y  # dropped while the reads above are still queued on the consumer stream
        stream.synchronize()
    for (x, y), (xe, ye) in zip(kept, expected):
        np.testing.assert_array_equal(x.get(), xe)
        np.testing.assert_array_equal(y.get(), ye)
