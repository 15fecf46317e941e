"""Staking: next-epoch activation, unbonding, queries, slashing only by the escrow role."""

from __future__ import annotations

import boa

from dccn_deploy.parts.dccn import ESCROW_ROLE
from dccn_scheduler.economy import DAY, WAD


def test_stake__counts_from_next_epoch(economy):
    provider = economy.actors.provider
    economy.stake(provider, 1_000 * WAD)
    assert economy.staking.staked(provider) == 0
    assert economy.staking.total_staked() == 0
    epoch = economy.staking.current_epoch()
    boa.env.time_travel(seconds=DAY)
    assert economy.staking.current_epoch() == epoch + 1
    assert economy.staking.staked(provider) == 1_000 * WAD
    assert economy.staking.total_staked() == 1_000 * WAD


def test_total_staked__sums_providers_and_gives_participation(economy):
    a, b = economy.actors.alice, economy.actors.bob
    economy.stake(a, 3_000 * WAD)
    economy.stake(b, 1_000 * WAD)
    boa.env.time_travel(seconds=DAY)
    assert economy.staking.staked(a) == 3_000 * WAD
    assert economy.staking.staked(b) == 1_000 * WAD
    assert economy.staking.total_staked() == 4_000 * WAD
    economy.staking.request_unstake(500 * WAD, sender=a)
    assert economy.staking.total_staked() == 3_500 * WAD


def test_request_unstake__waits_unbonding_period_then_withdraws(economy):
    provider = economy.actors.provider
    before = economy.token.balanceOf(provider)
    economy.stake(provider, 1_000 * WAD)
    boa.env.time_travel(seconds=DAY)
    economy.staking.request_unstake(1_000 * WAD, sender=provider)
    assert economy.staking.staked(provider) == 0
    with boa.reverts("staking: still unbonding"):
        economy.staking.withdraw(sender=provider)
    boa.env.time_travel(seconds=economy.params.unbonding_period)
    economy.staking.withdraw(sender=provider)
    assert economy.token.balanceOf(provider) == before
    with boa.reverts("staking: nothing unbonding"):
        economy.staking.withdraw(sender=provider)


def test_request_unstake__above_stake__reverts(economy):
    economy.stake(economy.actors.provider, 10 * WAD)
    with boa.reverts("staking: amount above stake"):
        economy.staking.request_unstake(11 * WAD, sender=economy.actors.provider)


def test_stake_and_unstake_in_one_block__earns_nothing(economy):
    provider = economy.actors.provider
    economy.fund_rewards(1_000 * WAD)
    economy.stake(provider, 100_000 * WAD)
    economy.staking.request_unstake(100_000 * WAD, sender=provider)
    boa.env.time_travel(seconds=30 * DAY)
    assert economy.staking.earned(provider) == 0
    with boa.reverts("staking: nothing to claim"):
        economy.staking.claim(sender=provider)


def test_slash__by_anyone_but_escrow__reverts(economy):
    economy.stake(economy.actors.provider, 10 * WAD)
    for caller in (economy.actors.provider, economy.actors.monitor, economy.actors.deployer):
        with boa.reverts("access_control: account is missing role"):
            economy.staking.slash(economy.actors.provider, WAD, economy.actors.tenant, caller, sender=caller)


def test_slash__pays_victim_minus_finder_fee(economy):
    a = economy.actors
    economy.stake(a.provider, 1_000 * WAD)
    boa.env.time_travel(seconds=DAY)
    economy.staking.grantRole(ESCROW_ROLE, a.alice, sender=a.deployer)  # alice acts as an escrow
    tenant_before = economy.token.balanceOf(a.tenant)
    slashed = economy.staking.slash(a.provider, 100 * WAD, a.tenant, a.monitor, sender=a.alice)
    assert slashed == 100 * WAD
    finder_fee = 100 * WAD * economy.params.finder_fee_bps // 10_000
    assert economy.token.balanceOf(a.monitor) == finder_fee
    assert economy.token.balanceOf(a.tenant) - tenant_before == 100 * WAD - finder_fee
    assert economy.staking.staked(a.provider) == 900 * WAD
    assert economy.staking.total_staked() == 900 * WAD


def test_slash__takes_pending_then_active_then_unbonding_and_caps_at_stake(economy):
    a = economy.actors
    economy.stake(a.provider, 100 * WAD)
    boa.env.time_travel(seconds=DAY)
    economy.staking.request_unstake(40 * WAD, sender=a.provider)
    economy.stake(a.provider, 10 * WAD)  # pending
    economy.staking.grantRole(ESCROW_ROLE, a.alice, sender=a.deployer)
    slashed = economy.staking.slash(a.provider, 1_000 * WAD, a.tenant, a.monitor, sender=a.alice)
    assert slashed == 110 * WAD
    active, pending, _, unbonding, _ = economy.staking.stake_info(a.provider)
    assert (active, pending, unbonding) == (0, 0, 0)
    assert economy.token.balanceOf(economy.staking.address) == 0


def test_stake__zero_or_unapproved__reverts(economy):
    with boa.reverts("staking: zero amount"):
        economy.staking.stake(0, sender=economy.actors.provider)
    with boa.reverts():
        economy.staking.stake(WAD, sender=economy.actors.provider)


def test_governance__only_admin_sets_parameters(economy):
    with boa.reverts("access_control: account is missing role"):
        economy.staking.set_unbonding_period(1, sender=economy.actors.provider)
    economy.staking.set_unbonding_period(3 * DAY, sender=economy.actors.deployer)
    assert economy.staking.unbonding_period() == 3 * DAY
    with boa.reverts("staking: finder fee above 100%"):
        economy.staking.set_finder_fee_bps(10_001, sender=economy.actors.deployer)
