"""Proof-of-capacity rewards (seed 003): C = P/Q x (sqrt(t) x o) + (sR - sT); RW1 split by C."""

from __future__ import annotations

import math

import boa
import pytest

from dccn_scheduler.economy import DAY, WAD


def _fund(economy, amount):
    economy.token.approve(economy.capacity.address, amount, sender=economy.actors.deployer)
    economy.capacity.fund(amount, sender=economy.actors.deployer)


def _today() -> int:
    return boa.env.evm.patch.timestamp // DAY


@pytest.mark.parametrize(("p", "q", "t", "o", "s_r", "s_t"), [
    (2, 8, 100, 0.8, 500, 120), (1, 1, 1, 1.0, 0, 0), (4, 16, 2_500, 0.5, 10, 10), (8, 2, 7, 1.25, 3, 1)])
def test_capacity__matches_seed_formula(economy, p, q, t, o, s_r, s_t):
    expected = p / q * (math.sqrt(t) * o) + (s_r - s_t)
    got = economy.capacity.capacity_of(p, q, t, int(o * WAD), s_r, s_t)
    assert got / WAD == pytest.approx(expected, rel=1e-12)


def test_daily_pool__split_by_capacity_and_claimed_after_the_day(economy):
    a = economy.actors
    _fund(economy, 100_000 * WAD)
    day = _today()
    c1 = economy.capacity.report(a.alice, 2, 8, 100, WAD, 30, 0, sender=a.reporter)
    c2 = economy.capacity.report(a.bob, 4, 4, 400, WAD, 0, 0, sender=a.reporter)
    pool = economy.params.daily_capacity_reward
    assert economy.capacity.day_pool(day) == pool
    with boa.reverts("capacity: day not over"):
        economy.capacity.claim([day], sender=a.alice)
    boa.env.time_travel(seconds=DAY)
    paid_a = economy.capacity.claim([day], sender=a.alice)
    paid_b = economy.capacity.claim([day], sender=a.bob)
    assert paid_a == pool * c1 // (c1 + c2) and paid_b == pool * c2 // (c1 + c2)
    assert pool - paid_a - paid_b <= 1
    with boa.reverts("capacity: already claimed"):
        economy.capacity.claim([day], sender=a.alice)


def test_report__once_per_node_and_day_and_only_reporter(economy):
    a = economy.actors
    with boa.reverts("access_control: account is missing role"):
        economy.capacity.report(a.alice, 1, 1, 1, WAD, 0, 0, sender=a.alice)
    economy.capacity.report(a.alice, 1, 1, 1, WAD, 0, 0, sender=a.reporter)
    with boa.reverts("capacity: already reported today"):
        economy.capacity.report(a.alice, 1, 1, 1, WAD, 0, 0, sender=a.reporter)
    boa.env.time_travel(seconds=DAY)
    economy.capacity.report(a.alice, 1, 1, 1, WAD, 0, 0, sender=a.reporter)


def test_report__bad_figures__rejected(economy):
    a = economy.actors
    with boa.reverts("capacity: zero cores"):
        economy.capacity.report(a.alice, 1, 0, 1, WAD, 0, 0, sender=a.reporter)
    with boa.reverts("capacity: zero capacity"):
        economy.capacity.report(a.alice, 1, 1, 1, WAD, 0, 50, sender=a.reporter)  # disk taken > reported


def test_pool__limited_by_reserve_and_unreported_days_keep_it(economy):
    a = economy.actors
    _fund(economy, 15_000 * WAD)
    boa.env.time_travel(seconds=3 * DAY)  # days without reports take nothing
    day = _today()
    economy.capacity.report(a.alice, 1, 1, 1, WAD, 0, 0, sender=a.reporter)
    assert economy.capacity.day_pool(day) == 10_000 * WAD
    boa.env.time_travel(seconds=DAY)
    economy.capacity.report(a.alice, 1, 1, 1, WAD, 0, 0, sender=a.reporter)
    assert economy.capacity.day_pool(day + 1) == 5_000 * WAD
    assert economy.capacity.reserve() == 0
    boa.env.time_travel(seconds=DAY)
    assert economy.capacity.claim([day, day + 1], sender=a.alice) == 15_000 * WAD


def test_claim__unreported_day__reverts(economy):
    boa.env.time_travel(seconds=DAY)
    with boa.reverts("capacity: no report that day"):
        economy.capacity.claim([_today() - 1], sender=economy.actors.carol)
