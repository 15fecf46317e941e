"""Factories for the DCCN economy tests: the four contracts and the ANKR token on
titanoboa (fast scenario and stateful tests), deployed and wired by the deploy parts themselves
(dccn_deploy.boa_backend)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boa
import pytest

from dccn_common import PROJECT_ROOT
from dccn_deploy import run_parts
from dccn_deploy.boa_backend import boa_context
from dccn_deploy.parts.dccn import Economy, EconomyParams
from dccn_scheduler.economy import WAD

CONTRACTS = PROJECT_ROOT / "contracts"
boa.interpret.set_search_paths([str(CONTRACTS), str(PROJECT_ROOT)])

ROLES = ("deployer", "tenant", "provider", "app_provider", "monitor", "reporter", "treasury", "alice", "bob",
         "carol")


@dataclass
class Actors:
    deployer: str
    tenant: str
    provider: str
    app_provider: str
    monitor: str
    reporter: str
    treasury: str
    alice: str
    bob: str
    carol: str


@dataclass
class BoaEconomy:
    """The deployed economy, with the token and the actors that use it."""

    token: Any
    staking: Any
    reputation: Any
    escrow: Any
    capacity: Any
    actors: Actors
    params: EconomyParams

    def fund(self, account: str, amount: int) -> None:
        self.token.transfer(account, amount, sender=self.actors.deployer)

    def stake(self, account: str, amount: int) -> None:
        self.token.approve(self.staking.address, amount, sender=account)
        self.staking.stake(amount, sender=account)

    def fund_rewards(self, amount: int) -> None:
        self.token.approve(self.staking.address, amount, sender=self.actors.deployer)
        self.staking.fund_rewards(amount, sender=self.actors.deployer)

    def open_deal(self, rate: int, max_duration: int, deposit: int, sla: int = 90, *,
                  tenant: str | None = None, provider: str | None = None) -> int:
        tenant = tenant or self.actors.tenant
        self.token.approve(self.escrow.address, deposit, sender=tenant)
        return self.escrow.open_deal(provider or self.actors.provider, self.actors.app_provider, rate,
                                     max_duration, deposit, sla, sender=tenant)

    def holdings(self) -> int:
        """ANKR held by the four contracts."""
        return sum(self.token.balanceOf(c.address) for c in (self.staking, self.escrow, self.capacity))


@pytest.fixture(scope="session")
def boa_deployments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("boa-deployments")


def boa_economy(deployments: Path, params: EconomyParams | None = None) -> BoaEconomy:
    """The token and dccn deploy parts run on boa (dccn_deploy.boa_backend), the actors funded."""
    actors = Actors(*(boa.env.generate_address(role) for role in ROLES))
    params = replace(params or EconomyParams(), monitor=actors.monitor, reporter=actors.reporter,
                     treasury=actors.treasury)
    ctx = run_parts(boa_context(actors.deployer, params={"dccn": params}, deployments=deployments), ("token", "dccn"))
    deployed = Economy.of(ctx)
    economy = BoaEconomy(ctx.at("AnkrToken"), deployed.staking, deployed.reputation, deployed.escrow,
                         deployed.capacity, actors, params)
    for account in (actors.tenant, actors.provider, actors.alice, actors.bob, actors.carol):
        economy.fund(account, 1_000_000 * WAD)
    return economy


@pytest.fixture(scope="session")
def deployed_economy(boa_deployments: Path) -> BoaEconomy:
    return boa_economy(boa_deployments)


@pytest.fixture
def economy(deployed_economy: BoaEconomy) -> Iterator[BoaEconomy]:
    """The economy with default parameters, rolled back (state and clock) after the test."""
    with boa.env.anchor():
        yield deployed_economy


@pytest.fixture
def make_economy(boa_deployments: Path) -> Iterator[Any]:
    """Factory: an economy with other parameters (the deploy parts run again)."""
    with boa.env.anchor():
        yield lambda **changes: boa_economy(boa_deployments, EconomyParams(**changes))
