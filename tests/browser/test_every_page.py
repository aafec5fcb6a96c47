"""axe-core on every admin page (issue 14, item 5), in Spanish and in English.

The crawl is the language test's (tests/admin/pages.py): every GET page of the admin with sample
ids, opened by an admin in a real browser, the login page first. A page fails with a serious or
critical violation; the failure lists each page with its rules and the elements found.

A section whose violations are left to its owner may be put in ``PENDING`` (none is now): its
violations are printed and written to test-artifacts/axe/, not failed; a pending section that
passes fails the test until it is taken off the list, so the list only shrinks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.admin.pages import admin_pages, sample_ids
from tests.browser.conftest import axe_violations, log_in, shot

REPORT = Path(__file__).parents[2] / "test-artifacts" / "axe"
#: Endpoint prefixes of sections still being reworked in another branch (see the docstring).
PENDING: tuple[str, ...] = ()


@pytest.mark.parametrize("language", ["es", "en"])
def test_every_admin_page_passes_axe(
    app: Flask,
    page: Any,
    accounts: dict[str, str],
    sample_case: dict[str, Any],
    language: str,
) -> None:
    pages = admin_pages(app, sample_ids(sample_case))
    app.config["RUTA_ADMIN_LANGUAGE"] = language
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        login_page = next(p for p in pages if p.endpoint == "admin_auth.login")
        page.goto(login_page.url)
        assert page.get_attribute("html", "lang") == language
        found[login_page.endpoint] = axe_violations(page)
        log_in(page, accounts["admin"])
        page.wait_for_url("**/admin/")
        for visited in pages:
            if visited.endpoint == "admin_auth.login":
                continue
            response = page.goto(visited.url)
            assert response is not None and response.status == 200, visited.url
            assert page.get_attribute("html", "lang") == language, visited.url
            found[visited.endpoint] = axe_violations(page)
            # Every page in both languages, to read over as well as to see what axe found.
            shot(page, f"page-{language}-{visited.endpoint.replace('.', '-')}")
    finally:
        app.config["RUTA_ADMIN_LANGUAGE"] = "en"
    urls = {p.endpoint: p.url for p in pages}
    lines = []
    for endpoint, violations in found.items():
        for v in violations:
            pending = "(pending) " if endpoint.startswith(PENDING) else ""
            lines.append(
                f"{pending}{urls[endpoint]} [{endpoint}]: {v['rule']} ({v['impact']}): "
                f"{v['help']} at {v['targets']}"
            )
    report = "\n".join(lines)
    REPORT.mkdir(parents=True, exist_ok=True)
    (REPORT / f"violations-{language}.txt").write_text(report + "\n", encoding="utf-8")
    print(f"\naxe-core in {language}:\n{report or 'no serious or critical violation'}")
    failing = [e for e, v in found.items() if v and not e.startswith(PENDING)]
    assert not failing, f"axe-core violations in {language}:\n{report}"
    dirty = {e.split(".")[0] + "." for e, v in found.items() if v}
    clean = sorted(set(PENDING) - dirty)
    assert not clean, f"{clean} pass axe-core now: take them off PENDING"
