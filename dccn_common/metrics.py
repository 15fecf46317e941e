"""Prometheus metrics of one service, served at GET /metrics beside /health.

    metrics = ServiceMetrics("nos-relay")        # Service makes one: service.metrics
    metrics.watch_follower(follower)             # lag, events handled
    metrics.watch_sender(sender)                 # outbox depth, latency, gas, leader
    metrics.sql_gauge("dccn_oracle_requests", "...", db, "SELECT state, COUNT(*) ...", ["state"])
    body, content_type = metrics.exposition()

Each service has its own `CollectorRegistry` (not prometheus_client's global one), so
several services in one process never clash. Figures are read at scrape time: from the
follower's status, and from the durable tables through a read-only connection of each
database (the service's own connection stays with its thread; counters read from tables,
such as events handled and gas spent, survive restarts). Only the send-to-confirm latency
is observed as it happens: after each service tick, and at each scrape after the outbox
figures are read (so a scrape that counts a row mined has timed it). Every sample has a
`service` label.
See docs/operations.md for the list.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from dccn_common.store import Connection, PgConnection

if TYPE_CHECKING:
    from dccn_common.follower import ChainFollower, FollowerStatus
    from dccn_common.health import BalanceCheck
    from dccn_common.sender import TxSender

log = logging.getLogger(__name__)

OUTBOX_STATUSES = ("pending", "sent", "mined", "reverted", "failed")
# Seconds from first broadcast to receipt: one block on a fast chain up to an hour of bumps.
LATENCY_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

# One sample: label values (after `service`) and the value.
Sample = tuple[tuple[str, ...], float]
# A figure read at scrape time: one value (no labels) or samples.
Reader = Callable[[], float | int | Iterable[Sample]]
SampleReader = Callable[[], Iterable[Sample]]
# Query parameters, or a function giving them when the query runs (the current time, say).
Params = Sequence[Any] | Callable[[], Sequence[Any]]


@dataclass
class _Figure:
    name: str
    doc: str
    kind: str  # "gauge" or "counter"
    labels: tuple[str, ...]
    read: Reader


class ServiceMetrics:
    """The metrics of one service: its own registry, figures read at scrape time."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.started = time.time()
        self.registry = CollectorRegistry(auto_describe=False)
        self._figures: list[_Figure] = []
        self._signers: dict[str, Callable[[], bool]] = {}
        self._readers = _Readers()
        self._latency_watches: list[_LatencyWatch] = []
        self._followers: list[ChainFollower] = []
        self._observing = threading.Lock()  # the tick thread and scrapes both observe
        # The figures read from the database first, the in-memory series after them: those only
        # run ahead of the database (a handler counts before its commit; a scrape times the rows
        # it saw confirmed), so one scrape never shows more handled or confirmed than counted or timed.
        self.registry.register(_Collector(self))
        self._events = Counter("dccn_follower_events_by_type",
                               "Events handled since the process started, by contract and event.",
                               ["service", "follower", "contract", "event"], registry=self.registry)
        self._errors = Counter("dccn_metrics_read_errors", "Figures that could not be read at a scrape.",
                               ["service", "figure"], registry=self.registry)
        self._latency = Histogram("dccn_outbox_confirm_latency_seconds",
                                  "Seconds from a transaction's first broadcast to its receipt.",
                                  ["service", "chain", "signer"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.gauge("dccn_service_start_time_seconds", "Unix time the service process started.",
                   lambda: self.started)
        # SQLite: each service is the single active instance (a second one refuses to start);
        # PostgreSQL: the Bot's lease decides (see dccn_common.bot).
        self.gauge("dccn_leader", "1 while this instance is the active one for the signing key.",
                   lambda: [((signer,), float(leading())) for signer, leading in self._signers.items()], ["signer"])

    # -- declaring figures ---------------------------------------------------------------

    def gauge(self, name: str, doc: str, read: Reader, labels: Sequence[str] = ()) -> None:
        self._figures.append(_Figure(name, doc, "gauge", tuple(labels), read))

    def counter(self, name: str, doc: str, read: Reader, labels: Sequence[str] = ()) -> None:
        """`name` without `_total` (the exposition appends it)."""
        self._figures.append(_Figure(name, doc, "counter", tuple(labels), read))

    def sql_gauge(self, name: str, doc: str, db: Connection, sql: str, labels: Sequence[str] = (),
                  params: Params = (), known: Sequence[str] = ()) -> None:
        """A gauge read from `db`: each result row holds the label values, then the value.
        `known` values of a single label are reported as 0 when no row has them."""
        read: Reader = self._sql_reader(db, sql, params)
        if known:
            read = _zero_filled(read, known)
        self.gauge(name, doc, read, labels)

    def add_signer(self, address: str, leading: Callable[[], bool] | None = None) -> None:
        """A key this service signs with; the leader gauge reports `leading()` (default: always)."""
        if leading is not None or address not in self._signers:
            self._signers[address] = leading or (lambda: True)

    def _sql_reader(self, db: Connection, sql: str, params: Params) -> SampleReader:
        def read() -> Iterable[Sample]:
            rows = self._readers.query(db, sql, params() if callable(params) else params)
            return [(tuple(str(v) for v in row[:-1]), float(row[-1] or 0)) for row in rows]

        return read

    # -- the shared core -------------------------------------------------------------------

    def watch_follower(self, follower: ChainFollower) -> None:
        if follower in self._followers:
            return
        self._followers.append(follower)
        labels = ("follower",)
        name = follower.name

        def polled(value: Callable[[FollowerStatus], float]) -> Reader:
            # Read at scrape time, and only once the follower has polled (before, head and cursor are -1).
            return lambda: [((name,), float(value(follower.status)))] if follower.status.last_poll > 0 else []

        self.gauge("dccn_follower_head_block", "Chain head the follower saw at its last poll.",
                   polled(lambda status: status.head), labels)
        self.gauge("dccn_follower_cursor_block", "Last block the follower processed.",
                   polled(lambda status: status.cursor), labels)
        self.gauge("dccn_follower_lag_blocks", "Head minus cursor (at least the confirmations it waits for).",
                   polled(lambda status: status.head - status.cursor), labels)
        self.gauge("dccn_follower_confirmations", "Blocks the follower waits before reading logs.",
                   lambda: [((name,), float(follower.confirmations))], labels)
        self.gauge("dccn_follower_last_poll_timestamp_seconds", "Unix time of the last successful poll.",
                   polled(lambda status: status.last_poll), labels)
        self.counter("dccn_follower_events_handled", "Events handled (durable: counted in follower_consumed).",
                     self._sql_reader(follower.db, "SELECT ?, COUNT(*) FROM follower_consumed WHERE follower = ?",
                                      (name, name)), labels)
        with self._observing:
            self._count_events(follower)

    def watch_sender(self, sender: TxSender) -> None:
        if any(watch.sender is sender for watch in self._latency_watches):
            return
        address = sender.address
        self.add_signer(address, lambda: bool(sender.is_leader))
        db = sender.db
        # One key may send on two chains (the bridge relayer): the chain id tells the outboxes apart.
        chain = _ChainLabel(sender.w3)
        counts = self._sql_reader(db, "SELECT status, COUNT(*) FROM outbox WHERE sender = ? GROUP BY status",
                                  (address,))

        def depth() -> Iterable[Sample]:
            found = {values[0]: value for values, value in counts()}
            return [((chain(), address, s), found.get(s, 0.0)) for s in OUTBOX_STATUSES]

        self.gauge("dccn_outbox_transactions", "Outbox rows by status (pending and sent are unfinished).",
                   depth, ("chain", "signer", "status"))
        self.gauge("dccn_outbox_oldest_unfinished_age_seconds",
                   "Age of the oldest pending or sent row (0 when none).",
                   self._sql_reader(db, "SELECT ?, ?, COALESCE(? - MIN(created_at), 0) FROM outbox "
                                        "WHERE sender = ? AND status IN ('pending', 'sent')",
                                    lambda: (chain(), address, time.time(), address)), ("chain", "signer"))
        self.counter("dccn_outbox_gas_used", "Gas used by this signer's mined and reverted transactions.",
                     self._sql_reader(db, "SELECT ?, ?, COALESCE(SUM(gas_used), 0) FROM outbox "
                                          "WHERE sender = ? AND status IN ('mined', 'reverted')",
                                      lambda: (chain(), address, address)), ("chain", "signer"))
        self._latency_watches.append(_LatencyWatch(
            sender, self._readers, lambda: self._latency.labels(self.service, chain(), address)))

    def watch_balance(self, dependency: str, check: BalanceCheck) -> None:
        """The balance and the next transaction's cost a balance check saw at its last run."""
        def figure(attr: str) -> Reader:
            return lambda: ([((dependency, check.address), float(getattr(check.last, attr)))]
                            if check.last is not None else [])

        labels = ("dependency", "signer")
        self.gauge("dccn_signing_balance_wei", "Balance of the signing account at the last check.",
                   figure("balance"), labels)
        self.gauge("dccn_next_transaction_cost_wei", "Gas of the next transaction times the max fee offered.",
                   figure("needed"), labels)

    def observe(self) -> None:
        """After each tick and at each scrape: time newly confirmed transactions; count events
        of new handlers (a handler declared after the last look has a series from the next)."""
        with self._observing:
            for watch in self._latency_watches:
                try:
                    watch.observe()
                except Exception as err:  # metrics never fail the tick; the next one looks again
                    log.debug("latency not observed", extra={"error": str(err)})
            for follower in self._followers:
                self._count_events(follower)

    def _count_events(self, follower: ChainFollower) -> None:
        # Wraps each handler once (handlers may be declared after the follower is watched).
        for sub in getattr(follower, "_subscriptions", {}).values():
            if getattr(sub.handler, "_dccn_counted", False):
                continue
            child = self._events.labels(self.service, follower.name, sub.contract, sub.abi.get("name", "?"))
            sub.handler = _counting(sub.handler, child)

    # -- serving -------------------------------------------------------------------------

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def collect(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for figure in self._figures:
            try:
                samples = _samples(figure.read())
            except Exception as err:  # one unreadable figure must not hide the others
                self._errors.labels(self.service, figure.name).inc()
                log.debug("metric not read", extra={"figure": figure.name, "error": str(err)})
                continue
            family = families.get(figure.name)
            if family is None:
                kind = GaugeMetricFamily if figure.kind == "gauge" else CounterMetricFamily
                family = families[figure.name] = kind(figure.name, figure.doc, labels=("service", *figure.labels))
            for values, value in samples:
                family.add_metric([self.service, *values], value)
        self.observe()  # what the figures above count as confirmed or handled is timed and counted too
        yield from families.values()


class _Collector:
    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.collect()


def _samples(value: float | int | Iterable[Sample]) -> list[Sample]:
    if isinstance(value, int | float):
        return [((), float(value))]
    return list(value)


def _zero_filled(read: Reader, known: Sequence[str]) -> Reader:
    def filled() -> list[Sample]:
        found = dict(_samples(read()))
        return [((value,), found.pop((value,), 0.0)) for value in known] + list(found.items())

    return filled


def _counting(handler: Callable[..., Any], child: Any) -> Callable[..., Any]:
    def counted(event: Any, db: Connection) -> None:
        handler(event, db)
        child.inc()  # after the handler: one that raises is retried, not counted

    counted._dccn_counted = True  # type: ignore[attr-defined]
    return counted


class _ChainLabel:
    """The chain id as a label value, asked of the node once (lazily: the node may be down at start)."""

    def __init__(self, w3: Any) -> None:
        self._w3 = w3
        self._value: str | None = None

    def __call__(self) -> str:
        if self._value is None:
            self._value = str(int(self._w3.eth.chain_id))
        return self._value


class _Readers:
    """A read-only connection per database file, so scrapes never share the service's connection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: dict[int, Connection] = {}

    def query(self, db: Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            reader = self._connections.get(id(db))
            if reader is None:
                reader = self._connections[id(db)] = _reader_for(db)
            return [tuple(row) for row in reader.execute(sql, tuple(params)).fetchall()]


def _reader_for(db: Connection) -> Connection:
    if isinstance(db, PgConnection):
        # Its own session: a scrape never reads inside (or aborts) the service's open transaction.
        return PgConnection.connect(db.dsn, application_name="dccn metrics")
    path = next((row[2] for row in db.execute("PRAGMA database_list").fetchall() if row[1] == "main"), "")
    if not path:
        return db  # an in-memory database: only its own connection sees it
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=5)


class _LatencyWatch:
    """Observes each row that turned mined/reverted since the last look, once."""

    def __init__(self, sender: Any, readers: _Readers, histogram: Callable[[], Any]) -> None:
        self.sender = sender
        self._readers = readers
        self._histogram = histogram
        self._seen: dict[str, int] = {}  # key -> block, for rows within the reorg depth
        self._floor: int | None = None  # rows at or below it were looked at already
        try:
            self.observe()
        except sqlite3.Error as err:
            log.debug("outbox not read yet", extra={"error": str(err)})

    def _series(self) -> Any:
        try:
            return self._histogram()  # asks the node its chain id once
        except Exception:  # the node is down at start: a later look makes the series
            return None

    def observe(self) -> None:
        rows = self._readers.query(
            self.sender.db,
            "SELECT o.key, o.block_number, COALESCE((SELECT MIN(a.sent_at) FROM outbox_attempts a "
            "WHERE a.key = o.key), o.sent_at) FROM outbox o WHERE o.sender = ? "
            "AND o.status IN ('mined', 'reverted') AND o.block_number > ?",
            (self.sender.address, -1 if self._floor is None else self._floor))
        now = time.time()
        # The first look (at start) only notes what was confirmed before. It already makes the
        # histogram's series, so a scrape before the first tick reports a count of 0.
        timing = self._floor is not None
        histogram = self._series()
        for key, block, first_sent in rows:
            if key not in self._seen and timing and histogram is not None and first_sent is not None:
                histogram.observe(max(0.0, now - float(first_sent)))
            self._seen[key] = int(block)
        floor = -1 if self._floor is None else self._floor
        newest = max((int(row[1]) for row in rows), default=floor)
        # A row re-mined after a reorg stays within the depth, so it is not timed twice.
        self._floor = max(floor, newest - int(getattr(self.sender, "reorg_depth", 64)))
        self._seen = {key: block for key, block in self._seen.items() if block > self._floor}
