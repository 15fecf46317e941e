"""The stake-holding accumulator without per-epoch records: rpt is a piecewise-linear function of
time whose slope (w0) changes only through `set_weights`, so the accumulator at any epoch start is
computed in O(1). These tests change w0 around epoch starts and settle much later; the stateful
test checks every account's `earned` against a model that integrates w0 over time independently."""

from __future__ import annotations

import boa
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from dccn_scheduler.economy import DAY, WAD

DENOMINATOR = WAD * DAY
STAKERS = ("provider", "alice", "bob")
W0S = (5 * 10**13, 0, 10**14, 3 * 10**13 + 7)


def _now() -> int:
    return boa.env.evm.patch.timestamp


def _to_next_epoch(economy) -> None:
    genesis, length = economy.staking.GENESIS(), economy.staking.EPOCH_LENGTH()
    boa.env.time_travel(seconds=genesis + (_now() - genesis) // length * length + length - _now())


def _set_w0(economy, w0: int) -> None:
    p = economy.params
    economy.staking.set_weights(w0, p.w1, p.w2, p.w3, sender=economy.actors.deployer)


def test_w0_doubled_before_the_epoch_start__pending_stake_earns_the_new_w0_from_its_epoch(economy):
    provider = economy.actors.provider
    economy.stake(provider, 100_000 * WAD)
    boa.env.time_travel(seconds=60)
    _set_w0(economy, 2 * economy.params.w0)  # same epoch as the stake, after it
    _to_next_epoch(economy)
    boa.env.time_travel(seconds=10 * DAY)  # nobody touches the staking contract meanwhile
    assert economy.staking.earned(provider) == 100 * WAD


def test_w0_changed_after_the_epoch_start__pending_stake_earns_its_segment_w0_until_the_change(economy):
    provider = economy.actors.provider
    _set_w0(economy, 2 * economy.params.w0)  # a segment begun two epochs before the stake
    _to_next_epoch(economy)
    _to_next_epoch(economy)
    economy.stake(provider, 100_000 * WAD)
    _to_next_epoch(economy)
    boa.env.time_travel(seconds=2 * DAY)
    _set_w0(economy, 0)
    boa.env.time_travel(seconds=DAY)
    _set_w0(economy, 3 * economy.params.w0)
    boa.env.time_travel(seconds=DAY)
    assert economy.staking.earned(provider) == (20 + 0 + 15) * WAD


def test_w0_changed_twice_in_the_staking_epoch__the_last_change_counts_at_the_epoch_start(economy):
    provider, alice = economy.actors.provider, economy.actors.alice
    _set_w0(economy, 0)
    economy.stake(provider, 100_000 * WAD)
    boa.env.time_travel(seconds=60)
    _set_w0(economy, 4 * economy.params.w0)
    economy.stake(alice, 100_000 * WAD)  # staked in a later segment of the same epoch
    boa.env.time_travel(seconds=60)
    _set_w0(economy, economy.params.w0)
    _to_next_epoch(economy)
    boa.env.time_travel(seconds=DAY)
    _set_w0(economy, 2 * economy.params.w0)  # a later change: both settle across three segments
    boa.env.time_travel(seconds=DAY)
    assert economy.staking.earned(provider) == economy.staking.earned(alice) == 15 * WAD
    assert economy.staking.total_staked() == 200_000 * WAD


def test_staking__earned_matches_an_independent_integral_of_w0(deployed_economy):
    economy = deployed_economy
    actors = economy.actors
    genesis, length = economy.staking.GENESIS(), economy.staking.EPOCH_LENGTH()

    def epoch(t: int) -> int:
        return (t - genesis) // length + 1

    class Staking(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self._anchor = boa.env.anchor()
            self._anchor.__enter__()
            for name in STAKERS:
                economy.token.approve(economy.staking.address, 2**255, sender=getattr(actors, name))
            # w0 history: (from time, w0); the model integrates it, the contract looks segments up.
            self.w0s = [(genesis, economy.staking.w0())]
            self.book = {name: {"active": 0, "pending": 0, "epoch": 0, "paid": 0, "earned": 0} for name in STAKERS}

        def teardown(self) -> None:
            self._anchor.__exit__(None, None, None)

        def rpt(self, t: int) -> int:
            total = 0
            for i, (start, w0) in enumerate(self.w0s):
                end = self.w0s[i + 1][0] if i + 1 < len(self.w0s) else t
                if start >= t:
                    break
                total += w0 * (min(end, t) - start)
            return total

        def accrue(self, name: str) -> bool:
            """The contract's arithmetic: one division per update, pending from its epoch start."""
            b, now = self.book[name], _now()
            rolled = b["pending"] > 0 and epoch(now) >= b["epoch"]
            if b["active"] == 0 and not rolled:
                return False
            rpt, scaled = self.rpt(now), 0
            if rolled:
                scaled = b["pending"] * (rpt - self.rpt(genesis + (b["epoch"] - 1) * length))
            if b["active"]:
                scaled += b["active"] * (rpt - b["paid"])
            b["earned"] += scaled // DENOMINATOR
            b["paid"] = rpt
            if rolled:
                b["active"] += b["pending"]
                b["pending"], b["epoch"] = 0, 0
            return True

        def settled(self, name: str) -> dict[str, int]:
            """A copy of the account's book accrued to now (the book itself unchanged)."""
            saved = self.book[name]
            self.book[name] = dict(saved)
            self.accrue(name)
            copy, self.book[name] = self.book[name], saved
            return copy

        @rule(name=st.sampled_from(STAKERS), amount=st.integers(1, 100_000 * WAD))
        def stake(self, name: str, amount: int) -> None:
            if economy.token.balanceOf(getattr(actors, name)) < amount:
                return
            b = self.book[name]
            if b["pending"] > 0 and epoch(_now()) >= b["epoch"]:
                self.accrue(name)
            economy.staking.stake(amount, sender=getattr(actors, name))
            b["pending"] += amount
            b["epoch"] = epoch(_now()) + 1

        @rule(name=st.sampled_from(STAKERS), share=st.integers(1, 100))
        def request_unstake(self, name: str, share: int) -> None:
            b = self.settled(name)
            amount = (b["active"] + b["pending"]) * share // 100
            if not amount:
                return  # the contract is not called: nothing accrues
            self.book[name] = b
            economy.staking.request_unstake(amount, sender=getattr(actors, name))
            from_pending = min(b["pending"], amount)
            b["pending"] -= from_pending
            b["active"] -= amount - from_pending
            if b["pending"] == 0:
                b["epoch"] = 0

        @precondition(lambda self: len(self.w0s) < 12)
        @rule(w0=st.sampled_from(W0S))
        def set_w0(self, w0: int) -> None:
            _set_w0(economy, w0)
            self.w0s.append((_now(), w0))

        @rule(amount=st.integers(1, 1_000 * WAD))
        def fund_and_claim(self, amount: int) -> None:
            economy.fund_rewards(amount)
            name = STAKERS[amount % len(STAKERS)]
            b = self.settled(name)
            paid = min(b["earned"], economy.staking.reward_pool())
            if paid == 0:
                return  # the contract is not called: nothing accrues
            self.book[name] = b
            assert economy.staking.claim(sender=getattr(actors, name)) == paid
            b["earned"] -= paid

        @rule(seconds=st.sampled_from((DAY, DAY - 1, 1)) | st.integers(1, 3 * DAY))
        def warp(self, seconds: int) -> None:
            boa.env.time_travel(seconds=seconds)

        @invariant()
        def earned_and_totals_match_the_model(self) -> None:
            total_active = 0
            for name in STAKERS:
                b = self.settled(name)  # the view accrues to now without storing
                assert economy.staking.earned(getattr(actors, name)) == b["earned"]
                assert economy.staking.staked(getattr(actors, name)) == b["active"]
                total_active += b["active"]
            assert economy.staking.total_staked() == total_active

    run_state_machine_as_test(Staking, settings=settings(max_examples=25, stateful_step_count=25, deadline=None))
