"""Two instances of the same relay (same key, same relay_index) on one PostgreSQL database,
as an operator runs them: `nos-relay run` twice, each with its own health port, one enclave
shared by both. The lease picks the active one; the other stands by.

(a) the leader is SIGKILLed mid-stream: the standby takes over within seconds and every
request is answered exactly once (no second delivery, no nonce used twice);
(b) the leader is SIGSTOPped past its lease, the standby takes over and delivers, then the old
leader is resumed: it stands by and sends nothing, and the work still completes exactly once."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hexbytes import HexBytes

from dccn_common.store import open_db
from dccn_devtools.failover import Repeat, kill_until_taken_over, pause_until_taken_over
from dccn_devtools.ports import free_port
from dccn_devtools.probes import health, role
from dccn_devtools.waiting import wait_for
from tests.conftest import assert_leader_and_standby
from tests.nos_relay.conftest import RELAY_PASSWORD, price_params, request_price

pytestmark = [pytest.mark.anvil, pytest.mark.parametrize("store_backend", ["postgresql"], indirect=True)]

LEASE_SECONDS = 3.0
TAKEOVER_LIMIT = 15.0


class Pair:
    """The two relay processes and what the test reads of the chain and the database."""

    def __init__(self, spawn: Any, chain: Any, deployment: dict[str, Any], keystore: Path, dsn: str,
                 socket_path: str) -> None:
        self.spawn, self.chain, self.deployment = spawn, chain, deployment
        self.keystore, self.dsn, self.socket_path = keystore, dsn, socket_path
        self.db = open_db(dsn)

    def start(self, name: str) -> tuple[Any, int]:
        port = free_port()
        process = self.spawn(
            "nos_relay.relay", "run", "--rpc-url", self.chain.url, "--manifest", str(self.deployment["manifest"]),
            "--keystore", str(self.keystore), "--db", self.dsn, "--enclave-socket", self.socket_path,
            "--health-port", str(port), name=name,
            env={"NOS_RELAY_PASSWORD": RELAY_PASSWORD, "NOS_RELAY_POLL_INTERVAL": "0.1",
                 "NOS_RELAY_RETRY_DELAY": "0.1", "NOS_RELAY_LEASE_SECONDS": str(LEASE_SECONDS)})
        assert process.wait_healthy(port).status_code == 200, process.output()[-3000:]
        return process, port

    def delivered(self) -> list[str]:
        oracle = self.deployment["oracle"]
        return [HexBytes(e["args"]["requestId"]).to_0x_hex() for e in oracle.events.Delivered().get_logs(from_block=0)]

    def outbox(self) -> list[Any]:
        return self.db.execute("SELECT key, status, nonce, tx_hash FROM outbox ORDER BY nonce").fetchall()


class Stream:
    """Requests sent one after another from a thread, while the relays work and fail."""

    def __init__(self, w3: Any, deployment: dict[str, Any], roles: Any, params: bytes) -> None:
        self.w3, self.deployment, self.roles, self.params = w3, deployment, roles, params
        self.ids: list[str] = []
        self._repeat: Repeat | None = None

    def send(self, count: int) -> None:
        for _ in range(count):
            self.ids.append(HexBytes(request_price(self.w3, self.deployment, self.roles, self.params)).to_0x_hex())

    def start(self, interval: float = 0.25) -> None:
        self._repeat = Repeat(lambda: self.send(1), interval).start()

    def stop(self) -> None:
        if self._repeat is not None:
            self._repeat.stop(timeout=30)


@pytest.fixture
def pair(spawn: Any, chain: Any, deployment: dict[str, Any], relay_keystore: Any, store_target: Any,
         enclave_socket: str) -> Iterator[Pair]:
    relays = Pair(spawn, chain, deployment, relay_keystore("relayer"), store_target("relay"), enclave_socket)
    yield relays
    relays.db.close()


def _start_leader_and_standby(pair: Pair, scrape_metrics: Any, signer: str) -> tuple[Any, int, Any, int]:
    leader, leader_port = pair.start("first")
    wait_for(lambda: role(leader_port) == "leader", "the first relay to lead", timeout=20)
    standby, standby_port = pair.start("second")
    assert_leader_and_standby(scrape_metrics, leader_port, standby_port, signer)
    return leader, leader_port, standby, standby_port


def _assert_exactly_once(pair: Pair, w3: Any, ids: list[str], signer: str, nonce_before: int) -> None:
    """Every request delivered once; each outbox row its own nonce, and the chain holds exactly those."""
    assert sorted(pair.delivered()) == sorted(ids)
    rows = [r for r in pair.outbox() if r["nonce"] is not None]
    nonces = [int(r["nonce"]) for r in rows]
    assert len(nonces) == len(set(nonces)), rows
    mined = [r for r in rows if r["status"] == "mined"]
    assert all(r["status"] == "mined" for r in rows), rows
    for row in mined:
        tx = w3.eth.get_transaction(row["tx_hash"])
        assert tx["from"] == signer and tx["nonce"] == row["nonce"]
    # The signer sent nothing the outbox does not hold: its chain nonce advanced once per row.
    assert w3.eth.get_transaction_count(signer) - nonce_before == len(mined)
    assert sorted(nonces) == list(range(nonce_before, nonce_before + len(mined)))


def test_failover__leader_killed_mid_stream__standby_takes_over_every_request_answered_once(
        w3: Any, deployment: dict[str, Any], roles: Any, price_source: Any, pair: Pair, scrape_metrics: Any) -> None:
    signer = roles.relayer.address
    nonce_before = w3.eth.get_transaction_count(signer)
    leader, _, _, standby_port = _start_leader_and_standby(pair, scrape_metrics, signer)
    stream = Stream(w3, deployment, roles, price_params(price_source))
    stream.start()
    try:
        wait_for(lambda: len(pair.delivered()) >= 2, "first deliveries", timeout=60)
        takeover = kill_until_taken_over(leader.process, standby_port)
        time.sleep(2.0)  # requests keep coming while the new leader works
    finally:
        stream.stop()
    print(f"takeover after SIGKILL: {takeover:.2f} s (lease {LEASE_SECONDS} s)")
    assert takeover < TAKEOVER_LIMIT
    assert scrape_metrics(f"http://127.0.0.1:{standby_port}/metrics").value("dccn_leader", signer=signer) == 1
    wait_for(lambda: set(pair.delivered()) == set(stream.ids) and health(standby_port)["jobs"] == {
        "done": len(stream.ids)} and health(standby_port)["pending_transactions"] == 0, "every request answered", timeout=90)
    time.sleep(1.0)  # anything repeated would show up now
    _assert_exactly_once(pair, w3, stream.ids, signer, nonce_before)


def test_failover__leader_paused_past_its_lease__resumed_it_stands_by_and_sends_nothing(
        w3: Any, deployment: dict[str, Any], roles: Any, price_source: Any, pair: Pair, scrape_metrics: Any) -> None:
    signer = roles.relayer.address
    nonce_before = w3.eth.get_transaction_count(signer)
    old, old_port, _, new_port = _start_leader_and_standby(pair, scrape_metrics, signer)
    stream = Stream(w3, deployment, roles, price_params(price_source))
    stream.send(4)
    wait_for(lambda: len(pair.delivered()) >= 1, "a first delivery", timeout=60)
    stream.start()
    try:
        takeover = pause_until_taken_over(old.process, new_port, LEASE_SECONDS)
        took_over_at = w3.eth.block_number
        before = len(pair.delivered())
        wait_for(lambda: len(pair.delivered()) > before + 1, "the new leader to deliver", timeout=60)
        log_size = len(old.output())
        old.process.send_signal(signal.SIGCONT)  # the old leader resumes where it was paused
        wait_for(lambda: role(old_port) == "standby", "the resumed relay to stand by", timeout=20)
        time.sleep(2.0)
    finally:
        stream.stop()
    stream.send(3)
    print(f"takeover after SIGSTOP: {takeover:.2f} s (lease {LEASE_SECONDS} s)")
    wait_for(lambda: set(pair.delivered()) == set(stream.ids) and health(new_port)["jobs"] == {
        "done": len(stream.ids)} and health(new_port)["pending_transactions"] == 0, "every request answered", timeout=90)
    time.sleep(1.0)
    assert_leader_and_standby(scrape_metrics, new_port, old_port, signer)
    # The resumed relay enqueued and signed nothing: every delivery since the takeover is the new leader's
    # (its log says so, and the chain holds only the outbox's transactions, each nonce once).
    resumed_log = old.output()[log_size:]
    assert '"delivery enqueued"' not in resumed_log, resumed_log[-3000:]
    assert '"standing by"' in resumed_log and '"leading"' not in resumed_log
    later = [w3.eth.get_block(n, full_transactions=True) for n in range(took_over_at + 1, w3.eth.block_number + 1)]
    hashes = {r["tx_hash"] for r in pair.outbox()}
    assert all(HexBytes(tx["hash"]).to_0x_hex() in hashes for block in later for tx in block["transactions"]
               if tx["from"] == signer)
    _assert_exactly_once(pair, w3, stream.ids, signer, nonce_before)
