"""`ruta worker` takes its children with it: SIGKILL of the worker leaves no RQ scheduler behind."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from flask import Flask

from tests.conftest import spawn_worker, wait_for


def children_of(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _parent_and_state(int(entry.name)) == (pid, "live"):
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    found = _parent_and_state(pid)
    return found is not None and found[1] == "live"


def _parent_and_state(pid: int) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may hold spaces: the fields follow the last ")".
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return int(ppid), "gone" if state in ("Z", "X") else "live"


def test_sigkill_of_ruta_worker_leaves_no_scheduler_running(app: Flask) -> None:
    process = spawn_worker(app)
    try:
        wait_for(lambda: bool(children_of(process.pid)), 60)
        scheduler = children_of(process.pid)
        assert scheduler, "the worker started no scheduler process"
        os.kill(process.pid, signal.SIGKILL)  # the worker alone, as the OOM killer would
        process.wait(timeout=10)
        wait_for(lambda: not any(alive(pid) for pid in scheduler), 30)
        assert not [pid for pid in scheduler if alive(pid)]
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever is left of its group
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
