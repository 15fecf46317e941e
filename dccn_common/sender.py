"""Send transactions durably: an outbox in the store, local nonces, retries, gas bumping.

The outbox lives in the service's database (SQLite or PostgreSQL, see dccn_common.store).
A service enqueues a transaction in the same database transaction as the state change
that calls for it (`enqueue(db, key, ...)`; `key` makes it idempotent). `process()`
then signs pending rows with the next nonce, stores the signed bytes *before*
broadcasting, and rebroadcasts or replaces them (same nonce, higher fees) until
mined. After a crash the stored bytes are sent again, never a second transaction,
so a service killed at any moment does nothing twice.

A pass talks to the node in JSON-RPC batches (RPC_BATCH_SIZE requests each): one for the
receipts of every row it looks at, one for the signed transactions it (re)broadcasts, sent
only after their bytes are committed and the lease is checked; each item's error is handled
as a single call's would be. A row whose gas must be estimated waits for the rows signed
before it to be sent, so its estimate sees them as it did when every row went out alone.

Every signed version of a row (its first signature and each fee bump) is kept in
`outbox_attempts` with its bytes, so whichever of them is mined is recognised.

"mined" is final only as deep as `reorg_depth`: each pass re-checks rows mined in
the last `reorg_depth` blocks against the block hash stored with them, and a
follower on the same chain and database tells the sender of its rewinds
(`watch_rewinds`). A row whose transaction a reorg removed goes back to 'sent' and
keeps its nonce: if the node still holds the transaction it waits, otherwise it
rebroadcasts the stored bytes (same nonce, same hash, so never a second effect).
Nonces come from the chain and the rows in flight, never from a counter that
could run past a removed transaction, so no gap is ever signed over.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound
from web3.types import TxParams

from dccn_common.store import Connection, apply_schema, require_schema, table_columns, transaction

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
    created_at REAL NOT NULL,
    block_hash TEXT
);
CREATE INDEX IF NOT EXISTS outbox_by_status ON outbox (sender, status);
CREATE TABLE IF NOT EXISTS outbox_nonce (
    sender TEXT PRIMARY KEY,
    next_nonce INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox_attempts (
    key TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    raw BLOB,
    max_fee TEXT,
    priority_fee TEXT,
    sent_at REAL,
    PRIMARY KEY (key, tx_hash)
)
"""
# outbox_nonce is no longer read (nonces come from the chain and the rows in flight);
# it stays so that databases of earlier versions keep their shape.

DEFAULT_REORG_DEPTH = 64
# Key prefix of the zero-value self-transfers that close a nonce gap no stored bytes can fill.
GAP_FILL_PREFIX = "nonce-gap-fill:"

# JSON-RPC batches (receipts, raw transactions) hold at most this many requests each.
RPC_BATCH_SIZE = 100

# Statuses: pending (not signed) -> sent (signed, broadcast) -> mined | reverted | failed.
# mined / reverted go back to sent when a reorg removes the transaction (see module doc).
FINAL_STATUSES = ("mined", "reverted", "failed")


LEASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS sender_leases (
    chain_id INTEGER NOT NULL,
    signer TEXT NOT NULL,
    holder TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (chain_id, signer)
)
"""
DEFAULT_LEASE_SECONDS = 10.0


class LeaseLost(RuntimeError):
    """Another instance took the lease over: this one must not write or send for the signer."""


class Lease:
    """Leadership of one (chain id, signing address) among instances sharing one database.

    The row's epoch is a fencing token: a takeover raises it, and every outbox write checks,
    in its own transaction, that the epoch is still this instance's, so a leader that was
    paused past its lease cannot commit (or broadcast) anything after a standby took over.
    Expiry only decides when a standby may take over; safety rests on the epoch, not on clocks.
    """

    def __init__(self, db: Connection, chain_id: int, signer: str, *, holder: str | None = None,
                 seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.db = db
        self.chain_id = chain_id
        self.signer = signer
        self.holder = holder or f"pid {os.getpid()} on {socket.gethostname()}"
        self.seconds = seconds
        self.epoch: int | None = None  # ours while not None
        apply_schema(db, "sender_lease", 1, LEASE_SCHEMA)

    @property
    def is_leader(self) -> bool:
        return self.epoch is not None

    def renew(self) -> bool:
        """Renew the lease, or take it over once expired; returns whether this instance leads."""
        now = time.time()
        with transaction(self.db):
            row = self.db.execute("SELECT holder, epoch, expires_at FROM sender_leases WHERE chain_id = ? "
                                  "AND signer = ?", (self.chain_id, self.signer)).fetchone()
            if row is None:
                self.db.execute("INSERT INTO sender_leases (chain_id, signer, holder, epoch, expires_at) "
                                "VALUES (?, ?, ?, 1, ?)", (self.chain_id, self.signer, self.holder, now + self.seconds))
                epoch = 1
            elif int(row["epoch"]) == self.epoch and row["holder"] == self.holder:
                self.db.execute("UPDATE sender_leases SET expires_at = ? WHERE chain_id = ? AND signer = ?",
                                (now + self.seconds, self.chain_id, self.signer))
                epoch = self.epoch
            elif float(row["expires_at"]) < now:
                epoch = int(row["epoch"]) + 1
                self.db.execute("UPDATE sender_leases SET holder = ?, epoch = ?, expires_at = ? WHERE chain_id = ? "
                                "AND signer = ?", (self.holder, epoch, now + self.seconds, self.chain_id, self.signer))
                log.warning("lease taken over", extra={"signer": self.signer, "epoch": epoch, "from": row["holder"]})
            else:
                if self.epoch is not None:
                    log.warning("lease lost", extra={"signer": self.signer, "holder": row["holder"]})
                self.epoch = None
                return False
        self.epoch = epoch
        return True

    def check(self, db: Connection) -> None:
        """Inside the caller's transaction: the lease must still carry this instance's epoch."""
        row = db.execute("SELECT holder, epoch FROM sender_leases WHERE chain_id = ? AND signer = ?",
                         (self.chain_id, self.signer)).fetchone()
        if self.epoch is None or row is None or int(row["epoch"]) != self.epoch or row["holder"] != self.holder:
            self.epoch = None
            raise LeaseLost(f"the lease for {self.signer} on chain {self.chain_id} is held by "
                            f"{row['holder'] if row else 'nobody'}; this instance stands by")

    def release(self) -> None:
        """Give the lease up now (a clean stop), so a standby need not wait for it to expire."""
        if self.epoch is None:
            return
        with transaction(self.db):
            self.db.execute("UPDATE sender_leases SET expires_at = 0 WHERE chain_id = ? AND signer = ? AND epoch = ?",
                            (self.chain_id, self.signer, self.epoch))
        self.epoch = None


@dataclass(frozen=True)
class OutboxEntry:
    key: str
    status: str
    tx_hash: str | None
    block_number: int | None
    gas_used: int | None
    error: str | None
    block_hash: str | None = None


class TxSender:
    def __init__(
        self,
        w3: Web3,
        db: Connection,
        account: LocalAccount,
        *,
        bump_after: float = 30.0,
        bump_percent: int = 15,
        max_attempts: int = 10,
        gas_multiplier: float = 1.25,
        reorg_depth: int = DEFAULT_REORG_DEPTH,
        lease: Lease | None = None,
    ) -> None:
        self.w3 = w3
        # With a lease (instances sharing a PostgreSQL database), only its holder writes or sends.
        self.lease = lease
        self.db = db
        self.account = account
        self.bump_after = bump_after
        self.bump_percent = bump_percent
        self.max_attempts = max_attempts
        self.gas_multiplier = gas_multiplier
        self.reorg_depth = reorg_depth
        self._chain_id: int | None = None
        self._resent_after_start = False
        self._verified_head: tuple[int, str] | None = None
        self._rewind_sources: list[Web3] = []
        self._unverified: set[str] = set()  # rows recorded mined since the last verification
        self._queued: list[bytes] | None = None  # broadcasts held for one batched request (see _batching)
        apply_schema(db, "outbox", 1, _schema_v1)
        require_schema(db, "outbox", 1)

    @property
    def address(self) -> str:
        return str(self.account.address)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A transaction on the outbox, fenced: it commits only while this instance holds the lease."""
        with transaction(self.db):
            if self.lease is not None:
                self.lease.check(self.db)
            yield self.db

    @property
    def is_leader(self) -> bool:
        return self.lease is None or self.lease.is_leader

    # -- enqueue -----------------------------------------------------------------------

    def enqueue(
        self, db: Connection, key: str, to: str, data: bytes, *, value: int = 0, gas: int | None = None
    ) -> bool:
        """Record the intent to send; returns False if `key` was already enqueued."""
        if self.lease is not None:
            self.lease.check(db)
        cursor = db.execute(
            "INSERT OR IGNORE INTO outbox (key, sender, to_address, data, value, gas, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, self.address, Web3.to_checksum_address(to), bytes(data), str(value), gas, time.time()),
        )
        return cursor.rowcount == 1

    def enqueue_call(self, db: Connection, key: str, call: Any, *, value: int = 0, gas: int | None = None) -> bool:
        """Enqueue a bound web3 contract function call."""
        data = HexBytes(call._encode_transaction_data())
        return self.enqueue(db, key, call.address, data, value=value, gas=gas)

    def entry(self, key: str) -> OutboxEntry | None:
        row = self.db.execute("SELECT * FROM outbox WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return OutboxEntry(row["key"], row["status"], row["tx_hash"], row["block_number"], row["gas_used"],
                           row["error"], row["block_hash"])

    def tx_hashes(self, key: str) -> list[str]:
        """Every hash ever broadcast for `key`, oldest first."""
        rows = self.db.execute("SELECT tx_hash FROM outbox_attempts WHERE key = ? ORDER BY sent_at, rowid",
                               (key,)).fetchall()
        return [str(row["tx_hash"]) for row in rows]

    def pending_count(self) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) AS n FROM outbox WHERE sender = ? AND status IN ('pending', 'sent')", (self.address,)
        ).fetchone()
        return int(row["n"])

    # -- reorgs ------------------------------------------------------------------------

    def watch_rewinds(self, follower: Any) -> None:
        """Hear of `follower`'s rewinds before its other handlers, in the rewind's own transaction.

        The follower must read the chain this sender sends to, from the same database:
        its handlers then see the outbox rows of removed blocks back in 'sent'.
        """
        if follower.db is not self.db:
            raise ValueError("the follower and the sender must share one database connection")
        self._rewind_sources.append(follower.w3)  # its chain is checked at the first rewind (no RPC here)
        follower.on_rewind(self.on_rewind, first=True)

    def on_rewind(self, first_removed: int, db: Connection) -> None:
        """Rows mined in blocks >= `first_removed` go back to 'sent'; the next pass finds them again."""
        while self._rewind_sources:
            if int(self._rewind_sources[-1].eth.chain_id) != self._chain():
                raise ValueError("a follower of another chain than the sender's reported a rewind")
            self._rewind_sources.pop()
        rows = db.execute(
            "SELECT key FROM outbox WHERE sender = ? AND status IN ('mined', 'reverted') AND block_number >= ?",
            (self.address, first_removed),
        ).fetchall()
        for row in rows:
            self._reopen(db, row["key"])

    def _reopen(self, db: Connection, key: str) -> None:
        # sent_at = now: the node gets bump_after to re-mine it before any replacement.
        db.execute(
            "UPDATE outbox SET status = 'sent', block_number = NULL, block_hash = NULL, gas_used = NULL, "
            "sent_at = ? WHERE key = ?",
            (time.time(), key),
        )
        log.warning("transaction removed by a reorg; tracking it again", extra={"key": key})

    def _verify_recent(self) -> None:
        """Re-check rows mined within `reorg_depth` blocks of the head against their stored block hash."""
        newest = self.db.execute("SELECT MAX(block_number) AS n FROM outbox WHERE sender = ? "
                                 "AND status IN ('mined', 'reverted')", (self.address,)).fetchone()["n"]
        if newest is None or (self._verified_head and newest <= self._verified_head[0] - self.reorg_depth):
            return  # nothing mined recently enough to be removed: no RPC needed
        head = self.w3.eth.get_block("latest")
        head_id = (int(head["number"]), HexBytes(head["hash"]).to_0x_hex())
        if head_id == self._verified_head and not self._unverified:
            return  # same head as last pass and nothing newly mined: nothing can have moved
        # While the last verified head is still canonical, so is every block below it that was
        # verified then: only rows above it, or recorded since, need a look.
        last = self._verified_head
        known_good = last[0] if last and self._canonical_hash(last[0], head_id[0]) == last[1] else -1
        rows = self.db.execute(
            "SELECT key, tx_hash, block_number, block_hash FROM outbox WHERE sender = ? "
            "AND status IN ('mined', 'reverted') AND block_number > ? ORDER BY block_number",
            (self.address, max(head_id[0] - self.reorg_depth, known_good)),
        ).fetchall()
        recorded, self._unverified = self._unverified, set()
        rows += [row for row in self._rows(recorded)
                 if row["status"] in ("mined", "reverted") and int(row["block_number"]) <= known_good]
        canonical: dict[int, str | None] = {}
        for row in rows:
            number = int(row["block_number"])
            if number not in canonical:
                canonical[number] = self._canonical_hash(number, head_id[0])
            if row["block_hash"] is None or canonical[number] != row["block_hash"]:
                self._recheck_mined(row)
        if last is None or head_id[0] // self.reorg_depth != last[0] // self.reorg_depth:
            self._prune_attempts(head_id[0])  # once per reorg_depth blocks is plenty
        self._verified_head = head_id

    def _rows(self, keys: set[str]) -> list[Any]:
        return [row for key in sorted(keys)
                if (row := self.db.execute("SELECT key, tx_hash, block_number, block_hash, status FROM outbox "
                                           "WHERE key = ?", (key,)).fetchone()) is not None]

    def _canonical_hash(self, number: int, head: int) -> str | None:
        if number > head:
            return None  # the chain is now shorter than this block
        return HexBytes(self.w3.eth.get_block(number)["hash"]).to_0x_hex()

    def _recheck_mined(self, row: Any) -> None:
        receipt = self._receipt(row["tx_hash"])
        with self._write():
            current = self.db.execute("SELECT status FROM outbox WHERE key = ?", (row["key"],)).fetchone()
            if receipt is None or _receipt_status(receipt) != current["status"]:
                # Gone, or re-included with another outcome: consumers must see it settle anew.
                self._reopen(self.db, row["key"])
                return
            self.db.execute("UPDATE outbox SET block_number = ?, block_hash = ?, gas_used = ? WHERE key = ?",
                            (int(receipt["blockNumber"]), HexBytes(receipt["blockHash"]).to_0x_hex(),
                             int(receipt["gasUsed"]), row["key"]))
        self._unverified.add(row["key"])  # its new block is checked against the next head

    def _prune_attempts(self, head: int) -> None:
        # Below the reorg depth only the mined version can matter; its bytes stay in the outbox row.
        with self._write():
            self.db.execute(
                "DELETE FROM outbox_attempts WHERE key IN (SELECT key FROM outbox WHERE sender = ? "
                "AND status IN ('mined', 'reverted') AND block_number <= ?) "
                "AND tx_hash != (SELECT tx_hash FROM outbox WHERE outbox.key = outbox_attempts.key)",
                (self.address, head - self.reorg_depth),
            )

    # -- the work ----------------------------------------------------------------------

    def process(self) -> int:
        """Advance every unfinished entry one step; returns how many reached a final state.

        With a lease: renew it (or take it over once expired) first; a standby does nothing,
        and a leader that finds its lease taken over stops at the first fenced write.
        """
        if self.lease is not None and not self.lease.renew():
            return 0
        try:
            return self._process()
        except LeaseLost as err:
            log.warning("lease lost mid-pass; standing by", extra={"error": str(err)})
            return 0

    def _process(self) -> int:
        self._verify_recent()
        with self._batching():
            finished, unheld = self._check_sent()
        finished += self._check_failed_holding_nonce()
        if unheld:
            with self._batching():
                self._fill_gaps()
        with self._batching():
            self._sign_and_send_pending()
        return finished

    @contextmanager
    def _batching(self) -> Iterator[None]:
        """Broadcasts inside go out together, in one batched request, when the block ends.

        Every queued transaction's bytes were committed before it was queued; if the block
        raises, nothing queued is sent, and the next pass (or a restart) sends the stored bytes.
        """
        self._queued = []
        try:
            yield
            self._flush()
        finally:
            self._queued = None

    def _flush(self) -> None:
        """Send what `_batching` queued so far, in one batched request (chunks of RPC_BATCH_SIZE)."""
        if self._queued:
            queued, self._queued = self._queued, []
            self._send_raw(queued)

    def send_now(self, key: str, to: str, data: bytes, *, value: int = 0, gas: int | None = None,
                 timeout: float = 120.0) -> OutboxEntry:
        """Enqueue (idempotently) and drive until final. For CLIs and tests."""
        with self._write():
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
        # Past the chain's count and every row in flight; a removed transaction is back in
        # 'sent' with its nonce, so this never runs past it.
        row = self.db.execute("SELECT MAX(nonce) AS n FROM outbox WHERE sender = ? AND status = 'sent'",
                              (self.address,)).fetchone()
        chain_nonce = self.w3.eth.get_transaction_count(self.account.address, "pending")
        return max(chain_nonce, int(row["n"]) + 1 if row["n"] is not None else 0)

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

    def _sign(self, row: Any, nonce: int, fees: tuple[int, int]) -> tuple[bytes, str, int]:
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
            gas = int(self.w3.eth.estimate_gas(cast(TxParams, {k: v for k, v in tx.items() if k != "nonce"}))
                      * self.gas_multiplier)
        tx["gas"] = gas
        signed = self.account.sign_transaction(tx)
        return bytes(signed.raw_transaction), HexBytes(signed.hash).to_0x_hex(), gas

    def _record_attempt(self, key: str, tx_hash: str, raw: bytes, fees: tuple[int, int], sent_at: float) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO outbox_attempts (key, tx_hash, raw, max_fee, priority_fee, sent_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (key, tx_hash, raw, str(fees[0]), str(fees[1]), sent_at),
        )

    def _sign_and_send_pending(self) -> None:
        rows = self.db.execute(
            "SELECT * FROM outbox WHERE sender = ? AND status = 'pending' ORDER BY created_at, rowid", (self.address,)
        ).fetchall()
        if not rows:
            return
        # One fee quote and one nonce read per pass; nonces then advance locally.
        fees = self._fees()
        nonce = self._next_nonce()
        signed: list[tuple[str, int, int, bytes, str]] = []
        for row in rows:
            if row["gas"] is None and signed:
                # Estimation runs against the chain: the rows signed before it go out first, as
                # they did one by one, so a call that depends on them estimates as it did.
                self._commit_and_broadcast(signed, fees)
                self._flush()
                signed = []
            try:
                raw, tx_hash, gas = self._sign(row, nonce, fees)
            except Exception as err:
                # Estimation reverts: the call would fail now. Record it; the service decides.
                self._fail(row["key"], f"not sent: {_reason(err)}")
                continue
            signed.append((row["key"], nonce, gas, raw, tx_hash))
            nonce += 1
        self._commit_and_broadcast(signed, fees)

    def _commit_and_broadcast(self, signed: list[tuple[str, int, int, bytes, str]], fees: tuple[int, int]) -> None:
        """Commit the signed rows (one fenced transaction), then broadcast them: never the other way round."""
        if not signed:
            return
        now = time.time()
        with self._write():
            for key, nonce, gas, raw, tx_hash in signed:
                self.db.execute(
                    "UPDATE outbox SET nonce = ?, gas = ?, max_fee = ?, priority_fee = ?, raw = ?, tx_hash = ?, "
                    "sent_at = ?, attempts = attempts + 1, status = 'sent' WHERE key = ?",
                    (nonce, gas, str(fees[0]), str(fees[1]), raw, tx_hash, now, key),
                )
                self._record_attempt(key, tx_hash, raw, fees, now)
        for _, _, _, raw, _ in signed:
            self._broadcast(raw)

    def _broadcast(self, raw: bytes) -> None:
        """Send stored (committed) bytes: inside `_batching`, queued for its one batched request."""
        if self._queued is not None:
            self._queued.append(raw)
            return
        self._send_raw([raw])

    def _send_raw(self, raws: list[bytes]) -> None:
        """Broadcast committed bytes, one batched request per RPC_BATCH_SIZE, each fenced by the lease.

        Each item's error is handled as a single send_raw_transaction's would be (`_broadcast_failed`).
        """
        if len(raws) == 1:
            self._check_lease_before_sending()
            try:
                self.w3.eth.send_raw_transaction(raws[0])
            except Exception as err:
                _broadcast_failed(str(err))
            return
        for start in range(0, len(raws), RPC_BATCH_SIZE):
            chunk = raws[start:start + RPC_BATCH_SIZE]
            self._check_lease_before_sending()
            try:
                responses = self._rpc_batch("eth_sendRawTransaction", [["0x" + raw.hex()] for raw in chunk])
            except Exception as err:  # the whole request failed: as each single call would have
                for _ in chunk:
                    _broadcast_failed(str(err))
                continue
            for response in responses:
                if response.get("error") is not None:
                    _broadcast_failed(_rpc_error(response["error"]))

    def _check_lease_before_sending(self) -> None:
        if self.lease is not None:
            with transaction(self.db):  # a paused old leader resumes here: it must not send
                self.lease.check(self.db)

    def _rpc_batch(self, method: str, params: list[list[Any]]) -> list[dict[str, Any]]:
        """One JSON-RPC batch; the responses in request order. Without batching, one request each."""
        requests = [(method, p) for p in params]
        try:
            responses = self.w3.provider.make_batch_request(requests)  # type: ignore[attr-defined]
        except (AttributeError, NotImplementedError):
            return [dict(self.w3.provider.make_request(m, p)) for m, p in requests]  # type: ignore[arg-type]
        if not isinstance(responses, list):  # the node refused the batch as a whole
            raise ValueError(_rpc_error(dict(responses).get("error")))
        if len(responses) != len(requests):
            raise ValueError(f"{method} batch: {len(requests)} requests, {len(responses)} responses")
        return [dict(r) for r in responses]

    def _receipts(self, tx_hashes: list[str]) -> dict[str, Any]:
        """Receipts (None: not mined) of many transactions, in batches of RPC_BATCH_SIZE."""
        unique = list(dict.fromkeys(tx_hashes))
        found: dict[str, Any] = {}
        if len(unique) <= 1:
            return {h: self._receipt(h) for h in unique}
        for start in range(0, len(unique), RPC_BATCH_SIZE):
            chunk = unique[start:start + RPC_BATCH_SIZE]
            for tx_hash, response in zip(chunk, self._rpc_batch("eth_getTransactionReceipt", [[h] for h in chunk]), strict=True):
                if response.get("error") is not None:
                    raise ValueError(f"eth_getTransactionReceipt {tx_hash}: {_rpc_error(response['error'])}")
                found[tx_hash] = _receipt_from_rpc(response.get("result"))
        return found

    def _check_sent(self) -> tuple[int, bool]:
        """Finish, rebroadcast or bump each sent row; also says whether some row was not at the node."""
        rows = self.db.execute(
            "SELECT * FROM outbox WHERE sender = ? AND status = 'sent' ORDER BY nonce", (self.address,)
        ).fetchall()
        if not rows:
            return 0, False
        finished, unheld = 0, False
        mined_nonce = self.w3.eth.get_transaction_count(self.account.address, "latest")
        # The node's count includes its pool; a row at or above it is not at the node
        # (dropped by a reorg, a node restart, or never sent before a crash).
        held_nonce = self.w3.eth.get_transaction_count(self.account.address, "pending")
        first_pass, self._resent_after_start = not self._resent_after_start, True
        now = time.time()
        waiting = {row["key"] for row in rows
                   if row["nonce"] >= mined_nonce and now - float(row["sent_at"]) <= self.bump_after}
        # The receipts of every row to look at, in batched requests rather than one call each.
        candidates = {row["key"]: self._candidates(row) for row in rows if row["key"] not in waiting}
        receipts = self._receipts([c[0] for versions in candidates.values() for c in versions])
        for row in rows:
            not_held = row["nonce"] >= held_nonce
            unheld = unheld or not_held
            if row["key"] in waiting:
                if first_pass or not_held:
                    self._broadcast(bytes(row["raw"]))  # the same bytes: same nonce, same hash
                continue  # not mined yet and not due for a bump: nothing to do this pass
            if self._finish_if_mined(row, candidates[row["key"]], receipts):
                finished += 1
                continue
            if mined_nonce > row["nonce"]:
                # A reorg between the nonce read and the receipt look-up can make our own mined
                # transaction look foreign: read the count again before giving the row up.
                if self.w3.eth.get_transaction_count(self.account.address, "latest") <= row["nonce"]:
                    self._broadcast(bytes(row["raw"]))
                    continue
                # Our nonce went to a transaction this outbox never signed (the key is shared?).
                self._fail(row["key"], f"nonce {row['nonce']} was used by another transaction")
                continue
            self._bump(row)
        return finished, unheld

    def _candidates(self, row: Any) -> list[tuple[Any, ...]]:
        """Every version of the row (hash, bytes, fees), the current one first, then newest first."""
        attempts = self.db.execute(
            "SELECT tx_hash, raw, max_fee, priority_fee FROM outbox_attempts WHERE key = ? "
            "ORDER BY sent_at DESC, rowid DESC",
            (row["key"],),
        ).fetchall()
        candidates = [(row["tx_hash"], row["raw"], row["max_fee"], row["priority_fee"])]
        candidates += [(a["tx_hash"], a["raw"], a["max_fee"], a["priority_fee"]) for a in attempts
                       if a["tx_hash"] != row["tx_hash"]]
        return candidates

    def _finish_if_mined(self, row: Any, candidates: list[tuple[Any, ...]] | None = None,
                         receipts: dict[str, Any] | None = None) -> bool:
        """Look for a receipt of any version of the row, newest first; record the one mined."""
        if candidates is None:
            candidates = self._candidates(row)
        for tx_hash, raw, max_fee, priority_fee in candidates:
            receipt = receipts[tx_hash] if receipts is not None and tx_hash in receipts else self._receipt(tx_hash)
            if receipt is None:
                continue
            # The row now carries the mined version, so a reorg rebroadcasts exactly it.
            with self._write():
                self.db.execute(
                    "UPDATE outbox SET status = ?, tx_hash = ?, raw = COALESCE(?, raw), max_fee = ?, "
                    "priority_fee = ?, block_number = ?, block_hash = ?, gas_used = ?, error = NULL WHERE key = ?",
                    (_receipt_status(receipt), tx_hash, raw, max_fee, priority_fee, int(receipt["blockNumber"]),
                     HexBytes(receipt["blockHash"]).to_0x_hex(), int(receipt["gasUsed"]), row["key"]),
                )
            self._unverified.add(row["key"])
            return True
        return False

    def _check_failed_holding_nonce(self) -> int:
        """A row that failed after signing holds versions that may still be mined: once its
        nonce is used, recognise a mined version, or settle as failed (attempts pruned)."""
        rows = self.db.execute(
            "SELECT * FROM outbox WHERE sender = ? AND status = 'failed' AND nonce IS NOT NULL "
            "AND EXISTS (SELECT 1 FROM outbox_attempts a WHERE a.key = outbox.key) ORDER BY nonce",
            (self.address,),
        ).fetchall()
        if not rows:
            return 0
        mined_nonce = self.w3.eth.get_transaction_count(self.account.address, "latest")
        recognised = 0
        for row in rows:
            if row["nonce"] >= mined_nonce:
                break  # not used yet: one of its versions may still be mined
            if self._finish_if_mined(row):
                log.warning("a failed transaction was mined after all", extra={"key": row["key"]})
                recognised += 1
                continue
            with self._write():
                self.db.execute("DELETE FROM outbox_attempts WHERE key = ?", (row["key"],))
        return recognised

    def _fill_gaps(self) -> None:
        """Close nonces below a sent row that no stored bytes hold, with zero-value self-transfers."""
        held_nonce = self.w3.eth.get_transaction_count(self.account.address, "pending")
        rows = self.db.execute("SELECT nonce FROM outbox WHERE sender = ? AND status = 'sent' AND nonce >= ?",
                               (self.address, held_nonce)).fetchall()
        sent = {int(row["nonce"]) for row in rows}
        if not sent:
            return
        fees = self._fees()
        for nonce in sorted(set(range(held_nonce, max(sent))) - sent):
            self._send_gap_fill(nonce, fees)

    def _send_gap_fill(self, nonce: int, fees: tuple[int, int]) -> None:
        # Only a row that failed while holding its nonce leaves such a hole; later rows wait on it.
        key = f"{GAP_FILL_PREFIX}{self.address}:{nonce}:{time.time():.6f}"
        tx: dict[str, Any] = {
            "from": self.account.address, "to": self.account.address, "value": 0, "data": b"", "nonce": nonce,
            "chainId": self._chain(), "maxFeePerGas": fees[0], "maxPriorityFeePerGas": fees[1], "gas": 21_000}
        signed = self.account.sign_transaction(tx)
        raw, tx_hash, now = bytes(signed.raw_transaction), HexBytes(signed.hash).to_0x_hex(), time.time()
        with self._write():
            self.db.execute(
                "INSERT INTO outbox (key, sender, to_address, data, value, gas, nonce, max_fee, priority_fee, raw, "
                "tx_hash, sent_at, attempts, status, created_at) VALUES (?, ?, ?, ?, '0', 21000, ?, ?, ?, ?, ?, ?, 1, "
                "'sent', ?)",
                (key, self.address, self.address, b"", nonce, str(fees[0]), str(fees[1]), raw, tx_hash, now, now),
            )
            self._record_attempt(key, tx_hash, raw, fees, now)
        log.warning("nonce gap closed with a self-transfer", extra={"nonce": nonce, "tx_hash": tx_hash})
        self._broadcast(raw)

    def _bump(self, row: Any) -> None:
        if row["attempts"] >= self.max_attempts:
            self._fail(row["key"], f"not mined after {row['attempts']} attempts")
            return
        fees = self._fees(bump_from=(int(row["max_fee"]), int(row["priority_fee"])))
        raw, tx_hash, gas = self._sign(row, int(row["nonce"]), fees)
        now = time.time()
        with self._write():
            self.db.execute(
                "UPDATE outbox SET max_fee = ?, priority_fee = ?, raw = ?, tx_hash = ?, gas = ?, sent_at = ?, "
                "attempts = attempts + 1 WHERE key = ?",
                (str(fees[0]), str(fees[1]), raw, tx_hash, gas, now, row["key"]),
            )
            # Earlier versions stay recorded: any of them may still be the one that gets mined.
            self._record_attempt(row["key"], tx_hash, raw, fees, now)
        log.info("gas bumped", extra={"key": row["key"], "tx_hash": tx_hash, "max_fee": fees[0]})
        self._broadcast(raw)

    def _receipt(self, tx_hash: str) -> Any:
        try:
            return self.w3.eth.get_transaction_receipt(HexStr(tx_hash))
        except TransactionNotFound:
            return None

    def _fail(self, key: str, error: str) -> None:
        with self._write():
            self.db.execute("UPDATE outbox SET status = 'failed', error = ? WHERE key = ?", (error, key))
        log.warning("transaction failed", extra={"key": key, "error": error})


def _broadcast_failed(error: str) -> None:
    message = error.lower()
    # Already known or already mined: both mean the stored bytes are out there.
    if "already known" in message or "nonce too low" in message or "already imported" in message:
        return
    log.warning("broadcast failed; will retry", extra={"error": _reason_text(error)})


def _rpc_error(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error)


def _receipt_from_rpc(result: Any) -> Any:
    """A raw eth_getTransactionReceipt result as the fields this module reads (None: not mined)."""
    if result is None or result.get("blockNumber") is None:
        return None
    return {"status": int(result["status"], 16), "blockNumber": int(result["blockNumber"], 16),
            "blockHash": HexBytes(result["blockHash"]), "gasUsed": int(result["gasUsed"], 16),
            "transactionHash": HexBytes(result["transactionHash"])}


def _receipt_status(receipt: Any) -> str:
    return "mined" if receipt["status"] == 1 else "reverted"


def _schema_v1(db: Connection) -> None:
    """Version 1: this schema, adopting an outbox made before schema_versions existed."""
    _migrate(db)
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


def _migrate(db: Connection) -> None:
    """Bring an outbox of an earlier version up to this schema, in place."""
    columns = set(table_columns(db, "outbox"))
    if not columns or "block_hash" in columns:
        return  # a new database, or already migrated
    db.execute("ALTER TABLE outbox ADD COLUMN block_hash TEXT")
    db.execute(
        "CREATE TABLE IF NOT EXISTS outbox_attempts (key TEXT NOT NULL, tx_hash TEXT NOT NULL, raw BLOB, "
        "max_fee TEXT, priority_fee TEXT, sent_at REAL, PRIMARY KEY (key, tx_hash))"
    )
    db.execute(
        "INSERT OR IGNORE INTO outbox_attempts (key, tx_hash, raw, max_fee, priority_fee, sent_at) "
        "SELECT key, tx_hash, raw, max_fee, priority_fee, sent_at FROM outbox WHERE tx_hash IS NOT NULL"
    )
    # Earlier versions kept replaced hashes as a comma list in `error`; their bytes are unknown.
    for row in db.execute("SELECT key, error FROM outbox WHERE error LIKE '0x%'").fetchall():
        for tx_hash in str(row["error"]).split(","):
            if tx_hash.startswith("0x"):
                db.execute("INSERT OR IGNORE INTO outbox_attempts (key, tx_hash, sent_at) VALUES (?, ?, 0)",
                           (row["key"], tx_hash))
        db.execute("UPDATE outbox SET error = NULL WHERE key = ?", (row["key"],))


def _reason(err: Exception) -> str:
    return _reason_text(str(err))


def _reason_text(text: str) -> str:
    return text if len(text) < 300 else text[:300] + "..."
