"""The enode-dns command line: help everywhere, keys in keystores, bad input -> one line and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dccn_common import PROJECT_ROOT
from enode_dns.daemon import main

from .conftest import NODE_PASSWORD_ENV, PASSWORD


@pytest.mark.parametrize("command", [[], ["run"], ["keygen"], ["enode-id"], ["check-host"], ["push-update"],
                                     ["render"]])
def test_help__every_command(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_keygen_then_enode_id__key_only_in_encrypted_keystore(tmp_path: Path) -> None:
    env = {NODE_PASSWORD_ENV: PASSWORD}
    keystore = tmp_path / "node.keystore"
    created = CliRunner().invoke(main, ["keygen", str(keystore)], env=env)
    assert created.exit_code == 0, created.output
    enode_hex = created.output.strip()
    assert len(enode_hex) == 128 and '"crypto"' in keystore.read_text() and enode_hex not in keystore.read_text()
    shown = CliRunner().invoke(main, ["enode-id", str(keystore)], env=env)
    assert shown.exit_code == 0 and enode_hex in shown.output
    again = CliRunner().invoke(main, ["keygen", str(keystore)], env=env)
    assert again.exit_code == 2 and "refusing to overwrite" in again.output


def test_enode_id__password_missing_or_wrong__exit_2_without_traceback(tmp_path: Path) -> None:
    keystore = tmp_path / "node.keystore"
    CliRunner().invoke(main, ["keygen", str(keystore)], env={NODE_PASSWORD_ENV: PASSWORD})
    missing = subprocess.run([sys.executable, "-m", "enode_dns.daemon", "enode-id", str(keystore)],
                             cwd=PROJECT_ROOT, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert missing.returncode == 2 and missing.stderr.startswith("error:") and "Traceback" not in missing.stderr
    wrong = CliRunner().invoke(main, ["enode-id", str(keystore)], env={NODE_PASSWORD_ENV: "nope"})
    assert wrong.exit_code == 2 and "cannot unlock" in wrong.output


def test_run__bad_config__exit_2_names_the_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("manifest: /nowhere.json\nnode_keystore: /nowhere\naddress_source: ftp://x\np2p_port: 0\n")
    result = CliRunner().invoke(main, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "address_source" in result.output and "p2p_port" in result.output


def test_check_host__valid_and_invalid() -> None:
    assert CliRunner().invoke(main, ["check-host", "boot1.example.org"]).output.strip() == "dns"
    bad = CliRunner().invoke(main, ["check-host", "boot1..example.org"])
    assert bad.exit_code == 2 and "not an IP literal" in bad.output


def _daemon_config(tmp_path: Path, **settings: object) -> Path:
    import yaml

    config = tmp_path / "enode-dns.yaml"
    config.write_text(yaml.safe_dump({"manifest": str(tmp_path / "m.json"), "node_keystore": str(tmp_path / "k"),
                                      "db": str(tmp_path / "enode-dns.sqlite"), **settings}))
    return config


def _run_process(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "enode_dns.daemon", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120)


def test_run__health_port_in_use__one_line_exit_2(tmp_path: Path, busy_port: int) -> None:
    result = _run_process("run", "--config", str(_daemon_config(tmp_path)), "--health-port", str(busy_port))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: port {busy_port} is in use (health_port)"


def test_run__not_a_database__one_line_file_untouched(tmp_path: Path, make_broken_db: Any) -> None:
    db = make_broken_db("not_sqlite")
    before = db.read_bytes()
    result = _run_process("run", "--config", str(_daemon_config(tmp_path, db=str(db))))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {db} is not a SQLite database; refusing to touch it"
    assert db.read_bytes() == before


def test_run__misspelt_setting__named(tmp_path: Path) -> None:
    config = _daemon_config(tmp_path, pol_interval=1)
    result = _run_process("run", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {config}: unknown setting pol_interval (known: ")


@pytest.mark.anvil
def test_run_then_push_update_and_second_daemon__refused_naming_the_running_daemon(
        spawn: Any, cli_run: Any, make_node_keys: Any, relayer_keystore: Path, write_daemon_config: Any,
        roles: Any) -> None:
    import socket

    from dccn_devtools.ports import free_port

    port = free_port()
    config = write_daemon_config("boot1", make_node_keys("boot1"), relayer_keystore, follow=True)
    daemon = spawn("enode_dns.daemon", "run", "--config", str(config), "--health-port", str(port), name="boot1")
    daemon.health(port)
    holder = f"enode-dns (pid {daemon.process.pid} on {socket.gethostname()}); stop it first"
    same_db = cli_run("enode_dns.daemon", "push-update", "--config", str(config), "--host", "203.0.113.9")
    assert same_db.returncode == 2
    db = config.with_name("boot1.sqlite")
    assert same_db.stderr.strip() == f"error: database {db} is in use by {holder}"
    other = write_daemon_config("boot2", make_node_keys("boot2"), relayer_keystore, follow=True)
    same_payer = cli_run("enode_dns.daemon", "run", "--config", str(other))
    assert same_payer.returncode == 2
    assert same_payer.stderr.strip() == f"error: signing key {roles.relayer.address} on chain 31337 is in use by {holder}"
    assert daemon.process.poll() is None


@pytest.mark.anvil
def test_run__manifest_of_another_chain__one_line_exit_2(
        make_node_keys: Any, relayer_keystore: Path, write_daemon_config: Any, anvil_registry: Any) -> None:
    from dccn_common.manifest import Manifest

    config = write_daemon_config("boot1", make_node_keys("boot1"), relayer_keystore)
    manifest = Manifest.load(anvil_registry.manifest_path)
    other = anvil_registry.manifest_path.with_name("other-chain.json")
    Manifest(chain_id=manifest.chain_id + 1, network="test", contracts=manifest.contracts).save(other)
    config.write_text(config.read_text().replace(str(anvil_registry.manifest_path), str(other)))
    result = CliRunner().invoke(main, ["run", "--config", str(config)])
    assert result.exit_code == 2
    rpc_url = anvil_registry.w3.provider.endpoint_uri
    assert result.output.strip() == (f"error: rpc_url: {other} is for chain {manifest.chain_id + 1} but {rpc_url} "
                                     f"is chain {manifest.chain_id}")


@pytest.mark.anvil
@pytest.mark.parametrize("store_backend", ["postgresql"], indirect=True)
def test_push_update__postgresql__refused_while_a_daemon_is_active__then_pushed_once_it_stopped(
        make_node_keys: Any, relayer_keystore: Path, write_daemon_config: Any, anvil_registry: Any) -> None:
    from dccn_common.config import load_config
    from enode_dns.daemon import ENV_PREFIX, DaemonConfig, EnodeDnsDaemon

    from .conftest import BOOT

    node = make_node_keys("boot1")
    anvil_registry.add_node(node.enode, "203.0.113.10", 30303, BOOT)
    config = write_daemon_config("boot1", node, relayer_keystore, follow=True)
    daemon = EnodeDnsDaemon(load_config(DaemonConfig, config, ENV_PREFIX))
    daemon.bot.tick()
    assert daemon.bot.is_leader
    for command in (["push-update", "--host", "203.0.113.9"], ["render"]):
        refused = CliRunner().invoke(main, [*command, "--config", str(config)])
        assert refused.exit_code == 2, refused.output
        assert "is in use by enode-dns pid" in refused.output and "the active enode-dns instance; stop it first" \
            in refused.output
    assert anvil_registry.endpoint_updates(node.enode) == []

    daemon.stand_down()  # a clean stop hands the lease over
    pushed = CliRunner().invoke(main, ["push-update", "--host", "203.0.113.9", "--config", str(config)])
    assert pushed.exit_code == 0, pushed.output
    assert [(u.args.new_host, u.args.sequence) for u in anvil_registry.endpoint_updates(node.enode)] == [
        ("203.0.113.9", 1)]
    daemon.bot.tick()  # the daemon, back, finds the lease free and the update already made
    assert daemon.bot.is_leader and daemon.sender.pending_count() == 0
