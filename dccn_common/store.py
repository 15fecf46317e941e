"""SQLite state for services: one real file in WAL mode, explicit transactions.

WAL with synchronous=NORMAL survives a killed process (not a power cut) without
losing a committed transaction, which is the failure the services are built for.

A service claims its database with `open_store` before anything writes to it: an
exclusive lock on `<db>.lock` (a second instance is refused, naming the holder) and
a check that the file is an intact SQLite database, so a wrong or damaged file is
reported in one line and left untouched.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SQLITE_HEADER = b"SQLite format 3\x00"


class StoreError(ValueError):
    """The database cannot be used: in use by another instance, not SQLite, or damaged."""


def open_db(path: str | Path, schema: str = "", *, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """Open (creating if needed) a WAL-mode database and apply an idempotent schema script."""
    path = Path(path)
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
        check_header(path)
    try:
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
    except sqlite3.DatabaseError as err:
        if isinstance(err, sqlite3.OperationalError) and "locked" in str(err):
            raise
        raise StoreError(f"{path}: {err}") from None
    return conn


def check_header(path: Path) -> None:
    """Refuse a file that exists but is not SQLite (before SQLite would try to use it)."""
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not a database file")
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as err:
        raise StoreError(f"cannot read {path}: {err.strerror}") from None
    if header and header != SQLITE_HEADER:
        raise StoreError(f"{path} is not a SQLite database; refusing to touch it")


def verify_database(path: Path) -> None:
    """An existing file must be an intact SQLite database (read-only check, the file is not changed)."""
    check_header(path)
    if not path.is_file() or path.stat().st_size == 0:
        return  # new database
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            result = [row[0] for row in conn.execute("PRAGMA quick_check")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        raise StoreError(f"{path}: {err}; refusing to touch it") from None
    if result != ["ok"]:
        raise StoreError(f"{path}: database disk image is malformed ({result[0]}); refusing to touch it")


@dataclass
class Claim:
    """An exclusive OS lock held for the life of the process (released when it exits)."""

    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()  # also when a CLI runs in-process (tests): the next run may claim again


def claim(lock_path: Path, service: str, what: str) -> Claim:
    """Lock `lock_path` for this process, writing who holds it; refuses if another process does."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise StoreError(f"{what} is in use by {holder}; stop it first") from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "service": service}).encode())
    return Claim(lock_path, fd)


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"{info['service']} (pid {info['pid']} on {info['host']})"
    except (ValueError, KeyError, TypeError, OSError):
        return "another process"


def lock_path_of(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


def open_store(path: str | Path, service: str) -> Claim:
    """Claim a service's database: lock it against a second instance, then check the file.

    Call it before anything opens the database for writing; keep the claim for the process's life.
    """
    path = Path(path)
    held = claim(lock_path_of(path), service, f"database {path}")
    try:
        verify_database(path)
    except StoreError:
        held.release()
        raise
    return held


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
