"""A tiny HTTP health endpoint every service exposes (GET /health -> JSON), and the
per-dependency checks (RPC, enclave, signing balance) that decide whether it says ok."""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from web3 import Web3

from dccn_common.listen import bind_tcp
from dccn_common.store import Connection
from nos_enclave.httpd import HttpEndpoint, health_routes

log = logging.getLogger(__name__)

StatusFn = Callable[[], dict[str, Any]]
# The Prometheus exposition (body, content type) served at /metrics.
MetricsFn = Callable[[], tuple[bytes, str]]
# A dependency check: None while the dependency works, else the reason it does not.
Check = Callable[[], str | None]
# Gas assumed for the next transaction when the outbox holds none with a known gas limit.
DEFAULT_NEXT_TX_GAS = 200_000
FALLBACK_PRIORITY_FEE = 10**9


class HealthServer(HttpEndpoint):
    """Serves `status()` at /health: HTTP 200 when status["ok"] is true, else 503; and
    `metrics()` (when given) at /metrics."""

    def __init__(self, status: StatusFn, host: str = "127.0.0.1", port: int = 0, *,
                 sock: socket.socket | None = None, metrics: MetricsFn | None = None) -> None:
        super().__init__(health_routes(status, metrics), sock or bind_tcp(host, port, "health port"), name="health")


class Dependencies:
    """Runs named checks at most every `interval` seconds; logs each turn bad (and back) once."""

    def __init__(self, checks: dict[str, Check] | None = None, *, interval: float = 2.0) -> None:
        self.checks: dict[str, Check] = dict(checks or {})
        self.interval = interval
        self._reasons: dict[str, str | None] = {}
        self._next_run = 0.0
        self._lock = threading.Lock()

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check
        self._next_run = 0.0

    def refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_run:
            return
        self._next_run = now + self.interval
        for name, check in list(self.checks.items()):
            try:
                reason = check()
            except Exception as err:  # a check that breaks is a failing dependency, not a crash
                reason = f"{type(err).__name__}: {err}"[:300]
            self._record(name, reason)

    def _record(self, name: str, reason: str | None) -> None:
        with self._lock:
            before = self._reasons.get(name)
            self._reasons[name] = reason
        # Only transitions are logged: a reason whose numbers change (a balance) is not news.
        if reason is not None and before is None:
            log.warning("dependency failing", extra={"dependency": name, "reason": reason})
        elif reason is None and before is not None:
            log.info("dependency recovered", extra={"dependency": name})

    def report(self) -> dict[str, str]:
        """name -> "ok" or the reason it fails ("unchecked" before the first run)."""
        with self._lock:
            return {name: (self._reasons[name] or "ok") if name in self._reasons else "unchecked"
                    for name in self.checks}

    def problems(self) -> list[str]:
        with self._lock:
            return [f"{name}: {self._reasons[name]}" for name in self.checks if self._reasons.get(name)]


def rpc_check(w3: Web3, expected_chain_id: int | None = None) -> Check:
    """The node answers and serves the expected chain (the first answer pins it when not given)."""
    pinned = [expected_chain_id]

    def check() -> str | None:
        try:
            chain_id = int(w3.eth.chain_id)
        except Exception as err:  # any transport error
            return f"cannot reach {_url(w3)}: {type(err).__name__}"
        if pinned[0] is None:
            pinned[0] = chain_id
        if chain_id != pinned[0]:
            return f"{_url(w3)} serves chain {chain_id}, expected {pinned[0]}"
        return None

    return check


@dataclass(frozen=True)
class Funds:
    balance: int  # wei
    needed: int  # wei: gas of the next transaction x the max fee TxSender offers


class BalanceCheck:
    """The signing account can pay for its next transaction at current fees (gas x max fee).
    `last` keeps the figures of the last run (the metrics report them)."""

    def __init__(self, w3: Web3, address: str, db: Connection | None, min_gas: int) -> None:
        self.w3, self.address, self.db, self.min_gas = w3, address, db, min_gas
        self.last: Funds | None = None

    def __call__(self) -> str | None:
        gas = max(_next_outbox_gas(self.db, self.address), self.min_gas)
        latest = self.w3.eth.get_block("latest")
        try:
            priority = int(self.w3.eth.max_priority_fee)
        except Exception:
            priority = FALLBACK_PRIORITY_FEE
        max_fee = 2 * int(latest.get("baseFeePerGas", 0) or 0) + priority  # what TxSender offers
        needed = gas * max_fee
        balance = int(self.w3.eth.get_balance(Web3.to_checksum_address(self.address)))
        self.last = Funds(balance, needed)
        if balance < needed:
            return (f"signing account {self.address} holds {balance} wei, less than the {needed} wei "
                    f"its next transaction needs ({gas} gas at {max_fee} wei)")
        return None


def balance_check(w3: Web3, address: str, db: Connection | None = None,
                  min_gas: int = DEFAULT_NEXT_TX_GAS) -> BalanceCheck:
    return BalanceCheck(w3, address, db, min_gas)


def _next_outbox_gas(db: Connection | None, address: str) -> int:
    if db is None:
        return 0
    try:
        row = db.execute("SELECT MAX(gas) AS gas FROM outbox WHERE sender = ? AND status IN ('pending', 'sent')",
                         (address,)).fetchone()
    except sqlite3.OperationalError:  # no outbox table yet
        return 0
    return int(row[0] or 0)


def _url(w3: Web3) -> str:
    return str(getattr(w3.provider, "endpoint_uri", None) or "the node")
