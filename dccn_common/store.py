"""SQLite state for services: one real file in WAL mode, explicit transactions.

WAL with synchronous=NORMAL survives a killed process (not a power cut) without
losing a committed transaction, which is the failure the services are built for.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def open_db(path: str | Path, schema: str = "", *, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """Open (creating if needed) a WAL-mode database and apply an idempotent schema script."""
    path = Path(path)
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: no implicit transactions; `transaction()` makes them explicit.
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    if schema:
        with transaction(conn):
            for statement in _split_statements(schema):
                conn.execute(statement)
    return conn


def _split_statements(schema: str) -> list[str]:
    # Plain DDL only (no triggers), so splitting on ";" is exact.
    return [s.strip() for s in schema.split(";") if s.strip()]


@contextmanager
def transaction(conn: sqlite3.Connection, *, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """One atomic unit of work: commits on success, rolls back on any exception.

    Nested use joins the outer transaction through a savepoint, so a handler can
    call helpers that open their own `transaction()` without committing early.
    """
    if conn.in_transaction:
        name = f"sp_{id(conn)}_{_depth(conn)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")
        return
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


_savepoint_depth: dict[int, int] = {}


def _depth(conn: sqlite3.Connection) -> int:
    key = id(conn)
    _savepoint_depth[key] = _savepoint_depth.get(key, 0) + 1
    return _savepoint_depth[key]


def get_meta(conn: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    """Small key/value table every service may use for its own settings."""
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row["value"] if row else default


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
