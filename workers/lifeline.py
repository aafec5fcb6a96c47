"""Children of ``ruta worker`` die with it, whatever ends it.

RQ forks its scheduler (and, with ``--fork``, a work-horse per job) with ``os.fork``. A SIGKILL of
the worker runs none of its cleanup, so those children would go on alone: a scheduler still
holding the queues' scheduler lock and moving jobs that no worker will run. On Linux the kernel
can signal a child when its parent dies (``PR_SET_PDEATHSIG``); every fork of the worker process
asks for that. Elsewhere nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys

log = logging.getLogger(__name__)

#: From <linux/prctl.h>.
PR_SET_PDEATHSIG = 1

_parent_pid: int | None = None
_libc: ctypes.CDLL | None = None


def _before_fork() -> None:
    global _parent_pid
    _parent_pid = os.getpid()


def _in_child() -> None:
    if _libc is None:
        return
    # SIGTERM, not SIGKILL: RQ's scheduler stops on it after releasing its locks.
    if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        return
    # The parent may have died between the fork and the prctl: then no signal would come.
    if os.getppid() != _parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)


def install() -> None:
    """Every child forked from now on by this process is signalled when this process dies."""
    global _libc
    if sys.platform.startswith("linux") and _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        os.register_at_fork(before=_before_fork, after_in_child=_in_child)
