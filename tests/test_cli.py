"""The `ruta` commands newcomers and operators use: demo load, chat, fake-provider, publish."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

import requests
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import delete, func, select

from cli import main
from ruta import demo_data
from ruta.db import db
from ruta.flowstore import publish_directory
from ruta.models import FlowVersion, FocalPoint, RoutingChain, Service


def test_demo_load_is_idempotent(app: Flask) -> None:
    with db.transaction() as session:
        before = session.scalar(select(func.count()).select_from(Service))
        assert demo_data.load(session) == {"services": 0}
        after = session.scalar(select(func.count()).select_from(Service))
    assert before == after and (before or 0) > 30


def test_publishing_unchanged_flows_makes_no_new_version(app: Flask) -> None:
    with db.transaction() as session:
        versions = session.scalar(select(func.count()).select_from(FlowVersion))
        report = publish_directory(session, published_by="test")
        assert report.published == []
        assert session.scalar(select(func.count()).select_from(FlowVersion)) == versions


def test_chat_shows_replies_with_their_cost(app: Flask, monkeypatch: Any) -> None:
    for name in ("RUTA_SECRET_KEY", "RUTA_DATA_KEY", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.setenv(name, app.config[name])
    result = CliRunner().invoke(main, ["chat", "--number", "+50688009999"], input="HOLA\n1\n")
    assert result.exit_code == 0, result.output
    assert "1 Buscar servicios" in result.output
    assert "GSM-7, 1 SMS segment(s)" in result.output
    assert "municipio" in result.output


def test_fake_provider_command_serves_on_loopback() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "fake-provider", "--port", str(port)],
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/_fake/messages", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert answer.status_code == 200 and answer.json() == []
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_missing_keys_fail_fast(monkeypatch: Any, tmp_path: Any) -> None:
    monkeypatch.delenv("RUTA_SECRET_KEY", raising=False)
    monkeypatch.delenv("RUTA_DATA_KEY", raising=False)
    monkeypatch.setenv("RUTA_INSTANCE_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code != 0
    assert "missing configuration: RUTA_SECRET_KEY, RUTA_DATA_KEY" in result.output


def test_focal_points_commands(app: Flask, monkeypatch: Any) -> None:
    for name in ("RUTA_SECRET_KEY", "RUTA_DATA_KEY", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.setenv(name, app.config[name])
    runner = CliRunner()
    added = runner.invoke(
        main,
        [
            "focal-points",
            "add",
            "--name",
            "Oficina prueba",
            "--phone",
            "+50600002001",
            "--org",
            "Municipalidad (demo)",
            "--country",
            "CR",
            "--municipality",
            "cr-la-cruz",
        ],
    )
    assert added.exit_code == 0, added.output
    fp_id = int(added.output.split()[2].rstrip(":"))
    assert "+506" in added.output and "2001" not in added.output  # masked
    listed = runner.invoke(main, ["focal-points", "list"])
    assert "Oficina prueba" in listed.output and "+50600002001" not in listed.output
    routed = runner.invoke(
        main, ["focal-points", "route", "cr-la-cruz", "health", "--position", str(fp_id)]
    )
    assert routed.exit_code == 0, routed.output
    bad = runner.invoke(main, ["focal-points", "route", "nowhere", "health", "--position", "1"])
    assert bad.exit_code != 0 and "no municipality" in bad.output
    off = runner.invoke(main, ["focal-points", "deactivate", str(fp_id)])
    assert off.exit_code == 0 and "deactivated" in off.output
    with db.transaction() as session:  # put things back as the demo data had them
        fp = session.get(FocalPoint, fp_id)
        assert fp is not None and fp.active is False
        for chain in session.scalars(select(RoutingChain)):
            if any(step.focal_point_id == fp_id for step in chain.steps):
                session.delete(chain)
        session.flush()
        session.delete(fp)


def test_chat_over_ussd_shows_screens_with_their_length(app: Flask, monkeypatch: Any) -> None:
    for name in ("RUTA_SECRET_KEY", "RUTA_DATA_KEY", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.setenv(name, app.config[name])
    result = CliRunner().invoke(
        main, ["chat", "--channel", "ussd", "--number", "+50688009998"], input="1\n5\n"
    )
    assert result.exit_code == 0, result.output
    assert "1 Buscar servicios" in result.output
    assert "/182 chars, waiting for input" in result.output
    assert "tipo de servicio" in result.output


def test_users_create_reads_or_generates_the_password(app: Flask, monkeypatch: Any) -> None:
    from admin.accounts import authenticate
    from ruta.models import User, utcnow

    for name in ("RUTA_SECRET_KEY", "RUTA_DATA_KEY", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.setenv(name, app.config[name])
    runner = CliRunner()
    typed = runner.invoke(
        main,
        ["users", "create", "Editor@Ruta.test", "--role", "flow_editor"],
        input="a long enough password\n",
    )
    assert typed.exit_code == 0, typed.output
    generated = runner.invoke(
        main,
        [
            "users",
            "create",
            "coord@ruta.test",
            "--role",
            "coordinator",
            "--country",
            "CR",
            "--generate",
        ],
    )
    assert generated.exit_code == 0, generated.output
    password = generated.output.split("password (shown once): ")[1].strip()
    short = runner.invoke(
        main, ["users", "create", "x@ruta.test", "--role", "viewer"], input="short\n"
    )
    assert short.exit_code != 0 and "at least 12 characters" in short.output
    bad_role = runner.invoke(
        main, ["users", "create", "y@ruta.test", "--role", "boss", "--generate"]
    )
    assert bad_role.exit_code != 0 and "role must be one of" in bad_role.output
    with db.transaction() as session:
        assert authenticate(session, "editor@ruta.test", "a long enough password", utcnow())
        assert authenticate(session, "coord@ruta.test", password, utcnow())
        session.execute(delete(User))
