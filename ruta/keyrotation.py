"""``ruta keys rotate``: every encrypted value under the current data key, every lookup hash under
the current lookup key (ruta/crypto.py).

The columns come from the models' metadata, not from a list kept by hand: every ``EncryptedText``
column of every table, and every column marked as a lookup hash (``info={LOOKUP_HASH_OF: ...}``),
recomputed from the column it hashes. A table added later is rotated with no change here.

Ruta keeps serving meanwhile. Each batch of rows is one short transaction with its rows locked
(``FOR UPDATE`` on PostgreSQL; SQLite's write lock), so a value written concurrently is neither
lost nor overwritten by an older one; webhooks wait at most one batch.

Nothing records progress, because nothing needs to: a value already under the current key and a
hash already under the current lookup key are left as they are. A rerun after a crash rewrites
only what is left, and a second run rewrites nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from cryptography.fernet import InvalidToken
from sqlalchemy import MetaData, Row, Text, bindparam, column, func, select, table, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import TableClause

from ruta.crypto import DataKeyError, Vault
from ruta.db import db
from ruta.models import LOOKUP_HASH_OF, Base, EncryptedText

__all__ = ["Report", "RotationError", "Target", "count_rows", "rotate", "targets"]

#: Rows per transaction: short enough that a webhook waiting on a locked row stays well inside
#: a provider's timeout.
BATCH_SIZE = 500
#: A batch that lost a deadlock or hit a lock timeout against live traffic is tried again.
RETRIES = 5
#: SQLSTATEs worth retrying (PostgreSQL): deadlock, serialization failure, lock not available.
_TRANSIENT = {"40P01", "40001", "55P03"}


class RotationError(RuntimeError):
    """A value cannot be rotated (no configured key decrypts it, or a table cannot be batched)."""


@dataclass(frozen=True)
class Target:
    """One table's encrypted columns and lookup hashes."""

    table: str
    key: str
    encrypted: tuple[str, ...]
    #: (hash column, the encrypted column it is the hash of)
    hashes: tuple[tuple[str, str], ...]

    def clause(self) -> TableClause:
        # Plain text columns: tokens and hashes are read and written exactly as stored, never
        # through EncryptedText, which would decrypt on read and encrypt again on write.
        names = [*self.encrypted, *(name for name, _ in self.hashes)]
        return table(self.table, column(self.key), *(column(name, Text) for name in names))


@dataclass
class Report:
    rows: int = 0  # rows read
    rewritten: int = 0  # rows written
    values: int = 0  # encrypted values re-encrypted under the current data key
    hashes: int = 0  # lookup hashes recomputed under the current lookup key
    #: Hashes left under an older key because another row already holds the new one: two
    #: contacts for one number (see ruta/contacts.py), which only a person can merge.
    conflicts: int = 0

    def add(self, batch: Report) -> None:
        for each in fields(Report):
            setattr(self, each.name, getattr(self, each.name) + getattr(batch, each.name))


def targets(metadata: MetaData = Base.metadata) -> list[Target]:
    found = []
    for each in metadata.sorted_tables:
        encrypted = tuple(c.name for c in each.columns if isinstance(c.type, EncryptedText))
        hashes = tuple(
            (c.name, str(c.info[LOOKUP_HASH_OF])) for c in each.columns if LOOKUP_HASH_OF in c.info
        )
        if not encrypted and not hashes:
            continue
        if any(source not in encrypted for _, source in hashes):
            raise RotationError(f"{each.name}: a lookup hash of a column that is not encrypted")
        keys = list(each.primary_key.columns)
        if len(keys) != 1:
            raise RotationError(f"{each.name}: batches need a primary key of one column")
        found.append(Target(each.name, keys[0].name, encrypted, hashes))
    return found


def count_rows(session: Session, found: Sequence[Target]) -> int:
    return sum(
        int(session.scalar(select(func.count()).select_from(table(t.table))) or 0) for t in found
    )


def rotate(
    vault: Vault,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
    found: Sequence[Target] | None = None,
) -> Report:
    """Rotate every target, a batch per transaction; ``progress`` gets the rows of each batch
    once it is committed."""
    report = Report()
    for target in targets() if found is None else found:
        after: Any = None
        while True:
            batch = _with_retries(vault, target, after, batch_size)
            if batch.rows == 0:
                break
            after = batch.last
            report.add(batch)
            if progress is not None:
                progress(batch.rows)
    return report


@dataclass
class _Batch(Report):
    last: Any = None


def _with_retries(vault: Vault, target: Target, after: Any, size: int) -> _Batch:
    for attempt in range(1, RETRIES + 1):
        try:
            return _one_batch(vault, target, after, size)
        except DBAPIError as exc:
            if attempt == RETRIES or not _transient(exc):
                raise
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


def _transient(exc: DBAPIError) -> bool:
    if getattr(exc.orig, "sqlstate", None) in _TRANSIENT:
        return True
    return "database is locked" in str(exc.orig)  # SQLite's busy timeout ran out


def _one_batch(vault: Vault, target: Target, after: Any, size: int) -> _Batch:
    rows_table = target.clause()
    key = rows_table.c[target.key]
    query = select(rows_table).order_by(key).limit(size).with_for_update()
    if after is not None:
        query = query.where(key > after)
    with db.transaction() as session:
        rows = session.execute(query).all()
        batch = _Batch(rows=len(rows), last=rows[-1]._mapping[target.key] if rows else after)
        changes = [(row._mapping[target.key], _changes(vault, target, row)) for row in rows]
        changes = [(pk, change) for pk, change in changes if change]
        _drop_conflicts(session, rows_table, target, changes, batch)
        _write(session, rows_table, target, changes)
        for _, change in changes:
            batch.rewritten += 1 if change else 0
            batch.values += sum(1 for name in change if name in target.encrypted)
            batch.hashes += sum(1 for name, _ in target.hashes if name in change)
    return batch


def _changes(vault: Vault, target: Target, row: Row[Any]) -> dict[str, str]:
    values = row._mapping
    change: dict[str, str] = {}
    try:
        for name in target.encrypted:
            token = values[name]
            if token is not None and not vault.is_current(token):
                change[name] = vault.rotate(token)
        for name, source in target.hashes:
            if values[source] is None:
                continue
            digest = vault.lookup_hash(vault.decrypt(values[source]))
            if digest != values[name]:
                change[name] = digest
    except (InvalidToken, DataKeyError) as exc:
        raise RotationError(
            f"{target.table} row {values[target.key]}: no key of RUTA_DATA_KEY decrypts it;"
            " the key it was written with must stay listed until the rotation is done"
        ) from exc
    return change


def _drop_conflicts(
    session: Session,
    rows_table: TableClause,
    target: Target,
    changes: list[tuple[Any, dict[str, str]]],
    batch: _Batch,
) -> None:
    """Keep a row's old hash when another row already holds the new one: lookup hashes are
    unique, and one such row must not stop the rotation of every other."""
    for name, _ in target.hashes:
        wanted = [change[name] for _, change in changes if name in change]
        if not wanted:
            continue
        hash_column = rows_table.c[name]
        holders: dict[str, Any] = dict(
            session.execute(
                select(hash_column, rows_table.c[target.key]).where(hash_column.in_(wanted))
            ).all()
        )
        for pk, change in changes:
            digest = change.get(name)
            if digest is None:
                continue
            if holders.setdefault(digest, pk) != pk:
                del change[name]
                batch.conflicts += 1


def _write(
    session: Session,
    rows_table: TableClause,
    target: Target,
    changes: list[tuple[Any, dict[str, str]]],
) -> None:
    # One executemany per set of changed columns: the same statement for every row of a group.
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for pk, change in changes:
        if change:
            names = tuple(sorted(change))
            groups.setdefault(names, []).append(
                {"row_key": pk, **{f"new_{n}": v for n, v in change.items()}}
            )
    key = rows_table.c[target.key]
    for names, params in groups.items():
        statement = (
            update(rows_table)
            .where(key == bindparam("row_key"))
            .values({n: bindparam(f"new_{n}", type_=Text) for n in names})
        )
        session.execute(statement, params)
