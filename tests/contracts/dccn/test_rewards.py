"""Rewards = sum w_i p_i (seed 000) with the issue's default weights, paid from the pool."""

from __future__ import annotations

from fractions import Fraction

import boa
import pytest

from dccn_deploy.parts.dccn import RECORDER_ROLE
from dccn_scheduler.economy import DAY, WAD

MONTH = 30 * DAY
YEAR = 12 * MONTH
BPS = 10_000
BACKING = 10**9 * WAD  # fee backing that caps nothing in the tests of the integral


def _to_next_epoch(economy) -> None:
    genesis, length = economy.staking.GENESIS(), economy.staking.EPOCH_LENGTH()
    now = boa.env.evm.patch.timestamp
    boa.env.time_travel(seconds=genesis + (now - genesis) // length * length + length - now)


def test_w0__100000_staked_for_a_day__earns_5(economy):
    provider = economy.actors.provider
    economy.stake(provider, 100_000 * WAD)
    _to_next_epoch(economy)  # the stake counts from here
    assert economy.staking.earned(provider) == 0
    boa.env.time_travel(seconds=DAY)
    # Seed: "holding 10w ankr token, get 50 Ankr token/day" is off by 10x; 100,000 x 0.00005 = 5.
    assert economy.staking.earned(provider) == 5 * WAD


def test_claim__pays_from_pool(economy):
    provider = economy.actors.provider
    economy.fund_rewards(1_000 * WAD)
    economy.stake(provider, 100_000 * WAD)
    _to_next_epoch(economy)
    boa.env.time_travel(seconds=10 * DAY)
    before = economy.token.balanceOf(provider)
    paid = economy.staking.claim(sender=provider)
    assert paid == 50 * WAD
    assert economy.token.balanceOf(provider) - before == 50 * WAD
    assert economy.staking.reward_pool() == 950 * WAD
    assert economy.staking.earned(provider) == 0


def test_claim__pool_short__pays_what_it_has_and_keeps_the_rest_owed(economy):
    provider = economy.actors.provider
    economy.fund_rewards(2 * WAD)
    economy.stake(provider, 100_000 * WAD)
    _to_next_epoch(economy)
    boa.env.time_travel(seconds=DAY)
    assert economy.staking.claim(sender=provider) == 2 * WAD
    assert economy.staking.earned(provider) == 3 * WAD
    economy.fund_rewards(10 * WAD)
    assert economy.staking.claim(sender=provider) == 3 * WAD


def test_period_without_stakers__loses_no_rewards(economy):
    economy.fund_rewards(1_000 * WAD)
    boa.env.time_travel(seconds=30 * DAY)  # nobody stakes
    assert economy.staking.reward_pool() == 1_000 * WAD
    provider = economy.actors.provider
    economy.stake(provider, 100_000 * WAD)
    _to_next_epoch(economy)
    boa.env.time_travel(seconds=DAY)
    assert economy.staking.claim(sender=provider) == 5 * WAD
    assert economy.staking.reward_pool() == 995 * WAD


def test_pending_stake__earns_from_its_epoch_even_when_settled_much_later(economy):
    a, b = economy.actors.alice, economy.actors.bob
    economy.stake(a, 100_000 * WAD)
    economy.stake(b, 100_000 * WAD)
    _to_next_epoch(economy)
    boa.env.time_travel(seconds=3 * DAY)
    economy.stake(b, 1)  # bob touches: the epoch start is recorded
    boa.env.time_travel(seconds=DAY)
    assert economy.staking.earned(a) == 20 * WAD
    assert economy.staking.earned(b) == 20 * WAD


def test_set_weights__old_w0_until_the_change(economy):
    provider = economy.actors.provider
    economy.stake(provider, 100_000 * WAD)
    _to_next_epoch(economy)
    boa.env.time_travel(seconds=DAY)
    p = economy.params
    economy.staking.set_weights(2 * p.w0, p.w1, p.w2, p.w3, sender=economy.actors.deployer)
    boa.env.time_travel(seconds=DAY)
    assert economy.staking.earned(provider) == 15 * WAD


def test_rounding__loses_at_most_one_wei_per_update(economy):
    """Odd stakes and odd intervals, settled often: the shortfall against exact
    arithmetic never exceeds the number of updates."""
    provider = economy.actors.provider
    economy.fund_rewards(1_000_000 * WAD)
    economy.stake(provider, 123_456_789_123_456_789_123)
    _to_next_epoch(economy)
    stake = Fraction(123_456_789_123_456_789_123)
    exact = Fraction(0)
    paid = 0
    for updates, seconds in enumerate((1, 7, 13, 3_601, 86_399, 11, 999_983), start=1):
        boa.env.time_travel(seconds=seconds)
        exact += stake * economy.params.w0 * seconds / (WAD * DAY)
        paid += economy.staking.claim(sender=provider)
        assert 0 <= exact - paid <= updates


def test_w1_w2__consumed_10000__earns_20(economy):
    """Seed: "consumed 1w ankr token, get 20 Ankr token" (w1 = 0.002); w2 on fees earned."""
    a = economy.actors
    rate = 10**18
    deal = economy.open_deal(rate, 10_000, 10_000 * WAD)
    boa.env.time_travel(seconds=10_000)
    economy.escrow.collect(deal, sender=a.tenant)
    assert economy.staking.earned(a.tenant) == 20 * WAD
    provider_share = 10_000 * WAD * (10_000 - economy.params.fee_bps - economy.params.app_bps) // 10_000
    app_share = 10_000 * WAD * economy.params.app_bps // 10_000
    assert economy.staking.earned(a.provider) == provider_share * 2 // 1_000
    assert economy.staking.earned(a.app_provider) == app_share * 2 // 1_000


def test_w3__reputation_half__earns_50_per_month(make_economy):
    # psi = 1 and divisor 1 make the totals exactly log10(p), so reputation is 0.5:
    # 0.4 x log10(10 ANKR) + 0.2 x log10(1 deal) + 0.2 x (1 of 2 deals completed) = 0.4 + 0 + 0.1.
    economy = make_economy(psi=WAD, log_divisor=1)
    a = economy.actors
    economy.reputation.grantRole(RECORDER_ROLE, a.alice, sender=a.deployer)  # alice records as the escrow would
    economy.reputation.record_deal(a.provider, True, 10 * WAD, 0, sender=a.alice)
    economy.reputation.record_deal(a.provider, False, 0, BACKING, sender=a.alice)
    assert economy.reputation.reputation(a.provider) == pytest.approx(WAD // 2, abs=10)
    economy.staking.accrue_reputation_reward(a.provider)  # starts the clock
    boa.env.time_travel(seconds=MONTH)
    credited = economy.staking.accrue_reputation_reward(a.provider)
    assert credited == pytest.approx(50 * WAD, abs=10**5)
    assert economy.staking.earned(a.provider) == credited
    assert economy.staking.accrue_reputation_reward(a.provider) == 0  # no time has passed


def test_w3__two_months__pays_both(make_economy):
    economy = make_economy(psi=WAD, log_divisor=1)
    a = economy.actors
    economy.reputation.grantRole(RECORDER_ROLE, a.alice, sender=a.deployer)
    _back(economy, a.alice, a.provider)
    economy.reputation.record_rating(a.provider, 100, sender=a.alice)  # reputation 0.1
    economy.staking.accrue_reputation_reward(a.provider)
    boa.env.time_travel(seconds=2 * MONTH)
    assert economy.staking.accrue_reputation_reward(a.provider) == 2 * 100 * WAD // 10


@pytest.fixture
def recorder(economy):
    """alice records into reputation as the escrow would."""
    economy.reputation.grantRole(RECORDER_ROLE, economy.actors.alice, sender=economy.actors.deployer)
    return economy.actors.alice


def _back(economy, recorder, account, backing: int = BACKING) -> None:
    """Fee backing large enough not to cap these w3 tests, without changing reputation (a failed 0-fee deal
    before any completed one leaves every index at 0)."""
    economy.reputation.record_deal(account, False, 0, backing, sender=recorder)


def _reputation_point_four(economy, recorder, account) -> None:
    """One completed deal with a 1 ANKR fee (log10(1) = 0), rated 100, served at 100: 0.2 + 0.1 + 0.1."""
    economy.reputation.record_deal(account, True, WAD, BACKING, sender=recorder)
    economy.reputation.record_rating(account, 100, sender=recorder)
    economy.reputation.record_service_level(account, 100, sender=recorder)
    assert economy.reputation.reputation(account) == 4 * WAD // 10


def test_w3__newcomer_two_months_at_zero_then_a_deal__is_not_paid_retroactively(economy, recorder):
    """The issue's example: the old code credited 2 months x 100 x 0.4 = 80 ANKR here."""
    newcomer = economy.actors.carol
    assert economy.staking.accrue_reputation_reward(newcomer) == 0
    boa.env.time_travel(seconds=2 * MONTH)  # reputation 0
    _reputation_point_four(economy, recorder, newcomer)
    assert economy.staking.accrue_reputation_reward(newcomer) == 0
    assert economy.staking.earned(newcomer) == 0
    boa.env.time_travel(seconds=MONTH)  # a month at 0.4 pays 40
    assert economy.staking.accrue_reputation_reward(newcomer) == 40 * WAD


def test_w3__reputation_change_mid_month__each_part_pays_its_own_reputation(economy, recorder):
    provider = economy.actors.provider
    _back(economy, recorder, provider)
    economy.reputation.record_rating(provider, 100, sender=recorder)  # 0.1
    boa.env.time_travel(seconds=MONTH // 2)
    economy.reputation.record_service_level(provider, 100, sender=recorder)  # 0.2
    boa.env.time_travel(seconds=MONTH // 2)
    # Half a month at 0.1 and half at 0.2 (not a month at the 0.2 of the call): 5 + 10.
    assert economy.staking.accrue_reputation_reward(provider) == 15 * WAD


def test_w3__accrued_every_day__equals_accrued_once(economy, recorder):
    """O(1) accrual by the integral: how often anyone calls it changes nothing, to the wei (the total is
    divided once)."""
    provider, other = economy.actors.provider, economy.actors.bob
    for account in (provider, other):
        _back(economy, recorder, account)
        economy.reputation.record_rating(account, 100, sender=recorder)
    total = 0
    for day in range(1, 61):
        if day == 17:
            for account in (provider, other):
                economy.reputation.record_service_level(account, 50, sender=recorder)
        boa.env.time_travel(seconds=DAY)
        total += economy.staking.accrue_reputation_reward(provider)
    once = economy.staking.accrue_reputation_reward(other)
    assert once == 100 * WAD * (16 * DAY * WAD // 10 + 44 * DAY * 15 * WAD // 100) // (MONTH * WAD)
    assert once == total


def test_w3__lower_integral_of_a_new_source__pays_nothing_until_it_passes_what_was_paid(economy, make_economy,
                                                                                        recorder):
    provider = economy.actors.provider
    _back(economy, recorder, provider)
    economy.reputation.record_rating(provider, 100, sender=recorder)
    boa.env.time_travel(seconds=MONTH)
    assert economy.staking.accrue_reputation_reward(provider) == 10 * WAD
    fresh = make_economy().reputation  # a new source that knows nothing of the provider
    economy.staking.set_reputation_source(fresh.address, sender=economy.actors.deployer)
    boa.env.time_travel(seconds=MONTH)
    assert economy.staking.accrue_reputation_reward(provider) == 0  # no underflow, nothing paid twice


def _sybil_deal(economy, tenant, provider, app) -> int:
    """One deal between colluding accounts paying exactly the minimum platform fee (1 ANKR/s for
    50,000 s at 5%), served at 100 and rated 100: the most reputation one deal can buy."""
    a = economy.actors
    economy.token.approve(economy.escrow.address, 2**255, sender=tenant)
    seconds = 50_001  # the minimum is paid at 50,000 s, so the service report counts
    deal_id = economy.escrow.open_deal(provider, app, WAD, seconds, seconds * WAD, 90, sender=tenant)
    boa.env.time_travel(seconds=50_000)
    economy.escrow.report_service_level(deal_id, 100, sender=a.monitor)
    boa.env.time_travel(seconds=1)
    economy.escrow.collect(deal_id, sender=tenant)
    economy.escrow.rate_provider(deal_id, 100, sender=tenant)
    return deal_id


def test_sybil_ring_at_min_fee__earns_less_than_its_fees_over_10_years(economy):
    """Issue 13: three fresh colluding accounts deal with each other in every role at the minimum fee,
    then hold the reputation for 10 years, accruing every month. Everything w1 + w2 + w3 pays them stays
    below the platform fees they paid (before the fee backing, w3 alone passed them after 28.8 months)."""
    a = economy.actors
    ring = (a.carol, a.alice, a.bob)
    economy.fund(a.bob, 1_000_000 * WAD)
    for shift in range(3):
        _sybil_deal(economy, ring[shift], ring[(shift + 1) % 3], ring[(shift + 2) % 3])
    fees = economy.escrow.balances(a.treasury)
    assert fees >= 3 * economy.params.min_reputation_fee
    assert sum(economy.reputation.reputation(x) for x in ring) > 12 * WAD // 10  # 0.4 each: bought
    w3_paid = 0
    for _ in range(10 * 12):
        boa.env.time_travel(seconds=MONTH)
        w3_paid += sum(economy.staking.accrue_reputation_reward(x) for x in ring)
    earned = sum(economy.staking.earned(x) for x in ring)  # w1 + w2 + w3 (none staked: no w0)
    assert earned < fees
    backing = economy.params.reputation_reward_backing_bps
    assert w3_paid == sum(economy.staking.reputation_rewarded(x) for x in ring) <= fees * backing // BPS
    assert sum(economy.reputation.fee_backing(x) for x in ring) == fees  # backing = exactly the fees paid
    assert earned / fees == pytest.approx(0.578, abs=0.001)  # docs/dccn.md: 0.078 w1/w2 + 0.5 w3


def test_w3__capped_at_backing_share_of_fees__earned_above_the_cap_waits_for_more_fees(economy, recorder):
    """Earned above the cap stays unpaid until backing arrives, then is paid up to the (new) cap."""
    provider = economy.actors.provider
    _back(economy, recorder, provider, 100 * WAD)  # half of it can be earned: 50 ANKR
    economy.reputation.record_rating(provider, 100, sender=recorder)  # 0.1: 10 ANKR a month
    boa.env.time_travel(seconds=4 * MONTH)
    assert economy.staking.accrue_reputation_reward(provider) == 40 * WAD
    assert economy.staking.reputation_reward_cap(provider) == 50 * WAD
    boa.env.time_travel(seconds=4 * MONTH)
    assert economy.staking.accrue_reputation_reward(provider) == 10 * WAD  # 80 earned, paid up to the cap 50
    boa.env.time_travel(seconds=MONTH)
    assert economy.staking.accrue_reputation_reward(provider) == 0
    assert economy.staking.reputation_earned(provider) == 90 * WAD  # 40 of it unpaid, kept
    assert economy.staking.reputation_rewarded(provider) == 50 * WAD
    _back(economy, recorder, provider, 100 * WAD)  # more fees: the cap rises to 100
    assert economy.staking.accrue_reputation_reward(provider) == 40 * WAD  # the held-back 40, no time needed
    assert economy.staking.accrue_reputation_reward(provider) == 0  # nothing paid twice
    boa.env.time_travel(seconds=2 * MONTH)
    assert economy.staking.accrue_reputation_reward(provider) == 10 * WAD  # 110 earned, cut at the cap 100
    assert economy.staking.reputation_rewarded(provider) == 100 * WAD == economy.staking.reputation_reward_cap(provider)
    assert economy.staking.reputation_earned(provider) == 110 * WAD
    assert economy.staking.earned(provider) == 100 * WAD


def _long_deal_with_a_griefer(economy, griefer) -> tuple[int, int]:
    """A 60-day deal (fee backing recorded only at its end) measured at 100 every day from day 7 on (when it
    has paid the minimum fee), so the provider's reputation rises long before its backing arrives. `griefer`
    (or nobody) accrues the provider's w3 every day. Returns (credited at the end, w3 integral / month)."""
    a = economy.actors
    provider = a.provider
    days = 60
    rate = WAD // 10  # 0.1 ANKR/s: 432 ANKR of platform fee a day, 2,592 by day 6
    deal_id = economy.open_deal(rate, days * DAY, rate * days * DAY)
    for day in range(1, days + 1):
        boa.env.time_travel(seconds=DAY)
        if 7 <= day < days:
            economy.escrow.report_service_level(deal_id, 100, sender=a.monitor)
        if griefer is not None:
            assert economy.staking.accrue_reputation_reward(provider, sender=griefer) == 0  # no backing yet
    assert economy.reputation.fee_backing(provider) == 0
    economy.escrow.collect(deal_id, sender=a.tenant)  # completed: the fee backing arrives
    assert economy.reputation.fee_backing(provider) > 0
    credited = economy.staking.accrue_reputation_reward(provider, sender=provider)
    return credited, economy.reputation.reward_integral(provider) // (MONTH * WAD)


def test_accrue__called_by_a_griefer_before_backing_arrives__nothing_forfeited(economy):
    """Before the carry-over, each daily call by a third party marked the integral paid with nothing paid
    (no backing yet): the provider forfeited the whole deal's w3."""
    with boa.env.anchor():
        alone, exact = _long_deal_with_a_griefer(economy, None)
    griefed, exact_again = _long_deal_with_a_griefer(economy, economy.actors.bob)
    assert exact == exact_again > 0
    assert griefed == alone == exact  # exactly one accrual at the end, to the wei
    assert economy.staking.reputation_rewarded(economy.actors.provider) == exact
    assert exact <= economy.staking.reputation_reward_cap(economy.actors.provider)


def test_set_weights__w3_change_applies_only_from_the_change_on(economy, recorder):
    """Reputation-time not yet accrued keeps the w3 it was held at (before: the new w3 paid it all)."""
    a, p = economy.actors, economy.params
    provider = a.provider
    _back(economy, recorder, provider)
    economy.reputation.record_rating(provider, 100, sender=recorder)  # 0.1
    boa.env.time_travel(seconds=MONTH)  # 0.1 at 100: 10
    economy.staking.set_weights(p.w0, p.w1, p.w2, 2 * p.w3, sender=a.deployer)
    boa.env.time_travel(seconds=MONTH // 2)  # 0.1 at 200: 10
    economy.reputation.record_service_level(provider, 100, sender=recorder)  # 0.2
    boa.env.time_travel(seconds=MONTH // 2)  # 0.2 at 200: 20
    assert economy.staking.accrue_reputation_reward(provider) == 40 * WAD
    assert economy.staking.w3_time() == p.w3 * MONTH + 2 * p.w3 * MONTH


def test_set_reputation_reward_backing__only_admin_at_most_100_percent(economy):
    a = economy.actors
    with boa.reverts("access_control: account is missing role"):
        economy.staking.set_reputation_reward_backing(1, sender=a.tenant)
    with boa.reverts("staking: backing above 100%"):
        economy.staking.set_reputation_reward_backing(BPS + 1, sender=a.deployer)
    economy.staking.set_reputation_reward_backing(2_000, sender=a.deployer)
    assert economy.staking.reputation_reward_backing_bps() == 2_000


def test_min_fee_bps__is_where_w1_w2_and_backed_w3_meet_the_fee(economy):
    p = economy.params
    # w1 + w2 (1 - f) <= f (1 - backing): 0.004 - 0.002 f <= 0.5 f, so f >= 0.004 / 0.502 = 79.7 bps.
    assert economy.staking.min_fee_bps() == 80
    economy.staking.set_reputation_reward_backing(0, sender=economy.actors.deployer)
    assert economy.staking.min_fee_bps() == 40  # w1 / w2 alone: 0.004 / 1.002 = 39.9 bps
    assert p.fee_bps >= 80


def test_set_weights__refused_when_w1_w2_rewards_exceed_the_fee(economy):
    """At fee 5% and backing 50%, w1 + w2 x 0.95 may be at most 2.5%: w1 = w2 = 1.29% is refused."""
    a, p = economy.actors, economy.params
    with boa.reverts("staking: weights exceed fee"):
        economy.staking.set_weights(p.w0, 129 * 10**14, 129 * 10**14, p.w3, sender=a.deployer)
    with boa.reverts("staking: weights exceed fee"):
        economy.staking.set_reputation_reward_backing(BPS, sender=a.deployer)  # nothing left for w1 / w2
    economy.staking.set_weights(p.w0, 128 * 10**14, 128 * 10**14, p.w3, sender=a.deployer)  # 2.496%: fits
    assert economy.staking.min_fee_bps() == 500


def test_set_split__refused_below_the_fee_the_weights_need(economy):
    a = economy.actors
    with boa.reverts("escrow: weights exceed fee"):
        economy.escrow.set_split(79, 1_000, 1_000, sender=a.deployer)
    economy.escrow.set_split(80, 1_000, 1_000, sender=a.deployer)
    assert economy.escrow.split() == (80, 1_000, 1_000)


def test_escrow_constructor__refuses_a_fee_below_what_the_weights_need(make_economy):
    with boa.reverts("escrow: weights exceed fee"):
        make_economy(fee_bps=79)


def test_deal_at_the_lowest_allowed_fee__w1_w2_and_backed_w3_stay_within_its_fee(economy):
    a = economy.actors
    economy.escrow.set_split(economy.staking.min_fee_bps(), 1_000, 1_000, sender=a.deployer)
    economy.escrow.set_min_reputation_fee(0, sender=a.deployer)
    deal_id = economy.open_deal(WAD, 100_000, 100_000 * WAD)
    boa.env.time_travel(seconds=100_000)
    economy.escrow.collect(deal_id, sender=a.tenant)
    fee = economy.escrow.balances(a.treasury)
    rebates = sum(economy.staking.earned(x) for x in (a.tenant, a.provider, a.app_provider))
    w3_cap = sum(economy.staking.reputation_reward_cap(x) for x in (a.tenant, a.provider, a.app_provider))
    assert fee > 0 and rebates + w3_cap <= fee


def test_credit_activity__only_rewarder(economy):
    a = economy.actors
    with boa.reverts("access_control: account is missing role"):
        economy.staking.credit_activity(a.tenant, 1, a.provider, 1, a.app_provider, 1, sender=a.tenant)
