"""`ape run deploy` against a real anvil: manifest, idempotence, dry run, bad input."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dccn_common import PROJECT_ROOT
from dccn_common.manifest import Manifest

pytestmark = pytest.mark.xdist_group("ape")


def run_deploy(anvil: Any, deployments: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APE_FOUNDRY_HOST": anvil.url, "DCCN_DEPLOYMENTS_DIR": str(deployments)}
    return subprocess.run(
        ["ape", "run", "deploy", "--network", "ethereum:local:foundry", *extra],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


def test_deploy__writes_manifest_with_live_contracts(chain, tmp_path: Path) -> None:
    result = run_deploy(chain, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = Manifest.for_chain(31337, tmp_path)
    w3 = chain.web3()
    token = manifest.contract(w3, "AnkrToken")
    assert token.functions.totalSupply().call() == 10_000_000_000 * 10**18
    for entry in manifest.contracts.values():
        assert w3.eth.get_code(entry.address), f"{entry.name} has no code"
        assert entry.block > 0 and entry.abi_hash.startswith("0x")


def test_deploy__rerun__reports_existing_and_sends_nothing(chain, tmp_path: Path) -> None:
    assert run_deploy(chain, tmp_path).returncode == 0
    first = Manifest.for_chain(31337, tmp_path)
    block_before = chain.block_number()
    again = run_deploy(chain, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already deployed" in again.stdout
    assert chain.block_number() == block_before, "a re-run sent transactions"
    second = Manifest.for_chain(31337, tmp_path)
    assert {n: c.address for n, c in second.contracts.items()} == {n: c.address for n, c in first.contracts.items()}


def test_deploy__dry_run__prints_plan_and_sends_nothing(chain, tmp_path: Path) -> None:
    block_before = chain.block_number()
    result = run_deploy(chain, tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "would deploy" in result.stdout and "DRY RUN" in result.stdout
    assert chain.block_number() == block_before
    assert not (tmp_path / "31337.json").exists()


def test_deploy__bad_parameter_file__clear_error_no_traceback(chain, tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("token: [\n")
    result = run_deploy(chain, tmp_path, "--params", str(bad))
    assert result.returncode != 0
    assert "invalid YAML" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
