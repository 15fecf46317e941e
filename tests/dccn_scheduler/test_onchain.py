"""The scheduler reading stake and reputation from the deployed contracts (anvil)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dccn_deploy.parts.dccn import RECORDER_ROLE, Economy, EconomyParams
from dccn_scheduler.cli import main
from dccn_scheduler.economy import DAY, WAD, send

pytestmark = pytest.mark.anvil


@pytest.fixture
def manifest_file(chain, w3, roles, ankr_token, create_parts):
    """The manifest the deploy parts wrote (token, economy), with a stake and a rating on chain."""
    deployed = create_parts("dccn", dccn=EconomyParams(
        treasury=roles.operator.address, monitor=roles.monitor.address, reporter=roles.validator.address))
    economy = Economy.of(deployed)
    staked = roles.provider.address
    send(w3, ankr_token.functions.transfer(staked, 1_000 * WAD), roles.deployer.address)
    send(w3, ankr_token.functions.approve(economy.staking.address, 1_000 * WAD), staked)
    send(w3, economy.staking.functions.stake(1_000 * WAD), staked)
    chain.warp(DAY)
    # carol's reputation: one rating of 100 (recorded by the deployer standing in for the escrow)
    send(w3, economy.reputation.functions.grantRole(RECORDER_ROLE, roles.deployer.address), roles.deployer.address)
    send(w3, economy.reputation.functions.record_rating(roles.carol.address, 100), roles.deployer.address)
    return deployed.manifest_file


def _market(roles) -> dict:
    node = {"cpu": 4, "memory": 8, "disk": 10, "bandwidth": 10, "price": 10}
    return {
        "providers": [
            {"id": "unstaked", "address": roles.bob.address, "nodes": [{"id": "u", **node}]},
            {"id": "staked", "address": roles.provider.address, "nodes": [{"id": "s", **node}]},
        ],
        "users": {"carol": {"address": roles.carol.address}},
        "tasks": [{"id": "t1", "user": "carol", "cpu": 1, "memory": 1}],
    }


def test_schedule__stake_read_from_chain_decides_the_provider(chain, roles, manifest_file, tmp_path):
    market = tmp_path / "market.json"
    market.write_text(json.dumps(_market(roles)))
    outcome = CliRunner(mix_stderr=False).invoke(
        main, ["schedule", str(market), "--rpc", chain.url, "--manifest", str(manifest_file), "--format", "json"])
    assert outcome.exit_code == 0, outcome.stderr
    result = json.loads(outcome.stdout)
    assert [p["provider"] for p in result["placements"]] == ["staked"]
    # carol's weight is 1 + her reputation (0.1): her dominant share is divided by it
    assert result["dominant_shares"]["staked"]["carol"] == pytest.approx((1 / 4) / 1.1)
    plain = CliRunner(mix_stderr=False).invoke(main, ["schedule", str(market), "--format", "json"])
    assert [p["provider"] for p in json.loads(plain.stdout)["placements"]] == ["unstaked"]  # ties: input order


def test_schedule__unreachable_rpc__clear_error(roles, manifest_file, tmp_path):
    market = tmp_path / "market.json"
    market.write_text(json.dumps(_market(roles)))
    outcome = CliRunner(mix_stderr=False).invoke(
        main, ["schedule", str(market), "--rpc", "http://127.0.0.1:9", "--manifest", str(manifest_file)])
    assert outcome.exit_code == 2
    assert outcome.stderr.startswith("error: cannot read the contracts")
