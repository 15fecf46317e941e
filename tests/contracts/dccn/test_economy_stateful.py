"""Stateful property test of the whole economy on titanoboa: random staking, rewards,
deals, breaches, ratings and capacity rewards, with the invariants checked after
every step: tokens conserved, every contract holds exactly what it owes, nobody
withdraws more than owed, reputation in [0, 1], self-dealing refused, deals below
the minimum fee leave reputation untouched, and the w3 reward carries over: after
every accrual the total paid is exactly min(total earned = w3-weighted exact integral
of reputation, the backing share of the account's fee backing), so what the cap holds
back is paid once more fees back it and nothing is lost to whoever calls the accrual;
after every step the total paid is never more than the exact integral (each second at
the w3 of that second, w3 changes included) nor than the backing share of the platform
fees of the qualifying deals that fed the account's reputation."""

from __future__ import annotations

import boa
from hypothesis import event
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
MONTH = 30 * DAY
BPS = 10_000
W3S = (100 * WAD, 0, 37 * WAD, 400 * WAD)
# w0 changes start a new accumulator segment (pending stakes resolve their epoch start across them).
W0S = (5 * 10**13, 0, 2 * 10**14)
# Default first: deals below and above the minimum both happen with these deal sizes.
MIN_FEES = (20 * WAD, 0, WAD, 100 * WAD, 2_500 * WAD)


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
            # Python model of each participant's reputation over time: a step function, so its exact
            # integral is the sum of (seconds held x reputation), folded after every step; the weighted
            # one multiplies each second by the w3 of that second (w3 changes only at a step).
            now = boa.env.evm.patch.timestamp
            self.clock = {x: (now, economy.reputation.reputation(x), 0, 0) for x in participants}
            self.w3_accrued = dict.fromkeys(participants, 0)
            self.earned_at_accrual = dict.fromkeys(participants, 0)  # total w3 earned (ANKR wei)

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
            economy.escrow.set_min_reputation_fee(MIN_FEES[0], sender=a.deployer)

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

        @rule(who=st.sampled_from(PROVIDERS + TENANTS + ("app_provider",)))
        def accrue_reputation_reward(self, who: str) -> None:
            account = getattr(a, who)
            cap = economy.staking.reputation_reward_cap(account)
            earned = self.clock[account][3] // (MONTH * WAD)  # the weighted integral is folded up to now
            held_back = min(self.earned_at_accrual[account], cap) - self.w3_accrued[account]
            credited = economy.staking.accrue_reputation_reward(account)
            event("w3 accrual " + ("credits" if credited else "credits nothing") + (
                ", capped by the fee backing" if earned > cap else "") + (
                ", pays w3 held back before" if held_back > 0 else ""))
            self.w3_accrued[account] += credited
            self.earned_at_accrual[account] = earned
            # Carry-over: total paid is exactly min(total earned, cap), whoever called and however often.
            assert self.w3_accrued[account] == economy.staking.reputation_rewarded(account) == min(earned, cap)
            assert economy.staking.reputation_earned(account) == earned

        @rule(w3=st.sampled_from(W3S))
        def set_w3(self, w3: int) -> None:
            p = economy.params
            economy.staking.set_weights(p.w0, p.w1, p.w2, w3, sender=a.deployer)  # the model is folded to now

        @rule(w0=st.sampled_from(W0S))
        def set_w0(self, w0: int) -> None:
            p = economy.params
            economy.staking.set_weights(w0, p.w1, p.w2, economy.staking.w3(), sender=a.deployer)

        @rule(seconds=st.sampled_from((DAY, 3_600)) | st.integers(1, 3 * DAY))
        def warp(self, seconds: int) -> None:
            boa.env.time_travel(seconds=seconds)

        @rule(seconds=st.sampled_from((MONTH, 2 * MONTH)) | st.integers(1, 2 * MONTH))
        def warp_months(self, seconds: int) -> None:
            boa.env.time_travel(seconds=seconds)

        @rule(min_fee=st.sampled_from(MIN_FEES))
        def set_min_reputation_fee(self, min_fee: int) -> None:
            economy.escrow.set_min_reputation_fee(min_fee, sender=a.deployer)

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

        @rule(who=st.sampled_from(PROVIDERS + TENANTS), roles=st.sampled_from(("tp", "ta", "pa", "tpa")),
              rate=st.integers(1, 10**16), duration=st.integers(1, 5 * DAY))
        def self_deal(self, who: str, roles: str, rate: int, duration: int) -> None:
            """One account in two or three roles of a deal (t tenant, p provider, a app provider): refused,
            nothing changes."""
            account = getattr(a, who)
            others = iter(x for x in (a.app_provider, a.tenant, a.carol) if x != account)
            tenant = account if "t" in roles else next(others)
            provider = account if "p" in roles else next(others)
            app_provider = account if "a" in roles else next(others)
            before = self._snapshot()
            with boa.reverts("escrow: parties must be distinct"):
                economy.escrow.open_deal(provider, app_provider, rate, duration, rate * duration, 90, sender=tenant)
            assert self._snapshot() == before

        @rule(tenant=st.sampled_from(TENANTS), provider=st.sampled_from(PROVIDERS),
              rate=st.sampled_from((WAD, 10**17)), duration=st.sampled_from((3_600, 600, 60)),
              level=st.integers(0, 100), score=st.integers(0, 100))
        def short_deal_to_its_end(self, tenant: str, provider: str, rate: int, duration: int, level: int,
                                  score: int) -> None:
            """A whole short deal (platform fee 0.3 to 180 ANKR, both sides of the minimum): opened,
            measured halfway, run out, rated, with time passing inside the step."""
            deal_id = economy.escrow.open_deal(getattr(a, provider), a.app_provider, rate, duration, rate * duration,
                                               0, sender=getattr(a, tenant))
            self.deals.append(deal_id)
            self._fold_model()  # reputation may have changed in this step before the clock moves
            boa.env.time_travel(seconds=duration // 2)
            before = self._reputation_of_parties(deal_id)
            economy.escrow.report_service_level(deal_id, level, sender=a.monitor)  # SLA 0: never a breach
            self._check_min_fee(deal_id, before)
            self._fold_model()
            boa.env.time_travel(seconds=duration - duration // 2)
            before = self._reputation_of_parties(deal_id)
            economy.escrow.settle(deal_id, sender=a.bob)
            economy.escrow.rate_provider(deal_id, score, sender=getattr(a, tenant))
            self._check_min_fee(deal_id, before)

        @rule(seconds=st.sampled_from((MONTH, DAY)) | st.integers(1, 2 * MONTH))
        def accrue_everyone_later(self, seconds: int) -> None:
            boa.env.time_travel(seconds=seconds)
            self._fold_model()  # the lower bound below compares with the integral up to now
            for who in PROVIDERS + TENANTS + ("app_provider",):
                self.accrue_reputation_reward(who)

        @precondition(lambda self: self.deals)
        @rule(pick=st.integers(0, 10**6), action=st.sampled_from(("settle", "collect")))
        def touch_deal(self, pick: int, action: str) -> None:
            deal_id = self.deals[-1 - pick % len(self.deals)]
            before = self._reputation_of_parties(deal_id)
            getattr(economy.escrow, action)(deal_id, sender=a.bob)
            self._check_min_fee(deal_id, before)

        @precondition(lambda self: self.deals)
        @rule(pick=st.integers(0, 10**6), level=st.integers(0, 100))
        def report_service_level(self, pick: int, level: int) -> None:
            deal_id = self.deals[-1 - pick % len(self.deals)]
            if economy.escrow.deal(deal_id)[4] == 1 and economy.escrow.streamed(deal_id) < self._value(deal_id):
                before = self._reputation_of_parties(deal_id)
                economy.escrow.report_service_level(deal_id, level, sender=a.monitor)
                self._check_min_fee(deal_id, before)

        @precondition(lambda self: self.deals)
        @rule(pick=st.integers(0, 10**6))
        def cancel_deal(self, pick: int) -> None:
            deal_id = self.deals[-1 - pick % len(self.deals)]
            if economy.escrow.deal(deal_id)[4] == 1 and economy.escrow.streamed(deal_id) < self._value(deal_id):
                before = self._reputation_of_parties(deal_id)
                tenant = economy.escrow.parties(deal_id)[0]
                economy.escrow.cancel_deal(deal_id, sender=tenant)
                self._check_min_fee(deal_id, before)

        @precondition(lambda self: self.deals)
        @rule(pick=st.integers(0, 10**6), score=st.integers(0, 100))
        def rate_provider(self, pick: int, score: int) -> None:
            deal_id = self.deals[-1 - pick % len(self.deals)]
            before = self._reputation_of_parties(deal_id)
            economy.escrow.settle(deal_id)
            if economy.escrow.deal(deal_id)[4] in (2, 3):
                economy.escrow.rate_provider(deal_id, score, sender=economy.escrow.parties(deal_id)[0])
            self._check_min_fee(deal_id, before)

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

        def _snapshot(self) -> tuple[object, ...]:
            return (economy.escrow.deal_count(), [economy.token.balanceOf(x) for x in holders],
                    [(economy.reputation.deals(x), economy.reputation.scores(x)) for x in participants])

        def _reputation_of_parties(self, deal_id: int) -> list[tuple[object, object]]:
            return [(economy.reputation.deals(x), economy.reputation.scores(x))
                    for x in economy.escrow.parties(deal_id)]

        def _check_min_fee(self, deal_id: int, before: list[tuple[object, object]]) -> None:
            """A deal that has not paid the minimum platform fee leaves its parties' reputation as it was."""
            if economy.escrow.platform_fee_paid(deal_id) < economy.escrow.min_reputation_fee():
                event("deal below the minimum fee")
                assert self._reputation_of_parties(deal_id) == before
            elif self._reputation_of_parties(deal_id) != before:
                event("deal above the minimum fee fed reputation")

        def _fold_model(self) -> None:
            """Brings the model's integrals to now; called after every step and before time moves inside one."""
            now = boa.env.evm.patch.timestamp
            w3 = economy.staking.w3()  # constant since the last fold
            for account in participants:
                since, held, integral, weighted = self.clock[account]
                integral += (now - since) * held  # reputation changes only at a step's timestamp
                weighted += (now - since) * held * w3
                self.clock[account] = (now, economy.reputation.reputation(account), integral, weighted)

        @invariant()
        def w3_never_pays_more_than_reputation_held_nor_than_its_fees_back(self) -> None:
            self._fold_model()
            backing_bps = economy.staking.reputation_reward_backing_bps()
            deal_fees = {x: 0 for x in participants}
            for deal_id in self.deals:
                fee = economy.escrow.platform_fee_paid(deal_id)
                for party in economy.escrow.parties(deal_id):
                    deal_fees[party] += fee
            backed = 0
            for account in participants:
                _, _, integral, weighted = self.clock[account]
                assert economy.reputation.reputation_integral(account) == integral
                assert economy.reputation.reward_integral(account) == weighted
                paid = self.w3_accrued[account]
                assert paid == economy.staking.reputation_rewarded(account)
                assert paid <= self.earned_at_accrual[account] == economy.staking.reputation_earned(account)
                # Never more than the exact w3-weighted integral (a w3 change is never retroactive) ...
                assert paid * MONTH * WAD <= weighted
                # ... nor than the backing share of the qualifying fees (its share of each deal's fee).
                fee_backing = economy.reputation.fee_backing(account)
                assert fee_backing <= deal_fees[account]
                assert paid * BPS <= backing_bps * fee_backing
                backed += fee_backing
            # Each qualifying deal's fee is shared among its parties, never counted twice.
            assert backed <= sum(economy.escrow.platform_fee_paid(d) for d in self.deals)

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
