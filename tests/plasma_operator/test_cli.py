"""The operator's command line: --help, and bad input answered with one clear line (the client's
and the watcher's: tests/plasma_client/test_cli.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from plasma_operator import server


def test_operator_help__documents_options() -> None:
    result = CliRunner().invoke(server.main, ["--help"])
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
