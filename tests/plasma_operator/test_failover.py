"""Two operators of one child chain (same key) on one PostgreSQL database, as an operator runs
them: `plasma-operator` twice, each with its own API port. The lease picks the active one; the
other stands by, serves reads and refuses transactions (503, nothing committed).

A user pays from her change one transaction after another to whichever instance is active
(retrying the same bytes when an answer never came, as a wallet does).
(a) the leader is SIGKILLed mid-stream: the standby takes over within seconds; every accepted
transaction is in exactly one block, the blocks on the RootChain are consecutive, and no
submitBlock nonce is used twice;
(b) the leader is SIGSTOPped past its lease, the standby takes over and works, then the old
leader is resumed: it stands by and seals and sends nothing, and the work completes exactly once."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hexbytes import HexBytes

from dccn_common.store import open_db
from dccn_devtools.failover import Repeat, kill_until_taken_over, pause_until_taken_over
from dccn_devtools.ports import free_port
from dccn_devtools.probes import role
from dccn_devtools.waiting import wait_for
from plasma_client.remote import OperatorApiError, OperatorClient
from plasma_client.wallet import Coin, build_transfer
from plasma_core import wire
from tests.conftest import assert_leader_and_standby
from tests.plasma_fixtures import PASSWORD

pytestmark = [pytest.mark.anvil, pytest.mark.parametrize("store_backend", ["postgresql"], indirect=True)]

LEASE_SECONDS = 3.0
TAKEOVER_LIMIT = 15.0
TOTAL = 10**18


class Pair:
    """The two operator processes and what the test reads of the chain and the shared database."""

    def __init__(self, spawn: Any, plasma: Any, dsn: str) -> None:
        self.spawn, self.plasma, self.dsn = spawn, plasma, dsn
        self.db = open_db(dsn)

    def start(self, name: str) -> tuple[Any, int]:
        port = free_port()
        plasma = self.plasma
        process = self.spawn(
            "plasma_operator.server", "--rpc-url", plasma.anvil.url, "--manifest", str(plasma.manifest),
            "--keystore", str(plasma.keystore(plasma.roles.operator)), "--db", self.dsn, "--api-port", str(port),
            "--block-interval", "0.3", "--block-size", "16", "--confirmations", "0", "--poll-interval", "0.1",
            "--recovery-workers", "0", "--lease-seconds", str(LEASE_SECONDS), "--log-level", "INFO",
            name=name, env={"PLASMA_OPERATOR_PASSWORD": PASSWORD})
        assert process.wait_healthy(port).status_code == 200, process.output()[-3000:]
        return process, port

    def transfers(self) -> list[Any]:
        return self.db.execute("SELECT blknum, txindex, leaf FROM txs WHERE kind = 'transfer' "
                               "ORDER BY blknum, txindex").fetchall()

    def outbox(self) -> list[Any]:
        return self.db.execute("SELECT key, status, nonce, tx_hash FROM outbox ORDER BY nonce").fetchall()

    def submitted(self) -> list[int]:
        return [int(e["args"]["blknum"]) for e in self.plasma.events("BlockSubmitted")]


class Payments:
    """alice pays bob 1 wei at a time from her change, to whichever operator answers, from a thread.

    An answer that never came (the instance was killed or paused) or a 503 (a standby) is retried
    with the same bytes at the other instance: applied at most once, wherever it was committed."""

    def __init__(self, plasma: Any, coin: Coin, ports: list[int]) -> None:
        self.alice, self.bob = plasma.roles.alice, plasma.roles.bob
        self.coin = coin
        self.clients = [OperatorClient(f"http://127.0.0.1:{port}", timeout=2) for port in ports]
        self.acknowledged: dict[str, tuple[int, int]] = {}
        self.refused_by_standby = 0
        self._repeat: Repeat | None = None

    def _submit(self, raw: bytes) -> dict[str, Any]:
        turn = 0
        while True:
            client = self.clients[turn % len(self.clients)]
            try:
                return client.submit(raw)
            except OperatorApiError as err:
                if err.status is not None and err.status != 503:
                    raise
                if err.status == 503:
                    assert err.body.get("error") == "standby", err.body
                    self.refused_by_standby += 1
                turn += 1
                time.sleep(0.05)

    def pay_one(self) -> None:
        raw = wire.encode(build_transfer([self.coin], self.alice.address, self.bob.address, 1, 0, self.alice.key))
        accepted = self._submit(raw)
        self.acknowledged[accepted["hash"]] = (accepted["blknum"], accepted["txindex"])
        self.coin = Coin(accepted["blknum"], accepted["txindex"], 1, self.coin.amount - 1)

    def start(self, interval: float = 0.05) -> None:
        self._repeat = Repeat(self.pay_one, interval).start()

    def stop(self) -> None:
        if self._repeat is not None:
            ended = self._repeat.stop(timeout=60)
            assert ended, "the payment stream hung"


@pytest.fixture
def pair(spawn: Any, plasma: Any) -> Iterator[Pair]:
    operators = Pair(spawn, plasma, plasma.store("operator"))
    yield operators
    operators.db.close()


def _start_leader_and_standby(pair: Pair, scrape_metrics: Any) -> tuple[Any, int, Any, int, Coin]:
    signer = pair.plasma.roles.operator.address
    leader, leader_port = pair.start("first")
    wait_for(lambda: role(leader_port) == "leader", "the first operator to lead")
    api = OperatorClient(f"http://127.0.0.1:{leader_port}")
    blknum = pair.plasma.deposit(pair.plasma.roles.alice, TOTAL)
    wait_for(lambda: api.utxo(blknum, 0, 0), "the deposit credited")
    standby, standby_port = pair.start("second")
    assert_leader_and_standby(scrape_metrics, leader_port, standby_port, signer)
    return leader, leader_port, standby, standby_port, Coin(blknum, 0, 0, TOTAL)


def _all_final(port: int) -> bool:
    status = OperatorClient(f"http://127.0.0.1:{port}").status()
    return bool(status["pending_transactions"] == 0 and status["outbox_pending"] == 0
                and status["last_sealed_block"] is None and status["last_submitted_block"] is None
                and status["last_final_block"] is not None)


def _assert_exactly_once(pair: Pair, payments: Payments, port: int, nonce_before: int) -> None:
    plasma, w3 = pair.plasma, pair.plasma.w3
    signer = plasma.roles.operator.address
    api = OperatorClient(f"http://127.0.0.1:{port}")
    # Every accepted transaction is in exactly one block, where its answer said; nothing else is.
    rows = pair.transfers()
    leaves = ["0x" + bytes(r["leaf"]).hex() for r in rows]
    assert len(leaves) == len(set(leaves))
    assert sorted(leaves) == sorted(payments.acknowledged)
    for tx_hash, (blknum, txindex) in payments.acknowledged.items():
        assert api.tx(blknum, txindex)["hash"] == tx_hash
    assert sum(int(u["amount"]) for u in api.utxos(plasma.roles.bob.address)) == len(payments.acknowledged)
    # The RootChain holds each block once, consecutively, with the root the database sealed.
    submitted = pair.submitted()
    assert submitted == list(range(1000, submitted[-1] + 1, 1000))
    assert plasma.rootchain.functions.currentChildBlock().call() == submitted[-1] + 1000
    for blknum in submitted:
        assert api.block(blknum)["root"] == "0x" + plasma.rootchain.functions.getChildChain(blknum).call()[0].hex()
    assert {r[0] for r in rows} <= set(submitted)
    # One submitBlock per block, each its own nonce, and the chain holds exactly those.
    outbox = [r for r in pair.outbox() if r["key"].startswith("submitBlock:")]
    assert sorted(r["key"] for r in outbox) == sorted(f"submitBlock:{n}" for n in submitted)
    assert all(r["status"] == "mined" for r in outbox), outbox
    nonces = [int(r["nonce"]) for r in outbox]
    assert sorted(nonces) == list(range(nonce_before, nonce_before + len(outbox)))
    for row in outbox:
        tx = w3.eth.get_transaction(row["tx_hash"])
        assert tx["from"] == signer and tx["nonce"] == row["nonce"]
    assert w3.eth.get_transaction_count(signer) - nonce_before == len(outbox)


def test_failover__leader_killed_mid_stream__standby_takes_over_every_transaction_in_one_block(
        plasma: Any, pair: Pair, scrape_metrics: Any) -> None:
    signer = plasma.roles.operator.address
    nonce_before = plasma.w3.eth.get_transaction_count(signer)
    leader, leader_port, _, standby_port, coin = _start_leader_and_standby(pair, scrape_metrics)

    # The standby refuses a transaction and commits nothing of it.
    raw = "0x" + wire.encode(build_transfer([coin], plasma.roles.alice.address, plasma.roles.bob.address, 1, 0,
                                            plasma.roles.alice.key)).hex()
    refused = httpx.post(f"http://127.0.0.1:{standby_port}/tx", json={"tx": raw}, timeout=5)
    assert refused.status_code == 503
    assert refused.json()["error"] == "standby" and "standby" in refused.json()["reason"]
    refused = httpx.post(f"http://127.0.0.1:{standby_port}/txs", json={"txs": [raw]}, timeout=5)
    assert (refused.status_code, refused.json()["error"]) == (503, "standby")
    assert pair.transfers() == []
    # Reads are served from the shared database.
    assert OperatorClient(f"http://127.0.0.1:{standby_port}").utxo(coin.blknum, 0, 0)["amount"] == str(TOTAL)

    payments = Payments(plasma, coin, [leader_port, standby_port])
    payments.start()
    try:
        wait_for(lambda: len(payments.acknowledged) >= 20 and len(pair.submitted()) >= 2, "blocks before the kill",
                 timeout=60)
        takeover = kill_until_taken_over(leader.process, standby_port)
        at_takeover = len(payments.acknowledged)
        wait_for(lambda: len(payments.acknowledged) >= at_takeover + 20, "payments through the new leader", timeout=60)
    finally:
        payments.stop()
    print(f"takeover after SIGKILL: {takeover:.2f} s (lease {LEASE_SECONDS} s)")
    assert takeover < TAKEOVER_LIMIT
    assert scrape_metrics(f"http://127.0.0.1:{standby_port}/metrics").value("dccn_leader", signer=signer) == 1
    wait_for(lambda: _all_final(standby_port), "every block final", timeout=60)
    time.sleep(1.0)  # anything sealed or sent twice would show up now
    _assert_exactly_once(pair, payments, standby_port, nonce_before)


def test_failover__leader_paused_past_its_lease__resumed_it_stands_by_and_sends_nothing(
        plasma: Any, pair: Pair, scrape_metrics: Any) -> None:
    w3, signer = plasma.w3, plasma.roles.operator.address
    nonce_before = w3.eth.get_transaction_count(signer)
    old, old_port, _, new_port, coin = _start_leader_and_standby(pair, scrape_metrics)
    payments = Payments(plasma, coin, [old_port, new_port])
    payments.start()
    try:
        wait_for(lambda: len(pair.submitted()) >= 2, "blocks before the pause", timeout=60)
        takeover = pause_until_taken_over(old.process, new_port, LEASE_SECONDS)
        took_over_at = w3.eth.block_number
        blocks_before = len(pair.submitted())
        wait_for(lambda: len(pair.submitted()) >= blocks_before + 2, "the new leader to submit blocks", timeout=60)
        log_size = len(old.output())
        old.process.send_signal(signal.SIGCONT)  # the old leader resumes where it was paused
        wait_for(lambda: role(old_port) == "standby", "the resumed operator to stand by", timeout=20)
        time.sleep(2.0)  # payments keep coming; some reach the resumed one, which refuses them
    finally:
        payments.stop()
    print(f"takeover after SIGSTOP: {takeover:.2f} s (lease {LEASE_SECONDS} s)")
    wait_for(lambda: _all_final(new_port), "every block final", timeout=60)
    time.sleep(1.0)
    assert_leader_and_standby(scrape_metrics, new_port, old_port, signer)
    # The resumed operator sealed and enqueued nothing: its log says so, and every transaction of
    # the operator key since the takeover is an outbox row (the new leader's), each nonce once.
    resumed_log = old.output()[log_size:]
    assert '"block sealed"' not in resumed_log, resumed_log[-3000:]
    assert "standing by" in resumed_log and '"leading"' not in resumed_log, resumed_log[-3000:]
    later = [w3.eth.get_block(n, full_transactions=True) for n in range(took_over_at + 1, w3.eth.block_number + 1)]
    hashes = {r["tx_hash"] for r in pair.outbox()}
    assert all(HexBytes(tx["hash"]).to_0x_hex() in hashes for block in later for tx in block["transactions"]
               if tx["from"] == signer)
    _assert_exactly_once(pair, payments, new_port, nonce_before)
