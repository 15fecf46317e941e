"""On anvil: a node's IP change flows through its daemon to the registry and into a boot node's files."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dccn_common.config import load_config
from dccn_devtools.anvil import Anvil
from dccn_devtools.pytest_fixtures import BACKENDS
from enode_dns.besu_files import read_toml_array
from enode_dns.daemon import ENV_PREFIX, DaemonConfig, EnodeDnsDaemon
from enode_dns.enode import enode_url
from enode_dns.registry import mirrored_nodes

from .conftest import BOOT, VALIDATOR, AddressEndpoint, AnvilRegistry, NodeKeys

# Each test runs on SQLite and on PostgreSQL (the db setting a postgresql:// URL).
pytestmark = pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)


def _daemon(path: Path) -> EnodeDnsDaemon:
    return EnodeDnsDaemon(load_config(DaemonConfig, path, ENV_PREFIX))


def _tick_until(daemon: EnodeDnsDaemon, done: Callable[[], bool], ticks: int = 40) -> None:
    for _ in range(ticks):
        daemon.bot.tick()
        if done():
            return
        time.sleep(0.1)  # periodic tasks are due every 0.2 s
    raise AssertionError(f"not done after {ticks} ticks: {daemon.status()}")


def test_ip_change__pushed_signed_by_enode_key__and_boot_node_files_follow(
    anvil_registry: AnvilRegistry, make_node_keys: Callable[[str], NodeKeys], relayer_keystore: Path,
    address_endpoint: AddressEndpoint, besu_dir: Path, write_daemon_config: Callable[..., Path],
) -> None:
    boot0, boot1, validator = make_node_keys("boot0"), make_node_keys("boot1"), make_node_keys("validator")
    anvil_registry.add_node(boot0.enode, "10.0.0.1", 30303, BOOT)
    anvil_registry.add_node(boot1.enode, "203.0.113.10", 30303, BOOT)
    anvil_registry.add_node(validator.enode, "validator1.ankr.test", 30303, VALIDATOR)

    # boot1 watches its address; boot0 follows the registry and owns the Besu files.
    mover = _daemon(write_daemon_config("boot1", boot1, relayer_keystore, address_source=address_endpoint.url))
    follower = _daemon(write_daemon_config(
        "boot0", boot0, relayer_keystore, follow=True, resolver=f"hosts:{besu_dir / 'hosts'}",
        besu_config=besu_dir / "config.toml", static_nodes=besu_dir / "static-nodes.json",
        permissions_config=besu_dir / "permissions_config.toml",
    ))
    _tick_until(follower, lambda: follower.file_status.writes > 0)
    before = read_toml_array(besu_dir / "config.toml", "bootnodes")
    assert before == [enode_url(boot1.enode.hex, "203.0.113.10", 30303)]

    address_endpoint.address = "198.51.100.77"
    _tick_until(mover, lambda: anvil_registry.registered_host(boot1.enode) == ("198.51.100.77", 30303))
    updates = anvil_registry.endpoint_updates(boot1.enode)
    assert [(u.args.old_host, u.args.new_host, u.args.sequence) for u in updates] == [
        ("203.0.113.10", "198.51.100.77", 1)]
    # The relayer paid; the enode key's signature authorised it.
    tx = anvil_registry.w3.eth.get_transaction(updates[0].transactionHash)
    assert tx["from"] != boot1.enode.address

    new_url = enode_url(boot1.enode.hex, "198.51.100.77", 30303)
    _tick_until(follower, lambda: read_toml_array(besu_dir / "config.toml", "bootnodes") == [new_url])
    config_text = (besu_dir / "config.toml").read_text()
    assert 'data-path="/var/lib/besu"' in config_text and "[metrics]" in config_text and "old@" not in config_text
    validator_url = enode_url(validator.enode.hex, "10.2.0.1", 30303)
    assert json.loads((besu_dir / "static-nodes.json").read_text()) == [validator_url, new_url]
    allowlist = read_toml_array(besu_dir / "permissions_config.toml", "nodes-allowlist")
    assert sorted(allowlist) == sorted([validator_url, new_url, enode_url(boot0.enode.hex, "10.0.0.1", 30303)])
    assert read_toml_array(besu_dir / "permissions_config.toml", "accounts-allowlist") == ["0xabc"]

    # A DNS-named node's address changes in DNS only: the next render follows the resolver.
    (besu_dir / "hosts").write_text("10.2.0.99 validator1.ankr.test\n")
    moved_validator = enode_url(validator.enode.hex, "10.2.0.99", 30303)
    _tick_until(follower, lambda: moved_validator in json.loads((besu_dir / "static-nodes.json").read_text()))

    # Nothing more to push once the registry matches the observed address.
    mover.bot.tick()
    assert mover.pusher.status.state == "in sync"
    assert len(anvil_registry.endpoint_updates(boot1.enode)) == 1


def test_unregistered_node__daemon_pushes_nothing(
    anvil_registry: AnvilRegistry, make_node_keys: Callable[[str], NodeKeys], relayer_keystore: Path,
    address_endpoint: AddressEndpoint, write_daemon_config: Callable[..., Path],
) -> None:
    stranger = make_node_keys("stranger")
    daemon = _daemon(write_daemon_config("stranger", stranger, relayer_keystore, address_source=address_endpoint.url))
    daemon.bot.tick()
    assert daemon.pusher.status.state == "not registered"
    assert daemon.sender.pending_count() == 0


def test_address_source_returns_garbage__nothing_signed_and_reported(
    anvil_registry: AnvilRegistry, make_node_keys: Callable[[str], NodeKeys], relayer_keystore: Path,
    address_endpoint: AddressEndpoint, write_daemon_config: Callable[..., Path],
) -> None:
    node = make_node_keys("node")
    anvil_registry.add_node(node.enode, "203.0.113.10")
    daemon = _daemon(write_daemon_config("node", node, relayer_keystore, address_source=address_endpoint.url))
    address_endpoint.address = "<html>rate limited</html>"
    daemon.bot.tick()
    assert daemon.pusher.status.state == "address source failed"
    assert daemon.sender.pending_count() == 0
    assert anvil_registry.endpoint_updates(node.enode) == []


@pytest.mark.reorgs
def test_reorg_drops_an_admission__mirror_rewinds_and_files_drop_the_node(
    chain: Anvil, anvil_registry: AnvilRegistry, make_node_keys: Callable[[str], NodeKeys], relayer_keystore: Path,
    besu_dir: Path, write_daemon_config: Callable[..., Path],
) -> None:
    boot0, boot1 = make_node_keys("boot0"), make_node_keys("boot1")
    anvil_registry.add_node(boot0.enode, "10.0.0.1", 30303, BOOT)
    anvil_registry.add_node(boot1.enode, "10.0.0.2", 30303, BOOT)  # its approval is the newest block
    follower = _daemon(write_daemon_config(
        "boot0", boot0, relayer_keystore, follow=True, besu_config=besu_dir / "config.toml"))
    boot1_url = enode_url(boot1.enode.hex, "10.0.0.2", 30303)
    _tick_until(follower, lambda: read_toml_array(besu_dir / "config.toml", "bootnodes") == [boot1_url])

    chain.reorg(1)  # the block that admitted boot1 is replaced by an empty one
    _tick_until(follower, lambda: read_toml_array(besu_dir / "config.toml", "bootnodes") == [])
    assert [n.enode_hex for n in mirrored_nodes(follower.db)] == [boot0.enode.hex]
