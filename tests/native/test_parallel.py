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
