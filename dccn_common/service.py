"""The one shape every long-running service has.

    service = Service("plasma-operator", w3=w3, db=db, follower=follower, sender=sender)

    @service.every(5.0)
    def build_block() -> None: ...

    service.run()   # until SIGTERM / SIGINT

Each tick: poll the follower (events -> declared handlers), run the periodic tasks
that are due, drive the transaction outbox. Errors (an RPC outage, say) are logged
and retried with backoff; the health endpoint reports them.
"""

from __future__ import annotations

import logging
import signal
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from web3 import HTTPProvider, Web3

from dccn_common.config import ConfigError
from dccn_common.follower import ChainFollower
from dccn_common.health import BalanceCheck, Check, Dependencies, HealthServer, balance_check, rpc_check
from dccn_common.keys import KeystoreError
from dccn_common.listen import BindError
from dccn_common.manifest import ManifestError
from dccn_common.metrics import ServiceMetrics
from dccn_common.sender import TxSender
from dccn_common.store import StoreError

log = logging.getLogger(__name__)

# Errors a user can fix; the CLI prints them as one line and exits with code 2.
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, KeystoreError, ManifestError, BindError, StoreError)


@dataclass
class _Task:
    name: str
    interval: float
    fn: Callable[[], Any]
    next_run: float = 0.0


class Service:
    def __init__(
        self,
        name: str,
        *,
        w3: Web3,
        db: sqlite3.Connection,
        follower: ChainFollower | None = None,
        sender: TxSender | None = None,
        poll_interval: float = 1.0,
        health_host: str = "127.0.0.1",
        health_port: int | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
        health_socket: socket.socket | None = None,
        dependencies: dict[str, Check] | None = None,
    ) -> None:
        self.name = name
        self.w3 = w3
        self.db = db
        self.follower = follower
        self.sender = sender
        self.poll_interval = poll_interval
        self.stop_event = threading.Event()
        self._tasks: list[_Task] = []
        self._extra_status = status
        self._last_error: str | None = None
        self._last_tick = 0.0
        self.metrics = ServiceMetrics(name)
        if health_socket is not None:
            self._health: HealthServer | None = HealthServer(self.status, sock=health_socket,
                                                             metrics=self.metrics.exposition)
        elif health_port is not None:
            self._health = HealthServer(self.status, health_host, health_port, metrics=self.metrics.exposition)
        else:
            self._health = None
        # What the service needs to work: its node, and gas for its signer when it sends.
        self.dependencies = Dependencies({"rpc": rpc_check(w3)})
        if sender is not None:
            self.dependencies.add("signing_balance", balance_check(sender.w3, sender.address, sender.db))
        for name, check in (dependencies or {}).items():
            self.dependencies.add(name, check)
        self._declare_metrics()

    def _declare_metrics(self) -> None:
        metrics = self.metrics
        metrics.gauge("dccn_service_last_tick_timestamp_seconds", "Unix time the last tick succeeded (0: none yet).",
                      lambda: self._last_tick)
        metrics.gauge("dccn_service_tick_ok", "1 when the last tick succeeded, 0 when it failed.",
                      lambda: float(self._last_error is None and self._last_tick > 0))
        metrics.gauge("dccn_dependency_ok", "1 while a dependency check passes, 0 while it fails.",
                      lambda: [((name,), float(state == "ok")) for name, state in self.dependencies.report().items()
                               if state != "unchecked"], ["dependency"])
        if self.follower is not None:
            metrics.watch_follower(self.follower)
        if self.sender is not None:
            metrics.watch_sender(self.sender)
        for name, check in self.dependencies.checks.items():
            if isinstance(check, BalanceCheck):
                metrics.watch_balance(name, check)

    def every(self, seconds: float, name: str | None = None) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
        def register(fn: Callable[[], Any]) -> Callable[[], Any]:
            self._tasks.append(_Task(name or fn.__name__, seconds, fn))
            return fn

        return register

    @property
    def health_port(self) -> int | None:
        return self._health.port if self._health else None

    def status(self) -> dict[str, Any]:
        problems = self.dependencies.problems()
        body: dict[str, Any] = {
            "service": self.name,
            "ok": self._last_error is None and self._last_tick > 0 and not problems,
            "last_tick": self._last_tick,
            "last_error": self._last_error,
            "dependencies": self.dependencies.report(),
            "reasons": problems,
        }
        if self.follower:
            body["cursor"] = self.follower.status.cursor
            body["head"] = self.follower.status.head
        if self.sender:
            body["pending_transactions"] = self.sender.pending_count()
        if self._extra_status:
            body.update(self._extra_status())
        return body

    def tick(self) -> None:
        """One pass of everything; raises on failure (run() catches and backs off)."""
        self.dependencies.refresh()
        if self.follower:
            self.follower.poll_once()
        now = time.monotonic()
        for task in self._tasks:
            if now >= task.next_run:
                task.fn()
                task.next_run = now + task.interval
        if self.sender:
            self.sender.process()
        self.metrics.observe()

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
                except Exception as err:
                    self._last_error = f"{type(err).__name__}: {err}"[:500]
                    log.warning("tick failed; retrying", extra={"error": self._last_error})
                    backoff = min(backoff * 2, 30.0)
                self.stop_event.wait(backoff)
        finally:
            if self._health:
                self._health.stop()
            log.info("service stopped", extra={"service_name": self.name})


def connect(rpc_url: str, *, timeout: float = 30.0) -> Web3:
    """A web3 client for `rpc_url`; loopback or whatever the operator configured."""
    return Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))


def exit_with_error(message: str, code: int = 2) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def run_cli(fn: Callable[[], Any]) -> Any:
    """Run a CLI body, turning user errors into one line on stderr and exit code 2."""
    try:
        return fn()
    except USER_ERRORS as err:
        exit_with_error(str(err))
