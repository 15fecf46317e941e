"""The store interface on both backends: portable SQL, transactions, schema versions, the claim.

PostgreSQL runs for real on loopback (dccn_devtools.postgres); nothing here is mocked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dccn_common.store import (
    StoreError,
    apply_schema,
    is_postgres,
    open_db,
    open_store,
    require_schema,
    schema_version,
    table_columns,
    transaction,
)
from dccn_devtools.pytest_fixtures import BACKENDS

pytestmark = pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)

ITEMS = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    payload BLOB,
    weight REAL,
    big INTEGER
);
CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 0)
"""


@pytest.fixture
def db(store_target: Callable[[str], str]) -> Any:
    conn = open_db(store_target("store.db"), ITEMS)
    yield conn
    conn.close()


def test_backend__chosen_by_the_setting(db: Any, store_backend: str) -> None:
    assert is_postgres(db) == (store_backend == "postgresql")


def test_insert_or_ignore__second_insert_ignored_and_reported_by_rowcount(db: Any) -> None:
    assert db.execute("INSERT OR IGNORE INTO items (name) VALUES (?)", ("a",)).rowcount == 1
    assert db.execute("INSERT OR IGNORE INTO items (name) VALUES (?)", ("a",)).rowcount == 0
    assert db.execute("SELECT COUNT(*) AS n FROM items").fetchone()["n"] == 1


def test_insert_or_replace__row_with_same_key_replaced(db: Any) -> None:
    db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", ("x", "1"))
    db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", ("x", "2"))
    assert [tuple(r) for r in db.execute("SELECT k, v FROM kv")] == [("x", "2", )]


def test_blob_real_and_64bit_integer__round_trip_with_their_types(db: Any) -> None:
    db.execute("INSERT INTO items (name, payload, weight, big) VALUES (?, ?, ?, ?)",
               ("b", b"\x00\xffraw", 1.5, 2**62))
    db.execute("INSERT INTO items (name, payload) VALUES ('c', x'00ff')")
    rows = db.execute("SELECT name, payload, weight, big FROM items ORDER BY name").fetchall()
    assert (rows[0]["name"], bytes(rows[0]["payload"]), rows[0]["weight"], rows[0]["big"]) == ("b", b"\x00\xffraw", 1.5, 2**62)
    assert bytes(rows[1][1]) == b"\x00\xff"


def test_autoincrement_and_rowid__give_insertion_order(db: Any) -> None:
    for name in ("z", "m", "a"):
        db.execute("INSERT INTO items (name) VALUES (?)", (name,))
    assert [r["name"] for r in db.execute("SELECT name FROM items ORDER BY id")] == ["z", "m", "a"]
    assert [r["name"] for r in db.execute("SELECT name FROM items ORDER BY rowid DESC")] == ["a", "m", "z"]


def test_percent_and_question_mark_inside_literals__left_as_text(db: Any) -> None:
    db.execute("INSERT INTO kv (k, v) VALUES ('50%?', ?)", ("it's",))
    assert db.execute("SELECT v FROM kv WHERE k LIKE '50%' AND v = ?", ("it's",)).fetchone()["v"] == "it's"


def test_transaction__exception_rolls_back_every_write(db: Any) -> None:
    with pytest.raises(RuntimeError), transaction(db):
        db.execute("INSERT INTO kv (k, v) VALUES ('a', '1')")
        raise RuntimeError("handler failed")
    assert db.execute("SELECT COUNT(*) AS n FROM kv").fetchone()["n"] == 0
    assert not db.in_transaction


def test_nested_transaction__inner_failure_undoes_only_the_inner_writes(db: Any) -> None:
    with transaction(db):
        db.execute("INSERT INTO kv (k, v) VALUES ('outer', '1')")
        with pytest.raises(ValueError), transaction(db):
            db.execute("INSERT INTO kv (k, v) VALUES ('inner', '1')")
            raise ValueError
    assert [r["k"] for r in db.execute("SELECT k FROM kv")] == ["outer"]


def test_immediate_transactions__concurrent_read_then_write__no_update_lost(
    db: Any, store_target: Callable[[str], str]
) -> None:
    # Like SQLite's BEGIN IMMEDIATE, PostgreSQL's immediate transaction admits one writer at a time.
    db.execute("INSERT INTO kv (k, v) VALUES ('counter', '0')")
    target = store_target("store.db")
    errors: list[BaseException] = []

    def bump(times: int) -> None:
        conn = open_db(target)
        try:
            for _ in range(times):
                with transaction(conn):
                    value = int(conn.execute("SELECT v FROM kv WHERE k = 'counter'").fetchone()["v"])
                    conn.execute("UPDATE kv SET v = ? WHERE k = 'counter'", (str(value + 1),))
        except BaseException as err:  # surfaced below
            errors.append(err)
        finally:
            conn.close()

    threads = [threading.Thread(target=bump, args=(25,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert db.execute("SELECT v FROM kv WHERE k = 'counter'").fetchone()["v"] == "100"


def test_apply_schema__each_version_runs_once_and_is_recorded(db: Any) -> None:
    assert schema_version(db, "things") == 0
    assert apply_schema(db, "things", 1, "CREATE TABLE things (id TEXT PRIMARY KEY)")
    assert not apply_schema(db, "things", 1, "CREATE TABLE things (id TEXT PRIMARY KEY)")  # would fail if run again
    assert apply_schema(db, "things", 2, "ALTER TABLE things ADD COLUMN size INTEGER")
    assert schema_version(db, "things") == 2
    assert table_columns(db, "things") == ["id", "size"]


def test_apply_schema__failing_step__leaves_neither_its_changes_nor_its_record(db: Any) -> None:
    with pytest.raises(Exception):  # noqa: B017 (each backend raises its own driver error)
        apply_schema(db, "things", 1, "CREATE TABLE things (id TEXT PRIMARY KEY); CREATE TABLE things (x TEXT)")
    assert schema_version(db, "things") == 0
    assert table_columns(db, "things") == []


def test_apply_schema__table_of_another_shape__store_error_database_unchanged(db: Any) -> None:
    db.execute("CREATE TABLE things (other TEXT)")  # another program's table of the same name
    db.execute("INSERT INTO things (other) VALUES ('theirs')")
    with pytest.raises(StoreError, match=r"^schema things version 1 does not fit this database \(.*"
                                         r"is it another program's database\? refusing to use it$"):
        apply_schema(db, "things", 1, "CREATE TABLE IF NOT EXISTS things (id TEXT PRIMARY KEY); "
                                      "CREATE INDEX IF NOT EXISTS things_by_id ON things (id)")
    assert schema_version(db, "things") == 0
    assert table_columns(db, "things") == ["other"]
    assert [row["other"] for row in db.execute("SELECT other FROM things").fetchall()] == ["theirs"]


def test_apply_schema__callable_step_migrates_data(db: Any) -> None:
    db.execute("INSERT INTO kv (k, v) VALUES ('a', 'old')")
    assert apply_schema(db, "kv-data", 1, lambda conn: conn.execute("UPDATE kv SET v = 'new'"))
    assert db.execute("SELECT v FROM kv").fetchone()["v"] == "new"


def test_require_schema__database_newer_than_the_code__refused(db: Any) -> None:
    apply_schema(db, "things", 3, "CREATE TABLE things (id TEXT PRIMARY KEY)")
    require_schema(db, "things", 3)
    with pytest.raises(StoreError, match="version 3, newer than this code knows \\(2\\)"):
        require_schema(db, "things", 2)


def test_open_store__second_instance_refused_naming_the_holder__free_after_release(
    store_target: Callable[[str], str],
) -> None:
    target = store_target("claimed.db")
    first = open_store(target, "svc-a")
    with pytest.raises(StoreError, match=r"in use by svc-a \(pid \d+ on "):
        open_store(target, "svc-a")
    first.release()
    open_store(target, "svc-a").release()


def test_open_store__dsn_that_went_through_a_path__still_postgres(
    store_target: Callable[[str], str], store_backend: str
) -> None:
    if store_backend != "postgresql":
        pytest.skip("a PostgreSQL URL only")
    mangled = Path(store_target("claimed.db"))  # a config field typed as a path: "postgresql:/..."
    assert str(mangled).startswith("postgresql:/") and not str(mangled).startswith("postgresql://")
    with open_store(mangled, "svc-b"):
        assert is_postgres(open_db(mangled))


def test_unreachable_server__store_error_without_password_not_a_traceback(store_backend: str) -> None:
    if store_backend != "postgresql":
        pytest.skip("a PostgreSQL URL only")
    with pytest.raises(StoreError, match=r"cannot open PostgreSQL database postgresql://u:\*\*\*@127.0.0.1:1/x: "
                                         r".*(refused|failed)") as caught:
        open_store("postgresql://u:secret@127.0.0.1:1/x", "svc")
    assert "secret" not in str(caught.value)


def test_missing_database__store_error_naming_it(store_backend: str, request: pytest.FixtureRequest) -> None:
    if store_backend != "postgresql":
        pytest.skip("a PostgreSQL URL only")
    server = request.getfixturevalue("postgres_server")
    with pytest.raises(StoreError, match='database "no_such_db" does not exist'):
        open_db(server.dsn("no_such_db"))


def test_schema_with_comments__applied_and_usable(store_target: Callable[[str], str]) -> None:
    # A `-- comment` after the last column (what is it? -- with a "?") must not swallow what follows.
    db = open_db(store_target("comments.db"), """
        CREATE TABLE IF NOT EXISTS notes (
            k TEXT NOT NULL,  -- the key, 'quoted' and ? inside a comment
            n INTEGER         -- last column, commented
        )""")
    db.execute("INSERT INTO notes (k, n) VALUES (?, ?) -- trailing ?", ("a--b", 1))
    assert [tuple(r) for r in db.execute("SELECT k, n FROM notes ORDER BY rowid")] == [("a--b", 1)]
