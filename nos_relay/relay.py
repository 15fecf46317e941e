"""The NOS relay: follows `Request` events, has enclaves answer them, delivers.

State (SQLite, WAL, or PostgreSQL) is one `jobs` row per request, moving
new -> signed -> submitted -> done, or to expired / cancelled / failed /
unanswerable (params no enclave can act on: never fetched, or refused once by
the enclave; the request stays pending on chain until its requester cancels):

- the follower inserts jobs (exactly once per event) and marks them done or
  cancelled when it sees `Delivered` / `Cancelled`, whoever sent them;
- fetch workers (threads, one enclave connection each, no database) fetch
  `new` jobs; the main loop stores what they got in one transaction per tick,
  making them `signed`; a crash before that just fetches again (signing is free);
- every tick, all `signed` jobs go into one `deliverBatch` (or `deliver` when
  there is one), enqueued in the outbox in the same database transaction that
  marks them `submitted`, so a restart neither loses nor repeats a delivery;
  the outbox's final outcome of each delivery settles its jobs (`on_settled`).

The relay is a dccn_common.bot.Bot. On a postgresql:// store several instances of
the same relay (same key, same relay_index) may share the database: the lease picks
the active one, every write above is fenced by it, and a standby that takes over
continues from the shared tables: `new` jobs are fetched again (a fetch the old
leader had not stored is simply repeated), `signed` ones are submitted, `submitted`
ones are the outbox's, which never sends a second transaction for a row.

Several relays can serve one oracle: each answers its own share of request ids
at once (id mod relay_count) and the others' only after `backup_delay`; a race
costs the loser only its own gas, because `deliverBatch` skips settled ids.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import queue
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, cast

import click
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_typing import ABIFunction
from eth_utils import collapse_if_tuple, function_abi_to_4byte_selector
from hexbytes import HexBytes
from pydantic import BaseModel, field_validator

from dccn_common.bot import Bot, claim_instance, claim_signing_key, run_cli
from dccn_common.chain import bind_chain
from dccn_common.config import ConfigError, StoreLocation, load_config
from dccn_common.follower import ChainEvent
from dccn_common.health import Check
from dccn_common.keys import load_account
from dccn_common.listen import bind_tcp
from dccn_common.logs import configure_logging
from dccn_common.manifest import Manifest
from dccn_common.sender import DEFAULT_LEASE_SECONDS, OutboxEntry, TxSender
from dccn_common.store import Connection, open_db, postgres_dsn
from nos_enclave.framing import EnclaveClient, WireError
from nos_enclave.protocol import FetchFailed, ParamsError, check_params
from nos_relay.carrier import TcpCarrier, fetch_signed

log = logging.getLogger("nos.relay")

ORACLE = "NosOracle"
MAX_FETCH_ATTEMPTS = 3
MAX_SUBMIT_ATTEMPTS = 5
# Upper bounds of what a batch may use (the submitter pays only what it uses).
BATCH_BASE_GAS = 60_000
RESPONSE_GAS = 40_000
# On-chain statuses (NosOracle.statusOf) and the job status a settled one ends in.
PENDING = 1
SETTLED_JOB_STATUS = {2: "done", 3: "done", 4: "cancelled"}
# Fetch jobs queued per worker ahead of the workers (dispatch_fetches).
DISPATCH_DEPTH = 4
# Leave this much of a request's life for the delivery to be mined.
EXPIRY_MARGIN_SECONDS = 2

# The job statuses (module doc) grouped as an operator reads them.
JOB_STATE_SQL = ("CASE WHEN status = 'done' THEN 'answered' WHEN status IN ('failed', 'unanswerable') THEN 'failed' "
                 "WHEN status IN ('new', 'signed', 'submitted') THEN 'pending' ELSE 'closed' END")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    request_id TEXT PRIMARY KEY,
    requester TEXT NOT NULL,
    params BLOB NOT NULL,
    params_hash TEXT NOT NULL,
    fee TEXT NOT NULL,
    max_gas_price TEXT NOT NULL,
    callback_gas_limit INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'new',
    data BLOB,
    signature BLOB,
    batch_key TEXT,
    fetch_attempts INTEGER NOT NULL DEFAULT 0,
    submit_attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    seen_at REAL NOT NULL,
    ready_at REAL NOT NULL,
    signed_at REAL,
    settled_block INTEGER,
    settled_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, ready_at)
"""


class RelayConfig(BaseModel):
    rpc_url: str
    manifest: Path
    keystore: Path
    password_env: str = "NOS_RELAY_PASSWORD"
    db: StoreLocation  # a SQLite file, or a postgresql:// URL (instances may then share it)
    enclave_sockets: list[str]
    confirmations: int = 0
    poll_interval: float = 0.5
    health_port: int | None = None
    workers: int = 4
    batch_max: int = 64
    relay_index: int = 0
    relay_count: int = 1
    backup_delay: float = 30.0
    retry_delay: float = 2.0
    log_level: str = "INFO"
    lease_seconds: float = DEFAULT_LEASE_SECONDS  # PostgreSQL: a standby takes over this long after a leader stops

    @field_validator("enclave_sockets", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return [s for s in value.split(",") if s] if isinstance(value, str) else value


class AbiFunction:
    """One oracle function's calldata and result, encoded with eth_abi directly: web3's contract-function
    path (argument matching and normalisation for every element of a 64-response batch) cost more CPU
    than the rest of a delivery."""

    def __init__(self, abi: Sequence[Mapping[str, Any]], name: str) -> None:
        entries = [e for e in abi if e.get("type") == "function" and e.get("name") == name]
        if len(entries) != 1:
            raise ConfigError(f"the oracle ABI has {len(entries)} functions named {name}")
        self.selector = bytes(function_abi_to_4byte_selector(cast(ABIFunction, entries[0])))
        self.inputs = [collapse_if_tuple(dict(i)) for i in entries[0]["inputs"]]
        self.outputs = [collapse_if_tuple(dict(o)) for o in entries[0].get("outputs", [])]

    def data(self, *args: Any) -> bytes:
        return self.selector + abi_encode(self.inputs, args)

    def result(self, raw: bytes) -> tuple[Any, ...]:
        return tuple(abi_decode(self.outputs, raw))


def _word(hex_text: str) -> bytes:
    """A 0x-prefixed 32-byte hex value as stored in the jobs table."""
    raw = bytes.fromhex(hex_text.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError(f"{hex_text!r} is not 32 bytes")
    return raw


# -- handlers (the bot calls them in the transaction that records the event / outcome) ------------------


def on_request(settings: RelayConfig, event: ChainEvent, db: Connection) -> None:
    """A new request: one job, ready now for this relay's share of ids, after backup_delay for the others'."""
    args = event.args
    request_id = HexBytes(args["requestId"]).to_0x_hex()
    mine = int(request_id, 16) % settings.relay_count == settings.relay_index
    now = time.time()
    status, error = check_request(request_id, bytes(args["params"]))
    db.execute(
        "INSERT OR IGNORE INTO jobs (request_id, requester, params, params_hash, fee, max_gas_price, "
        "callback_gas_limit, expires_at, block_number, seen_at, ready_at, status, error) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (request_id, args["requester"], bytes(args["params"]), HexBytes(args["paramsHash"]).to_0x_hex(),
         str(args["fee"]), str(args["maxGasPrice"]), int(args["callbackGasLimit"]), int(args["expiresAt"]),
         event.block_number, now, now if mine else now + settings.backup_delay, status, error),
    )


def on_settled_event(status: str, event: ChainEvent, db: Connection) -> None:
    """`Delivered` (status "done", whoever sent it) or `Cancelled` ("cancelled")."""
    db.execute(
        "UPDATE jobs SET status = ?, settled_block = ?, settled_at = ? WHERE request_id = ? "
        "AND status NOT IN ('done', 'cancelled')",
        (status, event.block_number, time.time(), HexBytes(event.args["requestId"]).to_0x_hex()),
    )


def on_rewind(first_removed: int, db: Connection) -> None:
    """Requests that are no longer on chain are forgotten unless already submitted;
    settlements that vanished put their job back to work, except that a job whose own
    delivery the reorg removed waits for it again (the sender rebroadcasts the same
    transaction): signing a second delivery would only race it."""
    db.execute("DELETE FROM jobs WHERE block_number >= ? AND status IN ('new', 'signed')", (first_removed,))
    in_flight = "batch_key IN (SELECT key FROM outbox WHERE status IN ('pending', 'sent'))"
    db.execute(
        f"UPDATE jobs SET status = CASE WHEN {in_flight} THEN 'submitted' "
        "WHEN signature IS NULL THEN 'new' ELSE 'signed' END, "
        f"batch_key = CASE WHEN {in_flight} THEN batch_key END, settled_block = NULL "
        "WHERE settled_block >= ?",
        (first_removed,),
    )


def on_delivery_settled(entry: OutboxEntry, db: Connection) -> None:
    """A delivery transaction reached a final state: its jobs are done, or go back to `signed`
    (`failed` after MAX_SUBMIT_ATTEMPTS) to ride a later delivery."""
    if entry.status == "mined":
        # Delivered (or skipped because another relay was first): either way settled.
        db.execute(
            "UPDATE jobs SET status = 'done', settled_block = ?, settled_at = ? "
            "WHERE batch_key = ? AND status = 'submitted'",
            (entry.block_number, time.time(), entry.key),
        )
        return
    log.warning("delivery not mined", extra={"key": entry.key, "error": entry.error})
    db.execute(
        "UPDATE jobs SET status = CASE WHEN submit_attempts >= ? THEN 'failed' ELSE 'signed' END, "
        "batch_key = NULL, error = ? WHERE batch_key = ? AND status = 'submitted'",
        (MAX_SUBMIT_ATTEMPTS, entry.error, entry.key),
    )


def check_request(request_id: str, params: bytes) -> tuple[str, str | None]:
    """Params no enclave could act on are never fetched: logged once, left for the requester to cancel."""
    try:
        check_params(params)
    except ParamsError as err:
        log.warning("request unanswerable; the requester can cancel it after expiry",
                    extra={"request_id": request_id, "error": str(err)})
        return "unanswerable", str(err)[:500]
    return "new", None


class Relay:
    """Declarative handlers + fetch workers + the batching submitter."""

    def __init__(self, settings: RelayConfig, *, carrier: TcpCarrier | None = None,
                 health_socket: socket.socket | None = None) -> None:
        if not settings.enclave_sockets:
            raise ConfigError("enclave_sockets: name at least one enclave socket")
        if not 0 <= settings.relay_index < settings.relay_count:
            raise ConfigError("relay_index must be in 0..relay_count-1")
        self.settings = settings
        self.carrier = carrier or TcpCarrier()
        manifest = Manifest.load(settings.manifest)
        self.account = load_account(settings.keystore, settings.password_env)
        binding = bind_chain(settings.rpc_url, manifest, label="nos-relay")
        self.w3, self.chain_id = binding.w3, binding.chain_id
        self.oracle = binding.contract(ORACLE)
        self._deliver = AbiFunction(self.oracle.abi, "deliver")
        self._deliver_batch = AbiFunction(self.oracle.abi, "deliverBatch")
        self._statuses_of = AbiFunction(self.oracle.abi, "statusesOf")
        self.db = open_db(settings.db, SCHEMA)
        self.bot = Bot("nos-relay", db=self.db, poll_interval=settings.poll_interval,
                       health_port=settings.health_port, health_socket=health_socket, status=self._status,
                       dependencies={f"enclave {path}": enclave_check(path) for path in settings.enclave_sockets},
                       lease_seconds=settings.lease_seconds)
        chain = self.bot.chain(binding, account=self.account, follower_name="nos-relay",
                               confirmations=settings.confirmations, start_block=binding.deployment_block(ORACLE))
        assert chain.sender is not None
        self.sender: TxSender = chain.sender
        self.follower = chain.follower
        # The fetch workers' stop flag (a fresh one for each start_workers after a stop).
        self.stop_event = threading.Event()
        self._work: queue.Queue[dict[str, Any]] = queue.Queue()
        self._results: queue.Queue[tuple[dict[str, Any], tuple[str, Any]]] = queue.Queue()
        self._in_flight: set[str] = set()
        self._in_flight_lock = threading.Lock()
        self._enclaves = itertools.cycle(settings.enclave_sockets)
        self._declare_handlers()
        self._declare_metrics()

    # -- declaration ---------------------------------------------------------------------

    def _declare_handlers(self) -> None:
        bot, events = self.bot, self.oracle.events
        bot.on(events.Request)(functools.partial(on_request, self.settings))
        bot.on(events.Delivered)(functools.partial(on_settled_event, "done"))
        bot.on(events.Cancelled)(functools.partial(on_settled_event, "cancelled"))
        bot.on_rewind()(on_rewind)
        bot.on_settled("nos")(on_delivery_settled)
        bot.on_lead(self.forget_queued_fetches)
        bot.every(0, "reopen_removed_deliveries")(self.reopen_removed_deliveries)
        bot.every(0, "store_fetched")(self.store_fetched)
        bot.every(0, "dispatch_fetches")(self.dispatch_fetches)
        bot.every(0, "submit_signed")(self.submit_signed)

    # -- fetching ----------------------------------------------------------------------

    def dispatch_fetches(self) -> None:
        """Queue `new` jobs that are due and not already being fetched (with what a fetch needs).

        The queue is kept a few jobs per worker deep: the jobs behind it wait in the table, not in memory,
        and a tick reads only as many rows as it may queue (plus those in flight, which it skips) instead
        of a thousand rows every tick of a burst."""
        want = DISPATCH_DEPTH * max(1, self.settings.workers) - self._work.qsize()
        if want <= 0:
            return
        with self._in_flight_lock:
            limit = len(self._in_flight) + want
        now = time.time()
        rows = self.db.execute(
            "SELECT request_id, requester, params, params_hash, fetch_attempts FROM jobs "
            "WHERE status = 'new' AND ready_at <= ? ORDER BY block_number LIMIT ?",
            (now, limit),
        ).fetchall()
        with self._in_flight_lock:
            for row in rows:
                if row["request_id"] not in self._in_flight:
                    self._in_flight.add(row["request_id"])
                    self._work.put(dict(row))

    def forget_queued_fetches(self) -> None:
        """On becoming the active instance: the jobs table, not what this process queued before, says
        what to fetch (another instance may have signed them meanwhile). Fetches running now finish
        and are stored as usual (only onto jobs still `new`)."""
        with self._in_flight_lock:
            while True:
                try:
                    job = self._work.get_nowait()
                except queue.Empty:
                    break
                self._in_flight.discard(job["request_id"])

    def _worker(self, socket_path: str, stop: threading.Event) -> None:
        # Workers never touch the database: SQLite has one writer, and dozens of workers committing
        # one row each queued behind the follower's writes. The main loop stores their results.
        client: EnclaveClient | None = None
        while not stop.is_set():
            try:
                job = self._work.get(timeout=0.2)
            except queue.Empty:
                continue
            outcome: tuple[str, Any] = ("retry", None)
            try:
                if client is None:
                    client = EnclaveClient(socket_path)
                outcome = self._fetch_one(client, job)
            except WireError as err:
                log.warning("enclave unavailable", extra={"socket": socket_path, "error": str(err)})
                if client is not None:
                    client.close()
                client = None
                stop.wait(0.5)
            finally:
                self._results.put((job, outcome))
        if client is not None:
            client.close()

    def _fetch_one(self, client: EnclaveClient, job: dict[str, Any]) -> tuple[str, Any]:
        """One fetch: ("signed", response), ("failed", error) or ("retry", None) when nothing is to be stored."""
        request = {"chain_id": self.chain_id, "oracle": self.oracle.address, "request_id": job["request_id"],
                   "requester": job["requester"], "params": bytes(job["params"]).hex()}
        try:
            response = fetch_signed(client, request, self.carrier)
        except (FetchFailed, OSError) as err:
            return "failed", err
        if response.get("params_hash") != job["params_hash"]:
            log.error("enclave answered other params", extra={"request_id": job["request_id"]})
            return "retry", None
        return "signed", response

    def store_fetched(self) -> None:
        """Write every finished fetch in one transaction, then let their ids be dispatched again."""
        results: list[tuple[dict[str, Any], tuple[str, Any]]] = []
        while True:
            try:
                results.append(self._results.get_nowait())
            except queue.Empty:
                break
        if not results:
            return
        now = time.time()
        with self.bot.transaction(self.db):
            for job, (kind, value) in results:
                request_id = job["request_id"]
                if kind == "signed":
                    self.db.execute(
                        "UPDATE jobs SET status = 'signed', data = ?, signature = ?, signed_at = ?, error = NULL "
                        "WHERE request_id = ? AND status = 'new'",
                        (bytes(HexBytes(value["data"])), bytes(HexBytes(value["signature"])), now, request_id),
                    )
                elif kind == "failed":
                    self._record_fetch_failure(request_id, int(job["fetch_attempts"]) + 1, value, now)
        with self._in_flight_lock:
            for job, _ in results:
                self._in_flight.discard(job["request_id"])

    def _record_fetch_failure(self, request_id: str, attempts: int, err: Exception, now: float) -> None:
        if isinstance(err, FetchFailed) and err.permanent:  # e.g. a private envelope that does not decrypt
            status = "unanswerable"
            log.warning("request unanswerable; the requester can cancel it after expiry",
                        extra={"request_id": request_id, "error": str(err)})
        else:
            status = "failed" if attempts >= MAX_FETCH_ATTEMPTS else "new"
        self.db.execute(
            "UPDATE jobs SET fetch_attempts = ?, error = ?, status = ?, ready_at = ? "
            "WHERE request_id = ? AND status = 'new'",
            (attempts, str(err)[:500], status, now + self.settings.retry_delay * 2 ** (attempts - 1), request_id),
        )
        log.info("fetch failed", extra={"request_id": request_id, "error": str(err), "attempt": attempts})

    # -- delivering --------------------------------------------------------------------

    def reopen_removed_deliveries(self) -> None:
        """A job settled only by its own delivery (the follower has not reached that block) waits
        again when a reorg put the delivery back in 'sent'; past the follower, on_rewind does this."""
        condition = ("status = 'done' AND settled_block > ? "
                     "AND batch_key IN (SELECT key FROM outbox WHERE status IN ('pending', 'sent'))")
        cursor, _ = self.follower.cursor()
        if self.db.execute(f"SELECT 1 FROM jobs WHERE {condition} LIMIT 1", (cursor,)).fetchone() is None:
            return  # the usual case: no write lock taken
        with self.bot.transaction(self.db):
            reopened = self.db.execute(
                f"UPDATE jobs SET status = 'submitted', settled_block = NULL, settled_at = NULL WHERE {condition}",
                (cursor,),
            ).rowcount
        log.warning("deliveries removed by a reorg; waiting for them again", extra={"jobs": reopened})

    def submit_signed(self) -> None:
        """Everything signed, still answerable and worth its gas: one transaction per batch."""
        if self.db.execute("SELECT 1 FROM jobs WHERE status IN ('new', 'signed') LIMIT 1").fetchone() is None:
            return  # nothing to expire or send: no RPC on an idle tick
        chain_time = self._latest_timestamp()
        gas_price = int(self.w3.eth.gas_price)
        with self.bot.transaction(self.db):
            self.db.execute(
                "UPDATE jobs SET status = 'expired' WHERE status IN ('new', 'signed') AND expires_at < ?",
                (chain_time + EXPIRY_MARGIN_SECONDS,),
            )
        signed = [r for r in self.db.execute("SELECT * FROM jobs WHERE status = 'signed' ORDER BY block_number")
                  if int(r["max_gas_price"]) >= gas_price]  # never deliver at a loss
        for start in range(0, len(signed), self.settings.batch_max):
            batch = self._drop_settled(signed[start : start + self.settings.batch_max])
            if batch:
                self._enqueue_delivery(batch)

    def _latest_timestamp(self) -> int:
        """The head block's timestamp, read raw: web3's block formatters walk every transaction hash of a
        full block, which at 20 ticks a second was a large share of the relay's CPU."""
        reply = self.w3.provider.make_request("eth_getBlockByNumber", ["latest", False])  # type: ignore[arg-type]
        result = reply.get("result") if isinstance(reply, dict) else None
        if not result:
            return int(self.w3.eth.get_block("latest")["timestamp"])  # an error reply: web3 raises it
        return int(result["timestamp"], 16)

    def _raw_call(self, call: dict[str, str], block: int) -> bytes:
        """eth_call without web3's request and result formatters (an error reply goes through web3 to raise)."""
        reply = self.w3.provider.make_request("eth_call", [call, hex(block)])  # type: ignore[arg-type]
        result = reply.get("result") if isinstance(reply, dict) and "error" not in reply else None
        if not isinstance(result, str):
            return bytes(self.w3.eth.call(call, block_identifier=block))  # type: ignore[arg-type]
        return bytes.fromhex(result.removeprefix("0x"))

    def _drop_settled(self, rows: list[Any]) -> list[Any]:
        """One read of the ids' statuses right before sending: another relay may have been first."""
        block = int(self.w3.eth.block_number)
        call = {"to": self.oracle.address,
                "data": "0x" + self._statuses_of.data([_word(r["request_id"]) for r in rows]).hex()}
        statuses = self._statuses_of.result(self._raw_call(call, block))[0]
        now = time.time()
        # settled_block = the block read: a reorg below it puts the job back to `signed` (on_rewind).
        settled = [(SETTLED_JOB_STATUS[int(s)], block, now, r["request_id"]) for r, s in zip(rows, statuses, strict=True)
                   if int(s) in SETTLED_JOB_STATUS]
        if settled:
            with self.bot.transaction(self.db):
                self.db.executemany("UPDATE jobs SET status = ?, settled_block = ?, settled_at = ? "
                                    "WHERE request_id = ? AND status = 'signed'", settled)
            log.info("dropped settled ids before sending", extra={"count": len(settled)})
        return [r for r, s in zip(rows, statuses, strict=True) if int(s) == PENDING]

    def _enqueue_delivery(self, rows: list[Any]) -> None:
        ids = [r["request_id"] for r in rows]
        attempt = max(int(r["submit_attempts"]) for r in rows) + 1
        key = "nos:" + hashlib.sha256(",".join(ids).encode()).hexdigest()[:32] + f":{attempt}"
        gas: int | None = None
        if len(rows) == 1:
            # Estimated: if another relay was first, estimation fails and nothing is sent.
            row = rows[0]
            data = self._deliver.data(_word(row["request_id"]), _word(row["params_hash"]), bytes(row["data"]),
                                      bytes(row["signature"]))
        else:
            # A batch cannot revert for a settled id (it skips it), so its gas is computed, not estimated.
            data = self._deliver_batch.data(
                [(_word(r["request_id"]), _word(r["params_hash"]), bytes(r["data"]), bytes(r["signature"]))
                 for r in rows])
            gas = BATCH_BASE_GAS + sum(
                RESPONSE_GAS + int(r["callback_gas_limit"]) * 64 // 63 + 16 * len(bytes(r["data"])) for r in rows)
        with self.bot.transaction(self.db):
            self.sender.enqueue(self.db, key, self.oracle.address, HexBytes(data), gas=gas)
            self.db.executemany(
                "UPDATE jobs SET status = 'submitted', batch_key = ?, submit_attempts = ? WHERE request_id = ?",
                [(key, attempt, request_id) for request_id in ids],
            )
        log.info("delivery enqueued", extra={"key": key, "responses": len(ids)})

    # -- status and running ----------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        return {row["status"]: int(row["n"]) for row in rows}

    def _status(self) -> dict[str, Any]:
        return {"oracle": self.oracle.address, "operator": self.account.address, "jobs": self.counts()}

    def _declare_metrics(self) -> None:
        metrics = self.bot.metrics
        metrics.sql_gauge(
            "dccn_oracle_requests", "Oracle requests seen, by state: answered (done), failed (failed, unanswerable), "
            "pending (new, signed, submitted), closed (expired, cancelled).", self.db,
            f"SELECT {JOB_STATE_SQL}, COUNT(*) FROM jobs GROUP BY 1", ["state"],
            known=("answered", "failed", "pending", "closed"))
        metrics.sql_gauge("dccn_oracle_jobs", "Relay jobs by their own status.", self.db,
                          "SELECT status, COUNT(*) FROM jobs GROUP BY status", ["status"])

    def start_workers(self) -> list[threading.Thread]:
        if self.stop_event.is_set():  # stopped before (tests drive a relay in rounds): a new flag
            self.stop_event = threading.Event()
        threads = []
        for number in range(self.settings.workers):
            socket_path = next(self._enclaves)
            thread = threading.Thread(target=self._worker, args=(socket_path, self.stop_event), daemon=True,
                                      name=f"fetch-{number}")
            thread.start()
            threads.append(thread)
        return threads

    def run(self) -> None:
        """The fetch workers, then the bot's loop until SIGTERM / SIGINT."""
        self.start_workers()
        try:
            self.bot.run()
        finally:
            self.stop_event.set()


def enclave_check(socket_path: str) -> Check:
    """The enclave behind `socket_path` answers `info`."""

    def check() -> str | None:
        try:
            with EnclaveClient(socket_path, timeout=5) as client:
                reply = client.call({"op": "info"})
        except WireError as err:
            return str(err)
        return None if reply.get("op") == "info" else f"unexpected answer {reply.get('op')!r} to info"

    return check


def load_settings(config: Path | None, **overrides: Any) -> RelayConfig:
    return load_config(RelayConfig, config, "NOS_RELAY", **overrides)


@click.group(help="The NOS relay: follows oracle requests, has enclaves answer them, delivers in batches.")
def main() -> None:
    pass


_config_option = click.option("--config", type=click.Path(dir_okay=False, path_type=Path), default=None,
                              help="YAML/TOML config file (env NOS_RELAY_<FIELD> overrides it).")


@main.command("run", help="Run the relay until SIGTERM (health at --health-port).")
@_config_option
@click.option("--rpc-url", default=None, help="JSON-RPC URL of the chain.")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Deployment manifest (deployments/<chain-id>.json).")
@click.option("--keystore", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Encrypted keystore of the account that submits deliveries.")
@click.option("--db", default=None, help="SQLite state file, or a postgresql:// URL (relays sharing it: one active, the others stand by).")
@click.option("--enclave-socket", "enclave_sockets", multiple=True, help="Enclave Unix socket (repeatable).")
@click.option("--health-port", type=int, default=None, help="Loopback port of GET /health.")
def run(config: Path | None, rpc_url: str | None, manifest: Path | None, keystore: Path | None, db: str | None,
        enclave_sockets: tuple[str, ...], health_port: int | None) -> None:
    def body() -> None:
        settings = load_settings(config, rpc_url=rpc_url, manifest=manifest, keystore=keystore, db=db,
                                 enclave_sockets=list(enclave_sockets) or None, health_port=health_port)
        configure_logging("nos-relay", settings.log_level)
        # Claim the database and bind the health port before anything connects or works.
        with ExitStack() as claims:
            claim_instance(claims, settings.db, "nos-relay")
            health_socket = (bind_tcp("127.0.0.1", settings.health_port, "health_port")
                             if settings.health_port is not None else None)
            relay = Relay(settings, health_socket=health_socket)
            claim_signing_key(claims, relay.w3, relay.account.address, "nos-relay", settings.db)
            relay.run()

    run_cli(body)


@main.command("register-enclave", help="Admin: register the enclave behind --enclave-socket with the oracle "
                                       "and publish its encryption key (idempotent).")
@click.option("--rpc-url", required=True, help="JSON-RPC URL of the chain.")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Deployment manifest holding NosOracle.")
@click.option("--keystore", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Keystore of the oracle owner.")
@click.option("--password-env", default="NOS_ADMIN_PASSWORD", show_default=True)
@click.option("--enclave-socket", required=True, help="The enclave's Unix socket (asked for key and measurement).")
@click.option("--db", required=True,
              help="SQLite file (or postgresql:// URL) of the admin's transaction outbox (makes re-runs idempotent).")
def register_enclave(rpc_url: str, manifest: Path, keystore: Path, password_env: str, enclave_socket: str,
                     db: str) -> None:
    def body() -> None:
        binding = bind_chain(rpc_url, manifest, label="register-enclave")
        oracle = binding.contract(ORACLE)
        account = load_account(keystore, password_env)
        try:
            with EnclaveClient(enclave_socket) as client:
                info = client.call({"op": "info"})
        except WireError as err:
            raise ConfigError(str(err)) from err
        address, measurement = info["address"], HexBytes(info["measurement"])
        admin = Bot("nos-relay-admin", db=open_db(db))
        sender = admin.chain(binding, account=account, drive_sender=False, rpc_dependency=None,
                             balance_dependency=None).sender
        assert sender is not None
        if not admin.lead_once():
            raise ConfigError(f"another command is sending for {account.address} through {db}; retry when it is done")
        try:
            _register(oracle, sender, info, address, measurement)
        finally:
            for lease in admin.leases:  # a re-run need not wait for the lease to expire
                lease.release()

    run_cli(body)


def _register(oracle: Any, sender: TxSender, info: dict[str, Any], address: str, measurement: HexBytes) -> None:
    """Register the enclave, then publish its encryption key; each step only if not done yet."""
    if bytes(oracle.functions.enclave_measurement(address).call()) == bytes(measurement):
        click.echo(f"enclave {address} already registered with measurement {measurement.to_0x_hex()}")
    else:
        call = oracle.functions.registerEnclave(address, bytes(measurement))
        tx_hash = _send_admin(sender, f"register:{address}:{measurement.to_0x_hex()}", call, "registration")
        click.echo(f"registered enclave {address} (measurement {measurement.to_0x_hex()}) in tx {tx_hash}")
    # Then its encryption key, signed by the enclave, so dApps read it from chain for private requests.
    encryption_key = bytes.fromhex(info["encryption_public_key"])
    if bytes(oracle.functions.enclaveEncryptionKey(address).call()) == encryption_key:
        click.echo(f"encryption key {encryption_key.hex()} already published")
        return
    call = oracle.functions.publishEncryptionKey(encryption_key, HexBytes(info["encryption_key_signature"]))
    tx_hash = _send_admin(sender, f"publish-key:{address}:{encryption_key.hex()}", call, "publishing the key")
    click.echo(f"published encryption key {encryption_key.hex()} of enclave {address} in tx {tx_hash}")


def _send_admin(sender: TxSender, key: str, call: Any, what: str) -> str:
    entry = sender.send_now(key, call.address, HexBytes(call._encode_transaction_data()))
    if entry.status != "mined":
        click.echo(f"error: {what} {entry.status}: {entry.error or entry.tx_hash}", err=True)
        sys.exit(1)
    return str(entry.tx_hash)


@main.command("status", help="Print the relay's job counts from its database.")
@click.option("--db", required=True, help="SQLite state file, or the relay's postgresql:// URL.")
def status(db: str) -> None:
    if postgres_dsn(db) is None and not Path(db).is_file():
        click.echo(f"error: no relay database at {db}", err=True)
        sys.exit(2)

    def body() -> None:
        conn = open_db(db, SCHEMA)
        for row in conn.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status ORDER BY status"):
            click.echo(f"{row['status']:<10} {row['n']}")

    run_cli(body)


if __name__ == "__main__":
    main()
