"""The operator as a real subprocess, killed with SIGKILL while it accepts transactions and
builds blocks, then restarted: nothing acknowledged is lost, nothing is applied or submitted twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from dccn_common.store import open_db
from dccn_devtools.ports import free_port
from dccn_devtools.pytest_fixtures import BACKENDS
from plasma_client.remote import OperatorApiError, OperatorClient
from plasma_client.wallet import Coin, build_transfer
from plasma_core import wire

pytestmark = [pytest.mark.anvil, pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)]

PASSWORD = "plasma-test-password"
# PostgreSQL: a restarted service leads once the killed one's lease expired (SQLite: at once).
LEASE_SECONDS = "2"


def _spawn(argv: list[str], log_path: Path, health_url: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a service subprocess (its log beside its database) and wait for its /health, as the
    active instance (on PostgreSQL a restart stands by until the killed instance's lease expired)."""
    log = open(log_path, "ab")  # noqa: SIM115 (handed to the child)
    process = subprocess.Popen(argv, stdout=log, stderr=log, env={**os.environ, **env})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text()[-2000:]
        try:
            answer = httpx.get(health_url, timeout=1)
            if answer.status_code == 200 and answer.json().get("role") == "leader":
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"{argv[2]} did not become healthy")


def _start(plasma: Any, db: str | Path, port: int, log: Path | None = None) -> subprocess.Popen[bytes]:
    """`db`: a SQLite file (the log goes beside it) or a postgresql:// URL (name the log)."""
    argv = [sys.executable, "-m", "plasma_operator.server", "--rpc-url", plasma.anvil.url,
            "--manifest", str(plasma.manifest), "--keystore", str(plasma.keystore(plasma.roles.operator)),
            "--db", str(db), "--api-port", str(port), "--block-interval", "0.3", "--block-size", "32",
            "--confirmations", "0", "--poll-interval", "0.1", "--log-level", "WARNING"]
    return _spawn(argv, log or Path(db).with_suffix(".log"), f"http://127.0.0.1:{port}/health",
                  {"PLASMA_OPERATOR_PASSWORD": PASSWORD, "PLASMA_OPERATOR_LEASE_SECONDS": LEASE_SECONDS})


def _dump(db: str) -> tuple[list[Any], list[Any]]:
    conn = open_db(db)
    try:
        txs = [tuple(r) for r in conn.execute("SELECT id, raw FROM txs ORDER BY id").fetchall()]
        utxos = [tuple(r) for r in conn.execute("SELECT pos, owner, amount, spent_by FROM utxos ORDER BY pos").fetchall()]
        return txs, utxos
    finally:
        conn.close()


def test_sigkill_during_block_building__restart__state_identical_nothing_lost_or_repeated(
    plasma: Any, roles: Any, eventually: Any
) -> None:
    db, log = plasma.store("operator-subprocess.db"), plasma.workdir / "operator-subprocess.log"
    port = free_port()
    api = OperatorClient(f"http://127.0.0.1:{port}", timeout=5)
    alice, bob = roles.alice, roles.bob
    total = 10**18
    deposit_blknum = plasma.deposit(alice, total)
    coin = Coin(deposit_blknum, 0, 0, total)
    acknowledged: dict[str, tuple[int, int]] = {}
    rng = random.Random(7)
    in_flight: wire.Transaction | None = None
    killed_state: Any = None
    for round_number in range(2):
        process = _start(plasma, db, port, log)
        if round_number == 0:
            eventually(lambda: api.utxo(deposit_blknum, 0, 0), what="deposit credited")
        else:
            assert _dump(db) == killed_state  # starting up changed nothing
        # SIGKILL at a random moment while transactions pour in and blocks are sealed and submitted
        killer = threading.Timer(rng.uniform(0.4, 0.9), process.send_signal, args=(signal.SIGKILL,))
        killer.start()
        while True:
            # alice pays bob 1 wei at a time from her change; a retry after a kill resends the same bytes
            tx = in_flight or build_transfer([coin], alice.address, bob.address, 1, 0, alice.key)
            in_flight = tx
            try:
                accepted = api.submit(tx)
            except OperatorApiError:
                break
            acknowledged[accepted["hash"]] = (accepted["blknum"], accepted["txindex"])
            coin = Coin(accepted["blknum"], accepted["txindex"], 1, coin.amount - 1)
            in_flight = None
        killer.join()
        process.wait()
        assert process.returncode == -signal.SIGKILL
        killed_state = _dump(db)
    process = _start(plasma, db, port, log)
    try:
        if in_flight is not None:  # the client retries what it never got an answer for: applied once
            accepted = api.submit(in_flight)
            acknowledged[accepted["hash"]] = (accepted["blknum"], accepted["txindex"])
        eventually(lambda: (lambda s: s["pending_transactions"] == 0 and s["outbox_pending"] == 0
                            and s["last_sealed_block"] is None and s["last_submitted_block"] is None)(api.status()),
                   timeout=30, what="every block final")
        assert len(acknowledged) >= 10
        for tx_hash, (blknum, txindex) in acknowledged.items():
            assert api.tx(blknum, txindex)["hash"] == tx_hash
        submitted = [e["args"]["blknum"] for e in plasma.events("BlockSubmitted")]
        assert submitted == list(range(1000, submitted[-1] + 1, 1000))  # each block once, in order
        assert plasma.rootchain.functions.currentChildBlock().call() == submitted[-1] + 1000
        for blknum in submitted:
            assert api.block(blknum)["root"] == "0x" + plasma.rootchain.functions.getChildChain(blknum).call()[0].hex()
        bob_total = sum(int(u["amount"]) for u in api.utxos(bob.address))
        alice_total = sum(int(u["amount"]) for u in api.utxos(alice.address))
        assert (bob_total, alice_total + bob_total) == (len(acknowledged), total)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def _start_watcher(plasma: Any, db: str, operator_url: str) -> subprocess.Popen[bytes]:
    port = free_port()
    argv = [sys.executable, "-m", "plasma_client.watcher", "--rpc-url", plasma.anvil.url,
            "--manifest", str(plasma.manifest), "--keystore", str(plasma.keystore(plasma.roles.challenger)),
            "--db", str(db), "--operator-url", operator_url, "--health-port", str(port), "--confirmations", "0",
            "--poll-interval", "0.1", "--log-level", "WARNING"]
    return _spawn(argv, plasma.workdir / "watcher-subprocess.log", f"http://127.0.0.1:{port}/health",
                  {"PLASMA_WATCHER_PASSWORD": PASSWORD, "PLASMA_WATCHER_LEASE_SECONDS": LEASE_SECONDS})


def test_watcher_sigkill_right_after_challenging__restart__challenges_once(
    plasma: Any, start_operator: Any, roles: Any, eventually: Any
) -> None:
    from plasma_client.wallet import deposit_exit_args

    running = start_operator()
    api = OperatorClient(running.url)
    alice = roles.alice
    blknum = plasma.deposit(alice, 10**18)
    eventually(lambda: api.utxo(blknum, 0, 0), what="deposit credited")
    sent = api.submit(build_transfer([Coin(blknum, 0, 0, 10**18)], alice.address, roles.bob.address, 10**18, 0,
                                     alice.key))
    data = eventually(lambda: (lambda d: d if d["final"] else None)(api.tx(sent["blknum"], sent["txindex"])),
                      what="block final")
    api.confirm(sent["blknum"], sent["txindex"], 0, wire.confirm_sign(bytes.fromhex(data["hash"][2:]),
                                                                      bytes.fromhex(data["root"][2:]), alice.key))
    db = plasma.store("watcher-subprocess.db")
    watcher = _start_watcher(plasma, db, running.url)
    cheat = deposit_exit_args(blknum, alice.address, 10**18)
    plasma.send(alice, cheat.call(plasma.rootchain), value=10**16)

    def challenge_recorded() -> bool:
        conn = open_db(db)
        try:
            return conn.execute("SELECT 1 FROM outbox WHERE key LIKE 'challenge:%'").fetchone() is not None
        except Exception:  # the watcher has not created its outbox yet
            return False
        finally:
            conn.close()

    eventually(challenge_recorded, what="the watcher decided to challenge")
    watcher.send_signal(signal.SIGKILL)
    watcher.wait()
    watcher = _start_watcher(plasma, db, running.url)
    try:
        eventually(lambda: plasma.events("ExitChallenged"), what="the challenge mined")
        time.sleep(1.0)  # a few more ticks of the restarted watcher: it must not challenge again
        conn = open_db(db)
        rows = [tuple(r) for r in conn.execute("SELECT key, status FROM outbox").fetchall()]
        conn.close()
        assert rows == [(f"challenge:{cheat.exit_id}", "mined")]
        assert len(plasma.events("ExitChallenged")) == 1
        assert plasma.rootchain.functions.exits(cheat.exit_id).call()[3] == 3
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=15)
