"""The shared metrics: a follower, a sender and the health server of one Bot in this
process against anvil, scraped at /metrics while the test drives events and transactions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account

from dccn_common.bot import Bot
from dccn_common.store import transaction
from tests.conftest import DocumentedMetrics, MetricsScrape

CONFIRMATIONS = 2


@pytest.fixture
def run_service(w3: Any, make_db: Any, ankr_token: Any, roles: Any) -> Iterator[Callable[..., Bot]]:
    """Factory: a running Bot (token Transfer follower + relayer's sender) on a database file."""
    running: list[tuple[Bot, threading.Thread]] = []

    def start(db_name: str = "metrics.db") -> Bot:
        service = Bot("metrics-svc", db=make_db(db_name), poll_interval=0.05, health_port=0)
        service.chain(w3, account=Account.from_key(roles.relayer.key), follower_name="metrics-follower",
                      confirmations=CONFIRMATIONS)
        service.on(ankr_token.events.Transfer, label="AnkrToken")(lambda event, tx: None)
        thread = threading.Thread(target=service.run, daemon=True)
        thread.start()
        running.append((service, thread))
        return service

    yield start
    for service, thread in running:
        service.stop_event.set()
        thread.join(timeout=10)


def _wait(scrape: Callable[[], MetricsScrape], ready: Callable[[MetricsScrape], bool],
          timeout: float = 20.0) -> MetricsScrape:
    deadline = time.monotonic() + timeout
    while True:
        result = scrape()
        if ready(result):
            return result
        assert time.monotonic() < deadline, f"metrics never became ready: {result.samples}"
        time.sleep(0.05)


def _url(service: Bot) -> str:
    return f"http://127.0.0.1:{service.health_port}/metrics"


def _transfer_data(token: Any, to: str, amount: int) -> bytes:
    return bytes.fromhex(token.functions.transfer(to, amount)._encode_transaction_data()[2:])


def test_metrics__follower_lag_and_events_handled__move_with_the_chain(
        run_service: Any, scrape_metrics: Any, send_transfers: Any, w3: Any) -> None:
    service = run_service()
    scrape = lambda: scrape_metrics(_url(service))  # noqa: E731
    first = _wait(scrape, lambda m: m.value("dccn_follower_lag_blocks") is not None)
    assert first.value("dccn_follower_events_handled_total", follower="metrics-follower") == 0
    send_transfers(3)
    head = w3.eth.block_number
    # The token's mint (its deploy block) and three transfers, one block each; the follower reads a
    # block once CONFIRMATIONS more are mined on top.
    # Mid-poll the head is new and the cursor not yet: the lag is seen larger until the poll ends.
    after = _wait(scrape, lambda m: m.value("dccn_follower_head_block") == head
                  and m.value("dccn_follower_lag_blocks", service="metrics-svc") == CONFIRMATIONS)
    assert after.value("dccn_follower_cursor_block") == head - CONFIRMATIONS
    assert after.value("dccn_follower_confirmations") == CONFIRMATIONS
    assert after.value("dccn_follower_events_handled_total") == 2  # the mint and the first transfer
    assert after.value("dccn_follower_events_by_type_total", contract="AnkrToken", event="Transfer") == 2
    send_transfers(2)
    final = _wait(scrape, lambda m: m.value("dccn_follower_events_handled_total") == 4)
    assert final.value("dccn_follower_events_by_type_total", event="Transfer") == 4
    assert final.value("dccn_service_tick_ok") == 1
    assert final.value("dccn_service_last_tick_timestamp_seconds") > time.time() - 60


def test_metrics__outbox_depth_gas_and_latency__follow_a_transaction(
        run_service: Any, scrape_metrics: Any, ankr_token: Any, roles: Any, chain: Any, w3: Any) -> None:
    ankr_token.functions.transfer(roles.relayer.address, 10**21).transact({"from": roles.deployer.address})
    service = run_service()
    scrape = lambda: scrape_metrics(_url(service))  # noqa: E731
    relayer = roles.relayer.address
    idle = _wait(scrape, lambda m: m.value("dccn_signing_balance_wei") is not None)
    assert idle.value("dccn_outbox_transactions", signer=relayer, status="pending") == 0
    assert idle.value("dccn_outbox_gas_used_total", signer=relayer) == 0
    assert idle.value("dccn_leader", service="metrics-svc", signer=relayer) == 1
    assert idle.value("dccn_dependency_ok", dependency="signing_balance") == 1
    balance = idle.value("dccn_signing_balance_wei", dependency="signing_balance", signer=relayer)
    assert balance == w3.eth.get_balance(relayer)
    assert 0 < idle.value("dccn_next_transaction_cost_wei", signer=relayer) < balance

    chain.set_automine(False)  # the transaction waits in the pool: the row stays "sent"
    try:
        sender = service.chains[0].sender
        assert sender is not None
        with transaction(service.db):
            sender.enqueue(service.db, "pay-bob", ankr_token.address,
                                   _transfer_data(ankr_token, roles.bob.address, 7))
        waiting = _wait(scrape, lambda m: m.value("dccn_outbox_transactions", status="sent") == 1)
        assert waiting.value("dccn_outbox_transactions", status="pending") == 0
        time.sleep(0.3)
        aged = scrape()
        assert aged.value("dccn_outbox_oldest_unfinished_age_seconds", signer=relayer) >= 0.3
        chain.mine(1)
    finally:
        chain.set_automine(True)
    done = _wait(scrape, lambda m: m.value("dccn_outbox_transactions", status="mined") == 1)
    entry = sender.entry("pay-bob")
    assert entry is not None and entry.gas_used
    assert done.value("dccn_outbox_transactions", status="sent") == 0
    assert done.value("dccn_outbox_oldest_unfinished_age_seconds") == 0
    assert done.value("dccn_outbox_gas_used_total", signer=relayer) == entry.gas_used
    assert done.value("dccn_outbox_confirm_latency_seconds_count", signer=relayer) == 1
    assert done.value("dccn_outbox_confirm_latency_seconds_sum", signer=relayer) >= 0.3
    assert done.families["dccn_outbox_confirm_latency_seconds"] == "histogram"


def test_metrics__after_a_restart__durable_counters_kept_latency_not_timed_again(
        run_service: Any, scrape_metrics: Any, ankr_token: Any, roles: Any, send_transfers: Any) -> None:
    ankr_token.functions.transfer(roles.relayer.address, 10**21).transact({"from": roles.deployer.address})
    first = run_service("restart.db")
    sender = first.chains[0].sender
    assert sender is not None
    with transaction(first.db):  # the running service sends it
        sender.enqueue(first.db, "pay-bob", ankr_token.address, _transfer_data(ankr_token, roles.bob.address, 3))
    _wait(lambda: scrape_metrics(_url(first)), lambda m: m.value("dccn_outbox_transactions", status="mined") == 1)
    entry = sender.entry("pay-bob")
    assert entry is not None and entry.gas_used
    send_transfers(CONFIRMATIONS)  # buries the funding and the payment deep enough to be read
    _wait(lambda: scrape_metrics(_url(first)), lambda m: m.value("dccn_follower_events_handled_total") == 3
          and m.value("dccn_outbox_confirm_latency_seconds_count") == 1)
    first.stop_event.set()
    time.sleep(0.3)
    again = run_service("restart.db")
    scrape = _wait(lambda: scrape_metrics(_url(again)), lambda m: m.value("dccn_follower_lag_blocks") is not None)
    assert scrape.value("dccn_follower_events_handled_total") == 3  # mint, funding, payment
    assert scrape.value("dccn_follower_events_by_type_total", event="Transfer") == 0  # counts this process
    assert scrape.value("dccn_outbox_gas_used_total") == entry.gas_used
    assert scrape.value("dccn_outbox_confirm_latency_seconds_count") == 0


def test_health_server__metrics_path__served_only_when_given(w3: Any, make_db: Any, scrape_metrics: Any) -> None:
    import httpx

    service = Bot("no-metrics-yet", db=make_db(), poll_interval=0.05, health_port=0)
    service.chain(w3)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        scrape = _wait(lambda: scrape_metrics(_url(service)), lambda m: m.value("dccn_service_tick_ok") == 1)
        assert scrape.value("dccn_service_start_time_seconds", service="no-metrics-yet") <= time.time()
        assert scrape.value("dccn_follower_lag_blocks") is None  # no follower, no lag
        assert scrape.value("dccn_dependency_ok", dependency="rpc") == 1
    finally:
        service.stop_event.set()
        thread.join(timeout=10)
    from dccn_common.health import HealthServer

    plain = HealthServer(lambda: {"ok": True}).start()
    try:
        assert httpx.get(f"http://127.0.0.1:{plain.port}/metrics").status_code == 404
    finally:
        plain.stop()


def test_operations_docs__alerts_and_dashboard_load__every_shared_metric_they_name_is_served(
        run_service: Any, scrape_metrics: Any, documented_metrics: DocumentedMetrics, send_transfers: Any) -> None:
    rules = [rule for group in documented_metrics.alerts["groups"] for rule in group["rules"]]
    assert {"DccnOutboxStuck", "DccnFollowerLagging", "DccnNoActiveLeader", "DccnLeaderAbsent",
            "DccnSigningBalanceBelowNextTransaction"} <= {rule["alert"] for rule in rules}
    assert all(rule["expr"].strip() and rule["labels"]["severity"] in ("page", "ticket") for rule in rules)
    panels = [p for p in documented_metrics.dashboard["panels"] if p["type"] != "row"]
    assert panels and all(target["expr"] for panel in panels for target in panel["targets"])
    assert len({p["id"] for p in documented_metrics.dashboard["panels"]}) == len(documented_metrics.dashboard["panels"])
    assert documented_metrics.shared() >= {"dccn_outbox_oldest_unfinished_age_seconds", "dccn_follower_lag_blocks",
                                           "dccn_leader", "dccn_signing_balance_wei"}
    service = run_service()
    send_transfers(1)
    scrape = scrape_metrics(_url(service), until=lambda m: m.value("dccn_follower_lag_blocks") is not None
                            and m.value("dccn_signing_balance_wei") is not None)
    assert documented_metrics.missing(documented_metrics.shared(), scrape) == set()
    assert documented_metrics.undocumented(scrape) == set()  # served but undocumented is a gap too
