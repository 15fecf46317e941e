"""Bad input to the CLI: one clear line, exit code 2, nothing started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dccn_devtools.ports import free_port
from token_bridge.cli import main

from .conftest import BridgeHarness


def _run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env=env)


def test_cli__every_command_has_help() -> None:
    for command in ([], ["validator"], ["relayer"], ["status"]):
        result = _run(*command, "--help")
        assert result.exit_code == 0 and "Usage" in result.output


@pytest.mark.parametrize(("config", "message"), [
    ("ethereum_confirmations: -1\n", "ethereum_confirmations"),
    ("keystore: /nonexistent/key.json\n", "keystore not found"),
    (": : :\n", "not valid"),
])
def test_validator__bad_config__clear_error_exit_2(tmp_path: Path, config: str, message: str) -> None:
    path = tmp_path / "validator.yaml"
    path.write_text(config)
    result = _run("validator", "--config", str(path), env={"TOKEN_BRIDGE_PASSWORD": "x"})
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_relayer__no_validator_urls__clear_error(tmp_path: Path) -> None:
    result = _run("relayer", "--db", str(tmp_path / "r.db"))
    assert result.exit_code == 2 and "validator_urls is empty" in result.output


def _status(config: Path, eth_rpc: str, ankr_rpc: str, eth_manifest: Path, ankr_manifest: Path, *extra: str) -> Any:
    config.write_text(f"ethereum_rpc_url: {eth_rpc}\nankr_rpc_url: {ankr_rpc}\n"
                      f"ethereum_manifest: {eth_manifest}\nankr_manifest: {ankr_manifest}\n")
    return _run("status", "--config", str(config), *extra)


@pytest.mark.anvil
def test_status__manifest_missing_or_node_down__clear_error(make_bridge: Any, tmp_path: Path) -> None:
    h: BridgeHarness = make_bridge(4, 3)
    config, eth_manifest, ankr_manifest = tmp_path / "c.yaml", h.bridge.ethereum_manifest, h.bridge.ankr_manifest
    result = _status(config, h.eth.url, h.ankr.url, tmp_path / "missing.json", ankr_manifest)
    assert result.exit_code == 2 and "no deployment manifest" in result.output
    result = _status(config, f"http://127.0.0.1:{free_port()}", h.ankr.url, eth_manifest, ankr_manifest)
    assert result.exit_code == 2 and "cannot reach the node" in result.output
    result = _status(config, h.ankr.url, h.ankr.url, eth_manifest, ankr_manifest)
    assert result.exit_code == 2 and "is for chain 31337" in result.output


@pytest.mark.anvil
def test_status__prints_both_bridges_and_invariant(make_bridge: Any, tmp_path: Path) -> None:
    h: BridgeHarness = make_bridge(4, 3)
    result = _status(tmp_path / "c.yaml", h.eth.url, h.ankr.url, h.bridge.ethereum_manifest, h.bridge.ankr_manifest,
                     "--native-supply", "1000000000")
    assert result.exit_code == 0, result.output
    assert "4 / 3" in result.output and "in flight 0.0000 ANKR" in result.output
