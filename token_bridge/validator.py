"""The validator: follows both bridges, checks each lock against its block's
receipts trie, signs it for the other side and serves its signatures.

Signatures are shared by pull: each validator serves what it signed at
`GET /signatures?destination=<chain id>&after=<seq>` on loopback. The exchange is
authenticated by the signatures themselves: the relayer recovers every signer
from the EIP-712 digest it computes and accepts only the destination bridge's
validators, so a forged or altered entry is worthless.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from eth_account.signers.local import LocalAccount
from eth_utils import event_abi_to_log_topic, to_checksum_address

from dccn_common.bot import Bot, BotChain
from dccn_common.follower import ChainEvent, ChainFollower
from dccn_common.store import Connection, open_db
from token_bridge.chains import ANKR, ETHEREUM, Side, other
from token_bridge.jsonhttp import SQLITE_MAX_INT, JsonServer, int_param
from token_bridge.receipts import ProofError, ProvenBlocks, VerifiedLog
from token_bridge.transfer import Transfer, sign_transfer

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS signatures (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    transfer_key TEXT NOT NULL,
    source TEXT NOT NULL,
    destination_chain_id INTEGER NOT NULL,
    destination_bridge TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    transfer TEXT NOT NULL,
    v INTEGER NOT NULL,
    r TEXT NOT NULL,
    s TEXT NOT NULL,
    UNIQUE (destination_chain_id, transfer_key)
);
CREATE TABLE IF NOT EXISTS rejected_logs (
    source TEXT NOT NULL,
    block_hash TEXT NOT NULL,
    log_index INTEGER NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (source, block_hash, log_index)
)
"""
PAGE_SIZE = 500
SERVICE_NAME = "token-bridge-validator"
# Health dependency names of the two nodes (the Ethereum node has always been "rpc").
RPC_DEPENDENCY = {ETHEREUM: "rpc", ANKR: "rpc ankr"}


class Validator:
    """Signs every confirmed, proven `TransferInitiated` of either side for the other side.

    Its followers are the bot's (dccn_common.bot): one chain per source side, each with the
    validator's account, so on a shared PostgreSQL store two instances of one validator take
    turns by lease (it signs, it sends no transaction). Without `bot` the validator has a bot
    of its own that `poll()` steps (in-process networks, tests); with one, `bot.run()` does.
    """

    def __init__(self, sides: dict[str, Side], db_path: Path | str, account: LocalAccount, *,
                 bot: Bot | None = None, db: Connection | None = None) -> None:
        self.sides = sides
        self.db_path = db_path
        self.db = db if db is not None else open_db(db_path, SCHEMA)
        self.account = account
        self.proven = ProvenBlocks()  # one receipts-trie check per block, whatever its number of logs
        self._own_bot = bot is None
        self.bot = bot if bot is not None else Bot(SERVICE_NAME, db=self.db)
        self.chains: dict[str, BotChain] = {}
        for name, side in sides.items():
            chain = self.bot.chain(side.binding or side.w3, account=account, db=self.db, label=name,
                                   follower_name=f"validator-{name}", confirmations=side.confirmations,
                                   start_block=side.deploy_block, send=False,
                                   rpc_dependency=RPC_DEPENDENCY[name], balance_dependency=None)
            self.bot.on(side.bridge.events.TransferInitiated, chain=chain)(partial(self._on_transfer, name))
            self.bot.on_rewind(chain=chain)(partial(self._on_rewind, name))
            self.chains[name] = chain

    @property
    def followers(self) -> list[ChainFollower]:
        return [chain.follower for chain in self.chains.values()]

    def poll(self) -> None:
        """One pass of both followers (a validator without a bot of the caller's)."""
        if not self.bot.lead_once():
            return  # another instance of this validator holds the lease
        for follower in self.followers:
            follower.poll_once()

    def status(self) -> dict[str, Any]:
        row = self.db.execute("SELECT COUNT(*) AS n, MAX(seq) AS last FROM signatures").fetchone()
        rejected = self.db.execute("SELECT COUNT(*) AS n FROM rejected_logs").fetchone()
        return {"validator": self.account.address, "signed": row["n"], "last_seq": row["last"] or 0,
                "rejected_logs": rejected["n"],
                "cursors": {f.name: f.status.cursor for f in self.followers}}

    # -- handlers ----------------------------------------------------------------------

    def _on_transfer(self, source_name: str, event: ChainEvent, db: Connection) -> None:
        source, destination = self.sides[source_name], self.sides[other(source_name)]
        try:
            proven = self.proven.verified_log(source.w3, source.header_w3, event.block_hash, event.transaction_hash,
                                  event.log_index)
            transfer = transfer_from_log(source, event, proven)
        except ProofError as err:
            # Never signed; kept so an operator sees what a node tried to pass off.
            db.execute("INSERT OR IGNORE INTO rejected_logs VALUES (?, ?, ?, ?)",
                       (source_name, event.block_hash, event.log_index, str(err)))
            log.error("log rejected by the receipts check", extra={"source": source_name, "block": event.block_number,
                                                                   "tx_hash": event.transaction_hash, "reason": str(err)})
            return
        signature = sign_transfer(self.account, transfer, destination.destination)
        db.execute(
            "INSERT OR IGNORE INTO signatures (transfer_key, source, destination_chain_id, destination_bridge, "
            "block_number, transfer, v, r, s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (transfer.key(), source_name, destination.chain_id, destination.bridge.address, event.block_number,
             json.dumps(transfer.to_json()), signature.v, hex(signature.r), hex(signature.s)),
        )
        log.info("transfer signed", extra={"source": source_name, "key": transfer.key(), "amount": str(transfer.amount),
                                           "recipient": transfer.recipient})

    def _on_rewind(self, source_name: str, first_removed: int, db: Connection) -> None:
        removed = db.execute("DELETE FROM signatures WHERE source = ? AND block_number >= ?",
                             (source_name, first_removed)).rowcount
        log.warning("source reorg: signatures withdrawn", extra={"source": source_name, "from_block": first_removed,
                                                                  "withdrawn": removed})


def _topic(source: Side) -> bytes:
    # Computed once per side: building the event object and hashing its ABI per log is costly.
    cached = _TOPICS.get(source.bridge.address)
    if cached is None:
        cached = _TOPICS[source.bridge.address] = event_abi_to_log_topic(
            source.bridge.events.TransferInitiated().abi)  # type: ignore[arg-type]
    return cached


_TOPICS: dict[str, bytes] = {}


def transfer_from_log(source: Side, event: ChainEvent, proven: VerifiedLog) -> Transfer:
    """The transfer as the proven log states it; the node's decoded event must agree."""
    if proven.address != source.bridge.address or len(proven.topics) != 3 or proven.topics[0] != _topic(source):
        raise ProofError("the proven log is not a TransferInitiated of the bridge")
    recipient = to_checksum_address(proven.topics[2][-20:])
    amount = int.from_bytes(proven.data, "big")
    if recipient != to_checksum_address(event.args["recipient"]) or amount != int(event.args["amount"]):
        raise ProofError("the node's log differs from the proven receipt")
    return Transfer(source.chain_id, source.bridge.address, event.transaction_hash, event.log_index, recipient, amount)


# -- signature exchange ------------------------------------------------------------------


def read_signatures(db: Path | str | Connection, destination_chain_id: int, after: int,
                    limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
    """Signatures for `destination_chain_id` after `after`, oldest first; `db` a path or an open connection."""
    # A path gets its own connection: the caller's thread sees committed rows only (WAL).
    conn = open_db(db) if isinstance(db, Path | str) else db
    try:
        rows = conn.execute(
            "SELECT * FROM signatures WHERE destination_chain_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (destination_chain_id, after, limit),
        ).fetchall()
    finally:
        if conn is not db:
            conn.close()
    return [{"seq": row["seq"], "destination_bridge": row["destination_bridge"], "transfer": json.loads(row["transfer"]),
             "v": row["v"], "r": row["r"], "s": row["s"]} for row in rows]


class SignatureServer(JsonServer):
    """GET /signatures?destination=<chain id>&after=<seq> -> {"validator": ..., "signatures": [...]}."""

    def __init__(self, validator: Validator, host: str = "127.0.0.1", port: int = 0, *,
                 sock: socket.socket | None = None) -> None:
        address = validator.account.address
        # One reading connection for the server's life, not one per request: opening the file anew
        # for every request is slow, and closing a descriptor of a file drops the POSIX locks the
        # validator's own connection holds on it (SQLite then fails with "disk I/O error").
        reader, reading = open_db(validator.db_path), threading.Lock()

        def app(method: str, path: str, query_string: str, _body: bytes) -> tuple[int, Any]:
            if method != "GET" or path != "/signatures":
                return 404, {"error": "not found; try GET /signatures?destination=<chain id>&after=<seq>"}
            query = parse_qs(query_string)
            # Range-checked here: SQLite takes no integer beyond 64 bits (it would be a 500).
            destination = int_param(query, "destination", low=1, high=SQLITE_MAX_INT)
            after = int_param(query, "after", low=0, high=SQLITE_MAX_INT, default=0)
            with reading:
                signatures = read_signatures(reader, destination, after)
            return 200, {"validator": address, "signatures": signatures}

        super().__init__(app, host, port, sock=sock)
        self._reader = reader

    def stop(self) -> None:
        super().stop()
        self._reader.close()
