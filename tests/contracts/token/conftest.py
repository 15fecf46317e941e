"""ape, connected to this worker's anvil through ape-foundry."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def ape_network(anvil: Any) -> Iterator[Any]:
    os.environ["APE_FOUNDRY_HOST"] = anvil.url
    from ape import networks

    with networks.parse_network_choice("ethereum:local:foundry") as provider:
        yield provider


@pytest.fixture
def ape_chain(ape_network: Any, chain: Any) -> Any:
    """ape's view of the chain; the `chain` fixture reverts the test's changes."""
    return ape_network


@pytest.fixture
def deployer(ape_chain: Any) -> Any:
    from ape import accounts

    return accounts.test_accounts[0]


@pytest.fixture
def holders(ape_chain: Any) -> list[Any]:
    from ape import accounts

    return [accounts.test_accounts[i] for i in range(6, 10)]


@pytest.fixture
def token(deployer: Any, tmp_path: Path) -> Any:
    """AnkrToken from the token part, run through ape as `ape run deploy` runs it."""
    from dccn_deploy import run_deploy

    ctx = run_deploy(network="local", deployer=deployer, only=("token",), deployments=tmp_path / "deployments",
                     echo=lambda _line: None)
    return ctx.at("AnkrToken")
