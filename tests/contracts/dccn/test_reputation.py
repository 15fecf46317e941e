"""Reputation per seed 000's tables, clamped to [0, 1], recorded only by the escrow."""

from __future__ import annotations

import math

import boa
import pytest

from dccn_deploy.parts.dccn import RECORDER_ROLE
from dccn_scheduler.economy import DAY, WAD


def _expected(psi: float, divisor: float, fees: list[float], completed: list[bool], levels: list[int],
              ratings: list[int]) -> float:
    ema_fee = ema_deals = 0.0
    total_fee, done = 0.0, 0
    for fee, ok in zip(fees, completed, strict=True):
        total_fee += fee
        ema_fee = psi * max(math.log10(total_fee), 0) / divisor + (1 - psi) * ema_fee if total_fee > 0 \
            else (1 - psi) * ema_fee
        if ok:
            done += 1
            ema_deals = psi * math.log10(done) / divisor + (1 - psi) * ema_deals
    ratio = done / len(completed) if completed else 0
    service = sum(levels) / (100 * len(levels)) if levels else 0
    rating = sum(ratings) / (100 * len(ratings)) if ratings else 0
    score = 0.4 * min(ema_fee, 1) + 0.2 * min(ema_deals, 1) + 0.2 * ratio + 0.1 * service + 0.1 * rating
    return min(score, 1.0)


@pytest.fixture
def recorder(economy):
    economy.reputation.grantRole(RECORDER_ROLE, economy.actors.alice, sender=economy.actors.deployer)
    return economy.actors.alice


def test_reputation__follows_seed_tables(economy, recorder):
    provider = economy.actors.provider
    fees = [1_000.0, 250_000.0, 3.0, 42_000.0]
    completed = [True, True, False, True]
    for fee, ok in zip(fees, completed, strict=True):
        economy.reputation.record_deal(provider, ok, int(fee * WAD), 0, sender=recorder)
    for level in (99, 80, 100):
        economy.reputation.record_service_level(provider, level, sender=recorder)
    for score in (90, 70):
        economy.reputation.record_rating(provider, score, sender=recorder)
    psi = economy.params.psi / WAD
    expected = _expected(psi, economy.params.log_divisor, fees, completed, [99, 80, 100], [90, 70])
    assert economy.reputation.reputation(provider) / WAD == pytest.approx(expected, rel=1e-12)
    fee_ema, deals_ema, ratio, service, rating = economy.reputation.components(provider)
    assert 0 < fee_ema < WAD and 0 < deals_ema < fee_ema
    assert ratio == 3 * WAD // 4
    assert service == 279 * WAD // 300
    assert rating == 8 * WAD // 10


def test_reputation__clamped_to_one(make_economy):
    economy = make_economy(psi=WAD, log_divisor=1)
    a = economy.actors
    economy.reputation.grantRole(RECORDER_ROLE, a.alice, sender=a.deployer)
    for _ in range(12):
        economy.reputation.record_deal(a.provider, True, 10**9 * WAD, 0, sender=a.alice)
        economy.reputation.record_rating(a.provider, 100, sender=a.alice)
        economy.reputation.record_service_level(a.provider, 100, sender=a.alice)
    assert economy.reputation.reputation(a.provider) == WAD


def test_reputation__unknown_account__is_zero(economy):
    assert economy.reputation.reputation(economy.actors.carol) == 0


def test_record__only_recorder(economy):
    a = economy.actors
    with boa.reverts("access_control: account is missing role"):
        economy.reputation.record_rating(a.provider, 100, sender=a.provider)
    with boa.reverts("access_control: account is missing role"):
        economy.reputation.record_deal(a.provider, True, WAD, 0, sender=a.tenant)


def test_record__out_of_range__reverts(economy, recorder):
    with boa.reverts("reputation: score above 100"):
        economy.reputation.record_rating(economy.actors.provider, 101, sender=recorder)
    with boa.reverts("reputation: level above 100"):
        economy.reputation.record_service_level(economy.actors.provider, 101, sender=recorder)


def test_set_params__validates_psi(economy):
    with boa.reverts("reputation: psi out of (0, 1]"):
        economy.reputation.set_params(WAD + 1, 1000, sender=economy.actors.deployer)


def test_reputation_integral__sums_reputation_times_seconds_held(economy, recorder):
    provider = economy.actors.provider
    boa.env.time_travel(seconds=5 * DAY)  # nothing recorded yet: nothing accrues
    assert economy.reputation.reputation_integral(provider) == 0
    economy.reputation.record_rating(provider, 100, sender=recorder)  # 0.1 from now
    boa.env.time_travel(seconds=DAY)
    assert economy.reputation.reputation_integral(provider) == DAY * WAD // 10
    economy.reputation.record_rating(provider, 60, sender=recorder)  # mean 80: 0.08 from now
    (folded,) = [x for x in economy.reputation.get_logs() if type(x).__name__ == "ReputationIntegralFolded"]
    assert (folded.old_integral, folded.new_integral) == (0, DAY * WAD // 10)
    boa.env.time_travel(seconds=3 * DAY)
    assert economy.reputation.reputation_integral(provider) == DAY * WAD // 10 + 3 * DAY * 8 * WAD // 100
    assert economy.reputation.reputation_integral(economy.actors.carol) == 0
