"""Stream-order checking for the emulated device (the stand-in's own, not CuPy API).

On the emulated device every launch runs to completion at once, so work queued on two
streams can never race there, and code that forgets an event wait would pass. This module
keeps the ordering a GPU would guarantee and nothing more, and raises ``StreamOrderError``
when an access could race on a GPU:

* every stream has a vector clock; work on a stream is ordered after earlier work on the
  same stream, after what an event it waited for had seen (``Stream.wait_event``), and after
  everything the host has waited for (``synchronize``, ``get()``, ...);
* the legacy default stream (handle 0 or 1) waits for earlier work on every blocking stream,
  and work on blocking streams waits for earlier legacy-stream work; non-blocking streams do
  neither;
* each device allocation remembers who touched which bytes; a write, or a read after a
  write, by work that is not ordered after the earlier access is a race;
* a freed block returns to the pool of the stream it was allocated on (as in CuPy's
  stream-ordered pool): an allocation on that stream that could reuse it must be ordered
  after every access other streams made to it.

Accesses come from the stand-in's own array operations and, in cupatch's emulated lane,
from its CUDA entry points (``tests/_standin/kernel_accesses.py``).
"""

from __future__ import annotations

import threading

_lock = threading.RLock()
_clocks: dict[int, dict[int, int]] = {}  # stream handle -> vector clock (stream -> count)
_host: dict[int, int] = {}  # what the host has waited for
_blocking: set[int] = {0, 2}  # streams that synchronise with the legacy default stream
_names: dict[int, str] = {0: "the legacy default stream", 2: "the per-thread default stream"}
_MAX_ENTRIES = 128  # remembered accesses per allocation (older ones are forgotten, never misreported)


class StreamOrderError(RuntimeError):
    """An access that is not ordered after an earlier conflicting one (a race on a GPU)."""


def _norm(ptr) -> int:
    ptr = int(ptr)
    return 0 if ptr == 1 else ptr  # 1 is the legacy default stream's CAI/DLPack spelling


def _name(stream: int) -> str:
    return _names.get(stream, f"stream {stream:#x}")


def _join(into: dict, other: dict) -> None:
    for s, c in other.items():
        if into.get(s, 0) < c:
            into[s] = c


def new_stream(ptr: int, blocking: bool, label: str | None = None) -> None:
    with _lock:
        _clocks.setdefault(ptr, {})
        if blocking:
            _blocking.add(ptr)
        if label:
            _names[ptr] = label


def tick(ptr) -> tuple[int, dict]:
    """Queue one piece of work on stream ``ptr``: (stream, its clock after the work)."""
    s = _norm(ptr)
    with _lock:
        vc = _clocks.setdefault(s, {})
        _join(vc, _host)
        if s == 0:
            for b in _blocking:
                if b != 0:
                    _join(vc, _clocks.get(b, {}))
        elif s in _blocking:
            _join(vc, _clocks.get(0, {}))
        vc[s] = vc.get(s, 0) + 1
        return s, vc


def snapshot(ptr) -> dict:
    """What an event recorded now on stream ``ptr`` will have seen."""
    with _lock:
        _, vc = tick(ptr)
        return dict(vc)


def wait(ptr, seen: dict | None) -> None:
    """Stream ``ptr`` waits for an event (``seen``: its snapshot; None: never recorded)."""
    if seen:
        with _lock:
            _join(_clocks.setdefault(_norm(ptr), {}), seen)


def stream_wait_stream(producer, consumer) -> None:
    """``consumer`` waits for everything queued on ``producer`` so far."""
    wait(consumer, snapshot(producer))


def host_sync(ptr=None, seen: dict | None = None) -> None:
    """The host waited for stream ``ptr`` (or for an event's snapshot ``seen``)."""
    with _lock:
        if seen is not None:
            _join(_host, seen)
        else:
            _join(_host, _clocks.get(_norm(ptr), {}))


def host_sync_all() -> None:
    with _lock:
        for vc in _clocks.values():
            _join(_host, vc)


class Accesses:
    """Who touched which bytes of one allocation, and on which stream it was allocated."""

    def __init__(self, start: int, size: int, alloc_stream: int | None, what: str):
        self.start, self.size, self.what = start, size, what
        self.alloc_stream = None if alloc_stream is None else _norm(alloc_stream)
        self.entries: list[tuple[int, int, int, int, bool]] = []  # stream, clock, lo, hi, write

    def access(self, stream, lo: int, hi: int, write: bool, by: str) -> None:
        if hi <= lo:
            return
        with _lock:
            s, vc = tick(stream)
            clock = vc[s]
            for es, ec, elo, ehi, ewrite in self.entries:
                if es == s or not (write or ewrite) or ehi <= lo or hi <= elo:
                    continue
                if vc.get(es, 0) < ec:
                    kind = ("writes" if write else "reads") + " memory " + ("written" if ewrite else "read")
                    raise StreamOrderError(
                        f"{by} on {_name(s)} {kind} by {_name(es)} with nothing ordering it after that access "
                        f"(no event wait or synchronisation): bytes [{max(lo, elo) - self.start}, "
                        f"{min(hi, ehi) - self.start}) of {self.what} at {self.start:#x}. On a GPU the two may race."
                    )
            kept = [e for e in self.entries if not (e[0] == s and e[4] == write and lo <= e[2] and e[3] <= hi)]
            kept.append((s, clock, lo, hi, write))
            self.entries = kept[-_MAX_ENTRIES:]

    def unsafe_for(self, stream: int) -> list[tuple[int, int, int, int, bool]]:
        """Accesses by other streams that ``stream`` is not ordered after."""
        with _lock:
            vc = _clocks.get(stream, {})
            return [e for e in self.entries if e[0] != stream and vc.get(e[0], 0) < e[1]]


class _Pending:
    """Freed blocks per allocating stream, which that stream's next allocations may reuse."""

    def __init__(self):
        self.blocks: dict[int, list[Accesses]] = {}

    def freed(self, acc: Accesses) -> None:
        if acc.alloc_stream is None or not acc.entries:
            return
        with _lock:
            blocks = self.blocks.setdefault(acc.alloc_stream, [])
            blocks.append(acc)
            del blocks[:-256]

    def allocating(self, stream, size: int) -> None:
        s = _norm(stream)
        with _lock:
            tick(s)  # the allocation is ordered on its stream like any work
            blocks = self.blocks.get(s)
            if not blocks:
                return
            blocks[:] = [b for b in blocks if b.unsafe_for(s)]  # safe forever once ordered
            fitting = [b for b in blocks if b.size >= size]
            if not fitting:
                return
            reused = min(fitting, key=lambda b: b.size)
            blocks.remove(reused)
            es, ec, _, _, ewrite = reused.unsafe_for(s)[0]
            raise StreamOrderError(
                f"an allocation on {_name(s)} can reuse a freed block of {reused.what} that {_name(es)} "
                f"{'wrote' if ewrite else 'read'} with nothing ordering {_name(s)} after that access: CuPy's pool "
                f"hands freed memory back out in the allocating stream's order, so on a GPU the new owner may "
                f"overwrite it while {_name(es)} still uses it"
            )


pending = _Pending()

__all__: list[str] = []
