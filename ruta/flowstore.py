"""Flow versions in the database: publish the definition files, load what runs.

Published versions are immutable. A conversation pins the version current when it started, so a
new version only reaches new conversations.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flows.context import Budget
from flows.engine import Engine
from flows.loader import (
    DEFINITIONS_DIR,
    SETTINGS_FILE,
    checksum,
    load_directory,
    parse_flow,
    parse_settings,
)
from flows.model import DefinitionError, Issue, Library
from flows.testing import ExampleResult
from flows.translatable import Text
from flows.validate import validate_library
from ruta.models import CacheVersion, FlowVersion


@dataclass
class PublishReport:
    published: list[tuple[str, int]]
    unchanged: list[str]
    warnings: list[Issue]


def publish_directory(
    session: Session,
    folder: Path = DEFINITIONS_DIR,
    *,
    published_by: str,
    budgets: list[Budget] | None = None,
) -> PublishReport:
    """Publish every flow file whose text differs from its latest version. Refuses on any error."""
    library = load_directory(folder)
    issues = validate_library(library, budgets)
    errors = [i for i in issues if i.error]
    if errors:
        raise DefinitionError(errors)
    report = PublishReport([], [], [i for i in issues if not i.error])
    for flow in library.latest():
        latest = session.scalar(
            select(FlowVersion)
            .where(FlowVersion.flow_key == flow.key)
            .order_by(FlowVersion.version.desc())
            .limit(1)
        )
        digest = checksum(flow.source)
        if latest is not None and latest.checksum == digest:
            report.unchanged.append(flow.key)
            continue
        version = (latest.version if latest else 0) + 1
        session.add(
            FlowVersion(
                flow_key=flow.key,
                version=version,
                source=flow.source,
                checksum=digest,
                published_by=published_by,
                note="published from " + str(folder.name),
            )
        )
        report.published.append((flow.key, version))
    session.flush()
    return report


#: How often ``FlowCache.engine`` looks for newly published versions when it is given a
#: session (the admin); the webhooks read the counter with the contact lock (``engine_at``).
RECHECK_SECONDS = 2.0


def flows_version(session: Session) -> int | None:
    """The ``flows`` counter (``CacheVersion``), bumped by a trigger with every write to
    ``flow_versions``; None without its row (a schema not migrated)."""
    return session.scalar(select(CacheVersion.version).where(CacheVersion.name == "flows"))


class FlowCache:
    """The engine over every published version, rebuilt when a new version appears."""

    def __init__(
        self,
        folder: Path = DEFINITIONS_DIR,
        *,
        session_timeout_minutes: int = 30,
        recheck_seconds: float = RECHECK_SECONDS,
    ) -> None:
        self.folder = folder
        self.session_timeout_minutes = session_timeout_minutes
        self.recheck_seconds = recheck_seconds
        self._lock = threading.Lock()
        self._version: int | None = None
        self._checked_at = float("-inf")
        self._engine: Engine | None = None

    def engine(self, session: Session) -> Engine:
        if self._engine is not None and time.monotonic() - self._checked_at < self.recheck_seconds:
            return self._engine
        version = flows_version(session)
        self._checked_at = time.monotonic()
        return self.engine_at(version, lambda: session)

    def engine_at(self, version: int | None, session: Callable[[], Session]) -> Engine:
        """The engine for the ``flows`` counter a caller read (with its contact lock): no
        query while it is unchanged; rebuilt from ``session()`` when it is newer (or unknown)."""
        engine = self._engine
        if (
            engine is not None
            and version is not None
            and self._version is not None
            and version <= self._version
        ):
            return engine
        with self._lock:
            if (
                self._engine is None
                or version is None
                or self._version is None
                or version > self._version
            ):
                self._engine = self._build(session())
                self._version = version
            return self._engine

    def _build(self, session: Session) -> Engine:
        from datetime import timedelta

        settings = parse_settings((self.folder / SETTINGS_FILE).read_text(encoding="utf-8"))
        library = Library(settings)
        for row in session.scalars(select(FlowVersion).order_by(FlowVersion.id)):
            library.add(parse_flow(row.source, version=row.version, where=row.flow_key))
        if settings.main_flow not in library.flows:
            raise DefinitionError(
                [Issue("library", Text("no flows are published: run `ruta flows publish`"))]
            )
        return Engine(library, session_timeout=timedelta(minutes=self.session_timeout_minutes))


# --- publishing from the admin ---------------------------------------------------------------


class PublishRefused(Exception):
    """A source that may not be published: validation errors or failing examples."""

    def __init__(
        self,
        issues: list[Issue],
        failures: list[ExampleResult] | None = None,
        results: list[ExampleResult] | None = None,
    ) -> None:
        self.issues = issues
        self.failures = failures or []
        #: every example run (passed too), when the examples ran
        self.results = results if results is not None else self.failures
        reasons = [str(i) for i in issues] + [
            f"example {r.flow}: {r.example}: {'; '.join(r.failures)}" for r in self.failures
        ]
        super().__init__("; ".join(reasons))


def latest_versions(session: Session) -> dict[str, FlowVersion]:
    """The newest published version of every flow, by key."""
    newest = (
        select(FlowVersion.flow_key, func.max(FlowVersion.version).label("version"))
        .group_by(FlowVersion.flow_key)
        .subquery()
    )
    rows = session.scalars(
        select(FlowVersion).join(
            newest,
            (FlowVersion.flow_key == newest.c.flow_key) & (FlowVersion.version == newest.c.version),
        )
    )
    return {row.flow_key: row for row in rows}


def draft_library(
    session: Session, key: str, source: str, folder: Path = DEFINITIONS_DIR
) -> tuple[Library, list[Issue]]:
    """The latest published flows plus ``source`` as the newest version of ``key``.

    When ``source`` cannot be read, the library holds the published flows only and the issues
    say why.
    """
    settings = parse_settings((folder / SETTINGS_FILE).read_text(encoding="utf-8"))
    library = Library(settings)
    latest = latest_versions(session)
    for row in latest.values():
        library.add(parse_flow(row.source, version=row.version, where=row.flow_key))
    version = latest[key].version + 1 if key in latest else 1
    try:
        flow = parse_flow(source, version=version, where=f"flow[{key}]")
    except DefinitionError as exc:
        return library, exc.issues
    if flow.key != key:
        return library, [
            Issue(
                f"flow[{key}]",
                Text(
                    "'flow: %(changed)s' must stay '%(key)s' (the flow being edited)",
                    changed=flow.key,
                    key=key,
                ),
            )
        ]
    library.add(flow)
    return library, []


def check_source(
    session: Session,
    key: str,
    source: str,
    *,
    folder: Path = DEFINITIONS_DIR,
    budgets: list[Budget] | None = None,
) -> list[Issue]:
    """What ``ruta flows validate`` says of the library with ``source`` as flow ``key``."""
    library, issues = draft_library(session, key, source, folder)
    if issues:
        return issues
    return validate_library(library, budgets)


def run_examples(
    session: Session, library: Library, first: str | None = None
) -> list[ExampleResult]:
    """Every example of the library through the real engine, ``first``'s flow first.

    Runs inside a savepoint that is rolled back: cases the examples open are never kept.
    """
    from datetime import timedelta

    from flows.testing import run_example
    from ruta.directory import DatabaseServices

    engine = Engine(library, session_timeout=timedelta(minutes=30))
    flows = sorted(library.latest(), key=lambda f: (f.key != first, f.key))
    results = []
    savepoint = session.begin_nested()
    try:
        services = DatabaseServices(session, channel="test", contact_id=None)
        for flow in flows:
            for example in flow.examples:
                try:
                    results.append(
                        run_example(engine, flow.key, example, services, Budget("sms", 2))
                    )
                except Exception as exc:  # a broken draft: report it as a failure
                    results.append(
                        ExampleResult(flow.key, example.name, [f"the engine stopped: {exc!r}"])
                    )
    finally:
        savepoint.rollback()
    return results


def publish_source(
    session: Session,
    key: str,
    source: str,
    *,
    published_by: str,
    note: str | None = None,
    folder: Path = DEFINITIONS_DIR,
    budgets: list[Budget] | None = None,
) -> FlowVersion:
    """Publish ``source`` as the next version of flow ``key``.

    Refuses (``PublishRefused``) on any validation error of the whole library with the new
    source, on any failing example, and when nothing changed since the latest version.
    """
    library, issues = draft_library(session, key, source, folder)
    if not issues:
        issues = validate_library(library, budgets)
    errors = [i for i in issues if i.error]
    latest = latest_versions(session).get(key)
    if latest is not None and latest.checksum == checksum(source):
        errors.append(
            Issue(f"flow[{key}]", Text("no change since version %(n)s", n=latest.version))
        )
    if errors:
        raise PublishRefused(errors)
    results = run_examples(session, library, key)
    failures = [r for r in results if not r.passed]
    if failures:
        raise PublishRefused([], failures, results)
    row = FlowVersion(
        flow_key=key,
        version=(latest.version if latest else 0) + 1,
        source=source,
        checksum=checksum(source),
        published_by=published_by,
        note=note or None,
    )
    session.add(row)
    session.flush()
    return row


def rollback(
    session: Session,
    key: str,
    version: int,
    *,
    by: str,
    note: str | None = None,
    folder: Path = DEFINITIONS_DIR,
    budgets: list[Budget] | None = None,
) -> FlowVersion:
    """Publish version ``version``'s source again, as a new version (checked like any other)."""
    earlier = session.scalar(
        select(FlowVersion).where(FlowVersion.flow_key == key, FlowVersion.version == version)
    )
    if earlier is None:
        raise LookupError(f"flow {key!r} has no version {version}")
    return publish_source(
        session,
        key,
        earlier.source,
        published_by=by,
        note=note or f"rollback to version {version}",
        folder=folder,
        budgets=budgets,
    )


def node_changes(old_source: str | None, new_source: str) -> dict[str, list[str]]:
    """Node ids added, removed and changed between two sources (empty when one cannot be read)."""
    try:
        new = parse_flow(new_source)
        old = parse_flow(old_source) if old_source is not None else None
    except DefinitionError:
        return {}
    if old is None:
        return {"added": list(new.nodes), "removed": [], "changed": []}
    return {
        "added": [n for n in new.nodes if n not in old.nodes],
        "removed": [n for n in old.nodes if n not in new.nodes],
        "changed": [
            n for n in new.nodes if n in old.nodes and new.nodes[n].spec != old.nodes[n].spec
        ],
    }
