"""The flows section of the admin: versions, the draft editor, validation, examples, publishing
(and what it means for running conversations), diff, rollback, the simulator and the graph."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from admin import flow_graph
from flows.loader import DEFINITIONS_DIR, parse_flow
from ruta.db import db
from ruta.flowstore import latest_versions
from ruta.models import AuditEntry, Case, FlowDraft, FlowVersion
from tests.admin.conftest import csrf_token, login
from tests.conftest import TwilioPhone

MAIN = (DEFINITIONS_DIR / "main.yaml").read_text(encoding="utf-8")
# The main menu's question: the text these tests change, publish and roll back.
OLD_NOTICE = "Ruta: servicios y ayuda cerca de usted. Responda con un numero:"
NEW_NOTICE = "Ruta: servicios y apoyo en su municipio. Responda con un numero:"


def main_with(old: str, new: str) -> str:
    assert old in MAIN
    return MAIN.replace(old, new)


@pytest.fixture(autouse=True)
def restore_flows(flows_restored: None) -> None:
    """Every test here may publish or draft."""


@pytest.fixture()
def editor(client: Any, accounts: dict[str, str]) -> Any:
    assert login(client, accounts["flow_editor"]).status_code == 302
    return client


def token(client: Any, key: str = "main") -> str:
    return csrf_token(client.get(f"/admin/flows/{key}/edit").get_data(as_text=True))


def post_json(client: Any, url: str, body: dict[str, Any]) -> Any:
    return client.post(url, json=body, headers={"X-CSRFToken": token(client)})


def latest(key: str = "main") -> FlowVersion:
    with db.transaction() as session:
        return latest_versions(session)[key]


def actions(key: str = "main") -> list[str]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.object_type == "flow", AuditEntry.object_id == key)
                .order_by(AuditEntry.id)
            )
        )


def test_the_list_shows_every_flow_with_its_latest_version(editor: Any) -> None:
    page = editor.get("/admin/flows/").get_data(as_text=True)
    for key in ("main", "ask_help", "find_services", "rights"):
        assert f'data-flow="{key}"' in page
    assert "tests" in page  # published by
    versions = editor.get("/admin/flows/main").get_data(as_text=True)
    assert f'data-version="{latest().version}"' in versions
    assert "first version" in versions
    assert editor.get("/admin/flows/nothing").status_code == 404
    assert editor.get("/admin/flows/nothing/edit").status_code == 404


def test_the_editor_shows_the_source_and_its_validation(editor: Any) -> None:
    page = editor.get("/admin/flows/main/edit").get_data(as_text=True)
    for element in ('id="flow-source"', 'id="validation"', 'id="save-draft"', 'id="publish"'):
        assert element in page
    for element in ('id="run-examples"', 'id="examples-result"', 'id="sim-input"'):
        assert element in page
    for element in ('id="sim-send"', 'id="sim-log"', 'id="sim-mode"', "<svg"):
        assert element in page
    assert "flow: main" in page
    assert "no errors" in page
    assert "/admin/static/flows.js" in page
    assert editor.get("/admin/static/flows.js").status_code == 200


def test_a_broken_draft_is_saved_listed_by_node_and_refused(editor: Any) -> None:
    before = latest().version
    broken = main_with("    goto: alerts\n", "    goto: nowhere\n")
    response = editor.post(
        "/admin/flows/main/draft", data={"source": broken, "csrf_token": token(editor)}
    )
    assert response.status_code == 302
    page = editor.get("/admin/flows/main/edit").get_data(as_text=True)
    assert "Draft saved (2 errors)" in page  # the missing target, and 'alerts' now unreachable
    assert "flow[main] node[menu]" in page and "target &#39;nowhere&#39; does not exist" in page
    assert "flow[main] node[alerts]" in page and "unreachable" in page
    assert "goto: nowhere" in page  # the editor loads the draft

    live = post_json(editor, "/admin/flows/main/validate", {"source": broken}).get_json()
    assert {"path": "flow[main] node[menu]", "message": "target 'nowhere' does not exist",
            "error": True} in live  # fmt: skip
    untranslated = main_with('      en: "Ruta: services', '      fr: "Ruta: services')
    live = post_json(editor, "/admin/flows/main/validate", {"source": untranslated}).get_json()
    assert any(i["path"] == "flow[main] node[menu] lang[en]" for i in live)
    unreadable = post_json(editor, "/admin/flows/main/validate", {"source": "flow: [\n"})
    assert unreadable.status_code == 422
    assert unreadable.get_json()[0]["message"].startswith("not valid YAML")
    renamed = post_json(editor, "/admin/flows/main/validate", {"source": MAIN.replace(
        "flow: main", "flow: other")}).get_json()  # fmt: skip
    assert renamed[0]["error"] and "must stay 'main'" in renamed[0]["message"]

    refused = editor.post(
        "/admin/flows/main/publish",
        data={"source": broken, "note": "try", "csrf_token": token(editor)},
    )
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    assert "Publishing refused" in text and "node[menu]" in text
    assert latest().version == before
    assert actions() == ["flow.draft_saved", "flow.publish_refused"]


def test_publishing_reaches_new_conversations_and_running_ones_finish_on_theirs(
    app: Flask, editor: Any
) -> None:
    app.extensions["ruta.flows"].recheck_seconds = 0
    before = latest()
    running = TwilioPhone(editor, "+50688001201")
    assert "Avisos" in running.text("HOLA")

    changed = main_with(OLD_NOTICE, NEW_NOTICE)
    response = editor.post(
        "/admin/flows/main/publish",
        data={"source": changed, "note": "say when", "csrf_token": token(editor)},
    )
    assert response.status_code == 302
    published = latest()
    assert published.version == before.version + 1
    assert published.source == changed
    assert published.published_by == "flow_editor@ruta.test" and published.note == "say when"
    with db.transaction() as session:
        assert session.scalar(select(FlowDraft).where(FlowDraft.flow_key == "main")) is None

    assert OLD_NOTICE in running.text("0")  # pinned to the version it started on
    fresh = TwilioPhone(editor, "+50688001202")
    assert NEW_NOTICE in fresh.text("HOLA")

    listing = editor.get("/admin/flows/main").get_data(as_text=True)
    assert "say when" in listing and "changed: menu" in listing
    diff = editor.get(f"/admin/flows/main/diff/{before.version}/{published.version}")
    text = diff.get_data(as_text=True)
    assert diff.status_code == 200
    assert f'<span class="removed">-      es: &#34;{OLD_NOTICE}&#34;</span>' in text
    assert f'<span class="added">+      es: &#34;{NEW_NOTICE}&#34;</span>' in text
    same = editor.get(f"/admin/flows/main/diff/{before.version}/{before.version}")
    assert "No differences" in same.get_data(as_text=True)
    assert editor.get(f"/admin/flows/main/diff/{before.version}/999").status_code == 404

    rolled = editor.post(
        f"/admin/flows/main/rollback/{before.version}", data={"csrf_token": token(editor)}
    )
    assert rolled.status_code == 302
    restored = latest()
    assert restored.version == before.version + 2
    assert restored.source == before.source and restored.checksum == before.checksum
    assert restored.note == f"rollback to version {before.version}"
    again = TwilioPhone(editor, "+50688001203")
    assert OLD_NOTICE in again.text("HOLA")
    assert actions() == ["flow.draft_saved", "flow.published", "flow.rolled_back"]
    assert "rollback-" in editor.get("/admin/flows/main").get_data(as_text=True)


def test_publishing_the_same_source_again_is_refused(editor: Any) -> None:
    before = latest().version
    response = editor.post(
        "/admin/flows/main/publish", data={"source": MAIN, "csrf_token": token(editor)}
    )
    assert response.status_code == 422
    assert "no change since version" in response.get_data(as_text=True)
    assert latest().version == before


def test_a_failing_example_blocks_publishing(editor: Any) -> None:
    before = latest().version
    silent = main_with('label: {es: "Buscar servicios"', 'label: {es: "Encontrar servicios"')
    result = post_json(editor, "/admin/flows/main/examples", {"source": silent}).get_json()
    assert result["failed"] == 2  # the Spanish menu, and the language switch that starts there
    failing = [r for r in result["results"] if not r["passed"]]
    assert failing[0]["example"] == "the main menu in Spanish"
    assert "1 Buscar servicios" in failing[0]["failures"][0]
    assert result["results"][0]["flow"] == "main"  # this flow's examples first
    assert {r["flow"] for r in result["results"]} >= {"main", "ask_help", "find_services"}

    page = editor.post(
        "/admin/flows/main/examples", data={"source": silent, "csrf_token": token(editor)}
    ).get_data(as_text=True)
    assert 'id="examples-result"' in page and "2 failed" in page

    refused = editor.post(
        "/admin/flows/main/publish", data={"source": silent, "csrf_token": token(editor)}
    )
    assert refused.status_code == 422
    assert "the main menu in Spanish" in refused.get_data(as_text=True)
    assert latest().version == before
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 0  # rolled back
    assert actions() == [
        "flow.examples_run",
        "flow.examples_run",
        "flow.draft_saved",
        "flow.publish_refused",
    ]


def test_the_simulator_runs_the_draft_in_sms_and_ussd(editor: Any) -> None:
    url = "/admin/flows/main/simulate"
    draft = main_with(OLD_NOTICE, NEW_NOTICE)
    menu = post_json(editor, url, {"mode": "sms", "text": "HOLA", "reset": True, "source": draft})
    answer = menu.get_json()
    assert "1 Buscar servicios" in answer["text"] and NEW_NOTICE in answer["text"]
    assert answer["encoding"] == "GSM-7" and answer["segments"] == 1 and answer["limit"] == 2
    assert answer["chars"] == len(answer["text"]) and answer["fits"]
    alerts = post_json(editor, url, {"mode": "sms", "text": "4", "source": draft}).get_json()
    assert "1 Recibir avisos" in alerts["text"] and not alerts["ended"]

    accented = main_with(OLD_NOTICE, "Los avisos aún no están aquí. " * 6)
    long = post_json(
        editor, url, {"mode": "sms", "text": "HOLA", "reset": True, "source": accented}
    ).get_json()
    assert long["encoding"] == "UCS-2" and long["segments"] >= 3 and not long["fits"]

    dial = post_json(editor, url, {"mode": "ussd", "text": "", "reset": True}).get_json()
    assert "Buscar servicios" in dial["text"]
    assert dial["limit"] == 182 and dial["chars"] == len(dial["text"]) <= 182
    assert dial["segments"] is None and not dial["ended"]

    # A whole request for help gets a reference: the simulator keeps none of it.
    post_json(editor, url, {"mode": "sms", "text": "HOLA", "reset": True})
    post_json(editor, url, {"mode": "sms", "text": "2"})
    for answer in ("no", "1", "upala", "no", "si", "no"):
        post_json(editor, url, {"mode": "sms", "text": answer})
    done = post_json(editor, url, {"mode": "sms", "text": "4"}).get_json()
    assert "Referencia:" in done["text"]
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 0

    broken = post_json(editor, url, {"mode": "sms", "text": "HOLA", "source": "flow: ["})
    assert broken.status_code == 422 and "cannot be read" in broken.get_json()["error"]
    cleared = post_json(editor, url, {"mode": "sms", "text": "", "reset": True}).get_json()
    assert cleared == {"replies": [], "text": "", "reset": True, "mode": "sms"}


def test_a_viewer_sees_everything_and_changes_nothing(
    client: Any, accounts: dict[str, str]
) -> None:
    login(client, accounts["viewer"])
    page = client.get("/admin/flows/main/edit").get_data(as_text=True)
    assert "readonly" in page and 'id="save-draft"' not in page and 'id="publish"' not in page
    form = {"source": MAIN, "csrf_token": token(client), "note": "x"}
    for url in (
        "/admin/flows/main/draft",
        "/admin/flows/main/draft/discard",
        "/admin/flows/main/publish",
        "/admin/flows/main/examples",
        f"/admin/flows/main/rollback/{latest().version}",
    ):
        assert client.post(url, data=form).status_code == 403, url
    assert post_json(client, "/admin/flows/main/validate", {"source": MAIN}).status_code == 200
    sim = post_json(client, "/admin/flows/main/simulate", {"mode": "sms", "text": "HOLA"})
    assert sim.status_code == 200
    for url in ("/admin/flows/", "/admin/flows/main", "/admin/flows/main/graph"):
        assert client.get(url).status_code == 200
    assert "rollback-" not in client.get("/admin/flows/main").get_data(as_text=True)


def test_posts_need_a_csrf_token(editor: Any) -> None:
    assert editor.post("/admin/flows/main/draft", data={"source": MAIN}).status_code == 400
    assert editor.post("/admin/flows/main/validate", json={"source": MAIN}).status_code == 400


def test_saving_and_discarding_drafts(editor: Any) -> None:
    changed = main_with(OLD_NOTICE, NEW_NOTICE)
    editor.post("/admin/flows/main/draft", data={"source": changed, "csrf_token": token(editor)})
    assert "a draft is pending" in editor.get("/admin/flows/main").get_data(as_text=True)
    assert "by flow_editor@ruta.test" in editor.get("/admin/flows/").get_data(as_text=True)
    editor.post("/admin/flows/main/draft/discard", data={"csrf_token": token(editor)})
    assert NEW_NOTICE not in editor.get("/admin/flows/main/edit").get_data(as_text=True)
    # Saving the published text again keeps no draft.
    editor.post("/admin/flows/main/draft", data={"source": MAIN.replace("\n", "\r\n"),
                                                 "csrf_token": token(editor)})  # fmt: skip
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(FlowDraft)) == 0
    assert actions() == ["flow.draft_saved", "flow.draft_discarded", "flow.draft_discarded"]


def test_the_graph_draws_every_node_and_escapes_text(editor: Any) -> None:
    page = editor.get("/admin/flows/main/graph").get_data(as_text=True)
    assert "<svg" in page
    for node in ("menu", "language", "set_language", "alerts", "flow find_services"):
        assert node in page
    assert editor.get(f"/admin/flows/main/graph?version={latest().version}").status_code == 200

    svg = post_json(editor, "/admin/flows/main/graph", {"source": MAIN})
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    unreadable = post_json(editor, "/admin/flows/main/graph", {"source": "flow: ["})
    assert unreadable.status_code == 422

    hostile = parse_flow(
        "flow: x\nlanguages: [es]\nstart: '<b>'\nnodes:\n"
        "  '<b>': {type: message, text: '<script>alert(1)</script>', next: '\"end'}\n"
        "  '\"end': {type: end}\n"
    )
    drawn = str(flow_graph.render(hostile))
    assert "<script>" not in drawn and "<b>" not in drawn
    assert "&lt;b&gt;" in drawn and "&lt;script&gt;" in drawn and "&#34;end" in drawn


def test_the_graph_of_a_forty_node_flow_is_laid_out_in_columns() -> None:
    lines = ["flow: big", "languages: [es]", "start: n0", "nodes:"]
    lines.append("  n0: {type: menu, text: {es: Hola}, options: [")
    options = (f"    {{label: {{es: o{i}}}, goto: a{i}}}" for i in range(1, 10))
    lines.append(",\n".join(options) + "]}")
    count = 1
    for i in range(1, 10):
        lines += [f"  a{i}: {{type: message, text: {{es: a}}, next: b{i}}}"]
        lines += [f"  b{i}: {{type: message, text: {{es: b}}, next: c{i}}}"]
        lines += [f"  c{i}: {{type: message, text: {{es: c}}, next: d{i}}}"]
        lines += [f"  d{i}: {{type: message, text: {{es: d}}, next: n0}}"]  # back to the menu
        count += 4
    assert count >= 37
    flow = parse_flow("\n".join(lines) + "\n")
    places = flow_graph.layout(flow)
    assert places["n0"] == (0, 0)
    assert {places[f"a{i}"][0] for i in range(1, 10)} == {1}
    assert {places[f"d{i}"][0] for i in range(1, 10)} == {4}
    assert len(set(places.values())) == len(flow.nodes)  # no two boxes in one place
    svg = str(flow_graph.render(flow))
    assert svg.count('<g class="node') == len(flow.nodes)
    assert svg.count('class="edge back"') == 9 and svg.count('class="edge"') == 36
    width = int(svg.split('width="', 1)[1].split('"', 1)[0])
    height = int(svg.split('height="', 1)[1].split('"', 1)[0])
    assert width == 2 * 16 + 5 * (168 + 64) - 64  # five columns
    assert height >= 9 * (flow_graph.BOX_H + 22)  # nine rows


def boxes(svg: str) -> dict[str, tuple[str, list[str]]]:
    """node id -> (its title, the lines of its label) in a drawn graph."""
    found = {}
    for node, title, body in re.findall(
        r'<g class="node[^"]*" data-node="([^"]+)"><title>([^<]*)</title>(.*?)</g>', svg
    ):
        lines = re.findall(r'font-weight="600" fill="#1d2530">([^<]*)</text>', body)
        found[node] = (title, lines)
    return found


def test_graph_boxes_show_the_first_words_of_their_text_in_the_viewers_language(
    app: Flask, editor: Any
) -> None:
    """Issue 14: a box is named by what it says, in the viewer's language; its id is only in
    its title (shown on hover)."""
    flow = parse_flow(MAIN)
    menu = flow.nodes[flow.start]
    english = boxes(editor.get("/admin/flows/main/graph").get_data(as_text=True))
    app.config["RUTA_ADMIN_LANGUAGE"] = "es"
    try:
        spanish = boxes(editor.get("/admin/flows/main/graph").get_data(as_text=True))
    finally:
        app.config["RUTA_ADMIN_LANGUAGE"] = "en"
    title, lines = english[flow.start]
    first = menu.spec["text"]["en"].split()
    assert lines[0].split()[:2] == first[:2]  # the first words, not the id
    assert flow.start not in lines[0].split()
    assert title.startswith(f"{flow.start} (menu)") and menu.spec["text"]["en"] in title
    title, lines = spanish[flow.start]
    assert lines[0].split()[:2] == menu.spec["text"]["es"].split()[:2]
    assert title.startswith(f"{flow.start} (menú)")
    # Every box of the flow has a label of at most two lines that fit the box.
    assert set(english) >= set(flow.nodes)
    assert all(1 <= len(lines) <= 2 for _title, lines in english.values())
    assert all(len(line) <= flow_graph.LINE_CHARS for _t, ls in english.values() for line in ls)


def test_first_words_keep_whole_words_and_say_when_text_is_left_out() -> None:
    assert flow_graph.first_words("Hola") == ["Hola"]
    assert flow_graph.first_words("uno dos tres cuatro cinco seis siete ocho nueve diez") == [
        "uno dos tres cuatro cinco",
        "seis siete ocho nueve …",
    ]
    assert flow_graph.first_words("x" * 40) == ["x" * 24 + "…"]


def test_the_ask_help_page_lists_its_own_warnings_not_the_rights_flows(editor: Any) -> None:
    """Issue 14: the ask_help page listed the rights flow's warnings ("marked for review")."""
    rights = editor.get("/admin/flows/rights/edit").get_data(as_text=True)
    assert "flow[rights] node[asylum]" in rights  # the warning is there, on its own flow's page
    for url in ("/admin/flows/ask_help/edit", "/admin/flows/ask_help/graph"):
        page = editor.get(url).get_data(as_text=True)
        assert "flow[rights]" not in page, url
    source = editor.get("/admin/flows/ask_help/edit").get_data(as_text=True)
    listed = post_json(
        editor,
        "/admin/flows/ask_help/validate",
        {"source": parse_source(source)},
    ).get_json()
    assert not [i for i in listed if i["path"].startswith("flow[rights]")]


def test_another_flows_error_is_listed_because_it_stops_publishing(editor: Any) -> None:
    broken = main_with("    goto: alerts\n", "    goto: nowhere\n")
    editor.post("/admin/flows/main/draft", data={"source": broken, "csrf_token": token(editor)})
    # The main flow's draft is not the published one the other flows are checked with, so an
    # error in main shows on main's page; on another flow's page only errors elsewhere show.
    listed = post_json(editor, "/admin/flows/main/validate", {"source": broken}).get_json()
    assert any(i["error"] and "nowhere" in i["message"] for i in listed)
    assert all(i["error"] or i["path"].startswith("flow[main]") for i in listed)


def parse_source(page: str) -> str:
    found = re.search(r'<textarea class="code" id="flow-source"[^>]*>(.*?)</textarea>', page, re.S)
    assert found
    return html.unescape(found.group(1))


def test_the_graph_page_offers_pan_and_zoom(editor: Any) -> None:
    page = editor.get("/admin/flows/main/graph").get_data(as_text=True)
    assert 'data-graph-tools="flow-graph"' in page and 'data-zoom="in"' in page
    assert re.search(r'<svg [^>]*viewBox="0 0 \d+ \d+"', page)
    assert "flows.js" in page
