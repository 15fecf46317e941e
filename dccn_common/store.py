"""Service state: SQLite (the embedded default) or PostgreSQL, behind one small interface.

One setting picks the backend: a file path means SQLite, a `postgresql://` URL (DSN)
means PostgreSQL. Services write portable SQL with `?` placeholders against the
connection `open_db` returns; the dialect differences live only in `_PgDialect` here.

SQLite: one real file in WAL mode, explicit transactions. WAL with synchronous=NORMAL
survives a killed process (not a power cut) without losing a committed transaction,
which is the failure the services are built for.

A service claims its database with `open_store` before anything writes to it: on
SQLite an exclusive lock on `<db>.lock` (a second instance is refused, naming the
holder) and a check that the file is an intact SQLite database, so a wrong or damaged
file is reported in one line and left untouched; on PostgreSQL a session advisory
lock per (database, service), the holder named by its connection's application_name.

Schemas are versioned: `apply_schema(conn, name, version, ddl)` records each applied
step in `schema_versions`, so a migration runs once, in the transaction that records it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import psycopg

SQLITE_HEADER = b"SQLite format 3\x00"

log = logging.getLogger(__name__)


class StoreError(ValueError):
    """The database cannot be used: in use by another instance, not SQLite, damaged, or unreachable."""


# -- which backend --------------------------------------------------------------------------

_DSN = re.compile(r"^postgres(?:ql)?:/+", re.IGNORECASE)


def postgres_dsn(target: str | Path) -> str | None:
    """The PostgreSQL URL `target` names, or None for a SQLite path.

    A URL that went through `Path` lost one slash of `postgresql://`; it is put back,
    so a config field typed as a path still selects PostgreSQL.
    """
    text = str(target)
    match = _DSN.match(text)
    if match is None:
        return None
    return "postgresql://" + text[match.end():]


def redacted(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def is_postgres(conn: Any) -> bool:
    return isinstance(conn, PgConnection)


def open_db(path: str | Path, schema: str = "", *, synchronous: str = "NORMAL") -> Connection:
    """Open (creating if needed) the database and apply an idempotent schema script.

    `path` is a SQLite file (WAL mode) or a `postgresql://` URL.
    """
    dsn = postgres_dsn(path)
    if dsn is not None:
        pg = PgConnection.connect(dsn)
        if schema:
            with transaction(pg):
                for statement in _split_statements(schema):
                    pg.execute(statement)
        return pg
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
    if str(path) != ":memory:":
        _remember_sqlite_file(path)
    return conn


# Files (device, inode) this process has handed to SQLite. Their header is not read again:
# closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's
# own locks included (a second open_db of a live database broke the first one's locking).
_SQLITE_FILES: set[tuple[int, int]] = set()


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def _remember_sqlite_file(path: Path) -> None:
    file_id = _file_id(path)
    if file_id is not None:
        _SQLITE_FILES.add(file_id)


def check_header(path: Path) -> None:
    """Refuse a file that exists but is not SQLite (before SQLite would try to use it)."""
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not a database file")
    if _file_id(path) in _SQLITE_FILES:
        return
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as err:
        raise StoreError(f"cannot read {path}: {err.strerror}") from None
    if header and header != SQLITE_HEADER:
        raise StoreError(f"{path} is not a SQLite database; refusing to touch it")


def verify_database(path: str | Path) -> None:
    """An existing file must be an intact SQLite database (read-only check, the file is not changed).

    For a PostgreSQL URL: the server must answer (the server keeps its own integrity).
    """
    dsn = postgres_dsn(path)
    if dsn is not None:
        PgConnection.connect(dsn).close()
        return
    path = Path(path)
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


# -- the exclusive-instance claim ----------------------------------------------------------------


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


@dataclass
class PgClaim(Claim):
    """A session advisory lock on a connection of its own; closing the connection releases it.

    It refuses a second instance at start. It is not a fence: the lock vanishes with its
    session (a pooler, a failover), so it never guards a write by itself.
    """

    conn: Any = field(default=None, repr=False)

    def release(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


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


# Advisory locks take two int4 keys: this namespace, and the hash of what is locked.
_CLAIM_NAMESPACE = 0x44434E  # "DCN"
_WRITE_LOCK = 0x44434E57  # "DCNW": one writer at a time, like SQLite's BEGIN IMMEDIATE
IDLE_IN_TRANSACTION_TIMEOUT = "15s"


def claim_postgres(dsn: str, service: str) -> PgClaim:
    """Refuse a second instance of `service` on this PostgreSQL database, naming the holder."""
    holder_name = f"{service} (pid {os.getpid()} on {socket.gethostname()})"[:63]
    conn = PgConnection.connect(dsn, application_name=holder_name, reconnect=False)  # the lock is the session's
    got = conn.execute("SELECT pg_try_advisory_lock(?, hashtext(?)) AS ok", (_CLAIM_NAMESPACE, service)).fetchone()
    if got["ok"]:
        return PgClaim(Path(redacted(dsn)), -1, conn)
    row = conn.execute(
        "SELECT a.application_name AS holder FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = ? AND l.objid = hashtext(?)::oid "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (_CLAIM_NAMESPACE, service),
    ).fetchone()
    conn.close()
    holder = row["holder"] if row and row["holder"] else "another process"
    raise StoreError(f"database {redacted(dsn)} is in use by {holder} for {service}; stop it first")


def open_store(path: str | Path, service: str, *, standbys: bool = False) -> Claim:
    """Claim a service's database: lock it against a second instance, then check it.

    Call it before anything opens the database for writing; keep the claim for the process's life.
    `standbys` (PostgreSQL only): instances may share the database, a lease picking the active
    one (dccn_common.bot); the database is only checked to be reachable.
    """
    dsn = postgres_dsn(path)
    if dsn is not None:
        if standbys:
            PgConnection.connect(dsn, application_name=f"{service} (check)"[:63]).close()
            return Claim(Path(redacted(dsn)), -1)
        return claim_postgres(dsn, service)
    path = Path(path)
    held = claim(lock_path_of(path), service, f"database {path}")
    try:
        verify_database(path)
    except StoreError:
        held.release()
        raise
    return held


# -- transactions and schema versions ---------------------------------------------------------------


def _split_statements(schema: str) -> list[str]:
    # Plain DDL only (no triggers), so splitting on ";" is exact.
    return [s.strip() for s in schema.split(";") if s.strip()]


@contextmanager
def transaction(conn: Connection, *, immediate: bool = True) -> Iterator[Any]:
    """One atomic unit of work: commits on success, rolls back on any exception.

    Nested use joins the outer transaction through a savepoint, so a handler can
    call helpers that open their own `transaction()` without committing early.
    `immediate` takes the write lock at the start (SQLite: BEGIN IMMEDIATE; PostgreSQL:
    a transaction-scoped advisory lock), so read-then-write logic sees no interleaved writer.
    """
    # The lock comes before reading in_transaction: another thread's statement would read as one.
    with _statement_lock(conn), _transaction(conn, immediate=immediate):
        yield conn


def _statement_lock(conn: Connection) -> AbstractContextManager[Any]:
    # PostgreSQL reports a session busy with another thread's statement (the health endpoint's
    # status query) as in a transaction, so the caller would send SAVEPOINT outside any block.
    # SQLite's autocommit flag only changes on BEGIN, so its connections need no lock here.
    return conn.lock if isinstance(conn, PgConnection) else nullcontext()


@contextmanager
def _transaction(conn: Connection, *, immediate: bool) -> Iterator[Any]:
    if conn.in_transaction:
        name = f"sp_{id(conn)}_{_depth(conn)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # PostgreSQL: a lost session leaves no savepoint; the outer block ends it
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")
        return
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        elif is_postgres(conn):
            conn.rollback()  # a lost session: nothing to send; ends the dead transaction (ConnectionLost)
        raise
    conn.execute("COMMIT")


_savepoint_depth: dict[int, int] = {}


def _depth(conn: Any) -> int:
    key = id(conn)
    _savepoint_depth[key] = _savepoint_depth.get(key, 0) + 1
    return _savepoint_depth[key]


SCHEMA_VERSIONS = (
    "CREATE TABLE IF NOT EXISTS schema_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL, "
    "applied_at REAL NOT NULL)"
)

Migration = str | Callable[[Any], None]


def schema_version(conn: Connection, name: str) -> int:
    """The version of schema `name` in this database (0: never applied)."""
    conn.execute(SCHEMA_VERSIONS)
    row = conn.execute("SELECT version FROM schema_versions WHERE name = ?", (name,)).fetchone()
    return int(row["version"]) if row else 0


def apply_schema(conn: Connection, name: str, version: int, ddl: Migration) -> bool:
    """Bring schema `name` to `version` by running `ddl` once; returns whether it ran.

    Call it once per step, in order (1, 2, ...): a step already recorded is skipped, and
    the step and its record commit together. `ddl` is SQL (statements split on ";") or a
    callable taking the connection, for data migrations. After the last step, call
    `require_schema` so a database written by newer code is refused, not used in the old shape.
    """
    try:
        with transaction(conn):
            current = schema_version(conn, name)
            if current >= version:
                return False
            if callable(ddl):
                ddl(conn)
            else:
                for statement in _split_statements(ddl):
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_versions (name, version, applied_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET version = excluded.version, applied_at = excluded.applied_at",
                (name, version, time.time()),
            )
    except _sql_errors() as err:
        if not _is_shape_error(err):
            raise  # busy, locked, a race between two starting instances: not the database's shape
        # Rolled back: a database holding tables of these names in another shape (another
        # program's) is left as it was.
        raise StoreError(f"schema {name} version {version} does not fit this database ({_reason(err)}): "
                         "is it another program's database? refusing to use it") from None
    return True


def _is_shape_error(err: Exception) -> bool:
    """The statement does not fit the tables there (a missing column, a table of another kind)."""
    if isinstance(err, sqlite3.DatabaseError):
        return not any(word in str(err) for word in ("locked", "busy"))
    return str(getattr(err, "sqlstate", "") or "").startswith("42")  # PostgreSQL: undefined/duplicate object


def _sql_errors() -> tuple[type[Exception], ...]:
    """The SQL errors of both backends (psycopg only when installed)."""
    try:
        import psycopg
    except ImportError:
        return (sqlite3.DatabaseError,)
    return (sqlite3.DatabaseError, psycopg.Error)


def require_schema(conn: Connection, name: str, known: int) -> None:
    """Refuse a database whose schema `name` was written by a newer version of the code."""
    current = schema_version(conn, name)
    if current > known:
        raise StoreError(f"schema {name} is at version {current}, newer than this code knows ({known}); upgrade it")


def table_columns(conn: Connection, table: str) -> list[str]:
    """The column names of `table` ([] if it does not exist), on either backend."""
    if is_postgres(conn):
        rows = conn.execute(
            "SELECT column_name AS name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ? AND column_name != 'rowid' ORDER BY ordinal_position",
            (table,),
        ).fetchall()
    else:
        rows = conn.execute(f"PRAGMA table_info({table})").fetchall()
    return [str(row["name"]) for row in rows]


def get_meta(conn: Connection, key: str, default: str | None = None) -> str | None:
    """Small key/value table every service may use for its own settings."""
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row["value"] if row else default


def set_meta(conn: Connection, key: str, value: str) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


# -- PostgreSQL -------------------------------------------------------------------------------------


class Row:
    """A result row addressed by column name or position, like sqlite3.Row."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: Sequence[Any]) -> None:
        self._index = index
        self._values = tuple(values)

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._index[key]]
            except KeyError:
                return self._values[self._index[key.lower()]]
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Row):
            return self._values == other._values
        return self._values == other

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=False))})"


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    index = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(index, values)


class _Result:
    """The answer to a statement the dialect answers itself (a PRAGMA with no PostgreSQL meaning)."""

    def __init__(self, rows: list[Row] | None = None, rowcount: int = -1) -> None:
        self._rows = rows or []
        self.rowcount = rowcount

    def fetchone(self) -> Row | None:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[Row]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


class _PgDialect:
    """SQLite-flavoured portable SQL -> PostgreSQL, in one place.

    - `?` placeholders become `%s` (and a literal `%` becomes `%%`), outside quotes;
    - `x'..'` blob literals become bytea literals;
    - `INSERT OR IGNORE` becomes `ON CONFLICT DO NOTHING`; `INSERT OR REPLACE` an upsert
      on the table's primary key;
    - in DDL: INTEGER -> BIGINT, BLOB -> BYTEA, REAL -> DOUBLE PRECISION, an INTEGER PRIMARY
      KEY (AUTOINCREMENT) -> an identity column; and every table gets a `rowid` identity
      column, so `ORDER BY rowid` (insertion order) means what it does on SQLite.
    """

    _OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
    _OR_REPLACE = re.compile(r"^\s*INSERT\s+OR\s+REPLACE\s+INTO\s+(\w+)\s*\(([^)]*)\)", re.IGNORECASE)
    _CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\b", re.IGNORECASE)
    _ALTER_ADD = re.compile(r"^\s*ALTER\s+TABLE\s+\w+\s+ADD\b", re.IGNORECASE)
    _INT_PK = re.compile(r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?\b", re.IGNORECASE)

    def __init__(self) -> None:
        self._cache: dict[str, str] = {}

    def translate(self, sql: str, primary_key: Callable[[str], list[str]]) -> str:
        cached = self._cache.get(sql)
        if cached is None:
            cached = self._cache[sql] = self._translate(sql, primary_key)
        return cached

    def _translate(self, sql: str, primary_key: Callable[[str], list[str]]) -> str:
        text = self._strip_comments(sql).strip().rstrip(";")
        if self._CREATE_TABLE.match(text) or self._ALTER_ADD.match(text):
            text = self._ddl(text)
        if self._OR_IGNORE.match(text):
            text = self._OR_IGNORE.sub("INSERT INTO", text, count=1) + " ON CONFLICT DO NOTHING"
        elif match := self._OR_REPLACE.match(text):
            table, columns = match.group(1), [c.strip() for c in match.group(2).split(",")]
            keys = primary_key(table)
            others = [c for c in columns if c not in keys]
            action = ("DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in others)) if others else "DO NOTHING"
            text = re.sub(r"^\s*INSERT\s+OR\s+REPLACE\s+INTO", "INSERT INTO", text, count=1, flags=re.IGNORECASE)
            text += f" ON CONFLICT ({', '.join(keys)}) {action}"
        return self._placeholders(text)

    def _ddl(self, text: str) -> str:
        text = self._INT_PK.sub("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", text)
        text = re.sub(r"\bINTEGER\b", "BIGINT", text)
        text = re.sub(r"\bBLOB\b", "BYTEA", text)
        text = re.sub(r"\bREAL\b", "DOUBLE PRECISION", text)
        if self._CREATE_TABLE.match(text) and " AS SELECT " not in text.upper():
            text = re.sub(r"\)\s*(WITHOUT\s+ROWID|STRICT)?\s*$", ")", text, flags=re.IGNORECASE)
            if not re.search(r"\browid\b", text, re.IGNORECASE):
                end = text.rfind(")")
                text = text[:end].rstrip() + ",\n    rowid BIGINT GENERATED BY DEFAULT AS IDENTITY" + text[end:]
        return text

    @staticmethod
    def _strip_comments(text: str) -> str:
        """Drop `-- ...` comments outside quotes (a column appended after one would be commented out)."""
        out: list[str] = []
        i, n, quote = 0, len(text), ""
        while i < n:
            char = text[i]
            if quote:
                quote = "" if char == quote else quote  # a doubled quote closes and reopens: same text
            elif char in ("'", '"'):
                quote = char
            elif text.startswith("--", i):
                end = text.find("\n", i)
                i = n if end < 0 else end
                continue
            out.append(char)
            i += 1
        return "".join(out)

    @staticmethod
    def _placeholders(text: str) -> str:
        out: list[str] = []
        i, n = 0, len(text)
        while i < n:
            char = text[i]
            if char in ("'", '"'):
                end = i + 1
                while end < n:
                    if text[end] == char:
                        if end + 1 < n and text[end + 1] == char:  # doubled quote inside
                            end += 2
                            continue
                        break
                    end += 1
                literal = text[i:end + 1]
                blob = char == "'" and out and out[-1] in ("x", "X") and (len(out) < 2 or not out[-2].isalnum())
                if blob:
                    out.pop()
                    literal = "'\\x" + literal[1:-1] + "'::bytea"
                out.append(literal.replace("%", "%%"))
                i = end + 1
                continue
            out.append("%s" if char == "?" else "%%" if char == "%" else char)
            i += 1
        return "".join(out)


class ConnectionLost(StoreError):
    """The PostgreSQL session ended inside a transaction: its uncommitted work is gone.

    Raised by the statement that found the session dead (a server restart, pg_terminate_backend,
    the idle-in-transaction timeout after the client was paused). Retrying the whole transaction
    is the caller's business; the connection reconnects for the next one. Also raised for a write
    outside a transaction whose answer was lost on the wire, and on a connection made with
    reconnect=False (the claim's, whose lock lives in its session).
    """


# SQLSTATEs of a server that ended the session and said so: it answered the statement with this
# instead of running it (admin/crash shutdown, the idle-in-transaction and idle-session timeouts).
_SESSION_ENDED = frozenset({"57P01", "57P02", "25P03", "57P05"})


class PgConnection:
    """A psycopg 3 connection with the sqlite3.Connection surface the services use.

    Autocommit, like the SQLite connections here (isolation_level=None): a statement
    outside `transaction()` commits by itself; `transaction()` sends BEGIN/COMMIT.

    When the server ends the session, a statement outside a transaction reconnects (same DSN,
    application_name and session settings) and runs once more: transparently when the server
    said it ended the session or the statement only reads; a write whose answer was lost on
    the wire (it may have committed) raises ConnectionLost instead of running twice. Inside a
    transaction the loss raises ConnectionLost and in_transaction turns False; statements still
    meant for the dead transaction (BEGIN included) keep raising ConnectionLost until it ends
    (ROLLBACK, COMMIT, or leaving `transaction()`), and the next statement or BEGIN reconnects.
    """

    def __init__(self, raw: psycopg.Connection[Any], dsn: str, *, application_name: str = "dccn",
                 idle_in_transaction_timeout: str | None = None, reconnect: bool = True) -> None:
        self.raw = raw
        self.dsn = dsn
        self.application_name = application_name
        self.idle_in_transaction_timeout = idle_in_transaction_timeout or IDLE_IN_TRANSACTION_TIMEOUT
        self.reconnect = reconnect  # False for a connection whose session state matters (the claim's lock)
        self.reconnects = 0
        self._doomed = False  # the session died inside a transaction the caller has not ended yet
        self._dialect = _PgDialect()
        # One statement at a time, and a transaction() holds it throughout: a thread serving
        # /health must not run a statement inside (or be taken for) another thread's transaction.
        self.lock = threading.RLock()

    @classmethod
    def connect(cls, dsn: str, *, application_name: str = "dccn", idle_in_transaction_timeout: str | None = None,
                reconnect: bool = True) -> PgConnection:
        """Open a session; `idle_in_transaction_timeout` (a PostgreSQL interval, default
        IDLE_IN_TRANSACTION_TIMEOUT) bounds how long a paused client can hold a transaction open."""
        timeout = idle_in_transaction_timeout or IDLE_IN_TRANSACTION_TIMEOUT
        return cls(cls._open(dsn, application_name, timeout), dsn, application_name=application_name,
                   idle_in_transaction_timeout=timeout, reconnect=reconnect)

    @staticmethod
    def _open(dsn: str, application_name: str, idle_in_transaction_timeout: str) -> psycopg.Connection[Any]:
        try:
            import psycopg
        except ImportError:
            raise StoreError("a postgresql:// store needs psycopg; run `make install`") from None
        try:
            raw = psycopg.connect(dsn, autocommit=True, row_factory=_row_factory, connect_timeout=10,
                                  application_name=application_name)
            # A client paused (SIGSTOP) or hung inside a transaction would hold the write lock for
            # good; the server ends such a session instead, and its uncommitted work with it.
            raw.execute("SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
                        (idle_in_transaction_timeout,))
        except psycopg.Error as err:
            raise StoreError(f"cannot open PostgreSQL database {redacted(dsn)}: {_reason(err)}") from None
        return raw

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        if self._doomed or self.raw.closed:
            return False
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    @property
    def broken(self) -> bool:
        """The session is known dead (the next statement outside a transaction reconnects)."""
        return bool(self.raw.closed or self.raw.broken)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self.lock:
            return self._execute(sql, params)

    def _execute(self, sql: str, params: Sequence[Any]) -> Any:
        head = sql.lstrip()[:16].upper()
        if head.startswith("BEGIN"):
            return self._begin(head)
        if head.startswith("PRAGMA"):
            return self._pragma(sql)
        if self._doomed:
            return self._in_dead_transaction(head)

        def run() -> Any:  # translating may read the catalog: on the session the statement runs on
            return self.raw.execute(self._dialect.translate(sql, self._primary_key), tuple(params))  # type: ignore[arg-type]

        return self._run(run, reads_only=head.startswith("SELECT"),
                         ends_transaction=head.startswith(("COMMIT", "END", "ROLLBACK")) and " TO " not in head)

    def executemany(self, sql: str, rows: Any) -> Any:
        with self.lock:
            return self._executemany(sql, rows)

    def _executemany(self, sql: str, rows: Any) -> Any:
        if self._doomed:
            return self._in_dead_transaction(sql.lstrip()[:16].upper())
        values = [tuple(r) for r in rows]

        def run() -> _Result:
            with self.raw.cursor() as cursor:
                cursor.executemany(self._dialect.translate(sql, self._primary_key), values)  # type: ignore[arg-type]
                return _Result(rowcount=cursor.rowcount)

        return self._run(run)

    def rollback(self) -> None:
        if self._doomed or self.in_transaction:
            self.execute("ROLLBACK")

    def close(self) -> None:
        self.raw.close()

    # -- a session the server ended ----------------------------------------------------------

    def _begin(self, head: str) -> _Result:
        if self._doomed:  # nested in the dead transaction (its caller swallowed the loss), as SQLite refuses it
            raise self._lost("a transaction cannot begin inside the lost one; end it first")

        def begin() -> _Result:
            self.raw.execute("BEGIN")
            if "IMMEDIATE" in head or "EXCLUSIVE" in head:
                self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            return _Result()

        # Nothing is written yet: a session lost here is replaced and the BEGIN sent again.
        return self._run(begin, reads_only=True, outside=True)

    def _in_dead_transaction(self, head: str) -> _Result:
        if head.startswith("ROLLBACK") and " TO " not in head:
            self._doomed = False  # nothing to roll back: the server did when the session ended
            return _Result()
        if head.startswith(("COMMIT", "END")):
            self._doomed = False
            raise self._lost("the transaction was not committed")
        raise self._lost("this statement belongs to the lost transaction; end it first")

    def _run(self, op: Callable[[], Any], *, reads_only: bool = False, outside: bool = False,
             ends_transaction: bool = False) -> Any:
        import psycopg

        inside = not outside and self.in_transaction
        if not inside and self.broken:
            self._reconnect()  # found dead before sending: nothing of this statement reached the server
        try:
            return op()
        except psycopg.Error as err:
            if not self.broken:
                raise  # an ordinary SQL error; the session is fine
            if inside:
                self._doomed = not ends_transaction
                raise self._lost(f"the open transaction is lost: {_reason(err)}") from None
            if not (reads_only or getattr(err, "sqlstate", None) in _SESSION_ENDED):
                self._reconnect_quietly()
                raise self._lost(f"a write's answer was lost, it may or may not have committed: {_reason(err)}") from None
            self._reconnect(err)
        return op()

    def _reconnect(self, err: BaseException | None = None) -> None:
        if not self.reconnect:
            raise self._lost("reconnecting is off for this connection" + (f": {_reason(err)}" if err else ""))
        self._doomed = False
        with suppress(Exception):  # it is dead already; its socket is all that is left
            self.raw.close()
        self.raw = self._open(self.dsn, self.application_name, self.idle_in_transaction_timeout)
        self.reconnects += 1
        log.warning("PostgreSQL session lost; reconnected", extra={
            "database": redacted(self.dsn), "error": _reason(err) if err else "connection closed"})

    def _reconnect_quietly(self) -> None:
        # Now, so the next statement finds a session; a server still down is reported by the next one.
        if self.reconnect:
            with suppress(StoreError):
                self._reconnect()

    def _lost(self, detail: str) -> ConnectionLost:
        return ConnectionLost(f"PostgreSQL session to {redacted(self.dsn)} lost; {detail}")

    def _primary_key(self, table: str) -> list[str]:
        rows = self.raw.execute(
            "SELECT a.attname AS name FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
            (table,),
        ).fetchall()
        if not rows:
            raise StoreError(f"INSERT OR REPLACE into {table}: the table has no primary key")
        return [str(row["name"]) for row in rows]

    def _pragma(self, sql: str) -> _Result:
        # The SQLite settings (journal_mode, synchronous, foreign_keys) are the server's business here.
        match = re.match(r"\s*PRAGMA\s+(\w+)\s*(?:\((\w+)\))?", sql, re.IGNORECASE)
        name = match.group(1).lower() if match else ""
        if name == "table_info" and match and match.group(2):
            names = table_columns(self, match.group(2))
            return _Result([Row({"cid": 0, "name": 1}, (i, n)) for i, n in enumerate(names)])
        if name in ("quick_check", "integrity_check"):
            return _Result([Row({name: 0}, ("ok",))])
        return _Result()


def _reason(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


Connection = sqlite3.Connection | PgConnection
