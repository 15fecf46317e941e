"""A local mirror of the node list, kept by the bot's follower (dccn_common.bot).

Each `EnodeIngress` event updates `enode_nodes` in the same database transaction
in which the follower marks it consumed, and saves the row it replaced in
`enode_undo`; a reorg puts those rows back (newest first), so the mirror always
equals the chain at the follower's cursor. The handlers are module-level functions
that `register_handlers` declares on a Bot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hexbytes import HexBytes

from dccn_common.bot import Bot, BotChain
from dccn_common.follower import ChainEvent
from dccn_common.store import Connection, apply_schema
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


def _row(db: Connection, key: str) -> dict[str, Any] | None:
    row = db.execute("SELECT * FROM enode_nodes WHERE enode_key = ?", (key,)).fetchone()
    return {c: row[c] for c in _COLUMNS} if row else None


def _save_undo(db: Connection, event: ChainEvent, key: str) -> None:
    previous = _row(db, key)
    db.execute(
        "INSERT INTO enode_undo (block_number, enode_key, previous) VALUES (?, ?, ?)",
        (event.block_number, key, json.dumps(previous) if previous else None),
    )


def _put(db: Connection, values: dict[str, Any]) -> None:
    db.execute(
        f"INSERT OR REPLACE INTO enode_nodes ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})",
        tuple(values[c] for c in _COLUMNS),
    )


def node_added(event: ChainEvent, db: Connection) -> None:
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


def node_removed(event: ChainEvent, db: Connection) -> None:
    key = _key(event)
    _save_undo(db, event, key)
    db.execute("DELETE FROM enode_nodes WHERE enode_key = ?", (key,))


def endpoint_updated(event: ChainEvent, db: Connection) -> None:
    key = _key(event)
    _save_undo(db, event, key)
    db.execute(
        "UPDATE enode_nodes SET host = ?, port = ?, sequence = ? WHERE enode_key = ?",
        (event.args["new_host"], event.args["new_port"], event.args["sequence"], key),
    )


def rewind(first_removed_block: int, db: Connection) -> None:
    undone = db.execute(
        "SELECT * FROM enode_undo WHERE block_number >= ? ORDER BY id DESC", (first_removed_block,)
    ).fetchall()
    for entry in undone:
        db.execute("DELETE FROM enode_nodes WHERE enode_key = ?", (entry["enode_key"],))
        if entry["previous"]:
            _put(db, json.loads(entry["previous"]))
    db.execute("DELETE FROM enode_undo WHERE block_number >= ?", (first_removed_block,))


def register_handlers(bot: Bot, ingress: Any, *, chain: BotChain | None = None) -> None:
    """Declare the mirror's handlers on `bot` for the `ingress` contract (on `chain`, or the bot's one chain)."""
    apply_schema(chain.db if chain is not None else bot.db, "enode_registry", 1, SCHEMA)
    events = ingress.events
    bot.on(events.NodeAdded, chain=chain, label="EnodeIngress")(node_added)
    bot.on(events.NodeRemoved, chain=chain, label="EnodeIngress")(node_removed)
    bot.on(events.EndpointUpdated, chain=chain, label="EnodeIngress")(endpoint_updated)
    bot.on_rewind(chain=chain)(rewind)


def mirrored_nodes(db: Connection) -> list[NodeRecord]:
    rows = db.execute("SELECT * FROM enode_nodes").fetchall()
    return [
        NodeRecord(r["enode_hex"], r["host"], int(r["port"]), int(r["node_type"]), r["organisation"], bool(r["id_only"]))
        for r in rows
    ]
