"""Send transactions durably: an outbox in SQLite, local nonces, retries, gas bumping.

A service enqueues a transaction in the same SQLite transaction as the state change
that calls for it (`enqueue(db, key, ...)`; `key` makes it idempotent). `process()`
then signs pending rows with the next nonce, stores the signed bytes *before*
broadcasting, and rebroadcasts or replaces them (same nonce, higher fees) until
mined. After a crash the stored bytes are sent again, never a second transaction,
so a service killed at any moment does nothing twice.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound

from dccn_common.store import transaction

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    key TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    to_address TEXT NOT NULL,
    data BLOB NOT NULL,
    value TEXT NOT NULL,
    gas INTEGER,
    nonce INTEGER,
    max_fee TEXT,
    priority_fee TEXT,
    raw BLOB,
    tx_hash TEXT,
    sent_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',
    block_number INTEGER,
    gas_used INTEGER,
    error TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_status ON outbox (sender, status);
CREATE TABLE IF NOT EXISTS outbox_nonce (
    sender TEXT PRIMARY KEY,
    next_nonce INTEGER NOT NULL
)
"""

# Statuses: pending (not signed) -> sent (signed, broadcast) -> mined | reverted | failed
FINAL_STATUSES = ("mined", "reverted", "failed")


@dataclass(frozen=True)
class OutboxEntry:
    key: str
    status: str
    tx_hash: str | None
    block_number: int | None
    gas_used: int | None
    error: str | None


class TxSender:
    def __init__(
        self,
        w3: Web3,
        db: sqlite3.Connection,
        account: LocalAccount,
        *,
        bump_after: float = 30.0,
        bump_percent: int = 15,
        max_attempts: int = 10,
        gas_multiplier: float = 1.25,
    ) -> None:
        self.w3 = w3
        self.db = db
        self.account = account
        self.bump_after = bump_after
        self.bump_percent = bump_percent
        self.max_attempts = max_attempts
        self.gas_multiplier = gas_multiplier
        self._chain_id: int | None = None
        self._resent_after_start = False
        with transaction(db):
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    @property
    def address(self) -> str:
        return str(self.account.address)

    # -- enqueue -----------------------------------------------------------------------

    def enqueue(
        self, db: sqlite3.Connection, key: str, to: str, data: bytes, *, value: int = 0, gas: int | None = None
    ) -> bool:
        """Record the intent to send; returns False if `key` was already enqueued."""
        cursor = db.execute(
            "INSERT OR IGNORE INTO outbox (key, sender, to_address, data, value, gas, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, self.address, Web3.to_checksum_address(to), bytes(data), str(value), gas, time.time()),
        )
        return cursor.rowcount == 1

    def enqueue_call(self, db: sqlite3.Connection, key: str, call: Any, *, value: int = 0, gas: int | None = None) -> bool:
        """Enqueue a bound web3 contract function call."""
        data = HexBytes(call._encode_transaction_data())
        return self.enqueue(db, key, call.address, data, value=value, gas=gas)

    def entry(self, key: str) -> OutboxEntry | None:
        row = self.db.execute("SELECT * FROM outbox WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return OutboxEntry(row["key"], row["status"], row["tx_hash"], row["block_number"], row["gas_used"], row["error"])

    def pending_count(self) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) AS n FROM outbox WHERE sender = ? AND status IN ('pending', 'sent')", (self.address,)
        ).fetchone()
        return int(row["n"])

    # -- the work ----------------------------------------------------------------------

    def process(self) -> int:
        """Advance every unfinished entry one step; returns how many reached a final state."""
        finished = self._check_sent()
        self._sign_and_send_pending()
        return finished

    def send_now(self, key: str, to: str, data: bytes, *, value: int = 0, gas: int | None = None,
                 timeout: float = 120.0) -> OutboxEntry:
        """Enqueue (idempotently) and drive until final. For CLIs and tests."""
        with transaction(self.db):
            self.enqueue(self.db, key, to, data, value=value, gas=gas)
        deadline = time.monotonic() + timeout
        while True:
            self.process()
            entry = self.entry(key)
            assert entry is not None
            if entry.status in FINAL_STATUSES:
                return entry
            if time.monotonic() > deadline:
                raise TimeoutError(f"transaction {key} not mined within {timeout}s")
            time.sleep(0.05)

    def _chain(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.w3.eth.chain_id
        return self._chain_id

    def _next_nonce(self) -> int:
        row = self.db.execute("SELECT next_nonce FROM outbox_nonce WHERE sender = ?", (self.address,)).fetchone()
        chain_nonce = self.w3.eth.get_transaction_count(self.account.address, "pending")
        return max(chain_nonce, int(row["next_nonce"]) if row else 0)

    def _fees(self, bump_from: tuple[int, int] | None = None) -> tuple[int, int]:
        latest = self.w3.eth.get_block("latest")
        base_fee = int(latest.get("baseFeePerGas", 0) or 0)
        try:
            priority = int(self.w3.eth.max_priority_fee)
        except Exception:
            priority = 10**9
        max_fee = 2 * base_fee + priority
        if bump_from:
            # A replacement must raise both fees by at least 10% to be accepted.
            factor = 100 + self.bump_percent
            priority = max(priority, bump_from[1] * factor // 100 + 1)
            max_fee = max(max_fee, bump_from[0] * factor // 100 + 1, priority)
        return max_fee, priority

    def _sign(self, row: sqlite3.Row, nonce: int, fees: tuple[int, int]) -> tuple[bytes, str, int]:
        tx: dict[str, Any] = {
            "from": self.account.address,
            "to": row["to_address"],
            "data": bytes(row["data"]),
            "value": int(row["value"]),
            "nonce": nonce,
            "chainId": self._chain(),
            "maxFeePerGas": fees[0],
            "maxPriorityFeePerGas": fees[1],
        }
        gas = row["gas"]
        if gas is None:
            gas = int(self.w3.eth.estimate_gas({k: v for k, v in tx.items() if k not in ("nonce",)}) * self.gas_multiplier)
        tx["gas"] = gas
        signed = self.account.sign_transaction(tx)
        return bytes(signed.raw_transaction), HexBytes(signed.hash).to_0x_hex(), gas

    def _sign_and_send_pending(self) -> None:
        rows = self.db.execute(
            "SELECT * FROM outbox WHERE sender = ? AND status = 'pending' ORDER BY created_at, rowid", (self.address,)
        ).fetchall()
        if not rows:
            return
        # One fee quote and one nonce read per pass; nonces then advance locally.
        fees = self._fees()
        nonce = self._next_nonce()
        for row in rows:
            try:
                raw, tx_hash, gas = self._sign(row, nonce, fees)
            except Exception as err:
                # Estimation reverts: the call would fail now. Record it; the service decides.
                self._fail(row["key"], f"not sent: {_reason(err)}")
                continue
            with transaction(self.db):
                self.db.execute(
                    "UPDATE outbox SET nonce = ?, gas = ?, max_fee = ?, priority_fee = ?, raw = ?, tx_hash = ?, "
                    "sent_at = ?, attempts = attempts + 1, status = 'sent' WHERE key = ?",
                    (nonce, gas, str(fees[0]), str(fees[1]), raw, tx_hash, time.time(), row["key"]),
                )
                self.db.execute(
                    "INSERT INTO outbox_nonce (sender, next_nonce) VALUES (?, ?) "
                    "ON CONFLICT(sender) DO UPDATE SET next_nonce = excluded.next_nonce",
                    (self.address, nonce + 1),
                )
            self._broadcast(raw)
            nonce += 1

    def _broadcast(self, raw: bytes) -> None:
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Exception as err:
            message = str(err).lower()
            # Already known or already mined: both mean the stored bytes are out there.
            if "already known" in message or "nonce too low" in message or "already imported" in message:
                return
            log.warning("broadcast failed; will retry", extra={"error": _reason(err)})

    def _check_sent(self) -> int:
        rows = self.db.execute(
            "SELECT * FROM outbox WHERE sender = ? AND status = 'sent' ORDER BY nonce", (self.address,)
        ).fetchall()
        finished = 0
        mined_nonce = self.w3.eth.get_transaction_count(self.account.address, "latest") if rows else 0
        first_pass, self._resent_after_start = not self._resent_after_start, True
        for row in rows:
            if row["nonce"] >= mined_nonce and time.time() - float(row["sent_at"]) <= self.bump_after:
                if first_pass:
                    # After a restart the stored bytes may never have reached the node.
                    self._broadcast(bytes(row["raw"]))
                continue  # not mined yet and not due for a bump: nothing to do this pass
            receipt = self._receipt(row["tx_hash"])
            if receipt is not None:
                status = "mined" if receipt["status"] == 1 else "reverted"
                with transaction(self.db):
                    self.db.execute(
                        "UPDATE outbox SET status = ?, block_number = ?, gas_used = ? WHERE key = ?",
                        (status, int(receipt["blockNumber"]), int(receipt["gasUsed"]), row["key"]),
                    )
                finished += 1
                continue
            # The nonce was used, but not by the hash we hold last: an earlier
            # replacement of ours was mined. Find it by its stored hash history.
            if mined_nonce > row["nonce"] and self._resolve_replaced(row):
                finished += 1
                continue
            if mined_nonce > row["nonce"]:
                # Our nonce went to a transaction this outbox never signed (the key is shared?).
                self._fail(row["key"], f"nonce {row['nonce']} was used by another transaction")
                continue
            self._bump(row)
        return finished

    def _resolve_replaced(self, row: sqlite3.Row) -> bool:
        hashes = [h for h in (row["error"] or "").split(",") if h.startswith("0x")]
        for tx_hash in hashes:
            receipt = self._receipt(tx_hash)
            if receipt is not None:
                status = "mined" if receipt["status"] == 1 else "reverted"
                with transaction(self.db):
                    self.db.execute(
                        "UPDATE outbox SET status = ?, tx_hash = ?, block_number = ?, gas_used = ?, error = NULL "
                        "WHERE key = ?",
                        (status, tx_hash, int(receipt["blockNumber"]), int(receipt["gasUsed"]), row["key"]),
                    )
                return True
        return False

    def _bump(self, row: sqlite3.Row) -> None:
        if row["attempts"] >= self.max_attempts:
            self._fail(row["key"], f"not mined after {row['attempts']} attempts")
            return
        fees = self._fees(bump_from=(int(row["max_fee"]), int(row["priority_fee"])))
        raw, tx_hash, gas = self._sign(row, int(row["nonce"]), fees)
        # Remember earlier hashes: any of them may still be the one that gets mined.
        history = ",".join(h for h in [row["error"] or "", row["tx_hash"]] if h)
        with transaction(self.db):
            self.db.execute(
                "UPDATE outbox SET max_fee = ?, priority_fee = ?, raw = ?, tx_hash = ?, gas = ?, sent_at = ?, "
                "attempts = attempts + 1, error = ? WHERE key = ?",
                (str(fees[0]), str(fees[1]), raw, tx_hash, gas, time.time(), history, row["key"]),
            )
        log.info("gas bumped", extra={"key": row["key"], "tx_hash": tx_hash, "max_fee": fees[0]})
        self._broadcast(raw)

    def _receipt(self, tx_hash: str) -> Any:
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None

    def _fail(self, key: str, error: str) -> None:
        with transaction(self.db):
            self.db.execute("UPDATE outbox SET status = 'failed', error = ? WHERE key = ?", (error, key))
        log.warning("transaction failed", extra={"key": key, "error": error})


def _reason(err: Exception) -> str:
    text = str(err)
    return text if len(text) < 300 else text[:300] + "..."
