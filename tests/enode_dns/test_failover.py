"""Two `enode-dns run` processes for one node on one PostgreSQL database, paying with one key:
one is active and pushes the node's self-updates, the other stands by; SIGKILL the active one
and the standby takes over within seconds, pushing an address change made after the kill once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dccn_common.store import open_db
from dccn_devtools.ports import free_port

from .conftest import BOOT, AddressEndpoint, AnvilRegistry, NodeKeys
from .test_daemon_restart import DaemonProcess

pytestmark = pytest.mark.parametrize("store_backend", ["postgresql"], indirect=True)

LEASE_SECONDS = 3
TAKEOVER_WITHIN = 15.0
FIRST, SECOND, THIRD = "203.0.113.10", "198.51.100.1", "198.51.100.2"


@pytest.fixture
def instances(tmp_path: Path) -> Iterator[Callable[[str, Path], DaemonProcess]]:
    started: list[DaemonProcess] = []

    def factory(name: str, config: Path) -> DaemonProcess:
        process = DaemonProcess(config, tmp_path / f"{name}.log", free_port())
        started.append(process)
        return process

    yield factory
    for process in started:
        process.stop()


def _leader(scrape: Any, signer: str) -> float | None:
    return scrape.value("dccn_leader", service="enode-dns", signer=signer)


def test_two_instances_one_database__one_pushes__sigkill_it__standby_takes_over_and_pushes_once(
    anvil_registry: AnvilRegistry, make_node_keys: Callable[[str], NodeKeys], relayer_keystore: Path,
    address_endpoint: AddressEndpoint, write_daemon_config: Callable[..., Path],
    store_target: Callable[[str], str], instances: Callable[[str, Path], DaemonProcess], scrape_metrics: Any, roles: Any,
) -> None:
    node = make_node_keys("node")
    anvil_registry.add_node(node.enode, FIRST, 30303, BOOT)
    shared = store_target("enode-dns")
    assert shared.startswith("postgresql://")
    settings = {"address_source": address_endpoint.url, "follow": True, "db": shared, "lease_seconds": LEASE_SECONDS}
    first = instances("first", write_daemon_config("first", node, relayer_keystore, **settings))
    second = instances("second", write_daemon_config("second", node, relayer_keystore, **settings))
    signer = roles.relayer.address

    first.start()
    first.wait_for(lambda b: b["role"] == "leader" and b["address"]["state"] == "in sync")
    second.start()  # shares the database: not refused, stands by
    second.wait_for(lambda b: b["ok"] and b["role"] == "standby")

    # Only the active instance pushes.
    address_endpoint.address = SECOND
    first.wait_for(lambda b: b["address"]["state"] == "in sync" and b["address"]["registered"] == f"{SECOND}:30303"
                   and b.get("pending_transactions") == 0)
    standby = second.wait_for(lambda b: b["role"] == "standby")
    assert standby["address"]["state"] == "starting"  # its address watch never ran
    assert _leader(scrape_metrics(first.health_url.replace("/health", "/metrics")), signer) == 1
    assert _leader(scrape_metrics(second.health_url.replace("/health", "/metrics")), signer) == 0
    assert [(u.args.new_host, u.args.sequence) for u in anvil_registry.endpoint_updates(node.enode)] == [(SECOND, 1)]

    # The active instance dies; the node's address changes after that.
    first.kill()
    killed_at = time.monotonic()
    address_endpoint.address = THIRD
    second.wait_for(lambda b: b["role"] == "leader", timeout=TAKEOVER_WITHIN)
    assert time.monotonic() - killed_at < TAKEOVER_WITHIN
    second.wait_for(lambda b: b["address"]["state"] == "in sync" and b["address"]["registered"] == f"{THIRD}:30303"
                    and b.get("pending_transactions") == 0)
    assert _leader(scrape_metrics(second.health_url.replace("/health", "/metrics")), signer) == 1

    # The old leader comes back: it stands by and pushes nothing.
    first.start()
    first.wait_for(lambda b: b["ok"] and b["role"] == "standby")
    time.sleep(1.0)  # a few of its ticks
    second.wait_for(lambda b: b["role"] == "leader" and b["address"]["state"] == "in sync")

    updates = anvil_registry.endpoint_updates(node.enode)
    assert [(u.args.new_host, u.args.sequence) for u in updates] == [(SECOND, 1), (THIRD, 2)]  # each once
    assert anvil_registry.registered_host(node.enode) == (THIRD, 30303)
    db = open_db(shared)
    try:
        assert [tuple(r) for r in db.execute("SELECT sequence, host FROM endpoint_updates ORDER BY sequence")] == [
            (1, SECOND), (2, THIRD)]
        outbox = db.execute("SELECT key, status FROM outbox WHERE key LIKE 'enode-endpoint-%' ORDER BY key").fetchall()
        assert [r["status"] for r in outbox] == ["mined", "mined"]
        lease = db.execute("SELECT holder, epoch FROM sender_leases WHERE signer = ?", (signer,)).fetchone()
        assert second.process is not None and f"pid {second.process.pid} " in lease["holder"]
        assert int(lease["epoch"]) == 2  # taken over once
    finally:
        db.close()
