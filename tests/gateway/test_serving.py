"""The web's gunicorn worker (gateway/serving.py) shares kept-alive connections out evenly
between workers: real gunicorn masters on loopback, a tiny app that answers with the pid of the
worker that served it, and many connections opened at once (issue 11: gunicorn's own gthread
gave one worker 26 of 32 connections, and the people on them waited twice as long)."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import serving
from tests.conftest import wait_for
from tests.test_dev import free_port

ROOT = Path(__file__).parents[2]
PID_APP = """
import os

def app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"""


def _request(sock: socket.socket) -> None:
    sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")


def _answer(sock: socket.socket) -> str:
    """The body of one response (the serving worker's pid)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "connection closed before an answer"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(4096)
    return body.decode()


def _served(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            _request(sock)
            return bool(_answer(sock))
    except OSError:
        return False


def procfile_web(option: str) -> str:
    """The value of ``option`` on the Procfile's web line."""
    lines = (ROOT / "Procfile").read_text(encoding="utf-8").splitlines()
    words = shlex.split(next(line for line in lines if line.startswith("web:")))
    return words[words.index(option) + 1]


def test_the_procfile_serves_with_this_worker() -> None:
    assert procfile_web("--worker-class") == "gateway.serving.BalancedThreadWorker"


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A gunicorn master with two workers of the web's class, as the Procfile starts it."""
    (tmp_path / "pid_app.py").write_text(PID_APP, encoding="utf-8")
    port = free_port()
    master = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "pid_app:app",
            "--chdir",
            str(tmp_path),
            "--pythonpath",
            str(ROOT),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            procfile_web("--threads"),
            "--worker-class",
            procfile_web("--worker-class"),
            "--keep-alive",
            "30",
            "--graceful-timeout",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: _served(port), 30)
        wait_for(lambda: len(_workers(master.pid)) == 2, 30)
        time.sleep(0.5)  # both workers in their loop
        yield port, master
    finally:
        master.send_signal(signal.SIGTERM)
        try:
            master.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(master.pid, signal.SIGKILL)
            master.wait(timeout=5)


def _workers(master: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                found.append(int(entry.name))
    return found


def _open_at_once(port: int, count: int) -> tuple[list[socket.socket], Counter[str]]:
    """``count`` connections opened together, a request on each: how many each worker took."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    for sock in socks:
        _request(sock)
    return socks, Counter(_answer(sock) for sock in socks)


def test_connections_opened_together_are_shared_out_evenly(
    gunicorn: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _master = gunicorn
    for _ in range(3):
        socks, by_worker = _open_at_once(port, 32)
        try:
            assert len(by_worker) == 2, by_worker
            assert max(by_worker.values()) - min(by_worker.values()) <= 2, by_worker
            # Kept alive, each connection stays with its worker.
            for sock in socks:
                _request(sock)
            assert Counter(_answer(sock) for sock in socks) == by_worker
        finally:
            for sock in socks:
                sock.close()
        time.sleep(0.3)  # the workers see their connections closed


def test_a_killed_worker_leaves_the_others_taking_connections(
    gunicorn: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, master = gunicorn
    socks, by_worker = _open_at_once(port, 8)
    try:
        victim = int(min(by_worker, key=lambda pid: by_worker[pid]))
        os.kill(victim, signal.SIGKILL)
        started = time.monotonic()
        fresh, served = _open_at_once(port, 8)
        for sock in fresh:
            sock.close()
        assert sum(served.values()) == 8 and str(victim) not in served
        assert time.monotonic() - started < 10
    finally:
        for sock in socks:
            sock.close()
    assert master.poll() is None


# --- the table the workers share, with real processes standing in for workers ---------------


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


@pytest.fixture
def rows() -> Iterator[list[int]]:
    claimed: list[int] = []
    yield claimed
    for slot in claimed:
        serving.release_slot(slot)


def test_each_worker_compares_itself_with_the_least_loaded_other(
    sleeper: subprocess.Popen[bytes], rows: list[int]
) -> None:
    own = serving.claim_slot(os.getpid())
    other = serving.claim_slot(sleeper.pid)
    assert own is not None and other is not None and own != other
    rows += [own, other]
    serving.record_connections(other, 5)
    serving.record_connections(own, 9)
    assert serving.fewest_elsewhere(own) == 5
    assert serving.fewest_elsewhere(other) == 9


def test_a_dead_or_hung_worker_is_left_out(
    sleeper: subprocess.Popen[bytes], rows: list[int]
) -> None:
    own = serving.claim_slot(os.getpid())
    other = serving.claim_slot(sleeper.pid)
    assert own is not None and other is not None
    rows += [own, other]
    serving.record_connections(other, 0)
    serving.beat(other)
    assert serving.fewest_elsewhere(own) == 0
    # Hung: its loop has not come round for longer than STALE_SECONDS.
    serving._table[other * serving._FIELDS + serving._BEAT] -= serving.STALE_SECONDS + 1
    assert serving.fewest_elsewhere(own) is None
    serving.beat(other)
    assert serving.fewest_elsewhere(own) == 0
    sleeper.kill()
    sleeper.wait()
    assert serving.fewest_elsewhere(own) is None
    # Its row is free for the worker the master starts instead.
    assert serving.claim_slot(os.getpid()) == other
