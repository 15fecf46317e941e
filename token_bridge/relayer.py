"""The relayer: collects validator signatures and executes transfers on the destination.

Per destination chain it keeps its own store (relay state and the TxSender outbox
together, so enqueueing a transaction and recording it are one commit): a SQLite file,
or on PostgreSQL a schema of its own in the shared database (the sender's queries tell
rows apart by signer only, and the relayer signs with one key on both chains). The
destination is a chain of the relayer's bot (dccn_common.bot), which owns the sender
and, on PostgreSQL, the lease that lets one of several instances send:

    collecting --(threshold of valid signatures)--> submitted --(mined)--> done
                                                       |--(mined, large)--> held --(period over)--> releasing --> done
                                                       |--(reverted)--> collecting again, unless the bridge
                                                                        already processed it (then done)

A reorg that removes a mined execution or release puts its outbox row back in
'sent' (dccn_common.sender rebroadcasts the same transaction); the transfer then
goes back to submitted / releasing and settles again from the bridge's state once
it is mined again: one execution, never a second submission.

The destination bridge refuses a second execution of the same source log, and the
outbox key makes each submission a single transaction across restarts.

Each execution's estimate sees the bridge before the executions ahead of it, so on the
foreign side (it pays ERC20 from what was locked, and reverts what it cannot pay) the
executions of one pass and those in flight must fit its balance together: one that does
not stays collecting, unsigned, until locks fund it (DestinationRelay._funds).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from dccn_common.bot import Bot
from dccn_common.sender import TxSender
from dccn_common.store import Connection, is_postgres, open_db, transaction
from token_bridge.chains import Side
from token_bridge.transfer import Signature, Transfer, recover_signer, sorted_for_contract, struct_hash

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS relay_transfers (
    digest TEXT PRIMARY KEY,
    transfer_key TEXT NOT NULL,
    transfer TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'collecting',
    attempts INTEGER NOT NULL DEFAULT 0,
    outbox_key TEXT,
    retry_at REAL NOT NULL DEFAULT 0,
    first_seen REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS relay_transfers_by_status ON relay_transfers (status);
CREATE TABLE IF NOT EXISTS relay_signatures (
    digest TEXT NOT NULL,
    signer TEXT NOT NULL,
    v INTEGER NOT NULL,
    r TEXT NOT NULL,
    s TEXT NOT NULL,
    PRIMARY KEY (digest, signer)
);
CREATE TABLE IF NOT EXISTS relay_cursors (
    url TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
)
"""
# transferState values of bridge_core
STATE_NONE, STATE_EXECUTED, STATE_HELD, STATE_CANCELLED = 0, 1, 2, 3
RETRY_AFTER = 5.0  # first retry of a failed execution; doubles per attempt up to MAX_RETRY_AFTER
MAX_RETRY_AFTER = 300.0
FINAL_BY_STATE = {STATE_EXECUTED: "done", STATE_HELD: "held", STATE_CANCELLED: "cancelled"}
BATCH_SIZE = 200  # JSON-RPC calls per HTTP request (estimates, state reads)
IN_FLIGHT_BLOCKS = 4  # releases in flight at most: this many destination blocks' gas


@dataclass(frozen=True)
class RpcFailure:
    """The node's error for one call of a batch (e.g. an estimate that reverts)."""

    error: str


@dataclass
class Funds:
    """What a bridge that pays from its balance can still pay out (see DestinationRelay._funds)."""

    available: int
    hold_threshold: int  # transfers of this amount or more are held at execution: they pay on release

    def payout(self, amount: int) -> int:
        """What executing a transfer of `amount` pays at once."""
        return 0 if self.hold_threshold and amount >= self.hold_threshold else amount


SERVICE_NAME = "token-bridge-relayer"


def open_relay_db(target: Path | str) -> Connection:
    """A destination's store with the relay schema. PostgreSQL: the first schema of the DSN's
    search_path (token_bridge.cli.relay_db_path puts relay_<side> there) is created if missing."""
    db = open_db(target)
    if is_postgres(db):
        path = str(db.execute("SELECT current_setting('search_path') AS p").fetchone()["p"])
        schema = path.split(",")[0].strip().strip('"')
        if schema and schema != "$user":
            with transaction(db):  # the write lock: two instances starting at once create it once
                db.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    with transaction(db):
        for statement in (part.strip() for part in SCHEMA.split(";")):
            if statement:
                db.execute(statement)
    return db


class DestinationRelay:
    """Everything the relayer does for one destination chain.

    With `bot` (the relayer service) the destination is one of the bot's chains and the bot
    runs `tick()` as a task while it leads; without, the relay has a bot of its own that
    `tick()` asks for the lease first (in-process networks, tests)."""

    def __init__(self, destination: Side, db_path: Path | str, account: LocalAccount, validator_urls: list[str],
                 *, http_timeout: float = 5.0, bot: Bot | None = None, db: Connection | None = None,
                 rpc_dependency: str | None = None, balance_dependency: str | None = None) -> None:
        self.side = destination
        self.db_path = db_path
        self.account = account
        self.db = db if db is not None else open_relay_db(db_path)
        self._own_bot = bot is None
        self.bot = bot if bot is not None else Bot(SERVICE_NAME, db=self.db)
        self.chain = self.bot.chain(destination.binding or destination.w3, account=account, db=self.db,
                                    label=destination.name, drive_sender=False,
                                    rpc_dependency=rpc_dependency or f"rpc {destination.name}",
                                    balance_dependency=balance_dependency or f"signing_balance {destination.name}")
        assert self.chain.sender is not None
        self.sender: TxSender = self.chain.sender
        self.validator_urls = validator_urls
        self.http = httpx.Client(timeout=http_timeout)
        self.last_fetch_errors: dict[str, str] = {}
        self._membership: dict[str, bool] = {}  # isValidator answers of this tick
        self._release_gas = 0  # the largest gas limit given to a release so far (sizes the estimate batch)
        # The foreign bridge pays ERC20 from what was locked (lockedBalance); the home bridge, native coin.
        self._pays_from_balance = any(item.get("name") == "lockedBalance" for item in destination.bridge.abi)

    def tick(self, *, send: bool = True) -> None:
        """One pass: collect signatures, enqueue releases, send (unless another loop does, see
        `own_sender`), settle what was mined."""
        if self._own_bot and not self.bot.lead_once():
            return  # another instance holds this destination's lease
        self._membership.clear()
        for url in self.validator_urls:
            self._fetch(url)
        self._submit_ready()
        if send:
            self.sender.process()
        self._reconcile()

    def own_sender(self) -> TxSender:
        """A sender on its own connection to this relay's database, for a sending loop in another
        thread: collecting (tick(send=False)) and sending then overlap their waits on the nodes.
        Releases are enqueued in the relay's transactions and sent once committed (WAL), so one
        commit still records both; only that loop may call its process(). SQLite only (the
        benchmark): on PostgreSQL the second connection would be a second lease holder."""
        if self.chain.lease is not None:
            raise RuntimeError("own_sender: a PostgreSQL relay sends through its bot's lease only")
        helper = Bot(f"{self.bot.name} sender", db=open_db(self.db_path))
        sender = helper.chain(self.side.binding or self.side.w3, account=self.account, label=self.side.name,
                              drive_sender=False, rpc_dependency=None, balance_dependency=None).sender
        assert sender is not None
        return sender

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, COUNT(*) AS n FROM relay_transfers GROUP BY status").fetchall()
        return {row["status"]: int(row["n"]) for row in rows}

    # -- collecting ----------------------------------------------------------------------

    def _fetch(self, url: str) -> None:
        row = self.db.execute("SELECT seq FROM relay_cursors WHERE url = ?", (url,)).fetchone()
        after = int(row["seq"]) if row else 0
        try:
            response = self.http.get(f"{url}/signatures", params={"destination": self.side.chain_id, "after": after})
            response.raise_for_status()
            entries = response.json()["signatures"]
            last_seq = int(entries[-1]["seq"]) if entries else after
        except (httpx.HTTPError, ValueError, KeyError, TypeError, IndexError) as err:
            # One validator down must not stop the others; the threshold decides.
            self.last_fetch_errors[url] = f"{type(err).__name__}: {err}"
            return
        self.last_fetch_errors.pop(url, None)
        if not entries:
            return
        with self.bot.transaction(self.db):
            for entry in entries:
                self._ingest(entry)
            self.db.execute("INSERT INTO relay_cursors (url, seq) VALUES (?, ?) ON CONFLICT(url) DO UPDATE SET "
                            "seq = excluded.seq", (url, last_seq))

    def _ingest(self, entry: dict[str, Any]) -> None:
        try:
            transfer = Transfer.from_json(entry["transfer"])
            signature = Signature(int(entry["v"]), int(entry["r"], 16), int(entry["s"], 16))
            signer = recover_signer(transfer, self.side.destination, signature)
        except Exception as err:  # whatever a faulty validator serves is dropped, never fatal
            log.warning("malformed signature entry ignored", extra={"error": str(err)})
            return
        if not self._is_validator(signer):
            log.warning("signature from a non-validator ignored", extra={"signer": signer})
            return
        digest = "0x" + struct_hash(transfer).hex()  # the key rows have always had: hashStruct(Transfer)
        self.db.execute(
            "INSERT OR IGNORE INTO relay_transfers (digest, transfer_key, transfer, first_seen) VALUES (?, ?, ?, ?)",
            (digest, transfer.key(), json.dumps(transfer.to_json()), time.time()),
        )
        self.db.execute("INSERT OR IGNORE INTO relay_signatures VALUES (?, ?, ?, ?, ?)",
                        (digest, signer, signature.v, hex(signature.r), hex(signature.s)))

    def _is_validator(self, signer: str) -> bool:
        if signer not in self._membership:
            self._membership[signer] = bool(self.side.bridge.functions.isValidator(signer).call())
        return self._membership[signer]

    # -- submitting ----------------------------------------------------------------------

    def _signatures(self, digest: str) -> dict[str, Signature]:
        rows = self.db.execute("SELECT * FROM relay_signatures WHERE digest = ?", (digest,)).fetchall()
        # Re-check membership at submission: the set may have changed since collection.
        return {row["signer"]: Signature(row["v"], int(row["r"], 16), int(row["s"], 16))
                for row in rows if self._is_validator(row["signer"])}

    def _submit_ready(self) -> None:
        rows = self.db.execute("SELECT * FROM relay_transfers WHERE status = 'collecting' AND retry_at <= ? "
                               "ORDER BY first_seen, rowid",
                               (time.time(),)).fetchall()
        if not rows:
            return
        mined_nonce = self.side.w3.eth.get_transaction_count(self.sender.account.address, "latest")
        budget = self._gas_budget(mined_nonce)
        if budget <= 0:
            return  # enough in flight for the next blocks; the rest waits, unsigned, for fresh fees
        threshold = int(self.side.bridge.functions.threshold().call())
        funds = self._funds(mined_nonce)
        ready: list[tuple[Any, Any]] = []
        short = 0
        # With a gas figure known, estimate only about what the budget can take this pass.
        most = budget // self._release_gas + 1 if self._release_gas else len(rows)
        for row in rows:
            if len(ready) >= most:
                break
            signatures = self._signatures(row["digest"])
            if len(signatures) >= threshold:
                transfer = Transfer.from_json(json.loads(row["transfer"]))
                if funds is not None:
                    # Each estimate sees the bridge as it is, not after the executions ahead of it:
                    # the executions this pass sends and those in flight must fit the funds together.
                    payout = funds.payout(transfer.amount)
                    if payout > funds.available:
                        short += 1
                        continue  # waits, still collecting, for locks to fund it
                    funds.available -= payout
                ready.append((row, self.side.bridge.functions.executeSignatures(
                    transfer.as_tuple(), sorted_for_contract(signatures, threshold))))
        if short:
            log.info("transfers wait for the bridge's funds", extra={"transfers": short, "destination": self.side.name})
        if not ready:
            return
        # One batch of estimates for every ready release: one that would fail now is not sent (its
        # state says why), and the sender, given the gas, makes no estimate of its own per release.
        estimates = self._batch([("eth_estimateGas", [{"from": self.sender.address, "to": self.side.bridge.address,
                                                        "data": call._encode_transaction_data()}])
                                 for _, call in ready])
        refused = [row["transfer_key"] for (row, _), estimate in zip(ready, estimates, strict=True)
                   if isinstance(estimate, RpcFailure)]
        states = self._states(refused)
        submitted = 0
        with self.bot.transaction(self.db):
            for (row, call), estimate in zip(ready, estimates, strict=True):
                if isinstance(estimate, RpcFailure):
                    self._refused(row, states[row["transfer_key"]], estimate)
                    continue
                gas = int(int(estimate, 16) * self.sender.gas_multiplier)
                self._release_gas = max(self._release_gas, gas)
                if gas > budget and submitted:
                    break  # the rest waits for the next pass (still collecting, nothing recorded)
                budget -= gas
                outbox_key = f"execute:{row['digest']}:{row['attempts']}"
                self.sender.enqueue_call(self.db, outbox_key, call, gas=gas)
                self.db.execute("UPDATE relay_transfers SET status = 'submitted', outbox_key = ? WHERE digest = ?",
                                (outbox_key, row["digest"]))
                submitted += 1
        if submitted:
            log.info("transfers submitted", extra={"transfers": submitted, "signatures": threshold,
                                                   "destination": self.side.name})

    def _gas_budget(self, mined_nonce: int) -> int:
        """Gas the relayer may still put in flight: IN_FLIGHT_BLOCKS blocks' worth minus what is
        pending or sent. A release signed now is then mined within a few blocks, before a rising
        base fee (full blocks raise it 12.5% each) can overtake the fee it was signed with.
        A sent row whose nonce the chain has mined (`mined_nonce`: the signer's count at latest)
        is no longer in flight, whether or not the sender has fetched its receipt yet."""
        limit = int(self.side.w3.eth.get_block("latest")["gasLimit"])
        row = self.db.execute("SELECT COALESCE(SUM(gas), 0) AS g FROM outbox WHERE sender = ? AND (status = 'pending' "
                              "OR (status = 'sent' AND nonce >= ?))", (self.sender.address, mined_nonce)).fetchone()
        return IN_FLIGHT_BLOCKS * limit - int(row["g"])

    def _funds(self, mined_nonce: int) -> Funds | None:
        """What the destination bridge can still pay executions from, after those in flight.

        The foreign bridge pays ERC20 from its balance, and an execution it cannot pay reverts;
        the home bridge pays native coin and defers a payment it cannot make (None: no limit).
        The held transfers' amounts stay reserved for their releases (totalHeld), and executions
        signed or waiting to be, not yet mined (see _gas_budget), will take theirs."""
        if not self._pays_from_balance:
            return None
        bridge = self.side.bridge
        reads = [bridge.functions.lockedBalance(), bridge.functions.totalHeld(), bridge.functions.holdThreshold()]
        answers = self._batch([("eth_call", [{"to": bridge.address, "data": call._encode_transaction_data()},
                                             "latest"]) for call in reads])
        if any(isinstance(answer, RpcFailure) for answer in answers):
            raise RuntimeError(f"the bridge's funds could not be read: {answers}")  # node trouble: next tick
        balance, held, hold_threshold = (int(answer, 16) for answer in answers)
        funds = Funds(balance - held, hold_threshold)
        in_flight = self.db.execute(
            "SELECT t.transfer FROM relay_transfers t JOIN outbox o ON o.key = t.outbox_key WHERE t.status = "
            "'submitted' AND o.sender = ? AND (o.status = 'pending' OR (o.status = 'sent' AND o.nonce >= ?))",
            (self.sender.address, mined_nonce)).fetchall()
        for row in in_flight:
            funds.available -= funds.payout(Transfer.from_json(json.loads(row["transfer"])).amount)
        return funds

    def _refused(self, row: Any, state: int, failure: RpcFailure) -> None:
        """A release whose estimate reverts: someone else executed it, or it waits and tries again."""
        if state != STATE_NONE:
            self.db.execute("UPDATE relay_transfers SET status = ? WHERE digest = ?",
                            (FINAL_BY_STATE[state], row["digest"]))
            return
        self.db.execute("UPDATE relay_transfers SET attempts = attempts + 1, retry_at = ? WHERE digest = ?",
                        (time.time() + min(RETRY_AFTER * 2 ** row["attempts"], MAX_RETRY_AFTER), row["digest"]))
        log.warning("execution would fail; will retry", extra={"key": row["transfer_key"], "error": failure.error})

    def _reopen_removed(self) -> None:
        """Transfers whose own transaction a reorg removed wait for it again."""
        with self.bot.transaction(self.db):
            reopened = self.db.execute(
                "UPDATE relay_transfers SET status = CASE WHEN outbox_key LIKE 'release:%' THEN 'releasing' "
                "ELSE 'submitted' END WHERE status IN ('done', 'held') "
                "AND outbox_key IN (SELECT key FROM outbox WHERE status IN ('pending', 'sent'))"
            ).rowcount
        if reopened:
            log.warning("transactions removed by a reorg; waiting for them again",
                        extra={"transfers": reopened, "destination": self.side.name})

    def _reconcile(self) -> None:
        self._reopen_removed()
        rows = self.db.execute("SELECT * FROM relay_transfers WHERE status IN ('submitted', 'held', 'releasing')"
                               ).fetchall()
        settled = []
        for row in rows:
            if row["status"] == "held":
                self._maybe_release(row)
                continue
            entry = self.sender.entry(row["outbox_key"])
            if entry is not None and entry.status in ("mined", "reverted", "failed"):
                settled.append((row, entry))
        if not settled:
            return
        # Whoever executed it, the bridge's state is the truth: read for all of them in one batch.
        states = self._states([row["transfer_key"] for row, _ in settled])
        with self.bot.transaction(self.db):
            for row, entry in settled:
                state = states[row["transfer_key"]]
                if state != STATE_NONE:
                    self.db.execute("UPDATE relay_transfers SET status = ? WHERE digest = ?",
                                    (FINAL_BY_STATE[state], row["digest"]))
                    continue
                self.db.execute("UPDATE relay_transfers SET status = 'collecting', attempts = attempts + 1, "
                                "outbox_key = NULL, retry_at = ? WHERE digest = ?",
                                (time.time() + min(RETRY_AFTER * 2 ** row["attempts"], MAX_RETRY_AFTER),
                                 row["digest"]))
                log.warning("execution failed; will retry", extra={"key": row["transfer_key"], "error": entry.error})

    def _maybe_release(self, row: Any) -> None:
        state = self._state(row["transfer_key"])
        if state != STATE_HELD:
            self._set_status(row["digest"], FINAL_BY_STATE.get(state, "collecting"))
            return
        release_at = int(self.side.bridge.functions.heldTransfers(row["transfer_key"]).call()[2])
        if int(self.side.w3.eth.get_block("latest")["timestamp"]) < release_at:
            return
        outbox_key = f"release:{row['digest']}:{row['attempts']}"
        with self.bot.transaction(self.db):
            self.sender.enqueue_call(self.db, outbox_key, self.side.bridge.functions.releaseHeld(row["transfer_key"]))
            self.db.execute("UPDATE relay_transfers SET status = 'releasing', outbox_key = ?, attempts = attempts + 1 "
                            "WHERE digest = ?", (outbox_key, row["digest"]))

    def _state(self, key: str) -> int:
        return int(self.side.bridge.functions.transferState(key).call())

    def _states(self, keys: list[str]) -> dict[str, int]:
        """transferState of many keys in one JSON-RPC batch."""
        bridge = self.side.bridge
        answers = self._batch([("eth_call", [{"to": bridge.address,
                                              "data": bridge.functions.transferState(key)._encode_transaction_data()},
                                             "latest"]) for key in keys])
        states = {}
        for key, answer in zip(keys, answers, strict=True):
            if isinstance(answer, RpcFailure):
                raise RuntimeError(f"transferState({key}) failed: {answer.error}")  # node trouble: next tick
            states[key] = int(answer, 16)
        return states

    def _batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Results of JSON-RPC `calls`, sent BATCH_SIZE to an HTTP request; a failed call's result is an RpcFailure."""
        results: list[Any] = []
        for start in range(0, len(calls), BATCH_SIZE):
            responses = self.side.w3.provider.make_batch_request(calls[start:start + BATCH_SIZE])  # type: ignore[attr-defined]
            if not isinstance(responses, list):  # the node refused the batch as a whole
                raise RuntimeError(f"batch request refused: {responses.get('error')}")
            results += [RpcFailure(str(r["error"])) if r.get("error") is not None else r.get("result")
                        for r in responses]
        return results

    def _set_status(self, digest: str, status: str) -> None:
        with self.bot.transaction(self.db):
            self.db.execute("UPDATE relay_transfers SET status = ? WHERE digest = ?", (status, digest))
