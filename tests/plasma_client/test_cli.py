"""The user side's command lines (plasma-client, plasma-watcher): --help everywhere, and bad input
answered with one clear line (the operator's: tests/plasma_operator/test_cli.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from plasma_client import client, watcher
from plasma_client.wallet import WalletError, parse_amount

CLIENT_COMMANDS = ["deposit", "send", "balance", "utxos", "exit", "challenge", "finalize", "withdraw", "confirm"]


@pytest.mark.parametrize("command", [[], *[[c] for c in CLIENT_COMMANDS]])
def test_client_help__every_command_documents_itself(command: list[str]) -> None:
    result = CliRunner().invoke(client.main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output and len(result.output.splitlines()) > 4
    if not command:
        assert all(c in result.output for c in CLIENT_COMMANDS)


def test_watcher_help__documents_options() -> None:
    result = CliRunner().invoke(watcher.main, ["--help"])
    assert result.exit_code == 0 and "--manifest" in result.output and "--keystore" in result.output


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
