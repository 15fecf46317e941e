"""The three command lines: --help everywhere, and bad input answered with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from plasma_operator import client, server, watcher
from plasma_operator.wallet import WalletError, parse_amount

CLIENT_COMMANDS = ["deposit", "send", "balance", "utxos", "exit", "challenge", "finalize", "withdraw", "confirm"]


@pytest.mark.parametrize("command", [[], *[[c] for c in CLIENT_COMMANDS]])
def test_client_help__every_command_documents_itself(command: list[str]) -> None:
    result = CliRunner().invoke(client.main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output and len(result.output.splitlines()) > 4
    if not command:
        assert all(c in result.output for c in CLIENT_COMMANDS)


@pytest.mark.parametrize("entry", [server.main, watcher.main])
def test_service_help__documents_options(entry: Any) -> None:
    result = CliRunner().invoke(entry, ["--help"])
    assert result.exit_code == 0 and "--manifest" in result.output and "--keystore" in result.output


def test_operator__missing_manifest__one_line_error_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "plasma_operator.server", "--manifest", str(tmp_path / "none.json"),
         "--keystore", str(tmp_path / "none.json"), "--db", str(tmp_path / "op.db")],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PLASMA_OPERATOR_PASSWORD": "x"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: keystore not found")
    assert "Traceback" not in result.stderr


def test_operator__invalid_setting__names_the_field(tmp_path: Path) -> None:
    config = tmp_path / "operator.yaml"
    config.write_text("manifest: m.json\nkeystore: k.json\nblock_size: 70000\n")
    result = CliRunner().invoke(server.main, ["--config", str(config)])
    assert result.exit_code == 2
    assert "block_size" in result.output


def test_client__bad_amount_and_address__clear_errors(tmp_path: Path) -> None:
    runner = CliRunner(mix_stderr=False)
    result = runner.invoke(client.main, ["--keystore", str(tmp_path / "k.json"), "send", "0x1234", "1"])
    assert result.exit_code == 2 and "is not an address" in result.stderr
    result = runner.invoke(client.main, ["deposit", "lots"])
    assert result.exit_code == 2 and "is not an amount" in result.stderr
    result = runner.invoke(client.main, ["exit", "1000", "70000", "0"])
    assert result.exit_code == 2 and "70000" in result.stderr


@pytest.mark.parametrize(("text", "value"), [("1000", 1000), ("1.5ether", 15 * 10**17), ("2eth", 2 * 10**18),
                                             ("3gwei", 3 * 10**9), ("1_000", 1000)])
def test_parse_amount__units(text: str, value: int) -> None:
    assert parse_amount(text) == value


@pytest.mark.parametrize("text", ["", "-1", "1.5", "abc", "1.2.3ether"])
def test_parse_amount__garbage__refused(text: str) -> None:
    with pytest.raises(WalletError):
        parse_amount(text)


@pytest.mark.anvil
def test_operator__manifest_names_an_address_without_code__one_line_error(plasma: Any, tmp_path: Path) -> None:
    import json

    data = json.loads(plasma.manifest.read_text())
    data["contracts"]["RootChain"]["address"] = "0x" + "ab" * 20
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(data))
    result = subprocess.run(
        [sys.executable, "-m", "plasma_operator.server", "--rpc-url", plasma.anvil.url, "--manifest", str(wrong),
         "--keystore", str(plasma.keystore(plasma.roles.operator)), "--db", str(tmp_path / "op.db"),
         "--api-port", "0"],  # the API is bound before the manifest is checked: any free port
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PLASMA_OPERATOR_PASSWORD": "plasma-test-password"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: no contract at 0x")
    assert "Traceback" not in result.stderr
