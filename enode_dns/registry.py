"""A local mirror of the node list, kept by the shared ChainFollower.

Each `EnodeIngress` event updates `enode_nodes` in the same SQLite transaction
in which the follower marks it consumed, and saves the row it replaced in
`enode_undo`; a reorg puts those rows back (newest first), so the mirror always
equals the chain at the follower's cursor.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from hexbytes import HexBytes

from dccn_common.follower import ChainEvent, ChainFollower
from dccn_common.store import transaction
from enode_dns.besu_files import NodeRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS enode_nodes (
    enode_key TEXT PRIMARY KEY,
    enode_hex TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    node_type INTEGER NOT NULL,
    organisation TEXT NOT NULL,
    id_only INTEGER NOT NULL,
    sequence INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS enode_undo (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    block_number INTEGER NOT NULL,
    enode_key TEXT NOT NULL,
    previous TEXT
)
"""

_COLUMNS = ("enode_key", "enode_hex", "host", "port", "node_type", "organisation", "id_only", "sequence")


@dataclass(frozen=True)
class OnChainNode(NodeRecord):
    """`EnodeIngress.node(key)` decoded."""

    sequence: int = 0
    active: bool = False


def read_node(ingress: Any, enode_key: bytes) -> OnChainNode:
    (high, low, host, port, node_type, organisation, id_only, sequence, active, _kind, _ip) = (
        ingress.functions.node(enode_key).call()
    )
    return OnChainNode(bytes(high + low).hex(), host, port, node_type, organisation, id_only,
                       sequence=sequence, active=active)


def _key(event: ChainEvent) -> str:
    return HexBytes(event.args["enode_key"]).to_0x_hex()


def _row(db: sqlite3.Connection, key: str) -> dict[str, Any] | None:
    row = db.execute("SELECT * FROM enode_nodes WHERE enode_key = ?", (key,)).fetchone()
    return {c: row[c] for c in _COLUMNS} if row else None


def _save_undo(db: sqlite3.Connection, event: ChainEvent, key: str) -> None:
    previous = _row(db, key)
    db.execute(
        "INSERT INTO enode_undo (block_number, enode_key, previous) VALUES (?, ?, ?)",
        (event.block_number, key, json.dumps(previous) if previous else None),
    )


def _put(db: sqlite3.Connection, values: dict[str, Any]) -> None:
    db.execute(
        f"INSERT OR REPLACE INTO enode_nodes ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})",
        tuple(values[c] for c in _COLUMNS),
    )


def register_handlers(follower: ChainFollower, ingress: Any) -> None:
    """Declare the mirror's handlers on `follower` for the `ingress` contract."""
    with transaction(follower.db):
        for statement in SCHEMA.split(";"):
            follower.db.execute(statement)

    @follower.on(ingress, "NodeAdded", label="EnodeIngress")
    def node_added(event: ChainEvent, db: sqlite3.Connection) -> None:
        key = _key(event)
        _save_undo(db, event, key)
        args = event.args
        _put(db, {
            "enode_key": key,
            "enode_hex": bytes(args["enode_high"] + args["enode_low"]).hex(),
            "host": args["host"],
            "port": args["port"],
            "node_type": args["node_type"],
            "organisation": args["organisation"],
            "id_only": int(args["id_only"]),
            "sequence": 0,
        })

    @follower.on(ingress, "NodeRemoved", label="EnodeIngress")
    def node_removed(event: ChainEvent, db: sqlite3.Connection) -> None:
        key = _key(event)
        _save_undo(db, event, key)
        db.execute("DELETE FROM enode_nodes WHERE enode_key = ?", (key,))

    @follower.on(ingress, "EndpointUpdated", label="EnodeIngress")
    def endpoint_updated(event: ChainEvent, db: sqlite3.Connection) -> None:
        key = _key(event)
        _save_undo(db, event, key)
        db.execute(
            "UPDATE enode_nodes SET host = ?, port = ?, sequence = ? WHERE enode_key = ?",
            (event.args["new_host"], event.args["new_port"], event.args["sequence"], key),
        )

    @follower.on_rewind
    def rewind(first_removed_block: int, db: sqlite3.Connection) -> None:
        undone = db.execute(
            "SELECT * FROM enode_undo WHERE block_number >= ? ORDER BY id DESC", (first_removed_block,)
        ).fetchall()
        for entry in undone:
            db.execute("DELETE FROM enode_nodes WHERE enode_key = ?", (entry["enode_key"],))
            if entry["previous"]:
                _put(db, json.loads(entry["previous"]))
        db.execute("DELETE FROM enode_undo WHERE block_number >= ?", (first_removed_block,))


def mirrored_nodes(db: sqlite3.Connection) -> list[NodeRecord]:
    rows = db.execute("SELECT * FROM enode_nodes").fetchall()
    return [
        NodeRecord(r["enode_hex"], r["host"], int(r["port"]), int(r["node_type"]), r["organisation"], bool(r["id_only"]))
        for r in rows
    ]
