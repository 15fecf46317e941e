"""The watcher's own tables, next to its replay of the child chain (plasma_core.store):
the submitted blocks it checks (watched_blocks) and the exits it follows (watched_exits).

Every function takes the connection; the caller opens the transaction.
"""

from __future__ import annotations

from dccn_common.store import Connection, Row, apply_schema, require_schema, table_columns

SCHEMA_NAME = "plasma_watcher"
SCHEMA_VERSION = 1

WATCHER_SCHEMA = """
CREATE TABLE IF NOT EXISTS watched_blocks (
    blknum INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    eth_block INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    status TEXT NOT NULL,               -- pending, verified, withheld, invalid
    reason TEXT
);
CREATE TABLE IF NOT EXISTS watched_exits (
    exit_id INTEGER PRIMARY KEY,
    exitor TEXT NOT NULL,
    eth_block INTEGER NOT NULL,
    status TEXT NOT NULL,               -- open, challenging, challenged, finalized
    note TEXT,
    closed_eth_block INTEGER            -- root-chain block of its ExitChallenged / ExitFinalized
)
"""

# Metric queries (ServiceMetrics.sql_gauge): rows of (status, count).
WATCHED_BLOCKS_BY_STATUS = "SELECT status, COUNT(*) FROM watched_blocks GROUP BY status"
WATCHED_EXITS_BY_STATUS = "SELECT status, COUNT(*) FROM watched_exits GROUP BY status"
ALARM_RAISED = "SELECT COUNT(*) FROM meta WHERE key = 'watcher.alarm'"

# A challenge of ours for the row's exit is pending or sent in the outbox (keys
# challenge:<id> and challenge:<id>:<n>).
_CHALLENGE_IN_FLIGHT = ("EXISTS (SELECT 1 FROM outbox WHERE status IN ('pending', 'sent') AND "
                        "(key = 'challenge:' || exit_id OR key LIKE 'challenge:' || exit_id || ':%'))")


def _schema_v1(db: Connection) -> None:
    for statement in WATCHER_SCHEMA.split(";"):
        db.execute(statement)
    # Databases of versions before closed_eth_block (and before the schema was versioned).
    if "closed_eth_block" not in table_columns(db, "watched_exits"):
        db.execute("ALTER TABLE watched_exits ADD COLUMN closed_eth_block INTEGER")


def apply_watcher_schema(db: Connection) -> None:
    """Create (or bring up to date) the watcher's tables; refuses a schema newer than this code."""
    apply_schema(db, SCHEMA_NAME, SCHEMA_VERSION, _schema_v1)
    require_schema(db, SCHEMA_NAME, SCHEMA_VERSION)


# -- watched blocks -----------------------------------------------------------------------------

def record_watched_block(db: Connection, blknum: int, root: bytes, eth_block: int, first_seen: float) -> None:
    """A BlockSubmitted seen: pending until checked (a block already recorded is kept)."""
    db.execute("INSERT OR IGNORE INTO watched_blocks (blknum, root, eth_block, first_seen, status) "
               "VALUES (?, ?, ?, ?, 'pending')", (blknum, root, eth_block, first_seen))


def mark_watched_block(db: Connection, blknum: int, status: str, reason: str | None) -> None:
    db.execute("UPDATE watched_blocks SET status = ?, reason = ? WHERE blknum = ?", (status, reason, blknum))


def mark_watched_block_invalid(db: Connection, blknum: int, reason: str) -> None:
    db.execute("UPDATE watched_blocks SET status = 'invalid', reason = ? WHERE blknum = ?", (reason, blknum))


def set_watched_block_eth_block(db: Connection, blknum: int, eth_block: int) -> None:
    db.execute("UPDATE watched_blocks SET eth_block = ? WHERE blknum = ?", (eth_block, blknum))


def pending_watched_blocks(db: Connection) -> list[Row]:
    """The blocks not checked yet, by number."""
    return db.execute("SELECT * FROM watched_blocks WHERE status = 'pending' ORDER BY blknum").fetchall()


def watched_block_counts(db: Connection) -> dict[str, int]:
    """status -> number of watched blocks."""
    return {r["status"]: int(r["n"]) for r in db.execute(
        "SELECT status, COUNT(*) AS n FROM watched_blocks GROUP BY status").fetchall()}


# -- watched exits ------------------------------------------------------------------------------

def record_watched_exit(db: Connection, exit_id: int, exitor: str, eth_block: int) -> None:
    """An ExitStarted seen: open until challenged or finalized."""
    db.execute("INSERT OR REPLACE INTO watched_exits (exit_id, exitor, eth_block, status) "
               "VALUES (?, ?, ?, 'open')", (exit_id, exitor, eth_block))


def close_watched_exit(db: Connection, exit_id: int, status: str, eth_block: int) -> None:
    """ExitChallenged ('challenged') or ExitFinalized ('finalized') seen in root-chain block `eth_block`."""
    db.execute("UPDATE watched_exits SET status = ?, closed_eth_block = ? WHERE exit_id = ?",
               (status, eth_block, exit_id))


def mark_exit_challenging(db: Connection, exit_id: int) -> None:
    db.execute("UPDATE watched_exits SET status = 'challenging' WHERE exit_id = ?", (exit_id,))


def pending_watched_exits(db: Connection) -> list[Row]:
    """Exits not known challenged or finalized (open or challenging), by exit id."""
    return db.execute("SELECT * FROM watched_exits WHERE status IN ('open', 'challenging') "
                      "ORDER BY exit_id").fetchall()


def exit_not_challenged(db: Connection, exit_id: int) -> bool:
    """A watched exit of `exit_id` exists and is not known challenged."""
    return db.execute("SELECT 1 FROM watched_exits WHERE exit_id = ? AND status != 'challenged'",
                      (exit_id,)).fetchone() is not None


def watched_exit_counts(db: Connection) -> dict[str, int]:
    """status -> number of watched exits."""
    return {r["status"]: int(r["n"]) for r in db.execute(
        "SELECT status, COUNT(*) AS n FROM watched_exits GROUP BY status").fetchall()}


def challenge_outbox_rows(db: Connection, exit_id: int) -> list[Row]:
    """Outbox rows (key, status, error) challenging `exit_id`: keys challenge:<id> and challenge:<id>:<n>."""
    return db.execute("SELECT key, status, error FROM outbox WHERE key = ? OR key LIKE ?",
                      (f"challenge:{exit_id}", f"challenge:{exit_id}:%")).fetchall()


# -- rewinds ------------------------------------------------------------------------------------

def rewind_watched(db: Connection, first_removed: int) -> None:
    """Undo what root-chain blocks >= first_removed told the watcher (after chain.rewind)."""
    db.execute("DELETE FROM watched_blocks WHERE eth_block >= ? AND status != 'verified'", (first_removed,))
    db.execute("DELETE FROM watched_exits WHERE eth_block >= ?", (first_removed,))
    # A challenge or finalization the reorg removed (ours or anyone's): the exit is pending
    # again. Ours is back in 'sent' (the sender rebroadcasts it): in flight until its
    # ExitChallenged is seen anew; anyone else's: open, so check_exits challenges it.
    in_flight = _CHALLENGE_IN_FLIGHT
    db.execute(f"UPDATE watched_exits SET status = CASE WHEN {in_flight} THEN 'challenging' ELSE 'open' END, "
               "closed_eth_block = NULL WHERE closed_eth_block >= ?", (first_removed,))
    db.execute(f"UPDATE watched_exits SET status = 'challenging' WHERE status = 'challenged' "
               f"AND closed_eth_block IS NULL AND {in_flight}")
