"""State of a child chain, on SQLite or PostgreSQL (operator and watcher share the schema):
blocks, transactions, outputs (the UTXO set and its spent history), confirm signatures and
root-chain exits.

Amounts are uint256, wider than SQLite's INTEGER, so they are stored as decimal TEXT.
An output's position (`pos`) is wire.utxo_position(blknum, txindex, oindex), which is
also its exit id on the root chain; a transaction's id is the position of its output 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from dccn_common.store import Connection, Row, open_db
from plasma_core import wire

SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    blknum INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,                 -- 'child' (operator block) or 'deposit'
    status TEXT NOT NULL,               -- child: open, sealed, submitted, final (deposit: final)
    root BLOB,
    leaf_count INTEGER NOT NULL DEFAULT 0,
    tree BLOB,                          -- every Merkle level, leaves first, 32 bytes per node
    fees TEXT,                          -- sum of the fee fields of its transactions
    sealed_at REAL,
    eth_block INTEGER                   -- root-chain block that made it final (or held the deposit)
);
CREATE INDEX IF NOT EXISTS blocks_by_status ON blocks (status);
CREATE TABLE IF NOT EXISTS txs (
    id INTEGER PRIMARY KEY,             -- utxo_position(blknum, txindex, 0)
    blknum INTEGER NOT NULL,
    txindex INTEGER NOT NULL,
    kind TEXT NOT NULL,                 -- 'transfer', 'deposit' or 'fee'
    raw BLOB NOT NULL,
    leaf BLOB NOT NULL,                 -- not unique: equal deposits and fee txs have equal bytes
    fee TEXT NOT NULL,
    UNIQUE (blknum, txindex)
);
CREATE INDEX IF NOT EXISTS txs_by_leaf ON txs (leaf);
CREATE TABLE IF NOT EXISTS utxos (
    pos INTEGER PRIMARY KEY,
    blknum INTEGER NOT NULL,
    owner TEXT NOT NULL,
    amount TEXT NOT NULL,
    spent_by INTEGER,                   -- id of the spending transaction
    spent_slot INTEGER,                 -- input slot (0/1) of the spending transaction
    exiting INTEGER NOT NULL DEFAULT 0, -- an exit of it started on the root chain
    eth_block INTEGER                   -- for deposit outputs: the root-chain block of the Deposit event
);
CREATE INDEX IF NOT EXISTS utxos_unspent_by_owner ON utxos (owner) WHERE spent_by IS NULL;
CREATE INDEX IF NOT EXISTS utxos_by_spender ON utxos (spent_by);
CREATE TABLE IF NOT EXISTS confirm_sigs (
    tx_id INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    sig BLOB NOT NULL,
    PRIMARY KEY (tx_id, slot)
);
CREATE TABLE IF NOT EXISTS exits (
    exit_id INTEGER PRIMARY KEY,
    exitor TEXT NOT NULL,
    amount TEXT NOT NULL,
    status TEXT NOT NULL,               -- started, challenged, finalized
    eth_block INTEGER NOT NULL,
    closed_eth_block INTEGER
)
"""

BLOCK_STATUSES = ("open", "sealed", "submitted", "final")


class Utxo(NamedTuple):
    """An output (immutable; a NamedTuple because the operator builds several per transaction)."""

    pos: int
    blknum: int
    owner: str
    amount: int
    spent_by: int | None
    spent_slot: int | None
    exiting: bool

    @property
    def position(self) -> tuple[int, int, int]:
        return wire.decode_position(self.pos)

    def as_json(self) -> dict[str, object]:
        blknum, txindex, oindex = self.position
        return {"pos": self.pos, "blknum": blknum, "txindex": txindex, "oindex": oindex,
                "owner": self.owner, "amount": str(self.amount), "exiting": self.exiting,
                "spent_by": self.spent_by}


@dataclass(frozen=True)
class StoredTx:
    id: int
    blknum: int
    txindex: int
    kind: str
    raw: bytes
    leaf: bytes
    fee: int


def open_chain_db(path: str | Path) -> Connection:
    return open_db(path, SCHEMA)


def tx_id(blknum: int, txindex: int) -> int:
    return wire.utxo_position(blknum, txindex, 0)


_UTXO_COLUMNS = "pos, blknum, owner, amount, spent_by, spent_slot, exiting"


def _utxo(row: Row) -> Utxo:
    return Utxo(int(row["pos"]), int(row["blknum"]), row["owner"], int(row["amount"]), row["spent_by"],
                row["spent_slot"], bool(row["exiting"]))


def _tx(row: Row) -> StoredTx:
    return StoredTx(int(row["id"]), int(row["blknum"]), int(row["txindex"]), row["kind"], bytes(row["raw"]),
                    bytes(row["leaf"]), int(row["fee"]))


def get_utxo(db: Connection, pos: int) -> Utxo | None:
    row = db.execute("SELECT * FROM utxos WHERE pos = ?", (pos,)).fetchone()
    return _utxo(row) if row else None


def get_utxos(db: Connection, positions: Sequence[int]) -> dict[int, Utxo]:
    """The outputs at `positions` that exist, one query per 500 positions."""
    found: dict[int, Utxo] = {}
    for start in range(0, len(positions), 500):
        chunk = positions[start:start + 500]
        rows = db.execute(f"SELECT {_UTXO_COLUMNS} FROM utxos WHERE pos IN ({','.join('?' * len(chunk))})",
                          chunk).fetchall()
        # By position, not by name: a batch reads two outputs a transaction here.
        for pos, blknum, owner, amount, spent_by, spent_slot, exiting in rows:
            found[int(pos)] = Utxo(int(pos), int(blknum), owner, int(amount), spent_by, spent_slot, bool(exiting))
    return found


def unspent_of(db: Connection, owner: str) -> list[Utxo]:
    rows = db.execute("SELECT * FROM utxos WHERE owner = ? AND spent_by IS NULL ORDER BY pos", (owner,)).fetchall()
    return [_utxo(r) for r in rows]


def spenders_of(db: Connection, tx: int) -> list[Utxo]:
    """Outputs of transaction `tx` that a later transaction spent."""
    rows = db.execute("SELECT * FROM utxos WHERE pos IN (?, ?) AND spent_by IS NOT NULL", (tx, tx + 1)).fetchall()
    return [_utxo(r) for r in rows]


def get_tx(db: Connection, blknum: int, txindex: int) -> StoredTx | None:
    row = db.execute("SELECT * FROM txs WHERE id = ?", (tx_id(blknum, txindex),)).fetchone()
    return _tx(row) if row else None


def get_tx_by_id(db: Connection, ident: int) -> StoredTx | None:
    row = db.execute("SELECT * FROM txs WHERE id = ?", (ident,)).fetchone()
    return _tx(row) if row else None


def block_txs(db: Connection, blknum: int) -> list[StoredTx]:
    rows = db.execute("SELECT * FROM txs WHERE blknum = ? ORDER BY txindex", (blknum,)).fetchall()
    return [_tx(r) for r in rows]


def get_block(db: Connection, blknum: int) -> Row | None:
    return db.execute("SELECT * FROM blocks WHERE blknum = ?", (blknum,)).fetchone()


def insert_tx(db: Connection, blknum: int, txindex: int, kind: str, raw: bytes, tx: wire.Transaction,
              leaf: bytes | None = None) -> int:
    """Store a transaction and create its outputs; returns its id."""
    ident = tx_id(blknum, txindex)
    db.execute("INSERT INTO txs (id, blknum, txindex, kind, raw, leaf, fee) VALUES (?, ?, ?, ?, ?, ?, ?)",
               (ident, blknum, txindex, kind, raw, leaf or wire.keccak(raw), str(tx.fee)))
    db.executemany(
        "INSERT INTO utxos (pos, blknum, owner, amount) VALUES (?, ?, ?, ?)",
        [(ident + oindex, blknum, owner, str(amount))
         for oindex, (owner, amount) in enumerate((tx.output(0), tx.output(1))) if amount > 0],
    )
    return ident


def put_confirm_sig(db: Connection, ident: int, slot: int, sig: bytes) -> None:
    db.execute("INSERT INTO confirm_sigs (tx_id, slot, sig) VALUES (?, ?, ?) "
               "ON CONFLICT(tx_id, slot) DO UPDATE SET sig = excluded.sig", (ident, slot, sig))


def confirm_sigs(db: Connection, ident: int) -> dict[int, bytes]:
    rows = db.execute("SELECT slot, sig FROM confirm_sigs WHERE tx_id = ?", (ident,)).fetchall()
    return {int(r["slot"]): bytes(r["sig"]) for r in rows}


# -- Merkle levels ---------------------------------------------------------------------


def tree_blob(levels: list[list[bytes]]) -> bytes:
    """Every Merkle level (wire.MerkleTree.levels layout), leaves first, as one blob."""
    return b"".join(b"".join(level) for level in levels)


def proof_from_blob(blob: bytes, leaf_count: int, index: int) -> bytes:
    """A 16 x 32-byte proof read from stored levels (the layout of wire.merkle_levels, where
    `leaf_count` is the width of the leaf prefix); an index past the last leaf proves an empty
    leaf. A blob longer than its levels ends with the fee leaf's path to the root."""
    if not 0 <= index < wire.MAX_LEAVES:
        raise IndexError(f"leaf {index} outside the tree")
    offsets, width, offset = [], leaf_count, 0
    for _ in range(wire.TREE_DEPTH):
        offsets.append((offset, width))
        offset += width
        width = (width + 1) // 2
    offset += width  # the root level
    spine = None
    if len(blob) > 32 * offset:
        tail = blob[32 * offset:]
        spine = [tail[32 * h:32 * h + 32] for h in range(wire.TREE_DEPTH + 1)]
    siblings = []
    for height, (start, width) in enumerate(offsets):
        node = index >> height
        level = _BlobLevel(blob, start, width)
        siblings.append(wire.merkle_sibling(level, height, node, spine))
    return b"".join(siblings)


class _BlobLevel(Sequence[bytes]):
    """One stored Merkle level, read in place."""

    def __init__(self, blob: bytes, start: int, width: int) -> None:
        self.blob, self.start, self.width = blob, start, width

    def __len__(self) -> int:
        return self.width

    def __getitem__(self, i):  # type: ignore[no-untyped-def, override]
        at = (self.start + i) * 32
        return self.blob[at:at + 32]


# -- blocks (the operator's and the watcher's child chain) ------------------------------------

def open_block_number(db: Connection) -> int | None:
    row = db.execute("SELECT blknum FROM blocks WHERE status = 'open'").fetchone()
    return None if row is None else int(row["blknum"])


def has_child_block(db: Connection) -> bool:
    """Any child block at all (a new database has none)."""
    return db.execute("SELECT 1 FROM blocks WHERE kind = 'child' LIMIT 1").fetchone() is not None


def unconfirmed_blocks(db: Connection) -> list[Row]:
    """(blknum, root, status) of the sealed and submitted blocks, by number."""
    return db.execute("SELECT blknum, root, status FROM blocks WHERE status IN ('sealed', 'submitted') "
                      "ORDER BY blknum").fetchall()


def newest_block(db: Connection, status: str | None = None) -> int | None:
    """The highest child block number (with `status`, when given)."""
    if status is None:
        row = db.execute("SELECT MAX(blknum) AS b FROM blocks WHERE kind = 'child'").fetchone()
    else:
        row = db.execute("SELECT MAX(blknum) AS b FROM blocks WHERE kind = 'child' AND status = ?", (status,)).fetchone()
    return None if row["b"] is None else int(row["b"])


def insert_open_block(db: Connection, blknum: int) -> None:
    db.execute("INSERT INTO blocks (blknum, kind, status) VALUES (?, 'child', 'open')", (blknum,))


def insert_final_block(db: Connection, blknum: int, kind: str, root: bytes, leaf_count: int, tree: bytes,
                       eth_block: int) -> None:
    """A block that arrives final: a deposit block, or a child block the watcher replays."""
    db.execute("INSERT INTO blocks (blknum, kind, status, root, leaf_count, tree, eth_block) "
               "VALUES (?, ?, 'final', ?, ?, ?, ?)", (blknum, kind, root, leaf_count, tree, eth_block))


def seal_block(db: Connection, blknum: int, root: bytes, leaf_count: int, tree: bytes, fees: int,
               sealed_at: float) -> None:
    db.execute("UPDATE blocks SET status = 'sealed', root = ?, leaf_count = ?, tree = ?, fees = ?, sealed_at = ? "
               "WHERE blknum = ?", (root, leaf_count, tree, str(fees), sealed_at, blknum))


def mark_block_submitted(db: Connection, blknum: int) -> None:
    db.execute("UPDATE blocks SET status = 'submitted' WHERE blknum = ? AND status = 'sealed'", (blknum,))


def mark_block_final(db: Connection, blknum: int, eth_block: int) -> None:
    db.execute("UPDATE blocks SET status = 'final', eth_block = ? WHERE blknum = ?", (eth_block, blknum))


def delete_block(db: Connection, blknum: int) -> None:
    db.execute("DELETE FROM blocks WHERE blknum = ?", (blknum,))


def next_txindex(db: Connection, blknum: int) -> int:
    top = db.execute("SELECT MAX(txindex) AS i FROM txs WHERE blknum = ?", (blknum,)).fetchone()["i"]
    return 0 if top is None else int(top) + 1


def open_block_tx_count(db: Connection) -> int:
    row = db.execute("SELECT COUNT(*) AS n FROM txs JOIN blocks USING (blknum) WHERE blocks.status = 'open'").fetchone()
    return int(row["n"])


def block_leaves(db: Connection, blknum: int) -> list[tuple[int, bytes, int]]:
    """(txindex, leaf, fee) of every transaction of a block, by txindex."""
    rows = db.execute("SELECT txindex, leaf, fee FROM txs WHERE blknum = ? ORDER BY txindex", (blknum,)).fetchall()
    return [(int(r["txindex"]), bytes(r["leaf"]), int(r["fee"])) for r in rows]


def transfers_with_leaves(db: Connection, leaves: Sequence[bytes]) -> dict[bytes, tuple[int, int]]:
    """leaf -> (blknum, txindex) of the stored transfers among `leaves`, one query per 500."""
    found: dict[bytes, tuple[int, int]] = {}
    for start in range(0, len(leaves), 500):
        chunk = leaves[start:start + 500]
        rows = db.execute(f"SELECT leaf, blknum, txindex FROM txs WHERE kind = 'transfer' AND leaf IN "
                          f"({','.join('?' * len(chunk))})", chunk).fetchall()
        found.update({bytes(r["leaf"]): (int(r["blknum"]), int(r["txindex"])) for r in rows})
    return found


# -- transactions and outputs -------------------------------------------------------------------

def insert_transfers(db: Connection, txs: Sequence[tuple[object, ...]], outputs: Sequence[tuple[object, ...]],
                     spends: Sequence[tuple[int, int, int]]) -> None:
    """A batch's rows: txs (id, blknum, txindex, kind, raw, leaf, fee), new outputs (pos, blknum,
    owner, amount) and spends (spent_by, spent_slot, pos), one executemany per table."""
    db.executemany("INSERT INTO txs (id, blknum, txindex, kind, raw, leaf, fee) VALUES (?, ?, ?, ?, ?, ?, ?)", txs)
    db.executemany("INSERT INTO utxos (pos, blknum, owner, amount) VALUES (?, ?, ?, ?)", outputs)
    mark_spent(db, spends)


def mark_spent(db: Connection, spends: Sequence[tuple[int, int, int]]) -> None:
    """(spent_by, spent_slot, pos) for each spent output."""
    db.executemany("UPDATE utxos SET spent_by = ?, spent_slot = ? WHERE pos = ?", spends)


def exitable_outputs_of(db: Connection, owner: str, before_blknum: int) -> list[int]:
    """Positions of `owner`'s unspent outputs not exiting yet, of child blocks before
    `before_blknum` and of every deposit block, by position."""
    rows = db.execute("SELECT pos FROM utxos WHERE owner = ? AND spent_by IS NULL AND exiting = 0 "
                      "AND (blknum < ? OR blknum % ? != 0) ORDER BY pos",
                      (owner, before_blknum, wire.CHILD_BLOCK_INTERVAL)).fetchall()
    return [int(row["pos"]) for row in rows]


def unspent_transfer_ids_of(db: Connection, owner: str) -> list[int]:
    """Ids of the transfers that created an unspent output of `owner`."""
    rows = db.execute(
        "SELECT DISTINCT u.pos - u.pos % 10000 AS tx_id FROM utxos u JOIN txs t ON t.id = u.pos - u.pos % 10000 "
        "WHERE u.owner = ? AND u.spent_by IS NULL AND t.kind = 'transfer'", (owner,)).fetchall()
    return [int(row["tx_id"]) for row in rows]


def set_deposit_eth_block(db: Connection, pos: int, eth_block: int) -> None:
    db.execute("UPDATE utxos SET eth_block = ? WHERE pos = ?", (eth_block, pos))


def set_exiting(db: Connection, pos: int, exiting: bool) -> None:
    db.execute("UPDATE utxos SET exiting = ? WHERE pos = ?", (int(exiting), pos))


def remove_tx_rows(db: Connection, ident: int) -> None:
    """A transaction, its outputs and confirm signatures; the outputs it spent become unspent."""
    db.execute("UPDATE utxos SET spent_by = NULL, spent_slot = NULL WHERE spent_by = ?", (ident,))
    db.execute("DELETE FROM utxos WHERE pos IN (?, ?)", (ident, ident + 1))
    db.execute("DELETE FROM confirm_sigs WHERE tx_id = ?", (ident,))
    db.execute("DELETE FROM txs WHERE id = ?", (ident,))


# -- exits ------------------------------------------------------------------------------------

def put_exit(db: Connection, exit_id: int, exitor: str, amount: int, eth_block: int) -> None:
    db.execute("INSERT OR REPLACE INTO exits (exit_id, exitor, amount, status, eth_block) VALUES (?, ?, ?, 'started', ?)",
               (exit_id, exitor, str(amount), eth_block))


def close_exit(db: Connection, exit_id: int, status: str, eth_block: int) -> None:
    db.execute("UPDATE exits SET status = ?, closed_eth_block = ? WHERE exit_id = ?", (status, eth_block, exit_id))


def rewind_chain_events(db: Connection, first_removed: int) -> list[int]:
    """Undo the exits and finality that root-chain blocks >= first_removed recorded; returns
    the deposit blocks they held (the caller removes those and what spent them)."""
    db.execute("UPDATE exits SET status = 'started', closed_eth_block = NULL WHERE closed_eth_block >= ?",
               (first_removed,))
    for row in db.execute("SELECT exit_id FROM exits WHERE eth_block >= ?", (first_removed,)).fetchall():
        set_exiting(db, int(row["exit_id"]), False)
    db.execute("DELETE FROM exits WHERE eth_block >= ?", (first_removed,))
    db.execute("UPDATE blocks SET status = 'submitted', eth_block = NULL WHERE kind = 'child' AND status = 'final' "
               "AND eth_block >= ?", (first_removed,))
    rows = db.execute("SELECT blknum FROM blocks WHERE kind = 'deposit' AND eth_block >= ?", (first_removed,)).fetchall()
    return [int(row["blknum"]) for row in rows]


# -- the operator's submitBlock attempts ------------------------------------------------------------

# The submitBlock attempts of each block and the outcome of the latest one, kept from the
# outbox's final outcomes (bot.on_settled) and its rewinds, so the retry logic never scans
# the outbox's keys.
SUBMISSIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS block_submissions (
    blknum INTEGER PRIMARY KEY,
    attempts INTEGER NOT NULL,          -- submitBlock keys enqueued: submitBlock:<n>, then submitBlock:<n>:retry<k>
    status TEXT NOT NULL,               -- of the latest attempt: pending (in flight), mined, reverted, failed
    error TEXT,
    block_number INTEGER                -- root-chain block holding the latest attempt's outcome
)
"""


def create_submissions_table(db: Connection) -> None:
    db.execute(SUBMISSIONS_SCHEMA)


def outbox_submit_rows(db: Connection) -> list[Row]:
    """(key, status, error, block_number) of every submitBlock row of the outbox."""
    return db.execute("SELECT key, status, error, block_number FROM outbox "
                      "WHERE key LIKE 'submitBlock:%'").fetchall()


def insert_submission(db: Connection, blknum: int, attempts: int, status: str, error: str | None,
                      block_number: int | None) -> None:
    db.execute("INSERT INTO block_submissions (blknum, attempts, status, error, block_number) VALUES (?, ?, ?, ?, ?)",
               (blknum, attempts, status, error, block_number))


def record_submission_attempt(db: Connection, blknum: int, attempts: int) -> None:
    """A submitBlock attempt enqueued (the `attempts`-th): in flight, replacing the previous one's outcome."""
    db.execute("INSERT OR REPLACE INTO block_submissions (blknum, attempts, status, error, block_number) "
               "VALUES (?, ?, 'pending', NULL, NULL)", (blknum, attempts))


def settle_submission(db: Connection, blknum: int, attempts: int, status: str, error: str | None,
                      block_number: int | None) -> None:
    """The final outcome of attempt number `attempts` (ignored if a later attempt is recorded)."""
    db.execute("UPDATE block_submissions SET status = ?, error = ?, block_number = ? WHERE blknum = ? AND attempts = ?",
               (status, error, block_number, blknum, attempts))


def rewind_submissions(db: Connection, first_removed: int) -> None:
    """Outcomes mined in root-chain blocks >= first_removed are in flight again."""
    db.execute("UPDATE block_submissions SET status = 'pending', error = NULL, block_number = NULL "
               "WHERE status IN ('mined', 'reverted') AND block_number >= ?", (first_removed,))


def latest_submission(db: Connection, blknum: int) -> Row | None:
    """(attempts, status, error) of a block's latest submitBlock attempt."""
    return db.execute("SELECT attempts, status, error FROM block_submissions WHERE blknum = ?",
                      (blknum,)).fetchone()


def later_pending_submissions(db: Connection, blknum: int) -> list[int]:
    """Blocks after `blknum` whose latest submitBlock is in flight, by number."""
    rows = db.execute("SELECT blknum FROM block_submissions WHERE blknum > ? AND status = 'pending' "
                      "ORDER BY blknum", (blknum,)).fetchall()
    return [int(row["blknum"]) for row in rows]


def outbox_in_flight_count(db: Connection) -> int:
    """Outbox rows (any key) pending or sent."""
    row = db.execute("SELECT COUNT(*) AS n FROM outbox WHERE status IN ('pending', 'sent')").fetchone()
    return int(row["n"])


# -- metric queries (ServiceMetrics.sql_gauge) ----------------------------------------------------

_LAST_SEALED = "(SELECT MAX(blknum) FROM blocks WHERE kind = 'child' AND status != 'open')"
PENDING_TX_COUNT = "SELECT COUNT(*) FROM txs JOIN blocks USING (blknum) WHERE blocks.status = 'open'"
LAST_BLOCK_TRANSFER_COUNT = f"SELECT COUNT(*) FROM txs WHERE blknum = {_LAST_SEALED} AND kind = 'transfer'"
LAST_BLOCK_FILL_RATIO = (f"SELECT COUNT(*) * 1.0 / {wire.MAX_LEAVES} FROM txs WHERE blknum = {_LAST_SEALED} "
                         "AND kind = 'transfer'")
CHILD_BLOCKS_BY_STATUS = "SELECT status, COUNT(*) FROM blocks WHERE kind = 'child' GROUP BY status"
NEWEST_CHILD_BLOCK_BY_STATUS = "SELECT status, MAX(blknum) FROM blocks WHERE kind = 'child' GROUP BY status"
