"""Browser tests: Playwright driving Debian's Chromium (/usr/bin/chromium) against Ruta served on
loopback. Nothing is downloaded at test time. Without Chromium they skip on a developer's machine
and fail in CI (``CI`` set), where a missing service must never pass unnoticed."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.admin.conftest import PASSWORD, accounts, sample_case  # noqa: F401  (shared fixtures)

CHROMIUM = os.environ.get("RUTA_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "screenshots"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(params=["es", "en"])
def language(request: Any, app: Flask) -> Iterator[str]:
    """Each journey once in Spanish and once in English (the admin's default language; the
    suite's own default, English, comes back after)."""
    app.config["RUTA_ADMIN_LANGUAGE"] = request.param
    try:
        yield request.param
    finally:
        app.config["RUTA_ADMIN_LANGUAGE"] = "en"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        message = f"Chromium not found at {CHROMIUM}: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture()
def live_url(app: Flask) -> Iterator[str]:
    """The test app served on loopback in a thread, for the browser."""
    server = make_server("127.0.0.1", 0, app, threaded=True)

    def serve() -> None:
        with app.app_context():
            server.serve_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture()
def page(browser: Any, live_url: str, request: Any) -> Iterator[Any]:
    context = browser.new_context(base_url=live_url)
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    tab.shots = []  # type: ignore[attr-defined]
    yield tab
    context.close()


def shot(page: Any, name: str) -> Path:
    """Save a screenshot of the page as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Any, email: str, password: str = PASSWORD) -> None:
    page.goto("/admin/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


AXE = Path(__file__).parents[2] / "node_modules" / "axe-core" / "axe.min.js"
#: axe-core's impacts that fail a page (issue 14: no serious or critical violation).
FAILING_IMPACTS = ("serious", "critical")


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Run axe-core (from the npm registry: ``npm ci`` installs it) on the page as it is now;
    the serious and critical violations, each with its rule, help text and first targets."""
    if not AXE.exists():
        message = f"{AXE} is missing: run `npm ci` in the repository"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    results = page.evaluate("async () => await axe.run(document)")
    return [
        {
            "rule": violation["id"],
            "impact": violation["impact"],
            "help": violation["help"],
            "targets": [node["target"] for node in violation["nodes"][:3]],
        }
        for violation in results["violations"]
        if violation["impact"] in FAILING_IMPACTS
    ]


def assert_accessible(page: Any) -> None:
    violations = axe_violations(page)
    assert not violations, f"axe-core on {page.url}: {violations}"
