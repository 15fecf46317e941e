"""A PostgreSQL store outlives its session: the server ending it (pg_terminate_backend, a restart,
the idle-in-transaction timeout after the client was paused) costs at most the open transaction.

A real PostgreSQL on loopback (dccn_devtools.postgres); sessions are ended by the server itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from dccn_common.store import ConnectionLost, PgConnection, StoreError, open_db, redacted, transaction

pytestmark = pytest.mark.parametrize("store_backend", ["postgresql"], indirect=True)

KV = "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)"


@pytest.fixture
def dsn(store_target: Callable[[str], str]) -> str:
    target = store_target("reconnect.db")
    open_db(target, KV).close()
    return target


@pytest.fixture
def db(dsn: str) -> Any:
    conn = PgConnection.connect(dsn, application_name="reconnect test")
    yield conn
    conn.close()


def terminate(conn: PgConnection) -> None:
    """End `conn`'s session from another one, waiting until its backend is gone."""
    pid = conn.raw.info.backend_pid
    with psycopg.connect(conn.dsn, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,)).fetchone() == (True,)


def keys(dsn: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as other:
        return [row[0] for row in other.execute("SELECT k FROM kv ORDER BY k")]


def test_session_terminated_while_idle__next_statements_reconnect_transparently(db: PgConnection) -> None:
    db.execute("INSERT INTO kv (k, v) VALUES ('before', '1')")
    old_pid = db.raw.info.backend_pid
    terminate(db)

    assert db.execute("SELECT COUNT(*) AS n FROM kv").fetchone()["n"] == 1
    assert db.reconnects == 1 and db.raw.info.backend_pid != old_pid
    # Same name and session settings as the first session.
    settings = db.execute("SELECT current_setting('application_name') AS app, "
                          "current_setting('idle_in_transaction_session_timeout') AS idle").fetchone()
    assert (settings["app"], settings["idle"]) == ("reconnect test", "15s")


def test_session_terminated_while_idle__a_write_runs_once_on_the_new_session(db: PgConnection, dsn: str) -> None:
    terminate(db)
    # The server said it ended the session, so the INSERT never ran there: sent again, it runs once.
    assert db.execute("INSERT INTO kv (k, v) VALUES ('after', '1')").rowcount == 1
    assert keys(dsn) == ["after"] and db.reconnects == 1


def test_session_terminated_inside_a_transaction__clear_error_work_gone_next_transaction_works(
    db: PgConnection, dsn: str
) -> None:
    with pytest.raises(ConnectionLost) as caught, transaction(db):
        db.execute("INSERT INTO kv (k, v) VALUES ('lost', '1')")
        terminate(db)
        db.execute("INSERT INTO kv (k, v) VALUES ('lost too', '1')")
    message = str(caught.value)
    assert isinstance(caught.value, StoreError) and "\n" not in message
    assert message.startswith(f"PostgreSQL session to {redacted(dsn)} lost; the open transaction is lost: ")
    assert not db.in_transaction
    assert keys(dsn) == []

    with transaction(db):
        db.execute("INSERT INTO kv (k, v) VALUES ('next', '1')")
    assert keys(dsn) == ["next"] and db.reconnects == 1


def test_session_terminated_before_commit__commit_raises_and_nothing_committed(db: PgConnection, dsn: str) -> None:
    with pytest.raises(ConnectionLost, match="lost"), transaction(db):
        db.execute("INSERT INTO kv (k, v) VALUES ('lost', '1')")
        terminate(db)  # the COMMIT leaving the block is the first to find out
    assert not db.in_transaction and keys(dsn) == []
    db.execute("INSERT INTO kv (k, v) VALUES ('next', '1')")
    assert keys(dsn) == ["next"]


def test_lost_transaction_swallowed_by_the_caller__later_writes_refused_until_it_ends(
    db: PgConnection, dsn: str
) -> None:
    # A handler that catches the loss must not go on writing outside its transaction's atomicity.
    with pytest.raises(ConnectionLost, match="not committed"), transaction(db):
        db.execute("INSERT INTO kv (k, v) VALUES ('lost', '1')")
        terminate(db)
        with pytest.raises(ConnectionLost):
            db.execute("INSERT INTO kv (k, v) VALUES ('lost too', '1')")
        with pytest.raises(ConnectionLost, match="belongs to the lost transaction"):
            db.execute("INSERT INTO kv (k, v) VALUES ('half', '1')")
        with pytest.raises(ConnectionLost), transaction(db):  # a nested helper: its savepoint is gone too
            db.execute("INSERT INTO kv (k, v) VALUES ('nested', '1')")
    assert keys(dsn) == []
    db.execute("INSERT INTO kv (k, v) VALUES ('next', '1')")
    assert keys(dsn) == ["next"]


def test_idle_in_transaction_timeout__paused_writer_loses_its_transaction_then_recovers(dsn: str) -> None:
    # The SIGSTOP'd leader: it stops inside a transaction holding the write lock; the server ends it.
    db = PgConnection.connect(dsn, idle_in_transaction_timeout="1s")
    assert db.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0] == "1s"
    with pytest.raises(ConnectionLost), transaction(db):
        db.execute("INSERT INTO kv (k, v) VALUES ('paused', '1')")
        time.sleep(2)
    assert not db.in_transaction
    assert keys(dsn) == []

    # The write lock it held is free again: another writer gets it at once.
    other = PgConnection.connect(dsn)
    with transaction(other):
        other.execute("INSERT INTO kv (k, v) VALUES ('other', '1')")
    with transaction(db):
        db.execute("INSERT INTO kv (k, v) VALUES ('resumed', '1')")
    assert keys(dsn) == ["other", "resumed"]
    assert db.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0] == "1s"
    db.close()
    other.close()


def test_connect__default_idle_in_transaction_timeout_from_the_module(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dccn_common.store.IDLE_IN_TRANSACTION_TIMEOUT", "3s")
    db = PgConnection.connect(dsn)
    assert db.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0] == "3s"
    db.close()


def test_reconnect_off__a_lost_session_is_reported_not_replaced(dsn: str) -> None:
    # The claim's connection: its session holds the advisory lock; a new session would not.
    db = PgConnection.connect(dsn, reconnect=False)
    terminate(db)
    with pytest.raises(ConnectionLost, match="reconnecting is off"):
        db.execute("SELECT 1")
    with pytest.raises(ConnectionLost, match="reconnecting is off"):
        db.execute("SELECT 1")
    assert db.reconnects == 0
    db.close()


def test_server_restart__unreachable_reported_in_one_line_then_reconnects(store_backend: str) -> None:
    # A server of its own: the shared one serves the other tests.
    from dccn_devtools.postgres import PostgresServer

    with PostgresServer() as server:
        target = server.create_database("restart")
        db = open_db(target, KV)
        db.execute("INSERT INTO kv (k, v) VALUES ('before', '1')")
        server._run(["pg_ctl", "-D", str(server.data_dir), "-m", "fast", "-w", "stop"])
        with pytest.raises(StoreError, match=rf"^cannot open PostgreSQL database {target}: ") as caught:
            db.execute("SELECT COUNT(*) AS n FROM kv")
        assert "\n" not in str(caught.value)
        with pytest.raises(StoreError, match="cannot open"):  # still down: tried again, still one line
            db.execute("SELECT COUNT(*) AS n FROM kv")
        server._run(["pg_ctl", "-D", str(server.data_dir), "-l", str(server.root / "server.log"), "-w",  # type: ignore[operator]
                     "-o", f"-c listen_addresses=127.0.0.1 -k {server.root} -p {server.port}", "start"])
        assert db.execute("SELECT COUNT(*) AS n FROM kv").fetchone()["n"] == 1
        with transaction(db):
            db.execute("INSERT INTO kv (k, v) VALUES ('after', '1')")
        assert keys(target) == ["after", "before"] and db.reconnects == 1
        db.close()


def test_transaction__while_another_thread_runs_a_statement__opens_its_own_block(db: PgConnection, dsn: str) -> None:
    """The health endpoint reads on the bot's connection; a busy session reads as in a transaction."""
    reading = threading.Event()

    def health_read() -> None:
        reading.set()
        db.execute("SELECT pg_sleep(0.5)")

    reader = threading.Thread(target=health_read)
    reader.start()
    reading.wait()
    time.sleep(0.1)  # the read is on the server now
    with transaction(db):
        db.execute("INSERT INTO kv (k, v) VALUES ('a', '1')")
    reader.join()
    assert keys(dsn) == ["a"] and not db.in_transaction


def test_statement_from_another_thread__waits_for_the_open_transaction_to_end(db: PgConnection) -> None:
    seen: list[int] = []
    in_block = threading.Event()

    def health_read() -> None:
        in_block.wait()
        seen.append(int(db.execute("SELECT COUNT(*) AS n FROM kv").fetchone()["n"]))

    reader = threading.Thread(target=health_read)
    reader.start()
    with transaction(db):
        db.execute("INSERT INTO kv (k, v) VALUES ('a', '1')")
        in_block.set()
        time.sleep(0.3)
        db.execute("INSERT INTO kv (k, v) VALUES ('b', '2')")
    reader.join()
    assert seen == [2]  # inside the writer's block it would have read 1 (its first row, uncommitted)
