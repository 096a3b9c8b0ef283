"""Small shared helpers for the cupatch benchmarks: timing, machine description, the
copy roof, tilings, and JSON + table output.

Timing is best-of-N with adaptive repetitions (until ``min_time`` seconds have been spent),
after one warm-up call. GPU timings use CUDA events around each call (via
``cupyx.profiler.benchmark``), so they measure device time including every launch the
call makes, and never include Python work queued before them.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def time_cpu(fn: Callable[[], Any], *, min_time: float = 0.3, max_repeats: int = 2000) -> float:
    """Best wall time (seconds) of ``fn()`` over repetitions lasting at least ``min_time``
    (the cap on repetitions only binds for sub-millisecond calls, which a shared machine
    interrupts most often)."""
    fn()  # warm-up: page faults, caches, lazy imports
    best, spent, n = float("inf"), 0.0, 0
    while n < max_repeats and (spent < min_time or n < 3):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, n = min(best, dt), spent + dt, n + 1
    return best


def time_gpu(fn: Callable[[], Any], *, min_time: float = 0.3, max_repeats: int = 200) -> float:
    """Best device time (seconds) of ``fn()`` measured with CUDA events."""
    import cupy
    from cupyx.profiler import benchmark

    fn()
    cupy.cuda.Device().synchronize()
    t0 = time.perf_counter()
    fn()
    cupy.cuda.Device().synchronize()
    once = max(time.perf_counter() - t0, 1e-6)
    repeats = int(min(max_repeats, max(5, min_time / once)))
    result = benchmark(fn, n_repeat=repeats, n_warmup=2)
    return float(np.min(result.gpu_times[0]))


def timer_for(xp) -> Callable[..., float]:
    return time_cpu if xp is np else time_gpu


def steady_calls(xp) -> int:
    """Back-to-back calls per GPU timing (1 on the CPU).

    Timing several calls in a row and dividing measures the steady state of a pipeline,
    where the host queues the next launch while the device runs the current one; a single
    call would add the host's launch latency to a kernel that may be shorter than it.
    """
    return 1 if xp is np else 8


def time_per_call(xp, fn: Callable[[], Any], *, min_time: float = 0.3, calls: int | None = None) -> float:
    """Seconds per call of ``fn``, timing ``calls`` back-to-back calls (default steady_calls)."""
    k = steady_calls(xp) if calls is None else calls
    if k == 1:
        return timer_for(xp)(fn, min_time=min_time)

    def several():
        for _ in range(k):
            fn()

    return timer_for(xp)(several, min_time=min_time) / k


#: CPU copy roofs read from a pool of source buffers at least this large, one after the
#: other, so that each copy reads memory the caches do not hold (like a gather from a large
#: image); copying one small buffer again and again measures cache bandwidth instead.
COLD_POOL_BYTES = 256 << 20


def copy_roof(xp, nbytes: int, *, min_time: float = 0.3, cold: bool = True) -> float:
    """Effective bandwidth (GB/s, bytes read + written) of a plain copy moving ``nbytes``
    in total: a device-to-device copy on the GPU, ``numpy.copyto`` on the CPU (from a
    cache-cold source unless ``cold=False``; the destination is reused, as a batch is)."""
    half = max(int(nbytes // 2), 1 << 20)
    dst = xp.empty(half // 4, dtype=np.float32)
    n_src = max(1, -(-COLD_POOL_BYTES // half)) if (cold and xp is np) else 1
    sources = [xp.ones(half // 4, dtype=np.float32) for _ in range(n_src)]
    turn = [0]

    def copy():
        xp.copyto(dst, sources[turn[0] % n_src])
        turn[0] += 1

    seconds = time_per_call(xp, copy, min_time=min_time)
    return 2 * dst.nbytes / seconds / 1e9


def gpu_usable() -> tuple[bool, str]:
    from cupatch._backend import gpu_available, gpu_unavailable_reason

    return gpu_available(), gpu_unavailable_reason()


def machine_info() -> dict[str, Any]:
    """Host, versions and (when usable) GPU of this run."""
    import cupatch

    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "build_info": cupatch.build_info(),
        "gpu": None,
    }
    ok, _ = gpu_usable()
    if ok:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        info["gpu"] = {
            "name": props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"]),
            "memory_gb": round(props["totalGlobalMem"] / 2**30, 1),
            "driver_version": cupy.cuda.runtime.driverGetVersion(),
        }
    return info


def default_tag(device: str, info: dict[str, Any]) -> str:
    """``cpu-<cores>core`` or the GPU's name, lower-case, as a file-name prefix."""
    if device == "gpu" and info.get("gpu"):
        name = info["gpu"]["name"].lower()
        for word in ("nvidia", "geforce", "tesla"):
            name = name.replace(word, "")
        return "-".join(name.split()) or "gpu"
    return f"cpu-{os.cpu_count()}core"


def tile_table(shapes: Sequence[Sequence[int]], tile: Sequence[int], overlaps: Sequence[int]) -> np.ndarray:
    """int64 tile table covering every sample of every SC(Z)YX shape (``TiledPatching`` order)."""
    from cupatch import TiledPatching

    tiling = TiledPatching([tuple(s) for s in shapes], tuple(tile), tuple(overlaps))
    return tiling.spec_table(np.arange(tiling.n_patches))


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """Fixed-width table; ``columns`` are (key, header, format spec)."""
    cells = [[h for _, h, _ in columns]]
    for r in rows:
        line = []
        for key, _, spec in columns:
            v = r.get(key)
            line.append("" if v is None else format(v, spec) if spec else str(v))
        cells.append(line)
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells)


def write_results(out_dir: str | Path, stem: str, payload: dict[str, Any], table: str) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.txt`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, txt_path = out / f"{stem}.json", out / f"{stem}.txt"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    txt_path.write_text(table + "\n")
    return json_path, txt_path


def add_result_arguments(parser) -> None:
    """``--out-dir`` and ``--tag``, the same for every benchmark that writes results."""
    parser.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--tag", default=None, help="result file prefix (default: the GPU name or cpu-<cores>core)")
