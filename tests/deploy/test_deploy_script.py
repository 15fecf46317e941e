"""`ape run deploy` against a real anvil: manifest, idempotence, dry run, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from dccn_common import PROJECT_ROOT
from dccn_common.manifest import Manifest, manifest_path
from dccn_devtools.anvil import Anvil
from dccn_devtools.ports import free_port

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
    manifest = Manifest.load(manifest_path(31337, tmp_path))
    w3 = chain.web3()
    token = manifest.contract(w3, "AnkrToken")
    assert token.functions.totalSupply().call() == 10_000_000_000 * 10**18
    for entry in manifest.contracts.values():
        assert w3.eth.get_code(entry.address), f"{entry.name} has no code"
        assert entry.block > 0 and entry.abi_hash.startswith("0x")
    watcher_step = next(line for line in result.stdout.splitlines() if "plasma-watcher" in line)
    assert f"--rpc-url {chain.url}" in watcher_step


def test_deploy__rerun__reports_existing_and_sends_nothing(chain, tmp_path: Path) -> None:
    assert run_deploy(chain, tmp_path).returncode == 0
    first = Manifest.load(manifest_path(31337, tmp_path))
    block_before = chain.block_number()
    again = run_deploy(chain, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already deployed" in again.stdout
    assert chain.block_number() == block_before, "a re-run sent transactions"
    second = Manifest.load(manifest_path(31337, tmp_path))
    assert {n: c.address for n, c in second.contracts.items()} == {n: c.address for n, c in first.contracts.items()}


def test_deploy__dry_run__prints_plan_and_sends_nothing(chain, tmp_path: Path) -> None:
    block_before = chain.block_number()
    result = run_deploy(chain, tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "would deploy" in result.stdout and "DRY RUN" in result.stdout
    assert chain.block_number() == block_before
    assert not (tmp_path / "31337.json").exists()
    assert "IncompleteFieldDefinitionWarning" not in result.stdout + result.stderr, "ape's pydantic warning is back"


# Gas of each planned transaction against the real receipt: the fork runs the same
# transactions on the same state, so they agree to well within this.
GAS_TOLERANCE = 0.001


def _deployer_receipts(w3: Any, deployer: str, first_block: int) -> dict[int, Any]:
    """nonce -> receipt of every transaction `deployer` sent from `first_block` on."""
    found = {}
    for number in range(first_block, w3.eth.block_number + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if tx["from"] == deployer:
                found[tx["nonce"]] = w3.eth.get_transaction_receipt(tx["hash"])
    return found


def test_deploy__dry_run_plan__equals_the_real_deploy_that_follows(chain, tmp_path: Path) -> None:
    w3 = chain.web3()
    deployer = chain.dev_accounts()[0]
    plan_file = tmp_path / "plan.json"
    dry = run_deploy(chain, tmp_path / "dry", "--dry-run", "--plan-out", str(plan_file))
    assert dry.returncode == 0, dry.stderr[-3000:]
    planned = json.loads(plan_file.read_text())["transactions"]
    first_block, nonce_before = chain.block_number() + 1, w3.eth.get_transaction_count(deployer)

    real = run_deploy(chain, tmp_path / "real")
    assert real.returncode == 0, real.stderr[-3000:]
    manifest = Manifest.load(manifest_path(31337, tmp_path / "real"))
    receipts = _deployer_receipts(w3, deployer, first_block)

    assert len(planned) == w3.eth.get_transaction_count(deployer) - nonce_before == len(receipts)
    assert {t["name"]: t["address"] for t in planned if t["kind"] == "deploy"} == \
        {name: entry.address for name, entry in manifest.contracts.items()}
    for tx in planned:
        receipt = receipts[tx["nonce"]]
        assert abs(tx["gas"] - receipt["gasUsed"]) <= GAS_TOLERANCE * receipt["gasUsed"], tx
        if tx["kind"] == "deploy":
            assert receipt["contractAddress"] == tx["address"], tx


@pytest.mark.parametrize("mode", [["--dry-run"], []], ids=["dry-run", "real"])
def test_deploy__constructor_reverts__one_short_line_with_the_reason(chain, tmp_path: Path, mode: list[str]) -> None:
    params = yaml.safe_load((PROJECT_ROOT / "config" / "deploy.local.yaml").read_text())
    validator = params["bridge"]["validators"][0]
    params["bridge"].update(validators=[validator, validator, params["bridge"]["validators"][1]], threshold=2)
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(params))
    result = run_deploy(chain, tmp_path, *mode, "--only", "token", "--only", "bridge", "--params", str(bad))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "deploying ForeignBridge: reverted: bridge: already a validator" in output
    assert "Traceback" not in output and len(output) < 4_000, output[-4_000:]


def test_deploy__bad_parameter_file__clear_error_no_traceback(chain, tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("token: [\n")
    result = run_deploy(chain, tmp_path, "--params", str(bad))
    assert result.returncode != 0
    assert "invalid YAML" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_deploy__on_the_readmes_dccn_anvil_chain__succeeds_and_blocks_keep_coming(tmp_path: Path) -> None:
    # The README's local setup: `dccn-anvil --port P --pid-file F`, then `ape run deploy`.
    port, pid_file = free_port(), tmp_path / "anvil.pid"
    started = subprocess.run([sys.executable, "-m", "dccn_devtools.anvil", "--port", str(port), "--pid-file",
                              str(pid_file)], capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    node = Anvil(port=port)
    try:
        result = run_deploy(node, tmp_path, "--only", "token")
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        assert "AnkrToken" in Manifest.load(manifest_path(31337, tmp_path)).contracts
        after_deploy = node.block_number()
        time.sleep(2.5)
        assert node.block_number() > after_deploy, "no blocks without transactions: confirmations never come"
    finally:
        os.kill(int(pid_file.read_text()), signal.SIGTERM)



def test_ape_command__any__prints_no_pydantic_warning() -> None:
    """A user's own `ape compile` stays quiet too, not only the deploy script (bootstrap's .pth filter)."""
    env = {**os.environ, "APE_DATA_FOLDER": str(PROJECT_ROOT / ".ape")}
    ape = str(Path(sys.executable).parent / "ape")
    result = subprocess.run([ape, "compile"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "incomplete definition" not in result.stdout + result.stderr, "ape's pydantic warning is back"
