"""The CPU kernels' thread loop: every item runs once, failures become Python exceptions.

Thread start failures are simulated through a testing hook of the native module; without
the fix a refused start after a successful one destroyed a running std::thread and aborted
the interpreter.
"""

import numpy as np
import pytest

from cupatch import _core


@pytest.fixture
def four_threads():
    before = _core.cpu_threads()
    _core.set_cpu_threads(4)
    try:
        yield 4
    finally:
        _core.set_cpu_threads(0)
    assert _core.cpu_threads() == before


@pytest.mark.parametrize("n", [1, 3, 4, 10, 1001])
def test_every_item_runs_once(four_threads, n):
    hits = _core._parallel_for_check(n, -1, -1)
    np.testing.assert_array_equal(hits, np.ones(n, dtype=np.int32))


@pytest.mark.parametrize("fail_after", [0, 1, 2])
def test_refused_thread_start_runs_the_rest_on_the_caller(four_threads, fail_after):
    hits = _core._parallel_for_check(1001, fail_after, -1)
    np.testing.assert_array_equal(hits, np.ones(1001, dtype=np.int32))


@pytest.mark.parametrize("throw_at", [0, 500, 1000])
def test_worker_exception_becomes_a_python_exception(four_threads, throw_at):
    with pytest.raises(IndexError, match=f"item {throw_at} failed"):
        _core._parallel_for_check(1001, -1, throw_at)


@pytest.mark.parametrize("fail_after", [0, 1])
def test_exception_after_a_refused_thread_start(four_threads, fail_after):
    with pytest.raises(IndexError, match="item 999 failed"):
        _core._parallel_for_check(1001, fail_after, 999)


def test_hook_is_reset_after_the_call(four_threads):
    _core._parallel_for_check(10, 0, -1)
    np.testing.assert_array_equal(_core._parallel_for_check(10, -1, -1), np.ones(10, dtype=np.int32))


def test_negative_count_is_refused():
    with pytest.raises(ValueError, match="n must be"):
        _core._parallel_for_check(-1, -1, -1)


def test_huge_thread_count_from_the_environment_still_works():
    """CUPATCH_NUM_THREADS far beyond what the system can start (or what fits an int) must
    neither abort nor lose work: the count saturates and unstartable threads run inline."""
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np; from cupatch import _core; "
        "assert 1 <= _core.cpu_threads() <= 4096, _core.cpu_threads(); "
        "h = _core._parallel_for_check(20000, -1, -1); assert (h == 1).all(); "
        "h = _core._parallel_for_check(20000, 3, -1); assert (h == 1).all(); print('ok')"
    )
    env = dict(os.environ, CUPATCH_NUM_THREADS="99999999999999999999")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_starts_its_own_workers(four_threads):
    """The worker pool survives fork: a child (a DataLoader worker) inherits no pool threads
    and must not wait for them; it starts its own and every item still runs once."""
    import os
    import sys

    if not hasattr(os, "fork"):
        pytest.skip("no os.fork on this platform")
    from cupatch.ops import gather_patches

    source = np.arange(512 * 512, dtype=np.uint16).reshape(1, 1, 512, 512)
    specs = np.array([[0, 0, 7 * i, 5 * i] for i in range(64)], dtype=np.int64)
    expected = gather_patches([source], specs, (64, 64))  # the pool's workers are running now
    pid = os.fork()
    if pid == 0:  # child: report through the exit status only
        ok = False
        try:
            ok = bool((gather_patches([source], specs, (64, 64)) == expected).all())
            ok = ok and bool((_core._parallel_for_check(5000, -1, -1) == 1).all())
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, sys.platform


def test_concurrent_callers_share_the_pool(four_threads):
    """Kernels called from several Python threads at once (the pool busy with one of them
    runs the others inline) give every caller its own, complete result."""
    from concurrent.futures import ThreadPoolExecutor

    from cupatch.ops import gather_patches

    source = np.arange(512 * 512, dtype=np.uint16).reshape(1, 1, 512, 512)
    specs = [np.array([[0, 0, (7 * i + k) % 448, 5 * i] for i in range(64)], dtype=np.int64) for k in range(4)]
    expected = [gather_patches([source], s, (64, 64)) for s in specs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda k: [gather_patches([source], specs[k], (64, 64)) for _ in range(10)], range(4)))
    for k in range(4):
        for g in got[k]:
            np.testing.assert_array_equal(g, expected[k])


# --------------------------------------------------------------------------------------
# borrowing a loaded OpenMP runtime (cpp/src/cpu/openmp_runtime.h)
# --------------------------------------------------------------------------------------

_LOAD_OPENMP = """
import ctypes, ctypes.util, os, sys
if RUNTIME == "libgomp":
    sys.modules["torch"] = None  # as if torch were not installed
try:
    import torch  # the runtime users have loaded: torch's own copy
    torch.set_num_threads(2)
    torch.ones(256, 256) @ torch.ones(256, 256)  # its team of threads exists now
    omp = None
except ImportError:
    name = ctypes.util.find_library("gomp")
    if name is None or RUNTIME == "torch":
        print("no-openmp"); sys.exit(0)
    omp = ctypes.CDLL(name)  # the system's libgomp, as another library would load it
    omp.omp_set_num_threads(2)
import numpy as np
from cupatch import _core
from cupatch.ops import gather_patches
_core.set_cpu_threads(2)
source = np.arange(512 * 512, dtype=np.uint16).reshape(1, 1, 512, 512)
specs = np.array([[0, 0, 7 * i, 5 * i] for i in range(64)], dtype=np.int64)
expected = np.stack([source[0, :, 7 * i : 7 * i + 64, 5 * i : 5 * i + 64] for i in range(64)]).astype(np.float32)
"""


@pytest.fixture(params=["torch", "libgomp"])
def openmp_runtime(request):
    """Which runtime the subprocess loads: torch's copy, or the system's libgomp."""
    return request.param


def _run_openmp_case(runtime: str, body: str, env=None) -> list[str]:
    import os
    import subprocess
    import sys

    code = f"RUNTIME = {runtime!r}\n" + _LOAD_OPENMP + body
    result = subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ, **(env or {})), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    if lines == ["no-openmp"]:
        pytest.skip(f"no {runtime} to load")
    return lines


def test_kernels_run_on_a_loaded_openmp_runtime(openmp_runtime):
    """With an OpenMP runtime loaded (torch's), the main thread's kernels run on its threads,
    every item once, with the same results, and a chunk's exception still reaches Python."""
    lines = _run_openmp_case(
        openmp_runtime,
        """
print(_core.cpu_parallel_backend().split()[0])
print(bool((_core._parallel_for_check(1001, -1, -1, pool_only=False) == 1).all()))
print(bool((gather_patches([source], specs, (64, 64)) == expected).all()))
try:
    _core._parallel_for_check(1001, -1, 500, pool_only=False)
    print("no-error")
except IndexError as e:
    print("item-500" if "item 500 failed" in str(e) else repr(e))
"""
    )
    assert lines == ["openmp", "True", "True", "item-500"]


def test_no_runtime_or_turned_off_uses_the_pool(openmp_runtime):
    import subprocess
    import sys

    alone = subprocess.run(
        [sys.executable, "-c", "from cupatch import _core; print(_core.cpu_parallel_backend())"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert alone.stdout.split() == ["pool"], alone.stderr
    lines = _run_openmp_case(
        openmp_runtime,
        "print(_core.cpu_parallel_backend()); print(bool((gather_patches([source], specs, (64, 64)) == expected).all()))",
        env={"CUPATCH_OPENMP": "0"},
    )
    assert lines == ["pool", "True"]


def test_other_threads_and_smaller_teams_use_the_pool(openmp_runtime):
    """Another thread would get a new OpenMP team of its own, spinning beside torch's; a team
    smaller than a thread count the user chose would have to start threads: both use the pool."""
    lines = _run_openmp_case(
        openmp_runtime,
        """
import threading
seen = []
def work():
    seen.append(_core.cpu_parallel_backend())
    seen.append(bool((gather_patches([source], specs, (64, 64)) == expected).all()))
t = threading.Thread(target=work); t.start(); t.join()
print(*seen)
if omp is None:
    torch.set_num_threads(1)
else:
    omp.omp_set_num_threads(1)
print(_core.cpu_parallel_backend(), bool((gather_patches([source], specs, (64, 64)) == expected).all()))
"""
    )
    assert lines == ["pool", "True", "pool", "True"]


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_of_an_openmp_process_uses_the_pool(openmp_runtime):
    """libgomp's threads do not survive fork (a parallel region in the child would wait for
    them forever): a DataLoader worker forked after the kernels ran on the runtime uses the
    pool, and finishes."""
    lines = _run_openmp_case(
        openmp_runtime,
        """
assert _core.cpu_parallel_backend().startswith("openmp")
gather_patches([source], specs, (64, 64))  # a region on the runtime's threads, before the fork
pid = os.fork()
if pid == 0:
    ok = _core.cpu_parallel_backend() == "pool"
    ok = ok and bool((gather_patches([source], specs, (64, 64)) == expected).all())
    ok = ok and bool((_core._parallel_for_check(5000, -1, -1, pool_only=False) == 1).all())
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""
    )
    assert lines == ["0"]


def test_default_thread_count_follows_the_runtimes_team(openmp_runtime):
    """With the hardware-default thread count, the kernels run on as many threads as the
    runtime's team has (torch.set_num_threads), more or fewer than the hardware threads."""
    import os

    if (os.cpu_count() or 1) < 2:
        pytest.skip("one hardware thread: every loop runs inline")
    lines = _run_openmp_case(
        openmp_runtime,
        """
_core.set_cpu_threads(0)  # the hardware default (CUPATCH_NUM_THREADS unset)
set_team = torch.set_num_threads if omp is None else omp.omp_set_num_threads
for team in (1, 2):
    set_team(team)
    print(_core.cpu_parallel_backend().rsplit(",", 1)[1].strip().replace(" ", "-"))
    print(bool((_core._parallel_for_check(1001, -1, -1, pool_only=False) == 1).all()))
    print(bool((gather_patches([source], specs, (64, 64)) == expected).all()))
""",
        env={"CUPATCH_NUM_THREADS": ""},
    )
    assert lines == ["1-thread", "True", "True", "2-threads", "True", "True"]
