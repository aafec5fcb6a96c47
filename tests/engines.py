"""An engine of its own on the tests' PostgreSQL database, with the pool a test needs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine

from ruta.db import db, make_engine


@contextmanager
def own_engine(why_postgresql: str, **kwargs: Any) -> Iterator[Engine]:
    """``make_engine`` on the app's database URL with ``kwargs`` (``pool_size``...), disposed
    of afterwards; the test is skipped on SQLite, for ``why_postgresql``."""
    assert db.engine is not None
    if db.engine.dialect.name != "postgresql":
        pytest.skip(why_postgresql)
    engine = make_engine(db.engine.url.render_as_string(hide_password=False), **kwargs)
    try:
        yield engine
    finally:
        engine.dispose()
