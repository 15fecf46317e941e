"""Besu 25.6+ no longer calls connectionAllowed: the daemon carries the registry to its allowlist.

`rpc` mode is tested against `BesuPermServer` (conftest), a loopback JSON-RPC server that
follows Besu's documented PERM API (method names, params, results, error codes and
messages), since Besu itself cannot be installed here; `files` mode by reading the files back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dccn_common.config import ConfigError, load_config
from enode_dns.besu_allowlist import endpoint_of
from enode_dns.besu_files import read_toml_array
from enode_dns.daemon import ENV_PREFIX, DaemonConfig, EnodeDnsDaemon, main
from enode_dns.enode import enode_url

from .conftest import BOOT, VALIDATOR, AnvilRegistry, BesuPermServer, NodeKeys

OPERATOR_ENTRY = "enode://" + "ab" * 64 + "@192.0.2.50:30303"  # added by the operator, not the registry


def _daemon(path: Path) -> EnodeDnsDaemon:
    return EnodeDnsDaemon(load_config(DaemonConfig, path, ENV_PREFIX))


def _sync(daemon: EnodeDnsDaemon) -> dict[str, Any]:
    """Follow the registry to its head and carry it to Besu, as one daemon tick does."""
    assert daemon.follower is not None
    daemon.follower.poll_once()
    daemon.rewrite_files()
    return daemon.status()


@pytest.fixture
def rpc_daemon_config(
    anvil_registry: AnvilRegistry, make_node_keys: Callable[[str], NodeKeys], relayer_keystore: Path,
    besu_perm_server: BesuPermServer, besu_dir: Path, write_daemon_config: Callable[..., Path],
) -> tuple[Path, NodeKeys]:
    """boot0's daemon in rpc mode, with boot0 listed."""
    boot0 = make_node_keys("boot0")
    anvil_registry.add_node(boot0.enode, "10.0.0.1", 30303, BOOT)
    config = write_daemon_config("boot0", boot0, relayer_keystore, follow=True, besu_permissioning="rpc",
                                 besu_rpc_url=besu_perm_server.url, resolver=f"hosts:{besu_dir / 'hosts'}")
    return config, boot0


def test_rpc_mode__added_moved_and_removed_nodes__reach_besu_allowlist(
    anvil_registry: AnvilRegistry, make_node_keys: Callable[[str], NodeKeys],
    besu_perm_server: BesuPermServer, rpc_daemon_config: tuple[Path, NodeKeys],
) -> None:
    config, boot0 = rpc_daemon_config
    besu_perm_server.allowlist = [OPERATOR_ENTRY]
    boot1, validator = make_node_keys("boot1"), make_node_keys("validator")
    anvil_registry.add_node(boot1.enode, "203.0.113.10", 30303, BOOT)
    anvil_registry.add_node(validator.enode, "validator1.ankr.test", 30311, VALIDATOR)  # resolved: 10.2.0.1
    daemon = _daemon(config)

    status = _sync(daemon)
    boot0_url, validator_url = enode_url(boot0.enode.hex, "10.0.0.1", 30303), enode_url(
        validator.enode.hex, "10.2.0.1", 30311)
    old_boot1 = enode_url(boot1.enode.hex, "203.0.113.10", 30303)
    assert sorted(besu_perm_server.allowlist) == sorted([OPERATOR_ENTRY, boot0_url, old_boot1, validator_url])
    assert status["besu_allowlist"]["errors"] == [] and status["besu_allowlist"]["entries"] == 4

    anvil_registry.move_node(boot1.account, "2001:db8::7", 30304)  # a changed host: old entry out, new in
    _sync(daemon)
    new_boot1 = enode_url(boot1.enode.hex, "2001:db8::7", 30304)
    assert sorted(besu_perm_server.allowlist) == sorted([OPERATOR_ENTRY, boot0_url, new_boot1, validator_url])

    anvil_registry.remove_node(validator.enode)  # revoked: removed; the operator's entry stays
    _sync(daemon)
    assert sorted(besu_perm_server.allowlist) == sorted([OPERATOR_ENTRY, boot0_url, new_boot1])


def test_rpc_mode__name_stops_resolving__last_entry_kept_until_it_resolves_again(
    anvil_registry: AnvilRegistry, make_node_keys: Callable[[str], NodeKeys],
    besu_perm_server: BesuPermServer, besu_dir: Path, rpc_daemon_config: tuple[Path, NodeKeys],
) -> None:
    config, _ = rpc_daemon_config
    validator = make_node_keys("validator")
    anvil_registry.add_node(validator.enode, "validator1.ankr.test", 30311, VALIDATOR)
    daemon = _daemon(config)
    _sync(daemon)
    first = enode_url(validator.enode.hex, "10.2.0.1", 30311)
    assert first in besu_perm_server.allowlist

    (besu_dir / "hosts").write_text("")  # a DNS hiccup: the validator must not be cut off
    _sync(daemon)
    assert first in besu_perm_server.allowlist and daemon.status()["unresolved"] == ["validator1.ankr.test"]

    (besu_dir / "hosts").write_text("10.2.0.9 validator1.ankr.test\n")
    _sync(daemon)
    assert first not in besu_perm_server.allowlist
    assert enode_url(validator.enode.hex, "10.2.0.9", 30311) in besu_perm_server.allowlist


def test_rpc_mode__restart__no_duplicate_calls_and_revocation_still_removed(
    anvil_registry: AnvilRegistry, make_node_keys: Callable[[str], NodeKeys],
    besu_perm_server: BesuPermServer, rpc_daemon_config: tuple[Path, NodeKeys],
) -> None:
    config, boot0 = rpc_daemon_config
    boot1 = make_node_keys("boot1")
    anvil_registry.add_node(boot1.enode, "203.0.113.10", 30303, BOOT)
    _sync(_daemon(config))
    adds = besu_perm_server.count("perm_addNodesToAllowlist")
    assert adds == 2

    restarted = _daemon(config)  # a new process on the same database
    _sync(restarted)
    _sync(restarted)
    assert besu_perm_server.count("perm_addNodesToAllowlist") == adds
    assert besu_perm_server.count("perm_removeNodesFromAllowlist") == 0

    anvil_registry.remove_node(boot1.enode)
    _sync(_daemon(config))  # the entry was added by an earlier process: still known as the daemon's
    assert besu_perm_server.allowlist == [enode_url(boot0.enode.hex, "10.0.0.1", 30303)]


def test_rpc_mode__operator_entry_equal_to_a_revoked_node__is_left_alone(
    anvil_registry: AnvilRegistry, make_node_keys: Callable[[str], NodeKeys],
    besu_perm_server: BesuPermServer, rpc_daemon_config: tuple[Path, NodeKeys],
) -> None:
    config, _ = rpc_daemon_config
    boot1 = make_node_keys("boot1")
    operator_copy = enode_url(boot1.enode.hex, "203.0.113.10", 30303)
    besu_perm_server.allowlist = [operator_copy]  # listed by the operator before the registry did
    anvil_registry.add_node(boot1.enode, "203.0.113.10", 30303, BOOT)
    daemon = _daemon(config)
    _sync(daemon)
    anvil_registry.remove_node(boot1.enode)
    _sync(daemon)
    assert operator_copy in besu_perm_server.allowlist


def test_rpc_mode__add_fails_once__recorded_and_added_on_the_next_tick(
    besu_perm_server: BesuPermServer, rpc_daemon_config: tuple[Path, NodeKeys],
) -> None:
    config, boot0 = rpc_daemon_config
    besu_perm_server.fail_adds = 1
    daemon = _daemon(config)
    failed = _sync(daemon)
    assert besu_perm_server.allowlist == []
    assert "Unable to persist changes" in failed["besu_allowlist"]["errors"][0] and failed["ok"] is False
    recovered = _sync(daemon)
    assert besu_perm_server.allowlist == [enode_url(boot0.enode.hex, "10.0.0.1", 30303)]
    assert recovered["besu_allowlist"]["errors"] == []


def test_rpc_mode__revoked_fixed_node__reported_and_retried_until_removable(
    anvil_registry: AnvilRegistry, make_node_keys: Callable[[str], NodeKeys],
    besu_perm_server: BesuPermServer, rpc_daemon_config: tuple[Path, NodeKeys],
) -> None:
    config, _ = rpc_daemon_config
    boot1 = make_node_keys("boot1")
    anvil_registry.add_node(boot1.enode, "203.0.113.10", 30303, BOOT)
    daemon = _daemon(config)
    _sync(daemon)
    boot1_url = enode_url(boot1.enode.hex, "203.0.113.10", 30303)
    besu_perm_server.fixed.add(boot1_url)  # Besu was restarted with boot1 as a bootnode
    anvil_registry.remove_node(boot1.enode)
    status = _sync(daemon)
    assert boot1_url in besu_perm_server.allowlist
    assert status["ok"] is False and "Cannot remove a fixed node" in status["besu_allowlist"]["errors"][0]
    besu_perm_server.fixed.clear()
    _sync(daemon)
    assert boot1_url not in besu_perm_server.allowlist


def test_rpc_mode__allowlist_not_enabled_on_besu__reported_without_failing_the_tick(
    besu_perm_server: BesuPermServer, rpc_daemon_config: tuple[Path, NodeKeys],
) -> None:
    config, _ = rpc_daemon_config
    besu_perm_server.enabled = False
    daemon = _daemon(config)
    daemon.bot.tick()  # self-updates and the follower go on
    status = daemon.status()
    assert status["ok"] is False
    assert "Node allowlist has not been enabled" in status["besu_allowlist"]["errors"][0]


def test_files_mode__allowlist_file_follows_registry__and_besu_reloads_it(
    anvil_registry: AnvilRegistry, make_node_keys: Callable[[str], NodeKeys], relayer_keystore: Path,
    besu_perm_server: BesuPermServer, besu_dir: Path, write_daemon_config: Callable[..., Path],
) -> None:
    boot0, boot1 = make_node_keys("boot0"), make_node_keys("boot1")
    anvil_registry.add_node(boot0.enode, "10.0.0.1", 30303, BOOT)
    anvil_registry.add_node(boot1.enode, "203.0.113.10", 30303, BOOT)
    permissions = besu_dir / "permissions_config.toml"
    besu_perm_server.permissions_file = permissions
    config = write_daemon_config("boot0", boot0, relayer_keystore, follow=True, besu_permissioning="files",
                                 permissions_config=permissions, besu_rpc_url=besu_perm_server.url)
    daemon = _daemon(config)
    _sync(daemon)
    boot0_url = enode_url(boot0.enode.hex, "10.0.0.1", 30303)
    expected = [boot0_url, enode_url(boot1.enode.hex, "203.0.113.10", 30303)]
    assert sorted(read_toml_array(permissions, "nodes-allowlist")) == sorted(expected)
    assert read_toml_array(permissions, "accounts-allowlist") == ["0xabc"]
    assert sorted(besu_perm_server.allowlist) == sorted(expected)  # what Besu re-read from the file

    anvil_registry.move_node(boot1.account, "198.51.100.77")
    _sync(daemon)
    moved = [boot0_url, enode_url(boot1.enode.hex, "198.51.100.77", 30303)]
    assert sorted(read_toml_array(permissions, "nodes-allowlist")) == sorted(moved)
    assert sorted(besu_perm_server.allowlist) == sorted(moved)
    reloads = besu_perm_server.count("perm_reloadPermissionsFromFile")
    _sync(daemon)  # nothing changed: no reload
    assert besu_perm_server.count("perm_reloadPermissionsFromFile") == reloads

    anvil_registry.remove_node(boot1.enode)
    _sync(_daemon(config))  # after a restart too
    assert read_toml_array(permissions, "nodes-allowlist") == [boot0_url]
    assert besu_perm_server.allowlist == [boot0_url]


@pytest.mark.parametrize("settings, message", [
    ({"besu_permissioning": "rpc", "follow": True}, "needs besu_rpc_url"),
    ({"besu_permissioning": "rpc", "follow": True, "besu_rpc_url": "http://127.0.0.1:8545",
      "permissions_config": "/tmp/p.toml"}, "leave permissions_config unset"),
    ({"besu_permissioning": "files", "follow": True}, "needs permissions_config"),
    ({"besu_permissioning": "files", "permissions_config": "/tmp/p.toml"}, "needs follow: true"),
    ({"besu_permissioning": "ldap", "follow": True}, "besu_permissioning"),
    ({"besu_permissioning": "rpc", "follow": True, "besu_rpc_url": "ftp://x"}, "besu_rpc_url"),
])
def test_config__inconsistent_besu_permissioning__clear_error(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(DaemonConfig, None, ENV_PREFIX, manifest="m.json", node_keystore="k", **settings)


def test_run__rpc_mode_without_url__exit_2_one_line(tmp_path: Path) -> None:
    config = tmp_path / "rpc.yaml"
    config.write_text("manifest: /nowhere.json\nnode_keystore: /nowhere\nfollow: true\nbesu_permissioning: rpc\n")
    result = CliRunner().invoke(main, ["run", "--config", str(config)])
    assert result.exit_code == 2 and "besu_rpc_url" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("url, endpoint", [
    ("enode://" + "AB" * 64 + "@10.0.0.1:30303", "ab" * 64 + "@10.0.0.1:30303"),
    ("enode://" + "ab" * 64 + "@10.0.0.1:30303?discport=30301", "ab" * 64 + "@10.0.0.1:30303"),
    ("enode://" + "ab" * 64 + "@[2001:db8:0:0:0:0:0:7]:30304", "ab" * 64 + "@2001:db8::7:30304"),
    ("enode://" + "ab" * 64 + "@boot1.example.org:30303", None),
    ("enode://" + "ab" * 63 + "@10.0.0.1:30303", None),
    ("admin://x@10.0.0.1:1", None),
])
def test_endpoint_of__besu_spellings_compare_equal(url: str, endpoint: str | None) -> None:
    assert endpoint_of(url) == endpoint
