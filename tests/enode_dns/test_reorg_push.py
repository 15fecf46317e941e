"""A node's self-update removed by a reorg deeper than the confirmations (issue 12):
the same signed update is mined again, no second sequence is signed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dccn_devtools.anvil import Anvil
from dccn_devtools.pytest_fixtures import BACKENDS

from .conftest import BOOT, AddressEndpoint, AnvilRegistry, NodeKeys
from .test_daemon_flow import _daemon, _tick_until

# Each test runs on SQLite and on PostgreSQL (the db setting a postgresql:// URL).
pytestmark = pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)

OLD, NEW = ("203.0.113.10", 30303), ("198.51.100.77", 30303)


@pytest.mark.reorgs
def test_reorg_removes_a_mined_self_update__same_tx_mined_again__one_sequence(
    chain: Anvil, anvil_registry: AnvilRegistry, make_node_keys: Callable[[str], NodeKeys], relayer_keystore: Path,
    address_endpoint: AddressEndpoint, write_daemon_config: Callable[..., Path],
) -> None:
    node = make_node_keys("node")
    anvil_registry.add_node(node.enode, *OLD, BOOT)
    daemon = _daemon(write_daemon_config("node", node, relayer_keystore, address_source=address_endpoint.url))
    address_endpoint.address = NEW[0]
    outbox_sql = "SELECT key, tx_hash FROM outbox WHERE key LIKE 'enode-endpoint-%' AND status = 'mined'"
    _tick_until(daemon, lambda: daemon.db.execute(outbox_sql).fetchall() != [])
    (key, tx_hash), = [tuple(row) for row in daemon.db.execute(outbox_sql).fetchall()]
    assert anvil_registry.registered_host(node.enode) == NEW

    chain.mine(2)
    chain.reorg(3)  # the update and the two blocks on top of it
    assert anvil_registry.registered_host(node.enode) == OLD
    _tick_until(daemon, lambda: anvil_registry.registered_host(node.enode) == NEW
                and daemon.sender.entry(key).status == "mined")

    updates = anvil_registry.endpoint_updates(node.enode)
    assert [(u.args.new_host, u.args.sequence) for u in updates] == [(NEW[0], 1)]
    assert updates[0].transactionHash.to_0x_hex() == tx_hash  # the stored bytes again, not a new signature
    assert [tuple(r) for r in daemon.db.execute("SELECT sequence, host FROM endpoint_updates")] == [(1, NEW[0])]
