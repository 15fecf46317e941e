"""`token-bridge validator` / `relayer` start-up as real processes: ports bound before any work,
one instance per database and signing key, damaged databases refused untouched, and a relayer
without gas unhealthy with the reason."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from eth_account import Account

from dccn_common.keys import write_keystore
from dccn_devtools.ports import free_port

from .conftest import CONFIRMATIONS, BridgeHarness

PASSWORD_ENV = {"TOKEN_BRIDGE_PASSWORD": "pw"}


@pytest.fixture
def bridge_config(tmp_path: Path) -> Any:
    """Factory: bridge_config(name, key, harness=None, **settings) -> a config file for one service."""

    def factory(name: str, key: str, harness: BridgeHarness | None = None, **settings: Any) -> Path:
        keystore = tmp_path / f"{name}.json"
        if not keystore.exists():
            write_keystore(keystore, key, "pw", kdf_n=2**4)
        base: dict[str, Any] = {"keystore": str(keystore), "db_path": str(tmp_path / f"{name}.db"), "poll_interval": 0.2}
        if harness is not None:
            base.update({"ethereum_rpc_url": harness.eth.url, "ankr_rpc_url": harness.ankr.url,
                         "ethereum_manifest": str(harness.bridge.ethereum_manifest),
                         "ankr_manifest": str(harness.bridge.ankr_manifest),
                         "ethereum_confirmations": CONFIRMATIONS["ethereum"],
                         "ankr_confirmations": CONFIRMATIONS["ankr"]})
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**base, **settings}))
        return path

    return factory


@pytest.mark.parametrize("setting", ["signatures_port", "health_port"])
def test_validator__port_in_use__one_line_exit_2_before_connecting(cli_run: Any, bridge_config: Any, roles: Any,
                                                                    busy_port: int, setting: str) -> None:
    # No node runs at the configured RPC URLs: the port is checked before anything connects.
    config = bridge_config("v1", roles.v1.key, ethereum_rpc_url=f"http://127.0.0.1:{free_port()}",
                           **{setting: busy_port})
    result = cli_run("token_bridge.cli", "validator", "--config", str(config), env=PASSWORD_ENV)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: port {busy_port} is in use ({setting})"


def test_validator__not_a_database__one_line_file_untouched(cli_run: Any, bridge_config: Any, roles: Any,
                                                            make_broken_db: Any) -> None:
    db = make_broken_db("malformed")
    before = db.read_bytes()
    config = bridge_config("v1", roles.v1.key, db_path=str(db))
    result = cli_run("token_bridge.cli", "validator", "--config", str(config), env=PASSWORD_ENV)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {db}: database disk image is malformed; refusing to touch it"
    assert db.read_bytes() == before


def test_validator__unknown_setting__named(cli_run: Any, bridge_config: Any, roles: Any) -> None:
    config = bridge_config("v1", roles.v1.key, pol_interval=1)
    result = cli_run("token_bridge.cli", "validator", "--config", str(config), env=PASSWORD_ENV)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {config}: unknown setting pol_interval (known: ")


@pytest.mark.anvil
def test_validator__second_instance_same_key__refused_naming_the_holder(
        make_bridge: Any, spawn: Any, cli_run: Any, bridge_config: Any, roles: Any) -> None:
    h: BridgeHarness = make_bridge(4, 3)
    port = free_port()
    first = spawn("token_bridge.cli", "validator", "--config",
                  str(bridge_config("v1", roles.v1.key, h, health_port=port)), env=PASSWORD_ENV, name="v1")
    assert first.health(port).status_code in (200, 503)
    again = cli_run("token_bridge.cli", "validator", "--config",
                    str(bridge_config("v1-copy", roles.v1.key, h)), env=PASSWORD_ENV)
    assert again.returncode == 2
    assert again.stderr.strip() == (f"error: signing key {Account.from_key(roles.v1.key).address} on chain 31337 is "
                                    f"in use by token-bridge-validator (pid {first.process.pid} on "
                                    f"{socket.gethostname()}); stop it first")


@pytest.mark.anvil
def test_relayer__account_without_gas__health_503_with_balance_reason(
        make_bridge: Any, spawn: Any, bridge_config: Any) -> None:
    h: BridgeHarness = make_bridge(4, 3)
    broke = Account.create()  # never funded on either chain
    port = free_port()
    relayer = spawn("token_bridge.cli", "relayer", "--config",
                    str(bridge_config("relayer", broke.key.hex(), h, health_port=port,
                                      validator_urls=[f"http://127.0.0.1:{free_port()}"])),
                    env=PASSWORD_ENV, name="relayer")
    reply = relayer.health(port)
    for _ in range(50):
        if len(reply.json().get("reasons", [])) == 2:
            break
        time.sleep(0.1)
        reply = relayer.health(port)
    assert reply.status_code == 503
    reasons = reply.json()["reasons"]
    assert [r.split(":")[0] for r in reasons] == ["signing_balance ethereum", "signing_balance ankr"]
    assert all(f"signing account {broke.address} holds 0 wei, less than" in r for r in reasons)
    assert relayer.output().count('"event": "dependency failing"') == 2
