"""The service framework: declared handlers, tasks, outbox outcomes, health, and which
instance is active when several share one PostgreSQL database."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from eth_account import Account

from dccn_common.bot import Bot, claim_instance
from dccn_common.chain import bind_chain
from dccn_common.config import ConfigError
from dccn_common.follower import ChainEvent
from dccn_common.manifest import Manifest, ManifestError
from dccn_common.sender import FINAL_STATUSES, LeaseLost, OutboxEntry
from dccn_common.store import Connection, StoreError, open_db
from dccn_devtools.pytest_fixtures import BACKENDS
from dccn_devtools.waiting import wait_for
from tests.dccn_common.conftest import transfer_data

SEEN_SCHEMA = "CREATE TABLE IF NOT EXISTS seen (block_number INTEGER, log_index INTEGER, holder TEXT)"


def _seen(db: Connection) -> list[tuple[int, int]]:
    return [(int(r["block_number"]), int(r["log_index"]))
            for r in db.execute("SELECT block_number, log_index FROM seen ORDER BY block_number, log_index")]


def _recording_bot(w3: Any, target: str, token: Any, name: str, *, account: Any = None,
                   lease_seconds: float = 10.0, health_port: int | None = None) -> Bot:
    db = open_db(target, SEEN_SCHEMA)
    bot = Bot("bot-under-test", db=db, poll_interval=0.05, holder=name, lease_seconds=lease_seconds,
              health_port=health_port)
    bot.chain(w3, account=account, rpc_dependency=None, balance_dependency=None)

    @bot.on(token.events.Transfer)
    def on_transfer(event: ChainEvent, tx: Connection) -> None:
        tx.execute("INSERT INTO seen VALUES (?, ?, ?)", (event.block_number, event.log_index, name))

    return bot


@pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)
def test_bot__runs_handlers_and_tasks_reports_health_and_stops_on_request(
        w3: Any, ankr_token: Any, store_target: Any, send_transfers: Any) -> None:
    send_transfers(2)
    bot = _recording_bot(w3, store_target("bot"), ankr_token, "a", health_port=0)
    ticks: list[float] = []
    bot.every(0.1)(lambda: ticks.append(time.monotonic()))
    runner = threading.Thread(target=bot.run)
    runner.start()
    try:
        wait_for(lambda: len(ticks) >= 3 and len(_seen(bot.db)) >= 2, "ticks and events")
        body = httpx.get(f"http://127.0.0.1:{bot.health_port}/health").json()
        metrics = httpx.get(f"http://127.0.0.1:{bot.health_port}/metrics").text
    finally:
        bot.stop_event.set()
        runner.join(timeout=10)
    assert not runner.is_alive()
    assert body["ok"] and body["role"] == "leader" and body["cursor"] == body["head"]
    assert 'dccn_follower_lag_blocks{follower="bot-under-test"' in metrics


def test_bot__event_handler__takes_the_event_object_not_a_name(w3: Any, ankr_token: Any, store_target: Any) -> None:
    bot = Bot("bot-under-test", db=open_db(store_target("bot")))
    bot.chain(w3)
    with pytest.raises(TypeError, match="contract event"):
        bot.on("Transfer")  # type: ignore[arg-type]


def test_bind_chain__manifest_of_another_chain__refused_in_one_line(w3: Any, tmp_path: Any, anvil: Any) -> None:
    path = tmp_path / "manifest.json"
    Manifest(chain_id=int(w3.eth.chain_id) + 1).save(path)
    with pytest.raises(ManifestError, match="is for chain"):
        bind_chain(anvil.url, path)
    with pytest.raises(ConfigError, match="cannot reach the node"):
        bind_chain("http://127.0.0.1:9", Manifest(chain_id=1))


def test_claim_instance__sqlite__second_instance_refused(tmp_path: Any) -> None:
    with ExitStack() as first:
        claim_instance(first, tmp_path / "svc.db", "svc")
        with ExitStack() as second, pytest.raises(StoreError, match="in use"):
            claim_instance(second, tmp_path / "svc.db", "svc")


@pytest.mark.parametrize("store_backend", ["postgresql"], indirect=True)
def test_claim_instance__postgresql__instances_share_the_database(store_target: Any) -> None:
    with ExitStack() as first, ExitStack() as second:
        claim_instance(first, store_target("bot"), "svc")
        claim_instance(second, store_target("bot"), "svc")


@pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)
def test_on_settled__each_outcome_handed_over_once__also_across_a_restart(
        w3: Any, funded_token: Any, store_target: Any, roles: Any) -> None:
    ankr_token = funded_token
    account = Account.from_key(roles.relayer.key)
    outcomes: list[tuple[str, str]] = []

    def make() -> Bot:
        bot = Bot("settler", db=open_db(store_target("bot")), poll_interval=0.05)
        chain = bot.chain(w3, account=account)

        @bot.on_settled("pay")
        def settled(entry: OutboxEntry, tx: Connection) -> None:
            outcomes.append((entry.key, entry.status))

        assert chain.sender is not None
        return bot

    bot = make()
    sender = bot.chains[0].sender
    assert sender is not None
    bot.tick()  # leads (on PostgreSQL: takes the lease) before it writes
    with bot.transaction():
        for i in range(3):
            sender.enqueue(bot.db, f"pay:{i}", ankr_token.address, transfer_data(ankr_token, roles.bob.address, 1))
        sender.enqueue(bot.db, "other:0", ankr_token.address, transfer_data(ankr_token, roles.bob.address, 1))
    wait_for(lambda: (bot.tick(), len(outcomes) >= 3)[1], "three outcomes")
    bot.tick()
    assert sorted(outcomes) == [(f"pay:{i}", "mined") for i in range(3)]
    assert all(e.status in FINAL_STATUSES for e in [sender.entry("other:0")] if e is not None)

    for lease in bot.leases:  # stopped
        lease.release()
    restarted = make()  # a new process on the same database hands nothing over twice
    for _ in range(3):
        restarted.tick()
    assert restarted.is_leader
    assert sorted(outcomes) == [(f"pay:{i}", "mined") for i in range(3)]


@pytest.mark.parametrize("store_backend", ["postgresql"], indirect=True)
def test_two_bots__one_database__one_leads_the_other_takes_over_when_it_stops(
        w3: Any, ankr_token: Any, store_target: Any, roles: Any, send_transfers: Any) -> None:
    account = Account.from_key(roles.relayer.key)
    dsn = store_target("bot")
    first = _recording_bot(w3, dsn, ankr_token, "first", account=account, lease_seconds=1.0)
    second = _recording_bot(w3, dsn, ankr_token, "second", account=account, lease_seconds=1.0)
    leads: list[str] = []
    second.on_lead(lambda: leads.append("second"))
    send_transfers(2)
    first.tick()
    second.tick()
    assert first.is_leader and not second.is_leader
    assert second.status()["role"] == "standby"
    first_seen = _seen(first.db)
    assert len(first_seen) >= 2

    # The leader stops ticking (paused): once its lease expires the standby takes over.
    time.sleep(1.2)
    send_transfers(1)
    second.tick()
    assert second.is_leader and leads == ["second"]
    rows = first.db.execute("SELECT holder, COUNT(*) AS n FROM seen GROUP BY holder").fetchall()
    assert {r["holder"]: r["n"] for r in rows} == {"first": len(first_seen), "second": 1}
    # Every event once, whoever handled it.
    assert len(set(_seen(first.db))) == len(_seen(first.db))

    # The old leader resumes: its fenced writes are refused and it stands by.
    with pytest.raises(LeaseLost), first.transaction():
        first.db.execute("INSERT INTO seen VALUES (0, 0, 'stale')")
    first.tick()
    assert not first.is_leader
    assert first.db.execute("SELECT COUNT(*) AS n FROM seen WHERE holder = 'stale'").fetchone()["n"] == 0


@pytest.mark.parametrize("store_backend", ["postgresql"], indirect=True)
def test_two_bots__leader_stops_cleanly__standby_takes_over_at_once(
        w3: Any, ankr_token: Any, store_target: Any, roles: Any) -> None:
    account = Account.from_key(roles.relayer.key)
    dsn = store_target("bot")
    first = _recording_bot(w3, dsn, ankr_token, "first", account=account, lease_seconds=30.0)
    second = _recording_bot(w3, dsn, ankr_token, "second", account=account, lease_seconds=30.0)
    runner = threading.Thread(target=first.run)
    runner.start()
    wait_for(lambda: first.is_leader, "first leads")
    second.tick()
    assert not second.is_leader
    first.stop_event.set()
    runner.join(timeout=10)
    second.tick()  # no wait for the 30 s lease: a clean stop released it
    assert second.is_leader


@pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)
def test_lead_once__one_shot_command_leads_or_is_refused_while_another_instance_is_active(
        w3: Any, ankr_token: Any, store_target: Any, roles: Any) -> None:
    account = Account.from_key(roles.relayer.key)
    target = store_target("bot")
    daemon = _recording_bot(w3, target, ankr_token, "daemon", account=account, lease_seconds=30.0)
    daemon.tick()
    command = _recording_bot(w3, target, ankr_token, "command", account=account, lease_seconds=30.0)
    leads: list[str] = []
    command.on_lead(lambda: leads.append("command"))
    if store_target("bot").startswith("postgresql://"):
        assert not command.lead_once() and leads == []  # the daemon holds the lease
        with pytest.raises(LeaseLost), command.transaction():
            pass
        for lease in daemon.leases:
            lease.release()
    assert command.lead_once() and leads == ["command"] and command.is_leader
    with command.transaction() as tx:
        tx.execute("INSERT INTO seen VALUES (0, 0, 'command')")
    assert command.db.execute("SELECT COUNT(*) AS n FROM seen WHERE holder = 'command'").fetchone()["n"] == 1


@pytest.mark.parametrize("store_backend", ["postgresql"], indirect=True)
def test_bot__lease_cannot_be_renewed__stops_leading_until_it_can(
        w3: Any, ankr_token: Any, store_target: Any, roles: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    bot = _recording_bot(w3, store_target("bot"), ankr_token, "only", account=Account.from_key(roles.relayer.key))
    bot.tick()
    assert bot.is_leader
    lease = bot.leases[0]

    def database_gone() -> bool:
        raise StoreError("cannot open PostgreSQL database: server closed the connection")

    monkeypatch.setattr(lease, "renew", database_gone)
    with pytest.raises(StoreError):
        bot.tick()
    assert not bot.is_leader and bot.status()["role"] == "standby"
    monkeypatch.undo()
    bot.tick()
    assert bot.is_leader


def test_bot__on_lead_hook_fails__runs_again_at_the_next_tick(w3: Any, ankr_token: Any, store_target: Any) -> None:
    bot = _recording_bot(w3, store_target("bot"), ankr_token, "only")
    calls: list[int] = []

    @bot.on_lead
    def reload_state() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("cache not loadable yet")

    with pytest.raises(RuntimeError):
        bot.tick()
    assert not bot.is_leader
    bot.tick()
    assert bot.is_leader and len(calls) == 2


def test_bot__two_bots_in_one_process__hold_the_lease_under_different_names(store_target: Any) -> None:
    first = Bot("svc", db=open_db(store_target("bot")))
    second = Bot("svc", db=open_db(store_target("bot")))
    assert first.holder != second.holder
