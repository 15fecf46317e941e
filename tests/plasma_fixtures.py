"""Fixtures of the Plasma suites (tests/plasma_core, tests/plasma_operator, tests/plasma_client;
each conftest imports the ones it uses): a ledger on a real SQLite file, users with keys, and
(for end-to-end tests) a RootChain on anvil, deployed by the plasma part, with a running
operator, watchers and the client CLI."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dccn_devtools.waiting import wait_for
from plasma_client.wallet import Coin, build_transfer
from plasma_core import store, wire
from plasma_core.ledger import ChildChain


@dataclass
class RootRecorder:
    """Stands in for the TxSender in ledger unit tests: records (blknum, root) handed to it."""

    submitted: list[tuple[int, bytes]] = field(default_factory=list)

    def __call__(self, db: sqlite3.Connection, blknum: int, root: bytes) -> None:
        self.submitted.append((blknum, root))


@dataclass
class Ledger:
    chain: ChildChain
    db: sqlite3.Connection
    roots: RootRecorder
    next_deposit: int = 1

    def deposit(self, owner: str, amount: int, eth_block: int = 10) -> Coin:
        blknum = self.next_deposit
        self.next_deposit += 1
        with_tx(self.db, lambda: self.chain.on_deposit(self.db, owner, blknum, amount, eth_block))
        return Coin(blknum, 0, 0, amount)

    def utxo(self, coin: Coin) -> store.Utxo | None:
        return store.get_utxo(self.db, wire.utxo_position(coin.blknum, coin.txindex, coin.oindex))

    def snapshot(self) -> list[tuple[Any, ...]]:
        rows = self.db.execute("SELECT * FROM utxos ORDER BY pos").fetchall()
        return [tuple(r) for r in rows] + [tuple(r) for r in self.db.execute("SELECT id, raw FROM txs ORDER BY id")]


def with_tx(db: sqlite3.Connection, fn: Callable[[], Any]) -> Any:
    from dccn_common.store import transaction

    with transaction(db):
        return fn()


@pytest.fixture
def ledger(tmp_path: Path, roles: Any) -> Iterator[Ledger]:
    db = store.open_chain_db(tmp_path / "operator.db")
    recorder = RootRecorder()
    yield Ledger(ChildChain(roles.operator.address, recorder), db, recorder)
    db.close()


def _pay(coins: list[Coin], owner: Any, to: str, amount: int, fee: int = 0) -> str:
    return "0x" + wire.encode(build_transfer(coins, owner.address, to, amount, fee, owner.key)).hex()


@pytest.fixture
def pay() -> Callable[..., str]:
    """pay(coins, owner_actor, to_address, amount, fee=0) -> hex of the signed transfer."""
    return _pay


# -- end to end: a RootChain on anvil, a running operator and watchers -----------------------

EXIT_BOND = 10**16
EXIT_PERIOD = 100  # seconds; tests warp past it
OPERATOR_BOND = 10**18
PASSWORD = "plasma-test-password"


@dataclass
class Plasma:
    """A deployed RootChain and its manifest, on this test's (snapshotted) anvil."""

    anvil: Any
    w3: Any
    rootchain: Any
    manifest: Path
    workdir: Path
    roles: Any
    # The services' store setting by name: a SQLite file in workdir, or a PostgreSQL database
    # when the test runs on store_backend "postgresql" (dccn_devtools.pytest_fixtures.BACKENDS).
    store: Callable[[str], str] = field(default=lambda name: name)

    def keystore(self, actor: Any) -> Path:
        from dccn_common.keys import write_keystore

        path = self.workdir / f"{actor.role}.json"
        if not path.exists():
            write_keystore(path, actor.key, PASSWORD, kdf_n=2**10)
        return path

    def deposit(self, actor: Any, amount: int) -> int:
        from eth_account import Account

        from dccn_common.contracts import transact

        receipt = transact(self.w3, self.rootchain.functions.deposit(), sender=Account.from_key(actor.key), value=amount)
        return int(self.rootchain.events.Deposit().process_receipt(receipt)[0]["args"]["blknum"])

    def send(self, actor: Any, call: Any, value: int = 0) -> Any:
        from eth_account import Account

        from dccn_common.contracts import transact

        return transact(self.w3, call, sender=Account.from_key(actor.key), value=value)

    def events(self, name: str) -> list[Any]:
        return list(getattr(self.rootchain.events, name)().get_logs(from_block=0))


@pytest.fixture
def plasma(chain: Any, w3: Any, roles: Any, tmp_path: Path, store_target: Callable[[str], str],
           create_parts: Callable[..., Any]) -> Plasma:
    """RootChain deployed by the plasma part (after the token part, whose AnkrToken backs the
    part's second root chain), the operator bond posted by roles.deployer, into a manifest."""
    deployed = create_parts("token", "plasma", plasma={
        "operator": roles.operator.address, "exit_period": EXIT_PERIOD, "exit_bond": EXIT_BOND,
        "operator_bond": OPERATOR_BOND})
    return Plasma(chain, w3, deployed.at("RootChain"), deployed.manifest_file, tmp_path, roles, store_target)


class Looping:
    """Runs a service's tick() in a thread (in-process services for fast tests)."""

    def __init__(self, tick: Callable[[], None], interval: float) -> None:
        import threading

        self._tick = tick
        self._interval = interval
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as err:  # logged like Service.run does; tests may assert on it
                self.errors.append(f"{type(err).__name__}: {err}")
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass
class RunningOperator:
    operator: Any
    loop: Looping
    url: str

    def stop(self) -> None:
        self.loop.stop()
        if self.operator._api_server is not None:
            self.operator._api_server.should_exit = True

    def pause(self) -> None:
        """Stop the service loop (no follower, no sender); the API keeps answering."""
        self.loop.stop()

    def resume(self) -> None:
        self.loop = Looping(self.operator.bot.tick, self.operator.cfg.poll_interval)


@pytest.fixture
def start_operator(plasma: Plasma) -> Iterator[Callable[..., RunningOperator]]:
    """start_operator(**config) -> an operator running in this process (API on a free port)."""
    import httpx
    from eth_account import Account

    from dccn_devtools.ports import free_port
    from plasma_operator.config import OperatorConfig
    from plasma_operator.server import Operator

    started: list[RunningOperator] = []

    def factory(**overrides: Any) -> RunningOperator:
        settings: dict[str, Any] = {
            "rpc_url": plasma.anvil.url, "manifest": plasma.manifest, "keystore": plasma.keystore(plasma.roles.operator),
            "db": plasma.store("operator.db"), "api_port": free_port(), "block_interval": 0.5,
            "confirmations": 0, "poll_interval": 0.1, "block_size": 64,
        }
        settings.update(overrides)
        cfg = OperatorConfig(**settings)
        operator = Operator(cfg, Account.from_key(plasma.roles.operator.key))
        operator.start_api()
        running = RunningOperator(operator, Looping(operator.bot.tick, cfg.poll_interval),
                                  f"http://127.0.0.1:{cfg.api_port}")
        started.append(running)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(running.url + "/health", timeout=2).status_code == 200:
                    return running
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("operator did not become healthy")

    yield factory
    for running in started:
        running.stop()


@pytest.fixture
def start_watcher(plasma: Plasma) -> Iterator[Callable[..., Any]]:
    """start_watcher(actor, operator_url, **config) -> a watcher for that user running in this process."""
    from eth_account import Account

    from plasma_client.config import WatcherConfig
    from plasma_client.watcher import Watcher

    loops: list[Looping] = []

    def factory(actor: Any, operator_url: str, **overrides: Any) -> Any:
        settings: dict[str, Any] = {
            "rpc_url": plasma.anvil.url, "manifest": plasma.manifest, "keystore": plasma.keystore(actor),
            "db": plasma.store(f"watcher-{actor.role}.db"), "operator_url": operator_url,
            "confirmations": 0, "poll_interval": 0.1, "withhold_grace": 1.0,
        }
        settings.update(overrides)
        watcher = Watcher(WatcherConfig(**settings), Account.from_key(actor.key))
        watcher.loop = Looping(watcher.bot.tick, 0.1)
        loops.append(watcher.loop)
        return watcher

    yield factory
    for loop in loops:
        loop.stop()


def wait_until(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """dccn_devtools.waiting.wait_for with this suite's argument order (timeout before what)."""
    return wait_for(check, what, timeout=timeout)


@pytest.fixture
def eventually() -> Callable[..., Any]:
    """eventually(check, timeout=20, what=...) -> the first truthy result of check()."""
    return wait_until


@pytest.fixture
def cli(plasma: Plasma) -> Callable[..., Any]:
    """cli(actor, operator_url, *args) -> parsed JSON output of `plasma-client` (asserts exit code 0)."""
    import json

    from click.testing import CliRunner

    from plasma_client.client import main

    def run(actor: Any, operator_url: str, *args: str, expect_code: int = 0) -> Any:
        argv = ["--rpc-url", plasma.anvil.url, "--manifest", str(plasma.manifest), "--operator-url", operator_url,
                "--keystore", str(plasma.keystore(actor)), *args]
        result = CliRunner(mix_stderr=False).invoke(main, argv, env={"PLASMA_CLIENT_PASSWORD": PASSWORD}, catch_exceptions=False)
        assert result.exit_code == expect_code, result.stdout + result.stderr
        if expect_code:
            return result.stderr
        return json.loads(result.stdout)

    return run


@pytest.fixture
def client_run(plasma: Plasma) -> Callable[..., Any]:
    """client_run(actor, operator_url, *args) -> click's Result of `plasma-client` (stdout, stderr, exit_code)."""
    from click.testing import CliRunner

    from plasma_client.client import main

    def run(actor: Any, operator_url: str, *args: str) -> Any:
        argv = ["--rpc-url", plasma.anvil.url, "--manifest", str(plasma.manifest), "--operator-url", operator_url,
                "--keystore", str(plasma.keystore(actor)), *args]
        return CliRunner(mix_stderr=False).invoke(main, argv, env={"PLASMA_CLIENT_PASSWORD": PASSWORD})

    return run
