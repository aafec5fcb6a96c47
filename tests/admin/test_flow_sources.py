"""Flow sources from a user cannot pin a web worker: YAML anchors and aliases (the "billion
laughs" alias bomb) are refused before anything expands them."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from flows.loader import DEFINITIONS_DIR, parse_flow, parse_settings
from flows.model import DefinitionError
from tests.admin.conftest import csrf_token, login
from tests.admin.test_flows_admin import post_json
from tests.browser.conftest import live_url  # noqa: F401  (fixture: the app on loopback)

MAIN = (DEFINITIONS_DIR / "main.yaml").read_text(encoding="utf-8")
KEYWORDS = "        keywords: {es: [servicios, buscar], en: [services, find]}\n"
#: Generous on a 2-core machine; the bomb took 44 s before aliases were refused.
PROMPT = 1.0


def alias_bomb(levels: int = 8) -> str:
    """The report's bomb: ``levels`` nested anchors, each nine aliases of the one before, used
    as a menu option's keywords (9**8 words once expanded, from about 580 bytes)."""
    anchors = ["          a0: &a0 [" + ",".join(['"lol"'] * 9) + "]"]
    anchors += [
        f"          a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)
    ]
    bomb = "        x-lol:\n" + "\n".join(anchors) + "\n"
    bomb += f"        keywords: {{es: *a{levels - 1}, en: [services, find]}}\n"
    assert KEYWORDS in MAIN
    return MAIN.replace(KEYWORDS, bomb)


@pytest.mark.parametrize(
    "source",
    [
        alias_bomb(),
        "flow: main\nx: &name 1\n",  # an anchor alone is refused too: no alias can follow it
        "flow: main\nbase: &base {a: 1}\nnodes: {<<: *base}\n",
    ],
)
def test_anchors_and_aliases_are_refused_by_the_loader(source: str) -> None:
    started = time.monotonic()
    with pytest.raises(DefinitionError) as refused:
        parse_flow(source, where="flow[main]")
    assert time.monotonic() - started < PROMPT
    assert "anchors and aliases" in str(refused.value)
    with pytest.raises(DefinitionError, match="anchors and aliases"):
        parse_settings(source)


def test_the_alias_bomb_is_refused_at_once_by_validate_simulate_and_graph(
    client: Any, accounts: dict[str, str]
) -> None:
    assert login(client, accounts["viewer"]).status_code == 302
    bomb = alias_bomb()
    for url, body in (
        ("/admin/flows/main/validate", {"source": bomb}),
        ("/admin/flows/main/graph", {"source": bomb}),
        ("/admin/flows/main/simulate", {"source": bomb, "mode": "sms", "text": "HOLA"}),
    ):
        started = time.monotonic()
        response = post_json(client, url, body)
        assert time.monotonic() - started < PROMPT, url
        assert response.status_code == 422, (url, response.status_code)
        assert "anchors and aliases" in response.get_data(as_text=True), url


def test_the_alias_bomb_neither_pins_the_server_nor_slows_a_request_in_parallel(
    live_url: str,  # noqa: F811
    accounts: dict[str, str],
) -> None:
    viewer = requests.Session()
    page = viewer.get(f"{live_url}/admin/login", timeout=10).text
    viewer.post(
        f"{live_url}/admin/login",
        data={"email": accounts["viewer"], "password": "correct horse battery staple"}
        | {"csrf_token": csrf_token(page)},
        timeout=10,
    ).raise_for_status()
    token = csrf_token(viewer.get(f"{live_url}/admin/flows/main/edit", timeout=10).text)

    def bomb() -> tuple[int, float]:
        started = time.monotonic()
        response = viewer.post(
            f"{live_url}/admin/flows/main/validate",
            json={"source": alias_bomb()},
            headers={"X-CSRFToken": token},
            timeout=PROMPT * 5,
        )
        return response.status_code, time.monotonic() - started

    def healthz() -> tuple[int, float]:
        started = time.monotonic()
        response = requests.get(f"{live_url}/healthz", timeout=PROMPT * 5)
        return response.status_code, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=2) as pool:
        fired = pool.submit(bomb)
        normal = pool.submit(healthz)
        (bomb_status, bomb_took), (normal_status, normal_took) = fired.result(), normal.result()
    assert bomb_status == 422 and bomb_took < PROMPT
    assert normal_status == 200 and normal_took < PROMPT
