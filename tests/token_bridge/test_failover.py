"""Two relayer processes on one PostgreSQL database with one key: one active, one standing by.

Each relayer reaches both nodes through a JSON-RPC proxy of its own that records its
eth_sendRawTransaction calls, so the test sees which instance sent what and when.
(a) The active relayer SIGKILLed mid-stream: the standby takes over within seconds.
(b) The active relayer SIGSTOPped past its lease: the standby takes over; resumed, the old
one stands by and sends nothing. Either way every transfer executes exactly once.
Two instances of one validator on one database take turns the same way.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from eth_account import Account

from dccn_common.store import open_db, transaction
from dccn_devtools.anvil_ticker import tick_blocks
from dccn_devtools.ports import free_port
from token_bridge.chains import ANKR, ETHEREUM
from token_bridge.cli import relay_db_path
from token_bridge.relayer import DestinationRelay
from token_bridge.validator import Validator, read_signatures

from .conftest import ANKR_WEI, CONFIRMATIONS, BridgeHarness
from .test_restart import Process, services, wait_for  # noqa: F401 (services: the process fixture)

# Long enough that a relayer tick slowed by a loaded 2-core host (RPC batches to two chains and four
# validators) still renews in time; a 3 s lease once expired under a healthy, busy leader.
LEASE_SECONDS = 6.0
TAKEOVER_LIMIT = 15.0
pytestmark = [pytest.mark.anvil, pytest.mark.parametrize("store_backend", ["postgresql"], indirect=True)]


class RpcProxy:
    """A loopback JSON-RPC forwarder that records when each eth_sendRawTransaction passed through."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.sends: list[float] = []  # time.monotonic() of each raw transaction
        client = httpx.Client(timeout=30)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
                calls = parsed if isinstance(parsed, list) else [parsed]
                sent = sum(1 for call in calls if isinstance(call, dict) and call.get("method") == "eth_sendRawTransaction")
                if sent:
                    now = time.monotonic()
                    proxy.sends.extend([now] * sent)
                reply = client.post(proxy.upstream, content=body, headers={"Content-Type": "application/json"})
                self.send_response(reply.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def sends_after(self, moment: float) -> list[float]:
        return [t for t in self.sends if t > moment]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Relayer:
    process: Process
    proxies: dict[str, RpcProxy]

    def role(self) -> str | None:
        return (self.process.health() or {}).get("role")

    def sends_after(self, moment: float) -> list[float]:
        return sorted(t for proxy in self.proxies.values() for t in proxy.sends_after(moment))

    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.process.health_port}/metrics"


@dataclass
class Stream:
    """Transfers in both directions, each with its own amount; what each recipient must end up with."""

    h: BridgeHarness
    roles: Any
    dave_before: int
    first_nonces: dict[str, int]  # the relayer key's nonce on each chain before the relayers ran
    next_amount: int = 1
    to_ankr: list[int] = field(default_factory=list)
    to_ethereum: list[int] = field(default_factory=list)

    def send(self, locks: int, outs: int = 0) -> None:
        for _ in range(locks):
            self.h.lock(self.roles.alice, self.roles.dave.address, self.next_amount * ANKR_WEI)
            self.to_ankr.append(self.next_amount)
            self.next_amount += 1
        for _ in range(outs):
            self.h.bridge_out(self.roles.bob, self.roles.carol.address, self.next_amount * ANKR_WEI)
            self.to_ethereum.append(self.next_amount)
            self.next_amount += 1

    def delivered(self) -> tuple[int, int]:
        dave = self.h.ankr_w3.eth.get_balance(self.roles.dave.address) - self.dave_before
        carol = int(self.h.bridge.token.functions.balanceOf(self.roles.carol.address).call())
        return dave, carol

    def complete(self) -> bool:
        return self.delivered() == (sum(self.to_ankr) * ANKR_WEI, sum(self.to_ethereum) * ANKR_WEI)


@pytest.fixture
def relayers(services: tuple[BridgeHarness, dict[str, Process]],  # noqa: F811 (the fixture)
             tmp_path: Path) -> Iterator[tuple[BridgeHarness, list[Relayer]]]:
    """The validators of `services` running, two relayers configured (same key, same database), mining on."""
    h, processes = services
    template = processes.pop("relayer")  # its settings, with a proxy pair and a health port per instance
    settings = yaml.safe_load(template.config.read_text())
    made: list[Relayer] = []
    for name in ("relayer-a", "relayer-b"):
        proxies = {ETHEREUM: RpcProxy(h.eth.url), ANKR: RpcProxy(h.ankr.url)}
        health_port = free_port()
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump({**settings, "ethereum_rpc_url": proxies[ETHEREUM].url,
                                          "ankr_rpc_url": proxies[ANKR].url, "health_port": health_port,
                                          "lease_seconds": LEASE_SECONDS}))
        processes[name] = Process("relayer", config, health_port, tmp_path / f"{name}.log")
        made.append(Relayer(processes[name], proxies))
    assert str(settings["db_path"]).startswith("postgresql://")
    for process in processes.values():
        if process.role == "validator":
            process.launch()
    for process in processes.values():
        if process.role == "validator":
            process.wait_healthy()
    stop = threading.Event()
    tickers = [threading.Thread(target=tick_blocks, args=(url, 0.3, stop), daemon=True)
               for url in (h.eth.url, h.ankr.url)]
    for ticker in tickers:
        ticker.start()
    try:
        yield h, made
    finally:
        stop.set()
        for relayer in made:
            if relayer.process.proc is not None and relayer.process.proc.poll() is None:
                relayer.process.proc.send_signal(signal.SIGCONT)  # a stopped process ignores SIGTERM
        for ticker in tickers:
            ticker.join(timeout=5)
        for relayer in made:
            for proxy in relayer.proxies.values():
                proxy.close()


def _start_leader_then_standby(h: BridgeHarness, relayers: list[Relayer], scrape_metrics: Any,
                               relayer_address: str) -> dict[str, int]:
    """Start the two relayers, the first one leading; returns the key's nonces before they ran."""
    nonces = {ETHEREUM: h.eth_w3.eth.get_transaction_count(relayer_address),
              ANKR: h.ankr_w3.eth.get_transaction_count(relayer_address)}
    first, second = relayers
    first.process.start()
    wait_for(lambda: first.role() == "leader", "the first relayer leads")
    second.process.start()
    wait_for(lambda: second.role() == "standby", "the second relayer stands by")
    assert first.role() == "leader"
    assert scrape_metrics(first.metrics_url()).value("dccn_leader", signer=relayer_address) == 1
    assert scrape_metrics(second.metrics_url()).value("dccn_leader", signer=relayer_address) == 0
    return nonces


def _assert_each_transfer_executed_once(h: BridgeHarness, stream: Stream, relayer_address: str) -> None:
    assert stream.complete()
    for name, w3, bridge, amounts in ((ANKR, h.ankr_w3, h.bridge.home, stream.to_ankr),
                                      (ETHEREUM, h.eth_w3, h.bridge.foreign, stream.to_ethereum)):
        executed = bridge.events.TransferExecuted().get_logs(from_block=0)
        assert sorted(int(e["args"]["amount"]) for e in executed) == sorted(a * ANKR_WEI for a in amounts), name
        assert len({e["args"]["key"] for e in executed}) == len(amounts), name
        # Every transaction the key sent on this chain since the relayers started: its nonces run
        # on from the first one, once each, and each one succeeded; each went to the bridge (an
        # execution: none was a second attempt, it would have reverted) or is the sender's
        # zero-value self-transfer that closes a nonce gap (dccn_common.sender, a row that failed).
        first = stream.first_nonces[name]
        sent = [tx for number in range(w3.eth.block_number + 1)
                for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]
                if tx["from"] == relayer_address and tx["nonce"] >= first]
        seen = [(name, tx["nonce"], tx["to"], tx["value"], w3.eth.get_transaction_receipt(tx["hash"])["status"],
                 tx["blockNumber"]) for tx in sent]
        assert [tx["nonce"] for tx in sent] == list(range(first, first + len(sent))), seen
        assert all(item[4] == 1 for item in seen), seen
        assert all(tx["to"] == bridge.address or (tx["to"] == relayer_address and tx["value"] == 0)
                   for tx in sent), seen
        assert sum(1 for tx in sent if tx["to"] == bridge.address) == len(amounts), seen
        outbox = open_db(relay_db_path(h.db("relayer"), name))
        try:
            rows = outbox.execute("SELECT key, status, nonce FROM outbox WHERE status = 'mined' ORDER BY nonce"
                                  ).fetchall()
        finally:
            outbox.close()
        assert [row["nonce"] for row in rows] == [tx["nonce"] for tx in sent], name
        assert sum(1 for row in rows if row["key"].startswith("execute:")) == len(amounts), name


def test_failover__active_relayer_killed_mid_stream__standby_takes_over_each_transfer_once(
        relayers: tuple[BridgeHarness, list[Relayer]], roles: Any, scrape_metrics: Any) -> None:
    h, (first, second) = relayers
    relayer_address = roles.relayer.address
    nonces = _start_leader_then_standby(h, [first, second], scrape_metrics, relayer_address)
    stream = Stream(h, roles, h.ankr_w3.eth.get_balance(roles.dave.address), nonces)

    # The outs (4 + 5 ANKR) are more than the locks so far (6): the foreign bridge cannot pay both
    # yet, so the relayer sends the second only once later locks fund it (DestinationRelay._funds).
    stream.send(locks=3, outs=2)
    wait_for(lambda: stream.delivered()[0] > 0, "the first relayer delivers")
    assert second.sends_after(0) == []  # the standby sent nothing while the leader worked
    stream.send(locks=2, outs=1)  # in flight when the leader dies
    killed = time.monotonic()
    first.process.kill()
    wait_for(lambda: second.role() == "leader" or second.sends_after(killed), "the standby takes over",
             timeout=TAKEOVER_LIMIT + 5)
    took_over = time.monotonic() - killed
    print(f"takeover after SIGKILL: {took_over:.2f} s (lease {LEASE_SECONDS} s)")
    assert took_over < TAKEOVER_LIMIT

    stream.send(locks=3, outs=1)
    wait_for(stream.complete, "every transfer delivered", timeout=90)
    assert second.sends_after(killed)  # the standby did the rest
    wait_for(lambda: second.role() == "leader", "the standby reports leader")
    assert scrape_metrics(second.metrics_url()).value("dccn_leader", signer=relayer_address) == 1
    for _ in range(5):  # more blocks change nothing
        time.sleep(0.3)
    _assert_each_transfer_executed_once(h, stream, relayer_address)


def test_failover__active_relayer_paused_past_its_lease__resumed_it_stands_by_and_sends_nothing(
        relayers: tuple[BridgeHarness, list[Relayer]], roles: Any, scrape_metrics: Any) -> None:
    h, (first, second) = relayers
    relayer_address = roles.relayer.address
    nonces = _start_leader_then_standby(h, [first, second], scrape_metrics, relayer_address)
    stream = Stream(h, roles, h.ankr_w3.eth.get_balance(roles.dave.address), nonces)

    stream.send(locks=3, outs=1)
    wait_for(lambda: stream.delivered()[0] > 0, "the first relayer delivers")
    stream.send(locks=2, outs=1)  # in flight when the leader freezes
    assert first.process.proc is not None
    paused = time.monotonic()
    first.process.proc.send_signal(signal.SIGSTOP)
    # Past the lease (and past PostgreSQL's idle-in-transaction timeout, should the pause have
    # caught it inside a transaction), the standby takes over and works.
    wait_for(lambda: second.role() == "leader", "the standby takes over", timeout=45)
    took_over = time.monotonic()
    print(f"takeover after SIGSTOP: {took_over - paused:.2f} s (lease {LEASE_SECONDS} s)")
    stream.send(locks=2, outs=1)
    wait_for(lambda: second.sends_after(took_over), "the new leader sends", timeout=45)
    first.process.proc.send_signal(signal.SIGCONT)
    resumed = time.monotonic()

    wait_for(lambda: first.role() == "standby", "the resumed relayer stands by", timeout=45)
    stream.send(locks=2, outs=1)
    wait_for(stream.complete, "every transfer delivered", timeout=90)
    for _ in range(5):
        time.sleep(0.3)
    assert first.role() == "standby" and second.role() == "leader"
    assert scrape_metrics(first.metrics_url()).value("dccn_leader", signer=relayer_address) == 0
    assert scrape_metrics(second.metrics_url()).value("dccn_leader", signer=relayer_address) == 1
    assert first.sends_after(took_over) == [], "the old leader sent after the takeover"
    assert first.sends_after(resumed) == []
    _assert_each_transfer_executed_once(h, stream, relayer_address)


def test_failover__two_instances_of_one_validator__take_turns_by_lease(make_bridge: Any, roles: Any) -> None:
    h: BridgeHarness = make_bridge(4, 3)
    account = h.validator_accounts[0]
    store = h.db("validator-shared")  # one database, one key, two instances
    first, second = Validator(h.sides(), store, account), Validator(h.sides(), store, account)
    h.lock(roles.alice, roles.dave.address, 5 * ANKR_WEI)
    h.eth.mine(CONFIRMATIONS[ETHEREUM])
    first.poll()
    second.poll()
    assert first.bot.is_leader and not second.bot.is_leader
    assert first.status()["signed"] == second.status()["signed"] == 1  # signed once, in the shared database

    for lease in first.bot.leases:  # the first one stops (a clean stop releases its leases)
        lease.release()
    h.lock(roles.alice, roles.dave.address, 6 * ANKR_WEI)
    h.eth.mine(CONFIRMATIONS[ETHEREUM])
    second.poll()
    first.poll()
    assert second.bot.is_leader and not first.bot.is_leader
    assert second.status()["signed"] == 2
    signed = read_signatures(store, h.ankr_w3.eth.chain_id, 0)
    assert sorted(int(s["transfer"]["amount"]) for s in signed) == [5 * ANKR_WEI, 6 * ANKR_WEI]


def test_failover__leader_sent_and_got_mined_but_recorded_nothing__new_leader_settles_without_a_resend(
        make_bridge: Any, roles: Any) -> None:
    """In process, step by step: the leader's outbox holds two executions it signed and sent; one
    was mined, the other never reached the node, and the leader died before recording either.
    The instance that takes the lease over settles the first from the chain and sends the
    second's stored bytes: two transactions in all, nothing executed twice, no gap fill."""
    h: BridgeHarness = make_bridge(4, 3)
    network = h.network()
    old = network.relays[ANKR]
    relayer = roles.relayer.address
    dave_before = h.ankr_w3.eth.get_balance(roles.dave.address)
    first_nonce = h.ankr_w3.eth.get_transaction_count(relayer)
    h.lock(roles.alice, roles.dave.address, 7 * ANKR_WEI)
    h.lock(roles.alice, roles.dave.address, 8 * ANKR_WEI)
    h.eth.mine(CONFIRMATIONS[ETHEREUM] + 1)
    for validator in network.validators:
        validator.poll()

    h.ankr.set_automine(False)
    try:
        old.tick()  # signs and broadcasts both executions, then dies before its next pass
        assert old.counts() == {"submitted": 2}
        rows = old.db.execute("SELECT key, nonce, tx_hash FROM outbox ORDER BY nonce").fetchall()
        assert [row["nonce"] for row in rows] == [first_nonce, first_nonce + 1]
        h.ankr_w3.provider.make_request("anvil_dropTransaction", [rows[1]["tx_hash"]])  # never reached the node
        h.ankr.mine(1)
        assert h.ankr_w3.eth.get_transaction_count(relayer) == first_nonce + 1
        assert h.ankr_w3.eth.get_transaction_receipt(rows[0]["tx_hash"])["status"] == 1
    finally:
        h.ankr.set_automine(True)
    with transaction(old.db):  # the killed leader's lease runs out
        old.db.execute("UPDATE sender_leases SET expires_at = 0")

    new = DestinationRelay(h.sides()[ANKR], relay_db_path(h.db("relayer"), ANKR), Account.from_key(roles.relayer.key),
                           [server.url for server in network.servers])
    for _ in range(10):
        if new.counts() == {"done": 2}:
            break
        new.tick()
        h.ankr.mine(1)
    assert new.bot.is_leader and new.counts() == {"done": 2}
    old.tick()  # the old instance, were it back: it stands by
    assert not old.bot.is_leader
    assert h.ankr_w3.eth.get_balance(roles.dave.address) - dave_before == 15 * ANKR_WEI
    assert h.ankr_w3.eth.get_transaction_count(relayer) == first_nonce + 2  # nothing sent a second time
    outbox = new.db.execute("SELECT key, status, nonce, tx_hash FROM outbox ORDER BY nonce").fetchall()
    assert [(row["status"], row["nonce"], row["tx_hash"]) for row in outbox] \
        == [("mined", row["nonce"], row["tx_hash"]) for row in rows]  # the stored bytes, no gap fill
    assert len(h.bridge.home.events.TransferExecuted().get_logs(from_block=0)) == 2
