"""The one shape every long-running service has (ApeWorX silverback's model).

    bot = Bot("plasma-operator", db=db, health_socket=sock)
    root = bot.chain(binding, account=operator, confirmations=2, start_block=deploy_block)

    bot.on(rootchain.events.Deposit)(handlers.on_deposit)   # handler(event, db)
    bot.on_rewind()(handlers.rewind)                         # handler(first_removed_block, db)
    bot.every(5.0)(build_block)                              # fn()
    bot.on_settled("submitBlock")(handlers.block_settled)    # handler(entry, db): outbox outcomes
    bot.on_lead(reload_state)                                # fn(): this instance became the active one
    bot.run()                                                # until SIGTERM / SIGINT

The bot owns what services used to wire by hand: per chain a ChainFollower (events ->
handlers, exactly once, reorg-safe) and a TxSender (the durable outbox), the health
endpoint with its dependency checks, and the Prometheus metrics.

Leadership: on SQLite a second instance refuses to start (the store's file lock), so the
bot always leads. On PostgreSQL several instances may share one database; per chain and
signing key the one holding the lease (dccn_common.sender.Lease) is active, the others
stand by. Every write the bot makes (follower, outbox, `bot.transaction()`) checks the
lease's epoch in its own transaction, so an instance paused past its lease commits and
broadcasts nothing after a standby took over. The read models live in the shared
database, so a standby is warm: on takeover it runs the `on_lead` hooks (reload what the
service caches in memory) and continues from the shared cursor and outbox.

Each tick: renew the leases; as leader, poll the followers, run the periodic tasks that
are due, drive the outboxes and hand final outcomes to the `on_settled` handlers. Errors
(an RPC outage, say) are logged and retried with backoff; the health endpoint reports them.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from eth_account.signers.local import LocalAccount
from web3 import Web3

from dccn_common.chain import ChainBinding, reachable_chain_id
from dccn_common.config import ConfigError
from dccn_common.follower import ChainEvent, ChainFollower
from dccn_common.health import BalanceCheck, Check, Dependencies, HealthServer, balance_check, rpc_check
from dccn_common.keys import KeystoreError, claim_signer
from dccn_common.listen import BindError
from dccn_common.manifest import ManifestError
from dccn_common.metrics import ServiceMetrics
from dccn_common.sender import DEFAULT_LEASE_SECONDS, FINAL_STATUSES, Lease, LeaseLost, OutboxEntry, TxSender
from dccn_common.store import (
    Connection,
    StoreError,
    apply_schema,
    is_postgres,
    open_store,
    postgres_dsn,
    transaction,
)

log = logging.getLogger(__name__)

# Errors a user can fix; the CLI prints them as one line and exits with code 2.
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, KeystoreError, ManifestError, BindError, StoreError)

EventHandler = Callable[[ChainEvent, Connection], None]
RewindHandler = Callable[[int, Connection], None]
SettledHandler = Callable[[OutboxEntry, Connection], None]

SETTLED_SCHEMA = """
CREATE TABLE IF NOT EXISTS bot_settled (
    bot TEXT NOT NULL,
    key TEXT NOT NULL,
    status TEXT NOT NULL,
    block_hash TEXT NOT NULL,
    PRIMARY KEY (bot, key)
)
"""
_BOTS_IN_PROCESS = itertools.count(1)
# Outcomes handed to on_settled handlers per pass at most (the rest wait for the next tick).
SETTLE_BATCH = 500


@dataclass
class _Task:
    name: str
    interval: float
    fn: Callable[[], Any]
    next_run: float = 0.0


@dataclass
class _Settled:
    kind: str
    handler: SettledHandler


@dataclass
class BotChain:
    """One chain a bot follows and/or sends on."""

    bot: Bot
    label: str
    w3: Web3
    chain_id: int
    db: Connection
    follower_name: str
    confirmations: int
    start_block: int
    sender: TxSender | None
    lease: Lease | None
    drive_sender: bool
    settled: list[_Settled] = field(default_factory=list)
    _follower: ChainFollower | None = None

    @property
    def follower(self) -> ChainFollower:
        """The chain's follower, created on first use (a bot that declares no handler polls no logs)."""
        if self._follower is None:
            follower = ChainFollower(self.w3, self.db, self.follower_name, confirmations=self.confirmations,
                                     start_block=self.start_block)
            follower.guard = self.bot.fence
            if self.sender is not None:
                self.sender.watch_rewinds(follower)  # removed transactions are 'sent' again before handlers run
            self.bot.metrics.watch_follower(follower)
            self._follower = follower
        return self._follower

    @property
    def has_follower(self) -> bool:
        return self._follower is not None


class Bot:
    def __init__(
        self,
        name: str,
        *,
        db: Connection,
        poll_interval: float = 1.0,
        health_host: str = "127.0.0.1",
        health_port: int | None = None,
        health_socket: socket.socket | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
        dependencies: dict[str, Check] | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        holder: str | None = None,
    ) -> None:
        self.name = name
        self.db = db
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        ordinal = next(_BOTS_IN_PROCESS)
        # Two bots of one process (a one-shot command beside a service, tests) are two holders.
        self.holder = holder or (f"{name} pid {os.getpid()} on {socket.gethostname()}"
                                 + (f" (bot {ordinal})" if ordinal > 1 else ""))
        self.stop_event = threading.Event()
        self.chains: list[BotChain] = []
        self._tasks: list[_Task] = []
        self._lead_hooks: list[Callable[[], Any]] = []
        self._extra_status = status
        self._last_error: str | None = None
        self._last_tick = 0.0
        self._leading = False
        self.metrics = ServiceMetrics(name)
        if health_socket is not None:
            self._health: HealthServer | None = HealthServer(self.status, sock=health_socket,
                                                             metrics=self.metrics.exposition)
        elif health_port is not None:
            self._health = HealthServer(self.status, health_host, health_port, metrics=self.metrics.exposition)
        else:
            self._health = None
        self.dependencies = Dependencies()
        for dep_name, check in (dependencies or {}).items():
            self.add_dependency(dep_name, check)
        self._declare_metrics()

    # -- declaration ---------------------------------------------------------------------

    def chain(
        self,
        chain: ChainBinding | Web3,
        *,
        account: LocalAccount | None = None,
        db: Connection | None = None,
        label: str | None = None,
        follower_name: str | None = None,
        confirmations: int = 0,
        start_block: int = 0,
        send: bool = True,
        drive_sender: bool = True,
        rpc_dependency: str | None = "rpc",
        balance_dependency: str | None = "signing_balance",
        sender_options: dict[str, Any] | None = None,
    ) -> BotChain:
        """Add a chain: its follower (created once a handler is declared) and, with `account`
        and `send`, its outbox. `drive_sender=False` leaves `sender.process()` to the service
        (a task that must act on the outcome at once, say)."""
        if isinstance(chain, ChainBinding):
            w3, chain_id, label = chain.w3, chain.chain_id, label or chain.label
        else:
            w3, chain_id = chain, reachable_chain_id(chain, label or "chain")
        label = label or f"chain {chain_id}"
        db = db if db is not None else self.db
        lease = None
        if account is not None and is_postgres(db):
            lease = Lease(db, chain_id, account.address, holder=self.holder, seconds=self.lease_seconds)
        sender = TxSender(w3, db, account, lease=lease, **(sender_options or {})) if account and send else None
        bound = BotChain(self, label, w3, chain_id, db, follower_name or self.name, confirmations, start_block,
                         sender, lease, drive_sender)
        self.chains.append(bound)
        if rpc_dependency:
            self.add_dependency(rpc_dependency, rpc_check(w3, chain_id))
        if sender is not None:
            self.metrics.watch_sender(sender)
            if balance_dependency:
                self.add_dependency(balance_dependency, balance_check(w3, sender.address, db))
        if account is not None:
            # SQLite: the file lock already made this the one instance; PostgreSQL: the leases.
            self.metrics.add_signer(account.address, lambda: self._leading or not self.leases)
        return bound

    def add_dependency(self, name: str, check: Check) -> None:
        self.dependencies.add(name, check)
        if isinstance(check, BalanceCheck):
            self.metrics.watch_balance(name, check)

    def on(self, event: Any, *, chain: BotChain | None = None,
           label: str | None = None) -> Callable[[EventHandler], EventHandler]:
        """Decorator: `handler(event, db)` for every log of `event` (a web3 contract's
        `contract.events.Name`), in the transaction that marks the log consumed."""
        if not all(hasattr(event, attr) for attr in ("event_name", "abi", "address")):
            raise TypeError(f"{self.name}: on() takes a contract event (contract.events.Name), not {event!r}")
        target = chain or self._chain_of(getattr(event, "w3", None))

        def register(handler: EventHandler) -> EventHandler:
            target.follower.subscribe(event.address, [event.abi], event.event_name, handler, label=label)
            return handler

        return register

    def on_rewind(self, *, chain: BotChain | None = None) -> Callable[[RewindHandler], RewindHandler]:
        """Decorator: `handler(first_removed_block, db)` undoes what removed blocks caused."""
        target = chain or self._only_chain("on_rewind")

        def register(handler: RewindHandler) -> RewindHandler:
            target.follower.on_rewind(handler)
            return handler

        return register

    def on_settled(self, kind: str, *, chain: BotChain | None = None) -> Callable[[SettledHandler], SettledHandler]:
        """Decorator: `handler(entry, db)` once for each outbox row keyed `kind:...` that reached
        a final status (FINAL_STATUSES), in the transaction that records it handled. A row a
        reorg reopened and that settles again, in another block or with another status, is
        handed over again: handlers are idempotent."""
        target = chain or self._only_chain("on_settled", with_sender=True)
        if target.sender is None:
            raise ValueError(f"{self.name}: on_settled needs a chain with a sender")
        apply_schema(target.db, "bot_settled", 1, SETTLED_SCHEMA)

        def register(handler: SettledHandler) -> SettledHandler:
            target.settled.append(_Settled(kind, handler))
            return handler

        return register

    def every(self, seconds: float, name: str | None = None) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
        """Decorator: run `fn()` every `seconds` while this instance leads."""
        def register(fn: Callable[[], Any]) -> Callable[[], Any]:
            self._tasks.append(_Task(name or fn.__name__, seconds, fn))
            return fn

        return register

    def on_lead(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Register `fn()`, run each time this instance becomes the active one (also at the first
        tick), before anything else: reload whatever the service keeps in memory."""
        self._lead_hooks.append(fn)
        return fn

    def _chain_of(self, w3: Web3 | None) -> BotChain:
        for candidate in self.chains:
            if candidate.w3 is w3:
                return candidate
        return self._only_chain("on")

    def _only_chain(self, what: str, *, with_sender: bool = False) -> BotChain:
        candidates = [c for c in self.chains if c.sender is not None] if with_sender else self.chains
        if len(candidates) != 1:
            raise ValueError(f"{self.name}: {what} needs chain= (the bot has {len(candidates)} candidate chains)")
        return candidates[0]

    # -- leadership ----------------------------------------------------------------------

    @property
    def leases(self) -> list[Lease]:
        return [c.lease for c in self.chains if c.lease is not None]

    @property
    def is_leader(self) -> bool:
        return self._leading

    def fence(self, db: Connection) -> None:
        """Inside a write transaction: raise LeaseLost unless this instance still holds its leases."""
        leases = self.leases
        if not leases:
            return
        if not self._leading:
            raise LeaseLost(f"{self.name} stands by: another instance holds the lease")
        for lease in leases:
            if lease.db is db:
                lease.check(db)

    @contextmanager
    def transaction(self, db: Connection | None = None) -> Iterator[Connection]:
        """A write transaction of the service's own (tasks, API), fenced like the bot's."""
        conn = db if db is not None else self.db
        with transaction(conn):
            self.fence(conn)
            yield conn

    def lead_once(self) -> bool:
        """Take (or renew) the leases once without running the loop, for a one-shot command that
        writes through the bot; runs the on_lead hooks on becoming active. Returns whether it leads."""
        return self._renew_leadership()

    def _renew_leadership(self) -> bool:
        leases = self.leases
        leading = True
        try:
            for index, lease in enumerate(leases):
                # Always in the same order: two instances never hold half of each other's leases.
                if not lease.renew():
                    leading = False
                    for later in leases[index + 1:]:
                        later.release()
                    break
        except Exception:
            # The lease could not be renewed (the database is down or the session lost): until it
            # is, this instance must not believe, or report, that it leads.
            if self._leading:
                log.warning("standing by: the lease cannot be renewed", extra={"service_name": self.name})
            self._leading = False
            raise
        if leading and not self._leading:
            self._leading = True  # the hooks may write, through the fence
            if leases:
                log.warning("leading", extra={"service_name": self.name, "holder": self.holder,
                                              "epochs": [lease.epoch for lease in leases]})
            try:
                for hook in self._lead_hooks:
                    hook()
            except Exception:
                self._leading = False  # the next tick runs every hook again
                raise
        elif not leading and self._leading:
            log.warning("standing by", extra={"service_name": self.name, "holder": self.holder})
        self._leading = leading
        return leading

    # -- the loop ------------------------------------------------------------------------

    @property
    def health_port(self) -> int | None:
        return self._health.port if self._health else None

    @property
    def role(self) -> str:
        return "leader" if self._leading else "standby"

    def status(self) -> dict[str, Any]:
        problems = self.dependencies.problems()
        body: dict[str, Any] = {
            "service": self.name,
            "ok": self._last_error is None and self._last_tick > 0 and not problems,
            "role": self.role,
            "last_tick": self._last_tick,
            "last_error": self._last_error,
            "dependencies": self.dependencies.report(),
            "reasons": problems,
        }
        followers = [c.follower for c in self.chains if c.has_follower]
        if len(followers) == 1:
            body["cursor"] = followers[0].status.cursor
            body["head"] = followers[0].status.head
        senders = [c.sender for c in self.chains if c.sender is not None]
        if senders:
            body["pending_transactions"] = sum(s.pending_count() for s in senders)
        if self._extra_status:
            body.update(self._extra_status())
        return body

    def tick(self) -> None:
        """One pass of everything; raises on failure (run() catches and backs off)."""
        self.dependencies.refresh()
        if not self._renew_leadership():
            return
        for bound in self.chains:
            if bound.has_follower:
                bound.follower.poll_once()
        now = time.monotonic()
        for task in self._tasks:
            if now >= task.next_run:
                task.fn()
                task.next_run = now + task.interval
        for bound in self.chains:
            if bound.sender is not None and bound.drive_sender:
                bound.sender.process()
            if bound.settled:
                self.settle(bound)
        self.metrics.observe()

    def settle(self, bound: BotChain) -> int:
        """Hand final outbox outcomes not yet handled to the on_settled handlers; returns how many."""
        handled = 0
        for settled in bound.settled:
            rows = bound.db.execute(
                "SELECT o.key FROM outbox o LEFT JOIN bot_settled s ON s.bot = ? AND s.key = o.key "
                f"WHERE o.status IN ({', '.join('?' * len(FINAL_STATUSES))}) AND o.key LIKE ? "
                "AND (s.key IS NULL OR s.status <> o.status OR s.block_hash <> COALESCE(o.block_hash, '')) "
                "ORDER BY o.created_at LIMIT ?",
                (self.name, *FINAL_STATUSES, f"{settled.kind}:%", SETTLE_BATCH),
            ).fetchall()
            for row in rows:
                with self.transaction(bound.db) as db:
                    entry = bound.sender.entry(row["key"]) if bound.sender else None
                    if entry is None or entry.status not in FINAL_STATUSES:
                        continue  # reopened by a reorg since the query
                    settled.handler(entry, db)
                    db.execute("INSERT OR REPLACE INTO bot_settled (bot, key, status, block_hash) VALUES (?, ?, ?, ?)",
                               (self.name, entry.key, entry.status, entry.block_hash or ""))
                    handled += 1
        return handled

    def run(self) -> None:
        if threading.current_thread() is threading.main_thread():  # signals reach only the main thread
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop_event.set())
        if self._health:
            self._health.start()
            log.info("health endpoint up", extra={"port": self._health.port})
        log.info("service started", extra={"service_name": self.name})
        backoff = self.poll_interval
        try:
            while not self.stop_event.is_set():
                try:
                    self.tick()
                    self._last_tick = time.time()
                    self._last_error = None
                    backoff = self.poll_interval
                except LeaseLost as err:
                    # Another instance took over mid-pass: nothing of this pass committed after that.
                    self._leading = False
                    self._last_tick = time.time()
                    self._last_error = None
                    log.warning("lease lost mid-pass; standing by", extra={"error": str(err)})
                    backoff = self.poll_interval
                except Exception as err:
                    self._last_error = f"{type(err).__name__}: {err}"[:500]
                    log.warning("tick failed; retrying", extra={"error": self._last_error})
                    backoff = min(backoff * 2, 30.0)
                self.stop_event.wait(backoff)
        finally:
            for lease in self.leases:  # a clean stop hands over at once, not after the lease expires
                try:
                    lease.release()
                except Exception as err:  # the database may be what failed
                    log.warning("lease not released", extra={"error": str(err)})
            self._leading = False
            if self._health:
                self._health.stop()
            log.info("service stopped", extra={"service_name": self.name})

    def _declare_metrics(self) -> None:
        metrics = self.metrics
        metrics.gauge("dccn_service_last_tick_timestamp_seconds", "Unix time the last tick succeeded (0: none yet).",
                      lambda: self._last_tick)
        metrics.gauge("dccn_service_tick_ok", "1 when the last tick succeeded, 0 when it failed.",
                      lambda: float(self._last_error is None and self._last_tick > 0))
        metrics.gauge("dccn_dependency_ok", "1 while a dependency check passes, 0 while it fails.",
                      lambda: [((name,), float(state == "ok")) for name, state in self.dependencies.report().items()
                               if state != "unchecked"], ["dependency"])


# -- claims and the command line ---------------------------------------------------------------


def shares_database(store: str | Path) -> bool:
    """Instances of a service may share this store (PostgreSQL: the lease picks the active one)."""
    return postgres_dsn(store) is not None


def claim_instance(claims: ExitStack, store: str | Path, service: str) -> None:
    """Claim the service's store before anything writes to it. SQLite: a second instance is
    refused. PostgreSQL: instances share the database; the bot's lease decides who is active."""
    claims.enter_context(open_store(store, service, standbys=shares_database(store)))


def claim_signing_key(claims: ExitStack, w3: Web3, address: str, service: str, store: str | Path) -> None:
    """Refuse a second service signing with one key on one chain on this host (nonces would
    collide), unless the store is shared: then the lease fences the key across hosts."""
    if not shares_database(store):
        claims.enter_context(claim_signer(w3, address, service))


def exit_with_error(message: str, code: int = 2) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def run_cli(fn: Callable[[], Any]) -> Any:
    """Run a CLI body, turning user errors into one line on stderr and exit code 2."""
    try:
        return fn()
    except USER_ERRORS as err:
        exit_with_error(str(err))
