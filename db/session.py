"""Engines and the one ``sessionmaker``; engines are made lazily, after any fork."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

SessionFactory = sessionmaker(expire_on_commit=False)
_engines: dict[tuple[int, str], Engine] = {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL + a busy timeout: the worker, the broker and the dashboard share the file.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Reads through the OS page cache (memory-mapped) and a 64 MB page cache per connection:
    # a leaderboard view reads thousands of index and table pages.
    cursor.execute("PRAGMA mmap_size=1073741824")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def make_engine(url: str) -> Engine:
    """A new engine for ``url`` with the settings this project needs per backend."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def get_engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (default: the configured database), one per process."""
    if url is None:
        from evalboard.settings import get_settings

        url = str(get_settings().database_url)
    key = (os.getpid(), url)
    if key not in _engines:
        _engines[key] = make_engine(url)
    return _engines[key]


def dispose_engines() -> None:
    """Close every pooled connection (tests, and after settings change)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error."""
    with SessionFactory(bind=get_engine(url)) as session, session.begin():
        yield session


def lock_id(key: str) -> int:
    """A signed 64-bit number for ``key`` (PostgreSQL advisory locks take a bigint)."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def locked_scope(key: str, url: str | None = None) -> Iterator[Session]:
    """A transaction that holds the lock ``key`` until it ends, so that check-then-insert
    (duplicates, quotas) is atomic across processes.

    SQLite takes its single write lock at ``BEGIN IMMEDIATE`` (WAL readers go on); PostgreSQL
    takes a transaction-level advisory lock on ``key``, released at commit or rollback.
    """
    with SessionFactory(bind=get_engine(url)) as session, session.begin():
        connection = session.connection()
        if connection.dialect.name == "sqlite":
            # pysqlite begins its own transaction only before DML: this BEGIN is the first
            # statement of the transaction, and pysqlite commits or rolls it back as usual.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_id(key)})
        yield session
