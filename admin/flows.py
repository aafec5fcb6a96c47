"""Admin section: Flows.

Published versions with who, when and what changed; a draft editor with live validation (the
validator of ``ruta flows validate``), a picture of the flow and a phone simulator running the
draft through the real engine; the examples; publishing (refused while validation or an example
fails), diffs and rollback. Every change and every examples run is in the audit log.

The simulator and the examples run in transactions that are rolled back: they never write cases.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from redis.exceptions import RedisError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from admin import flow_graph
from admin.audit import audit
from admin.i18n import language, said
from admin.permissions import can, requires
from flows.context import Budget
from flows.encoding import sms_cost
from flows.engine import ContactView, Engine
from flows.loader import DEFINITIONS_DIR, checksum, parse_flow
from flows.model import DefinitionError, Flow, Issue
from flows.testing import ExampleResult
from flows.validate import validate_library
from ruta import clock
from ruta.budgets import sms_budget, ussd_budget
from ruta.db import db
from ruta.directory import DatabaseServices
from ruta.flowstore import (
    PublishRefused,
    draft_library,
    latest_versions,
    node_changes,
    publish_source,
    run_examples,
)
from ruta.flowstore import rollback as rollback_flow
from ruta.models import FlowDraft, FlowVersion, utcnow

bp = Blueprint("admin_flows", __name__, url_prefix="/admin/flows")
NAV = [("flows.view", "admin_flows.index", _l("Flows"))]
log = logging.getLogger(__name__)

#: The simulated phone: a number of the demo country, no contact row.
SIMULATOR_NUMBER = "+50600000000"
#: How long a simulated conversation is kept between two messages.
SIMULATOR_TTL_SECONDS = 3600
USSD_MAX_CHARS = 182
MAX_NOTE = 500
NODE_IN_PATH = re.compile(r"node\[([^\]]+)\]")


# --- helpers ----------------------------------------------------------------------------------


def _folder() -> Any:
    cache = current_app.extensions.get("ruta.flows")
    return getattr(cache, "folder", DEFINITIONS_DIR)


def _budgets() -> list[Budget]:
    """What the webhooks use, so the editor sees what people will."""
    return [sms_budget(), ussd_budget(USSD_MAX_CHARS, "*123#")]


def _draft(session: Session, key: str) -> FlowDraft | None:
    return session.scalar(select(FlowDraft).where(FlowDraft.flow_key == key))


def _versions(session: Session, key: str) -> list[FlowVersion]:
    return list(
        session.scalars(
            select(FlowVersion)
            .where(FlowVersion.flow_key == key)
            .order_by(FlowVersion.version.desc())
        )
    )


def _version(session: Session, key: str, version: int) -> FlowVersion:
    row = session.scalar(
        select(FlowVersion).where(FlowVersion.flow_key == key, FlowVersion.version == version)
    )
    if row is None:
        abort(404)
    return row


def _working_source(session: Session, key: str) -> tuple[str, FlowDraft | None, FlowVersion | None]:
    """The draft's source if there is one, else the latest published; 404 for an unknown flow."""
    latest = latest_versions(session).get(key)
    draft = _draft(session, key)
    if draft is None and latest is None:
        abort(404)
    source = draft.source if draft is not None else latest.source  # type: ignore[union-attr]
    return source, draft, latest


def _posted_source() -> str | None:
    payload = request.get_json(silent=True) if request.is_json else None
    value = payload.get("source") if isinstance(payload, dict) else request.form.get("source")
    if not isinstance(value, str):
        return None
    return value.replace("\r\n", "\n").replace("\r", "\n")


def _examine(session: Session, key: str, source: str) -> tuple[list[Issue], Flow | None]:
    """Validation issues of the library with ``source`` as flow ``key``, and the parsed flow."""
    library, issues = draft_library(session, key, source, _folder())
    if issues:
        return issues, None
    flow = library.current(key)
    return validate_library(library, _budgets()), flow


def _issue_json(issue: Issue) -> dict[str, Any]:
    return {"path": issue.path, "message": said(issue.message), "error": issue.error}


def _ordered(issues: list[Issue], key: str) -> list[Issue]:
    """Errors first, this flow's first, then by path (so by node and language)."""
    mine = f"flow[{key}]"
    return sorted(issues, key=lambda i: (not i.error, not i.path.startswith(mine), i.path))


def _scoped(issues: list[Issue], key: str) -> list[Issue]:
    """What the page of flow ``key`` lists: its own errors and warnings, and the errors found
    elsewhere (another flow, the settings), which refuse publishing this one too. Another flow's
    warnings are that flow's business: the ask_help page does not list the rights flow's."""
    mine = f"flow[{key}]"
    return _ordered([i for i in issues if i.error or i.path.startswith(mine)], key)


def _graph(flow: Flow | None, issues: list[Issue]) -> Markup | None:
    if flow is None:
        return None
    prefix = f"flow[{flow.key}] "
    bad = {
        m.group(1)
        for i in issues
        if i.error and i.path.startswith(prefix)
        for m in [NODE_IN_PATH.search(i.path)]
        if m
    }
    return flow_graph.render(flow, bad, language())


def _result_json(result: ExampleResult) -> dict[str, Any]:
    return {
        "flow": result.flow,
        "example": result.example,
        "passed": result.passed,
        "failures": result.failures,
        "transcript": [{"sent": s, "reply": r} for s, r in result.transcript],
    }


@contextmanager
def _scratch() -> Iterator[Session]:
    """A session whose every write is thrown away."""
    session = db.session()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


#: How a version's list of changed nodes is introduced (``node_changes`` keys).
CHANGE_WORDS = {"added": _l("added"), "removed": _l("removed"), "changed": _l("changed")}


def _summary(changes: dict[str, list[str]]) -> str:
    parts = [
        f"{CHANGE_WORDS.get(what, what)}: {', '.join(ids)}" for what, ids in changes.items() if ids
    ]
    return "; ".join(parts)


def _render_editor(
    key: str,
    *,
    source: str | None = None,
    refused: PublishRefused | None = None,
    results: list[ExampleResult] | None = None,
    note: str = "",
    status: int = 200,
) -> ResponseReturnValue:
    with db.transaction() as session:
        stored, draft, latest = _working_source(session, key)
        source = stored if source is None else source
        issues, flow = _examine(session, key, source)
        versions = _versions(session, key)
    return (
        render_template(
            "admin/flows_edit.html",
            key=key,
            source=source,
            draft=draft,
            latest=latest,
            versions=versions,
            issues=_scoped(issues, key),
            errors=sum(1 for i in issues if i.error),
            graph=_graph(flow, issues),
            refused=refused,
            results=results,
            note=note,
            editable=can(current_user, "flows.edit"),
            publishable=can(current_user, "flows.publish"),
        ),
        status,
    )


# --- pages ------------------------------------------------------------------------------------


@bp.get("/")
@requires("flows.view")
def index() -> ResponseReturnValue:
    with db.transaction() as session:
        latest = latest_versions(session)
        drafts = {d.flow_key: d for d in session.scalars(select(FlowDraft))}
        counts: dict[str, int] = {}
        for key in session.scalars(select(FlowVersion.flow_key)):
            counts[key] = counts.get(key, 0) + 1
        rows = []
        for key in sorted(set(latest) | set(drafts)):
            row = latest.get(key)
            name = key
            if row is not None:
                with suppress(DefinitionError):
                    name = parse_flow(row.source).name
            rows.append(
                {
                    "key": key,
                    "name": name,
                    "latest": row,
                    "count": counts.get(key, 0),
                    "draft": drafts.get(key),
                }
            )
    return render_template("admin/flows_index.html", rows=rows)


@bp.get("/<key>")
@requires("flows.view")
def versions(key: str) -> ResponseReturnValue:
    with db.transaction() as session:
        rows = _versions(session, key)
        draft = _draft(session, key)
        if not rows and draft is None:
            abort(404)
        listed = []
        for i, row in enumerate(rows):
            previous = rows[i + 1] if i + 1 < len(rows) else None
            changes = node_changes(previous.source if previous else None, row.source)
            listed.append({"row": row, "previous": previous, "changes": _summary(changes)})
    return render_template("admin/flows_versions.html", key=key, listed=listed, draft=draft)


@bp.get("/<key>/source/<int:version>")
@requires("flows.view")
def source(key: str, version: int) -> ResponseReturnValue:
    with db.transaction() as session:
        row = _version(session, key, version)
    return render_template("admin/flows_source.html", key=key, row=row)


@bp.get("/<key>/edit")
@requires("flows.view")
def edit(key: str) -> ResponseReturnValue:
    return _render_editor(key)


@bp.get("/<key>/graph")
@requires("flows.view")
def graph(key: str) -> ResponseReturnValue:
    """The draft's picture (or a published version's with ``?version=N``)."""
    version = request.args.get("version", type=int)
    with db.transaction() as session:
        if version is not None:
            row = _version(session, key, version)
            src, label = row.source, _("version %(n)s", n=version)
        else:
            src, draft, latest = _working_source(session, key)
            label = (
                _("the draft") if draft is not None else _("version %(n)s", n=latest.version)  # type: ignore[union-attr]
            )
        issues, flow = _examine(session, key, src)
    mine = [i for i in issues if i.path.startswith(f"flow[{key}]")]
    return render_template(
        "admin/flows_graph.html",
        key=key,
        label=label,
        graph=_graph(flow, issues),
        issues=_ordered(mine, key),
    )


@bp.get("/<key>/diff/<int:version>/<int:other>")
@requires("flows.view")
def diff(key: str, version: int, other: int) -> ResponseReturnValue:
    with db.transaction() as session:
        old = _version(session, key, version)
        new = _version(session, key, other)
        numbers = [row.version for row in _versions(session, key)]
    lines = list(
        difflib.unified_diff(
            old.source.splitlines(),
            new.source.splitlines(),
            fromfile=f"{key} v{version}",
            tofile=f"{key} v{other}",
            lineterm="",
        )
    )
    classes = []
    for line in lines:
        if line.startswith(("+++", "---")):
            classes.append((line, "file"))
        elif line.startswith("@@"):
            classes.append((line, "hunk"))
        elif line.startswith("+"):
            classes.append((line, "added"))
        elif line.startswith("-"):
            classes.append((line, "removed"))
        else:
            classes.append((line, ""))
    return render_template(
        "admin/flows_diff.html",
        key=key,
        old=old,
        new=new,
        lines=classes,
        changes=node_changes(old.source, new.source),
        numbers=numbers,
    )


# --- editing ----------------------------------------------------------------------------------


@bp.post("/<key>/draft")
@requires("flows.edit")
def save_draft(key: str) -> ResponseReturnValue:
    posted = _posted_source()
    if posted is None:
        abort(400)
    with db.transaction() as session:
        _stored, draft, latest = _working_source(session, key)
        issues, _flow = _examine(session, key, posted)
        errors = sum(1 for i in issues if i.error)
        if latest is not None and latest.checksum == checksum(posted):
            if draft is not None:
                session.delete(draft)
            audit(session, "flow.draft_discarded", "flow", key, reason="same as published")
            message = _(
                "The draft is the same as version %(n)s: nothing to keep.", n=latest.version
            )
        else:
            if draft is None:
                draft = FlowDraft(flow_key=key, source=posted, updated_by=current_user.email)
                session.add(draft)
            draft.source = posted
            draft.updated_by = current_user.email
            draft.updated_at = utcnow()
            audit(
                session,
                "flow.draft_saved",
                "flow",
                key,
                checksum=checksum(posted),
                errors=errors,
            )
            message = _("Draft saved (%(n)s errors).", n=errors) if errors else _("Draft saved.")
    flash(message)
    return redirect(url_for(".edit", key=key))


@bp.post("/<key>/draft/discard")
@requires("flows.edit")
def discard_draft(key: str) -> ResponseReturnValue:
    with db.transaction() as session:
        _working_source(session, key)
        draft = _draft(session, key)
        removed = draft is not None
        if draft is not None:
            session.delete(draft)
            audit(session, "flow.draft_discarded", "flow", key)
    flash(_("Draft discarded.") if removed else _("There was no draft."))
    return redirect(url_for(".edit", key=key))


@bp.post("/<key>/validate")
@requires("flows.view")
def validate(key: str) -> ResponseReturnValue:
    """JSON ``{"source": ...}`` in; the validator's issues out, as a list of
    ``{"path", "message", "error"}`` (with 422 when the source cannot be read at all)."""
    posted = _posted_source()
    if posted is None:
        return jsonify({"error": 'send {"source": ...}'}), 400
    with _scratch() as session:
        _working_source(session, key)
        issues, flow = _examine(session, key, posted)
    answer = jsonify([_issue_json(i) for i in _scoped(issues, key)])
    return answer, (200 if flow is not None else 422)  # 422: the source cannot be read at all


@bp.post("/<key>/graph")
@requires("flows.view")
def graph_of_source(key: str) -> ResponseReturnValue:
    """The picture of a posted source (``{"source": ...}``), as an SVG fragment; 422 and the
    issues when the source cannot be read."""
    posted = _posted_source()
    if posted is None:
        abort(400)
    with _scratch() as session:
        _working_source(session, key)
        issues, flow = _examine(session, key, posted)
    svg = _graph(flow, issues)
    if svg is None:
        return jsonify([_issue_json(i) for i in issues]), 422
    return current_app.response_class(str(svg), mimetype="image/svg+xml")


@bp.post("/<key>/examples")
@requires("flows.edit")
def examples(key: str) -> ResponseReturnValue:
    """Run every example against the library with this draft (the posted source, else the
    stored draft); JSON when asked in JSON, else the editor page with the results."""
    posted = _posted_source()
    with db.transaction() as session:
        stored, _draft_row, _latest = _working_source(session, key)
        source_text = stored if posted is None else posted
        library, issues = draft_library(session, key, source_text, _folder())
        results = [] if issues else run_examples(session, library, key)  # rolled back
        failed = [r for r in results if not r.passed]
        audit(
            session,
            "flow.examples_run",
            "flow",
            key,
            checksum=checksum(source_text),
            passed=len(results) - len(failed),
            failed=[f"{r.flow}: {r.example}" for r in failed],
            unreadable=bool(issues),
        )
    if request.is_json:
        return jsonify(
            {
                "issues": [_issue_json(i) for i in issues],
                "results": [_result_json(r) for r in results],
                "passed": len(results) - len(failed),
                "failed": len(failed),
            }
        )
    return _render_editor(key, source=source_text, results=results)


@bp.post("/<key>/publish")
@requires("flows.publish")
def publish(key: str) -> ResponseReturnValue:
    """Publish the posted source (kept as the draft first), else the stored draft."""
    posted = _posted_source()
    note = (request.form.get("note") or "").strip()[:MAX_NOTE]
    refused: PublishRefused | None = None
    with db.transaction() as session:
        stored, draft, latest = _working_source(session, key)
        source_text = stored if posted is None else posted
        if posted is not None and posted != stored:
            if draft is None:
                draft = FlowDraft(flow_key=key, source=posted, updated_by=current_user.email)
                session.add(draft)
            draft.source, draft.updated_by, draft.updated_at = posted, current_user.email, utcnow()
            audit(session, "flow.draft_saved", "flow", key, checksum=checksum(posted))
        try:
            row = publish_source(
                session,
                key,
                source_text,
                published_by=current_user.email,
                note=note,
                folder=_folder(),
                budgets=_budgets(),
            )
        except PublishRefused as exc:
            refused = exc
            audit(
                session,
                "flow.publish_refused",
                "flow",
                key,
                errors=[str(i) for i in exc.issues][:50],
                failed_examples=[f"{r.flow}: {r.example}" for r in exc.failures],
            )
        else:
            session.execute(delete(FlowDraft).where(FlowDraft.flow_key == key))
            audit(
                session,
                "flow.published",
                "flow",
                key,
                version=row.version,
                checksum=row.checksum,
                note=note,
                changes=node_changes(latest.source if latest else None, source_text),
            )
            published = row.version
    if refused is not None:
        return _render_editor(
            key,
            source=source_text,
            refused=refused,
            results=refused.results or None,
            note=note,
            status=422,
        )
    flash(
        _(
            "Published %(key)s version %(n)s: new conversations use it.",
            key=key,
            n=published,
        )
    )
    return redirect(url_for(".versions", key=key))


@bp.post("/<key>/rollback/<int:version>")
@requires("flows.publish")
def rollback(key: str, version: int) -> ResponseReturnValue:
    note = (request.form.get("note") or "").strip()[:MAX_NOTE] or None
    refused: PublishRefused | None = None
    with db.transaction() as session:
        _version(session, key, version)
        try:
            row = rollback_flow(
                session,
                key,
                version,
                by=current_user.email,
                note=note,
                folder=_folder(),
                budgets=_budgets(),
            )
        except PublishRefused as exc:
            refused = exc
            audit(
                session,
                "flow.rollback_refused",
                "flow",
                key,
                to_version=version,
                errors=[str(i) for i in exc.issues][:50],
                failed_examples=[f"{r.flow}: {r.example}" for r in exc.failures],
            )
        else:
            audit(
                session,
                "flow.rolled_back",
                "flow",
                key,
                to_version=version,
                version=row.version,
                checksum=row.checksum,
            )
            published = row.version
    if refused is not None:
        flash(_("Rollback to version %(n)s refused: %(why)s", n=version, why=refused))
    else:
        flash(
            _(
                "Rolled back: version %(new)s of %(key)s has the source of version %(n)s.",
                new=published,
                key=key,
                n=version,
            )
        )
    return redirect(url_for(".versions", key=key))


# --- the simulator ----------------------------------------------------------------------------


def _sim_key(key: str, mode: str) -> str:
    prefix = current_app.config.get("RUTA_QUEUE_PREFIX", "ruta")
    return f"{prefix}:flowsim:{current_user.id}:{key}:{mode}"


def _sim_load(key: str, mode: str) -> dict[str, Any]:
    try:
        raw = current_app.extensions["ruta.redis"].get(_sim_key(key, mode))
    except RedisError:
        raw = None
    return json.loads(raw) if raw else {}


def _sim_save(key: str, mode: str, stored: dict[str, Any] | None) -> None:
    redis = current_app.extensions["ruta.redis"]
    try:
        if stored is None:
            redis.delete(_sim_key(key, mode))
        else:
            redis.set(_sim_key(key, mode), json.dumps(stored), ex=SIMULATOR_TTL_SECONDS)
    except RedisError:
        log.warning("simulator state not kept: Redis unavailable")


@bp.post("/<key>/simulate")
@requires("flows.view")
def simulate(key: str) -> ResponseReturnValue:
    """JSON ``{mode: "sms"|"ussd", text, reset, source?}``: one message to the draft (the posted
    source, else the stored draft) through the real engine; nothing is written."""
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return jsonify({"error": _("send JSON")}), 400
    mode = "ussd" if payload.get("mode") == "ussd" else "sms"
    text = str(payload.get("text") or "")[:1000]
    posted = _posted_source()
    stored = {} if payload.get("reset") else _sim_load(key, mode)
    if payload.get("reset") and not text and mode == "sms":
        _sim_save(key, mode, None)
        return jsonify({"replies": [], "text": "", "reset": True, "mode": mode})
    budget = ussd_budget(USSD_MAX_CHARS, "*123#") if mode == "ussd" else sms_budget()
    now = clock.now()
    with _scratch() as session:
        source_text = _working_source(session, key)[0] if posted is None else posted
        library, issues = draft_library(session, key, source_text, _folder())
        if issues:
            return jsonify(
                {
                    "error": _("the draft cannot be read"),
                    "issues": [_issue_json(i) for i in issues],
                }
            ), 422
        engine = Engine(
            library,
            session_timeout=timedelta(
                minutes=int(current_app.config.get("RUTA_SESSION_TIMEOUT_MINUTES", 30))
            ),
        )
        contact = ContactView(stored.get("language"), bool(stored.get("opted_out")))
        services = DatabaseServices(
            session, channel="simulator", contact_id=None, number=SIMULATOR_NUMBER, now=now
        )
        try:
            result = engine.step(
                stored.get("state"), contact, text, services=services, budget=budget, now=now
            )
        except Exception as exc:  # a draft the validator would refuse can stop the engine
            log.info("simulator stopped on flow %s: %r", key, exc)
            _sim_save(key, mode, None)
            error = _("the engine stopped: %(why)s; the conversation restarts", why=repr(exc))
            return jsonify({"error": error}), 422
    language, opted_out = contact.language, contact.opted_out
    for event in result.events:
        if event.kind == "contact_language_changed":
            language = event.data["language"]
        elif event.kind == "contact_opted_out":
            opted_out = True
        elif event.kind == "contact_opted_in":
            opted_out = False
    ended = result.state is None or bool(result.state.get("ended"))
    _sim_save(key, mode, {"state": result.state, "language": language, "opted_out": opted_out})
    reply = result.text
    answer: dict[str, Any] = {
        "mode": mode,
        "replies": result.replies,
        "text": reply,
        "chars": len(reply),
        "ended": ended,
        "events": [e.kind for e in result.events],
    }
    if mode == "ussd":
        answer.update(limit=USSD_MAX_CHARS, fits=len(reply) <= USSD_MAX_CHARS)
        answer.update(segments=None, encoding=None)
    else:
        cost = sms_cost(reply)
        answer.update(
            segments=cost.segments,
            encoding=cost.encoding,
            units=cost.units,
            limit=budget.max_segments,
            fits=cost.segments <= budget.max_segments,
        )
    return jsonify(answer)
