"""Factories for the DCCN economy tests: the four contracts and the ANKR token on
titanoboa (fast scenario and stateful tests), wired exactly as the deploy part wires them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boa
import pytest

from dccn_common import PROJECT_ROOT
from dccn_deploy.parts.dccn import (
    ESCROW_ROLE,
    MONITOR_ROLE,
    RECORDER_ROLE,
    REPORTER_ROLE,
    REWARDER_ROLE,
    EconomyParams,
)
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
def dccn_factories() -> dict[str, Any]:
    names = ["AnkrToken", "DccnStaking", "DccnReputation", "DccnDealEscrow", "DccnCapacityRewards"]
    paths = {n: next(CONTRACTS.rglob(f"{n}.vy")) for n in names}
    return {n: boa.load_partial(str(p)) for n, p in paths.items()}


def deploy_boa_economy(factories: dict[str, Any], params: EconomyParams | None = None) -> BoaEconomy:
    params = params or EconomyParams()
    actors = Actors(*(boa.env.generate_address(role) for role in ROLES))
    with boa.env.prank(actors.deployer):
        token = factories["AnkrToken"].deploy()
        staking = factories["DccnStaking"].deploy(*params.staking_args(token.address))
        reputation = factories["DccnReputation"].deploy(*params.reputation_args())
        escrow = factories["DccnDealEscrow"].deploy(
            *params.escrow_args(token.address, staking.address, reputation.address, actors.treasury))
        capacity = factories["DccnCapacityRewards"].deploy(*params.capacity_args(token.address))
        staking.grantRole(ESCROW_ROLE, escrow.address)
        staking.grantRole(REWARDER_ROLE, escrow.address)
        reputation.grantRole(RECORDER_ROLE, escrow.address)
        escrow.grantRole(MONITOR_ROLE, actors.monitor)
        capacity.grantRole(REPORTER_ROLE, actors.reporter)
        staking.set_reputation_source(reputation.address)
        staking.set_fee_source(escrow.address)
        reputation.set_reward_clock(staking.address)
    economy = BoaEconomy(token, staking, reputation, escrow, capacity, actors, params)
    for account in (actors.tenant, actors.provider, actors.alice, actors.bob, actors.carol):
        economy.fund(account, 1_000_000 * WAD)
    return economy


@pytest.fixture(scope="session")
def deployed_economy(dccn_factories: dict[str, Any]) -> BoaEconomy:
    return deploy_boa_economy(dccn_factories)


@pytest.fixture
def economy(deployed_economy: BoaEconomy) -> Iterator[BoaEconomy]:
    """The economy with default parameters, rolled back (state and clock) after the test."""
    with boa.env.anchor():
        yield deployed_economy


@pytest.fixture
def make_economy(dccn_factories: dict[str, Any]) -> Iterator[Any]:
    """Factory: an economy with other parameters."""
    with boa.env.anchor():
        yield lambda **changes: deploy_boa_economy(dccn_factories, EconomyParams(**changes))
