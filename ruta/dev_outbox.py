"""Where `ruta dev`'s outgoing SMS go when no real provider is configured: the fake provider on
loopback, inside the `ruta dev` process (so it cannot outlive it), each SMS printed on the
terminal and appended to ``instance/outbox.jsonl``. A newcomer then sees a referral reach a
focal point without an account at any provider. Development only: the numbers are masked, but the
bodies are kept in clear, as a phone's screen would show them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from providers.fake_provider import FakeProviderServer
from providers.senders import REQUIRED_SETTINGS

OUTBOX_FILE = "outbox.jsonl"
#: Settings that mean a real provider is meant: then `ruta dev` leaves sending to it.
PROVIDER_SETTINGS = (
    "RUTA_OUTBOUND_PROVIDER",
    *REQUIRED_SETTINGS["twilio"],
    *REQUIRED_SETTINGS["africastalking"],
)


def real_provider_configured(env: Mapping[str, str]) -> bool:
    return any(env.get(name) for name in PROVIDER_SETTINGS)


def mask(number: str) -> str:
    """+50600001001 -> +506****1001: enough to tell the demo's phones apart."""
    if len(number) <= 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


class Outbox:
    """Prints each SMS the fake provider accepts on one line and appends it to a JSON-lines
    file (mode 600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)

    def __call__(self, message: dict[str, Any]) -> None:
        entry = {
            "at": message["received_at"],
            "provider": message["provider"],
            "to": mask(str(message["to"])),
            "body": message["body"],
        }
        one_line = " / ".join(str(entry["body"]).splitlines())
        with self._lock:
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(entry, ensure_ascii=False) + "\n")
            click.echo(f"SMS {entry['at'][11:19]} to {entry['to']}: {one_line}")


def start(instance_dir: Path) -> tuple[FakeProviderServer, dict[str, str]]:
    """The fake provider on a free loopback port, and the settings that send through it."""
    server = FakeProviderServer(on_record=Outbox(instance_dir / OUTBOX_FILE)).start()
    settings = {
        "AT_USERNAME": "sandbox",
        "AT_API_KEY": "ruta-dev-fake-provider",
        "AT_API_BASE_URL": server.url,
    }
    return server, settings
