"""gunicorn's threaded worker, with kept-alive connections shared out evenly between workers.

gunicorn's workers share one listening socket and whichever wakes first accepts: when many
clients connect at once (a proxy's or a provider's pool of kept-alive connections), one worker
may take most of them, and it keeps them. Measured here with 32 connections and two workers:
26 on one, 6 on the other; both were busy, so each of the 26 got a quarter of the turns of
each of the 6, and the slowest people waited twice as long as they need to (p99 140 ms against
105 ms with the connections even).

This worker accepts only while it holds no more connections than the least loaded of the other
live workers. The least loaded worker is always accepting, so nobody waits on a full house:
there is no cap besides gunicorn's own ``--worker-connections``. Each worker writes its count
and a heartbeat in a table of shared memory made by the gunicorn master before it forks; a
worker that died, or has not looped for ``STALE_SECONDS`` (hung, and about to be killed by the
master), is left out of the comparison.

It relies on two attributes of gunicorn's ``ThreadWorker`` (``nr_conns`` and
``worker_connections``, read by its loop before each wait); ``tests/gateway/test_serving.py``
runs real gunicorn masters to hold it to that.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import time
from multiprocessing.sharedctypes import RawArray, RawValue
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

#: How many workers one master can balance; past that a worker runs as plain ``gthread``.
SLOTS = 128
#: A worker whose loop has not come round for this long is left out of the comparison.
STALE_SECONDS = 2.0
_PID, _CONNS, _BEAT = 0, 1, 2
_FIELDS = 3

# Made at import, which gunicorn's master does when it reads --worker-class, before any fork:
# every worker then shares these pages and this lock.
_table: Any = RawArray(ctypes.c_double, SLOTS * _FIELDS)
_rows_used: Any = RawValue(ctypes.c_int, 0)  # rows past this one were never claimed
_claiming = multiprocessing.Lock()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_slot(pid: int) -> int | None:
    """A free row of the table for this worker: never used, or its worker gone."""
    now = time.monotonic()
    with _claiming:
        for slot in range(SLOTS):
            base = slot * _FIELDS
            holder = int(_table[base + _PID])
            if holder == 0 or not _alive(holder):
                _table[base + _CONNS] = 0
                _table[base + _BEAT] = now
                _table[base + _PID] = pid
                _rows_used.value = max(_rows_used.value, slot + 1)
                return slot
    return None


def fewest_elsewhere(own: int) -> int | None:
    """The fewest connections a live worker other than row ``own``'s holds; None if none."""
    now = time.monotonic()
    fewest: int | None = None
    for slot in range(_rows_used.value):
        base = slot * _FIELDS
        pid = int(_table[base + _PID])
        if slot == own or pid == 0 or now - _table[base + _BEAT] > STALE_SECONDS:
            continue
        conns = int(_table[base + _CONNS])
        if (fewest is None or conns < fewest) and _alive(pid):
            fewest = conns
    return fewest


def release_slot(slot: int) -> None:
    _table[slot * _FIELDS + _PID] = 0


def beat(slot: int) -> None:
    """A worker's loop came round."""
    _table[slot * _FIELDS + _BEAT] = time.monotonic()


def record_connections(slot: int, conns: int) -> None:
    _table[slot * _FIELDS + _CONNS] = conns


class BalancedThreadWorker(ThreadWorker):
    """``gthread`` that leaves new connections to a less loaded worker (module docstring)."""

    _slot: int | None = None
    _conns = 0
    _cap = 1000

    # gunicorn's loop reads ``nr_conns < worker_connections`` before each wait to decide
    # whether to listen for new connections; both are intercepted here.
    @property
    def nr_conns(self) -> int:
        return self._conns

    @nr_conns.setter
    def nr_conns(self, value: int) -> None:
        self._conns = value
        if self._slot is not None:
            record_connections(self._slot, value)

    @property
    def worker_connections(self) -> int:
        fewest = None if self._slot is None else fewest_elsewhere(self._slot)
        return self._cap if fewest is None else min(self._cap, fewest + 1)

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        self._cap = value

    def notify(self) -> None:
        super().notify()
        if self._slot is not None:
            beat(self._slot)

    def run(self) -> None:
        # Claimed once the app is loaded: a worker still importing it would count as an idle
        # one, and the others would stop taking connections it cannot serve yet.
        self._slot = claim_slot(os.getpid())
        if self._slot is None:
            self.log.warning("more than %d workers: this one is not balanced", SLOTS)
        try:
            super().run()
        finally:
            self._release()

    def _release(self) -> None:
        if self._slot is not None:
            release_slot(self._slot)
            self._slot = None
