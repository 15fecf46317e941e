"""/metrics of the enode-dns daemon started as a real process: the self-update it pushes when
its address changes, and the registry it mirrors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dccn_devtools.ports import free_port

from .conftest import BOOT, AddressEndpoint, AnvilRegistry


@pytest.mark.anvil
def test_metrics__daemon_process__reports_registry_updates_pushed(
        spawn: Any, make_node_keys: Any, relayer_keystore: Path, write_daemon_config: Any,
        anvil_registry: AnvilRegistry, address_endpoint: AddressEndpoint, roles: Any,
        scrape_metrics: Any, documented_metrics: Any) -> None:
    node = make_node_keys("boot1")
    anvil_registry.add_node(node.enode, "203.0.113.10", 30303, BOOT)
    address_endpoint.address = "198.51.100.77"
    port = free_port()
    config = write_daemon_config("boot1", node, relayer_keystore, follow=True, address_source=address_endpoint.url)
    daemon = spawn("enode_dns.daemon", "run", "--config", str(config), "--health-port", str(port), name="boot1")
    daemon.health(port)
    url = f"http://127.0.0.1:{port}/metrics"
    scrape = scrape_metrics(url, until=lambda m: m.value("dccn_enode_registry_updates", status="mined") == 1
                            and m.value("dccn_enode_registry_nodes") == 1)  # the self-update mined and mirrored
    assert anvil_registry.registered_host(node.enode) == ("198.51.100.77", 30303)
    assert scrape.value("dccn_enode_registry_updates", service="enode-dns", status="failed") == 0
    assert scrape.value("dccn_outbox_transactions", status="mined", signer=roles.relayer.address) == 1
    assert scrape.value("dccn_follower_events_handled_total", follower="enode-dns") >= 2  # admitted, then moved
    assert scrape.value("dccn_leader", signer=roles.relayer.address) == 1
    assert scrape.value("dccn_enode_besu_file_writes_total") == 0  # no Besu files configured
    assert documented_metrics.missing(documented_metrics.with_prefix("dccn_enode_"), scrape) == set()
    assert documented_metrics.undocumented(scrape) == set()
