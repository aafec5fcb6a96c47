"""Flow versions in the database: publish the definition files, load what runs.

Published versions are immutable. A conversation pins the version current when it started, so a
new version only reaches new conversations.
"""

from __future__ import annotations

import threading
import time
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
from flows.validate import validate_library
from ruta.models import FlowVersion


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


#: How often a process looks for newly published versions. A new version reaches new
#: conversations within this time; looking on every message cost ~9% of a webhook's CPU.
RECHECK_SECONDS = 2.0


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
        self._marker: tuple[int, int] | None = None
        self._checked_at = float("-inf")
        self._engine: Engine | None = None

    def engine(self, session: Session) -> Engine:
        if self._engine is not None and time.monotonic() - self._checked_at < self.recheck_seconds:
            return self._engine
        marker_row = session.execute(
            select(func.count(FlowVersion.id), func.coalesce(func.max(FlowVersion.id), 0))
        ).one()
        marker = (int(marker_row[0]), int(marker_row[1]))
        self._checked_at = time.monotonic()
        with self._lock:
            if self._engine is None or marker != self._marker:
                self._engine = self._build(session)
                self._marker = marker
            return self._engine

    def _build(self, session: Session) -> Engine:
        from datetime import timedelta

        settings = parse_settings((self.folder / SETTINGS_FILE).read_text(encoding="utf-8"))
        library = Library(settings)
        for row in session.scalars(select(FlowVersion).order_by(FlowVersion.id)):
            library.add(parse_flow(row.source, version=row.version, where=row.flow_key))
        if settings.main_flow not in library.flows:
            raise DefinitionError(
                [Issue("library", "no flows are published: run `ruta flows publish`")]
            )
        return Engine(library, session_timeout=timedelta(minutes=self.session_timeout_minutes))
