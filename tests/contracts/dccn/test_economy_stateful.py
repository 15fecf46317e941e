"""Stateful property test of the whole economy on titanoboa: random staking, rewards,
deals, breaches, ratings and capacity rewards, with the invariants checked after
every step: tokens conserved, every contract holds exactly what it owes, nobody
withdraws more than owed, reputation in [0, 1]."""

from __future__ import annotations

import boa
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from dccn_scheduler.economy import DAY, WAD

TOTAL_SUPPLY = 10_000_000_000 * WAD
PROVIDERS = ("provider", "alice", "bob")
TENANTS = ("tenant", "carol")


def test_economy__invariants_hold_under_random_use(deployed_economy):
    economy = deployed_economy
    a = economy.actors
    everyone = [a.deployer, a.tenant, a.provider, a.app_provider, a.monitor, a.reporter, a.treasury, a.alice, a.bob,
                a.carol]
    holders = [*everyone, economy.staking.address, economy.escrow.address, economy.capacity.address]
    participants = [getattr(a, name) for name in PROVIDERS + TENANTS + ("app_provider",)]
    payees = [*participants, a.treasury]

    class Economy(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self._anchor = boa.env.anchor()
            self._anchor.__enter__()
            self.deals: list[int] = []
            self.capacity_reports: list[tuple[str, int]] = []

        def teardown(self) -> None:
            self._anchor.__exit__(None, None, None)

        @initialize()
        def approvals(self) -> None:
            for name in PROVIDERS + TENANTS:
                account = getattr(a, name)
                economy.token.approve(economy.staking.address, 2**255, sender=account)
                economy.token.approve(economy.escrow.address, 2**255, sender=account)
            economy.token.approve(economy.staking.address, 2**255, sender=a.deployer)
            economy.token.approve(economy.capacity.address, 2**255, sender=a.deployer)

        # -- staking and rewards ------------------------------------------------------

        @rule(who=st.sampled_from(PROVIDERS), amount=st.integers(1, 200_000 * WAD))
        def stake(self, who: str, amount: int) -> None:
            economy.staking.stake(amount, sender=getattr(a, who))

        @rule(who=st.sampled_from(PROVIDERS), share=st.integers(1, 100))
        def request_unstake(self, who: str, share: int) -> None:
            account = getattr(a, who)
            active, pending, _, _, _ = economy.staking.stake_info(account)
            staked = economy.staking.staked(account) + (pending if economy.staking.staked(account) == active else 0)
            amount = staked * share // 100
            if amount:
                economy.staking.request_unstake(amount, sender=account)

        @rule(who=st.sampled_from(PROVIDERS))
        def withdraw_unbonded(self, who: str) -> None:
            account = getattr(a, who)
            _, _, _, unbonding, unlock_at = economy.staking.stake_info(account)
            if unbonding and boa.env.evm.patch.timestamp >= unlock_at:
                before = economy.token.balanceOf(account)
                economy.staking.withdraw(sender=account)
                assert economy.token.balanceOf(account) - before == unbonding

        @rule(amount=st.integers(1, 10_000 * WAD))
        def fund_rewards(self, amount: int) -> None:
            economy.staking.fund_rewards(amount, sender=a.deployer)

        @rule(who=st.sampled_from(PROVIDERS + TENANTS + ("app_provider",)))
        def claim(self, who: str) -> None:
            account = getattr(a, who)
            owed, pool = economy.staking.earned(account), economy.staking.reward_pool()
            if min(owed, pool) == 0:
                return
            before = economy.token.balanceOf(account)
            paid = economy.staking.claim(sender=account)
            assert paid == min(owed, pool)
            assert economy.token.balanceOf(account) - before == paid

        @rule(who=st.sampled_from(PROVIDERS + TENANTS))
        def accrue_reputation_reward(self, who: str) -> None:
            economy.staking.accrue_reputation_reward(getattr(a, who))

        @rule(seconds=st.integers(1, 3 * DAY))
        def warp(self, seconds: int) -> None:
            boa.env.time_travel(seconds=seconds)

        # -- deals --------------------------------------------------------------------

        @rule(tenant=st.sampled_from(TENANTS), provider=st.sampled_from(PROVIDERS),
              rate=st.integers(1, 10**16), duration=st.integers(1, 5 * DAY), deposit=st.integers(1, 50_000 * WAD),
              sla=st.integers(0, 100))
        def open_deal(self, tenant: str, provider: str, rate: int, duration: int, deposit: int, sla: int) -> None:
            if deposit < rate:
                return
            deal_id = economy.escrow.open_deal(getattr(a, provider), a.app_provider, rate, duration, deposit, sla,
                                               sender=getattr(a, tenant))
            self.deals.append(deal_id)

        @precondition(lambda self: self.deals)
        @rule(pick=st.integers(0, 10**6), action=st.sampled_from(("settle", "collect")))
        def touch_deal(self, pick: int, action: str) -> None:
            getattr(economy.escrow, action)(self.deals[pick % len(self.deals)], sender=a.bob)

        @precondition(lambda self: self.deals)
        @rule(pick=st.integers(0, 10**6), level=st.integers(0, 100))
        def report_service_level(self, pick: int, level: int) -> None:
            deal_id = self.deals[pick % len(self.deals)]
            if economy.escrow.deal(deal_id)[4] == 1 and economy.escrow.streamed(deal_id) < self._value(deal_id):
                economy.escrow.report_service_level(deal_id, level, sender=a.monitor)

        @precondition(lambda self: self.deals)
        @rule(pick=st.integers(0, 10**6))
        def cancel_deal(self, pick: int) -> None:
            deal_id = self.deals[pick % len(self.deals)]
            if economy.escrow.deal(deal_id)[4] == 1 and economy.escrow.streamed(deal_id) < self._value(deal_id):
                tenant = economy.escrow.parties(deal_id)[0]
                economy.escrow.cancel_deal(deal_id, sender=tenant)

        @precondition(lambda self: self.deals)
        @rule(pick=st.integers(0, 10**6), score=st.integers(0, 100))
        def rate_provider(self, pick: int, score: int) -> None:
            deal_id = self.deals[pick % len(self.deals)]
            economy.escrow.settle(deal_id)
            if economy.escrow.deal(deal_id)[4] in (2, 3):
                economy.escrow.rate_provider(deal_id, score, sender=economy.escrow.parties(deal_id)[0])

        @rule(who=st.sampled_from(PROVIDERS + TENANTS + ("app_provider", "treasury")))
        def escrow_withdraw(self, who: str) -> None:
            account = getattr(a, who)
            owed = economy.escrow.balances(account)
            if owed:
                before = economy.token.balanceOf(account)
                assert economy.escrow.withdraw(sender=account) == owed
                assert economy.token.balanceOf(account) - before == owed

        # -- capacity -----------------------------------------------------------------

        @rule(amount=st.integers(1, 50_000 * WAD))
        def fund_capacity(self, amount: int) -> None:
            economy.capacity.fund(amount, sender=a.deployer)

        @rule(node=st.sampled_from(PROVIDERS), processors=st.integers(1, 8), cores=st.integers(1, 32),
              time_ms=st.integers(1, 10_000), disk=st.integers(1, 1_000))
        def report_capacity(self, node: str, processors: int, cores: int, time_ms: int, disk: int) -> None:
            account = getattr(a, node)
            day = boa.env.evm.patch.timestamp // DAY
            if economy.capacity.reports(account, day)[0] == 0:
                economy.capacity.report(account, processors, cores, time_ms, WAD, disk, 0, sender=a.reporter)
                self.capacity_reports.append((account, day))

        @rule()
        def claim_capacity(self) -> None:
            today = boa.env.evm.patch.timestamp // DAY
            for account, day in self.capacity_reports:
                owed = economy.capacity.claimable(account, day)
                if day < today and not economy.capacity.reports(account, day)[1]:
                    assert economy.capacity.claim([day], sender=account) == owed

        # -- invariants ---------------------------------------------------------------

        def _value(self, deal_id: int) -> int:
            start, _, end, rate, _, _, _ = economy.escrow.deal(deal_id)
            return rate * (end - start)

        @invariant()
        def books_balance(self) -> None:
            balances = {x: economy.token.balanceOf(x) for x in holders}
            # Tokens are conserved: the actors and the contracts hold the whole supply.
            assert sum(balances.values()) == TOTAL_SUPPLY
            # Staking holds exactly the stakes (active, pending, unbonding) and the reward pool.
            owed = economy.staking.reward_pool()
            for name in PROVIDERS:
                active, pending, _, unbonding, _ = economy.staking.stake_info(getattr(a, name))
                owed += active + pending + unbonding
            assert balances[economy.staking.address] == owed
            # The escrow holds exactly the uncollected deposits and the credited balances.
            owed = sum(economy.escrow.balances(x) for x in payees)
            for deal_id in self.deals:
                _, _, end, rate, _, _, collected_to = economy.escrow.deal(deal_id)
                owed += rate * (end - collected_to)
            assert balances[economy.escrow.address] == owed
            # Capacity rewards cover the reserve and every unclaimed day share.
            owed = economy.capacity.reserve()
            owed += sum(economy.capacity.claimable(account, day) for account, day in self.capacity_reports)
            assert balances[economy.capacity.address] >= owed
            for account in participants:
                assert 0 <= economy.reputation.reputation(account) <= WAD

    run_state_machine_as_test(Economy)
