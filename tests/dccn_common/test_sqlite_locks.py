"""A second `open_db` of a live SQLite file must not drop the first connection's locks.

POSIX locks belong to the process and file: closing any descriptor of the file drops them
all, SQLite's included. The header check used to open and close the file on every
`open_db`, so a second connection in one process (the validator's signature server) left
the first one unlocked: another process could then switch the live WAL database's journal
mode under it, and writers saw 'disk I/O error'.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dccn_common.store import open_db

SWITCH_JOURNAL_MODE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
try:
    print(conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0])
except sqlite3.OperationalError as err:
    print("refused:", err)
"""


def other_process_switches_journal_mode(path: Path) -> str:
    done = subprocess.run([sys.executable, "-c", SWITCH_JOURNAL_MODE, str(path)], capture_output=True, text=True)
    return done.stdout.strip()


def test_second_open_db_in_one_process__first_connection_keeps_its_locks(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    first = open_db(path, "CREATE TABLE IF NOT EXISTS items (n INTEGER)")
    first.execute("INSERT INTO items VALUES (1)")
    assert other_process_switches_journal_mode(path).startswith("refused")

    second = open_db(path)

    assert other_process_switches_journal_mode(path).startswith("refused")
    assert first.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    first.execute("INSERT INTO items VALUES (2)")
    assert second.execute("SELECT count(*) FROM items").fetchone()[0] == 2


def test_open_db__not_sqlite_file__still_refused_after_another_file_was_opened(tmp_path: Path) -> None:
    open_db(tmp_path / "good.sqlite")
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database at all, just text\n")
    try:
        open_db(bad)
    except ValueError as err:
        assert "not a SQLite database" in str(err)
    else:
        raise AssertionError("a non-SQLite file was opened")
    assert bad.read_bytes() == b"not a database at all, just text\n"
