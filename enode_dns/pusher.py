"""Push a signed self-update when the node's observed address differs from the registry.

One row per sequence number in `endpoint_updates`, written in the same database
transaction as the outbox entry that carries it (dccn_common.sender), so a crash
at any moment leaves either both or neither: after a restart the pending
transaction is driven to the end, never signed twice with a new sequence.

The write goes through `write` (the daemon passes its bot's fenced transaction): when
several instances share a PostgreSQL database, only the one holding the lease commits it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount

from dccn_common.sender import TxSender
from dccn_common.store import Connection, apply_schema, transaction
from enode_dns.enode import EnodeId, sign_endpoint_update
from enode_dns.registry import read_node
from enode_dns.sources import AddressSource, AddressSourceError

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS endpoint_updates (
    sequence INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    outbox_key TEXT NOT NULL,
    created_at REAL NOT NULL
)
"""

IN_FLIGHT = ("pending", "sent")


@dataclass
class PushStatus:
    observed: str | None = None
    registered: str | None = None
    state: str = "starting"
    last_sequence: int | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class EndpointPusher:
    def __init__(
        self, *, db: Connection, sender: TxSender, ingress: Any, rules_abi: list[dict[str, Any]],
        node_key: LocalAccount, source: AddressSource | None, port: int,
        write: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.db = db
        self.write = write or (lambda: transaction(db))
        self.sender = sender
        self.ingress = ingress
        self.rules_abi = rules_abi
        self.node_key = node_key
        self.enode = EnodeId.of_account(node_key)
        self.source = source
        self.port = port
        self.status = PushStatus()
        apply_schema(db, "enode_endpoint_updates", 1, SCHEMA)

    def tick(self) -> None:
        """Observe the address; enqueue an update if it differs and none is in flight."""
        if self.source is None:
            self.status.state = "no address source"
            return
        try:
            host = self.source.fetch()
        except AddressSourceError as err:
            self.status.state, self.status.error = "address source failed", str(err)
            log.warning("address source failed", extra={"error": str(err)})
            return
        self.status.observed, self.status.error = f"{host}:{self.port}", None
        self.push(host, self.port)

    def push(self, host: str, port: int) -> str | None:
        """Enqueue the update (host, port) unless the registry or an in-flight update has it; returns its outbox key."""
        node = read_node(self.ingress, self.enode.key)
        if not node.active:
            self.status.state = "not registered"
            return None
        self.status.registered = f"{node.host}:{node.port}"
        last = self.db.execute("SELECT * FROM endpoint_updates ORDER BY sequence DESC LIMIT 1").fetchone()
        if (node.host, node.port) == (host, port):
            self.status.state = "in sync"
            return None
        if last is not None and (last["host"], int(last["port"])) == (host, port):
            entry = self.sender.entry(last["outbox_key"])
            in_flight = entry is None or entry.status in IN_FLIGHT
            # Mined but the registry shows an older sequence: our RPC read lags; wait.
            lagging = entry is not None and entry.status == "mined" and node.sequence < int(last["sequence"])
            if in_flight or lagging:
                self.status.state = "update in flight"
                return str(last["outbox_key"])
        sequence = max(node.sequence, int(last["sequence"]) if last else 0) + 1
        rules = self.ingress.w3.eth.contract(address=self.ingress.functions.rules().call(), abi=self.rules_abi)
        signature = sign_endpoint_update(self.node_key, self.ingress.w3.eth.chain_id, rules.address, host, port, sequence)
        key = f"enode-endpoint-{self.enode.key.hex()[:16]}-{sequence}"
        with self.write():
            self.db.execute(
                "INSERT INTO endpoint_updates (sequence, host, port, outbox_key, created_at) VALUES (?, ?, ?, ?, ?)",
                (sequence, host, port, key, time.time()),
            )
            self.sender.enqueue_call(
                self.db, key, rules.functions.updateEndpoint(self.enode.key, host, port, sequence, signature)
            )
        self.status.state, self.status.last_sequence = "update enqueued", sequence
        log.info("endpoint update enqueued", extra={"host": host, "port": port, "sequence": sequence, "outbox_key": key})
        return key
