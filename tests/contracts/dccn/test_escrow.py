"""Deal escrow: lazy streaming, the fee split, SLA breaches, pull withdrawals, ratings."""

from __future__ import annotations

import boa
import pytest

from dccn_scheduler.economy import DAY, WAD

RATE = 10**15  # ANKR wei per second
ACTIVE, COMPLETED, BREACHED, RATED = 1, 2, 3, 4


def _deal(economy, deal_id):
    start, settled_to, end, rate, status, sla, collected_to = economy.escrow.deal(deal_id)
    return {"start": start, "settled_to": settled_to, "end": end, "rate": rate, "status": status, "sla": sla,
            "collected_to": collected_to}


def test_open_deal__pulls_what_the_deal_can_stream(economy):
    a = economy.actors
    before = economy.token.balanceOf(a.tenant)
    deal_id = economy.open_deal(RATE, 10 * DAY, 1_000_000 * WAD)  # max duration binds
    assert economy.token.balanceOf(a.tenant) == before - RATE * 10 * DAY
    d = _deal(economy, deal_id)
    assert d["end"] - d["start"] == 10 * DAY and d["status"] == ACTIVE and d["sla"] == 90
    assert economy.escrow.parties(deal_id) == (a.tenant, a.provider, a.app_provider)
    deal_id = economy.open_deal(RATE, 10 * DAY, 3_600 * RATE + 5)  # the deposit binds
    d = _deal(economy, deal_id)
    assert d["end"] - d["start"] == 3_600


def test_settle__streams_lazily_in_o1(economy):
    deal_id = economy.open_deal(RATE, 10 * DAY, 1_000_000 * WAD)
    boa.env.time_travel(seconds=3_600)
    assert economy.escrow.streamed(deal_id) == 3_600 * RATE
    economy.escrow.settle(deal_id, sender=economy.actors.bob)  # anyone
    logs = economy.escrow.get_logs()
    assert [(type(log).__name__, log.amount) for log in logs] == [("DealSettled", 3_600 * RATE)]
    d = _deal(economy, deal_id)
    assert d["settled_to"] - d["start"] == 3_600


def test_settle__deposit_runs_out__closes_the_deal(economy):
    deal_id = economy.open_deal(RATE, 30 * DAY, DAY * RATE)
    boa.env.time_travel(seconds=2 * DAY)
    economy.escrow.settle(deal_id)
    d = _deal(economy, deal_id)
    assert d["status"] == COMPLETED and d["settled_to"] == d["end"]
    assert economy.escrow.streamed(deal_id) == DAY * RATE
    assert economy.reputation.deals(economy.actors.provider)[2] == 1  # completed deals recorded


def test_collect__splits_fee_app_share_and_provider_share(economy):
    a = economy.actors
    deal_id = economy.open_deal(RATE, 30 * DAY, DAY * RATE)
    boa.env.time_travel(seconds=12 * 3_600)
    economy.escrow.collect(deal_id)
    streamed = 12 * 3_600 * RATE
    fee = streamed * 500 // 10_000
    app_share = streamed * 1_000 // 10_000
    assert economy.escrow.balances(a.treasury) == fee
    assert economy.escrow.balances(a.app_provider) == app_share
    assert economy.escrow.balances(a.provider) == streamed - fee - app_share
    boa.env.time_travel(seconds=DAY)
    economy.escrow.collect(deal_id)
    total = DAY * RATE
    assert economy.escrow.balances(a.treasury) == total * 500 // 10_000
    assert economy.escrow.balances(a.provider) == total - total * 500 // 10_000 - total * 1_000 // 10_000


def test_withdraw__pays_exactly_what_is_owed_once(economy):
    a = economy.actors
    deal_id = economy.open_deal(RATE, 30 * DAY, DAY * RATE)
    boa.env.time_travel(seconds=DAY)
    economy.escrow.collect(deal_id)
    owed = economy.escrow.balances(a.provider)
    before = economy.token.balanceOf(a.provider)
    assert economy.escrow.withdraw(sender=a.provider) == owed
    assert economy.token.balanceOf(a.provider) - before == owed
    with boa.reverts("escrow: nothing to withdraw"):
        economy.escrow.withdraw(sender=a.provider)


def test_sla_breach__refunds_tenant_pro_rata_and_slashes_provider(economy):
    a = economy.actors
    economy.stake(a.provider, 10_000 * WAD)
    deal_value = 10 * DAY * RATE
    deal_id = economy.open_deal(RATE, 10 * DAY, deal_value, sla=95)
    boa.env.time_travel(seconds=DAY)
    tenant_before = economy.token.balanceOf(a.tenant)
    economy.escrow.report_service_level(deal_id, 60, sender=a.monitor)
    d = _deal(economy, deal_id)
    assert d["status"] == BREACHED and d["end"] == d["settled_to"] == d["start"] + DAY
    refund = 9 * DAY * RATE
    assert economy.escrow.balances(a.tenant) == refund
    slash = deal_value * economy.params.slash_bps // 10_000
    finder_fee = slash * economy.params.finder_fee_bps // 10_000
    assert economy.token.balanceOf(a.tenant) - tenant_before == slash - finder_fee
    assert economy.token.balanceOf(a.monitor) == finder_fee
    assert economy.staking.staked(a.provider) == 10_000 * WAD - slash
    assert economy.reputation.deals(a.provider)[3] == 1  # a failed deal
    economy.escrow.withdraw(sender=a.tenant)
    boa.env.time_travel(seconds=DAY)
    assert economy.escrow.streamed(deal_id) == DAY * RATE  # nothing streams after the breach


def test_service_level_at_or_above_sla__is_recorded_not_a_breach(economy):
    a = economy.actors
    deal_id = economy.open_deal(RATE, 10 * DAY, DAY * RATE, sla=95)
    economy.escrow.report_service_level(deal_id, 95, sender=a.monitor)
    assert _deal(economy, deal_id)["status"] == ACTIVE
    assert economy.reputation.components(a.provider)[3] == 95 * WAD // 100


def test_report_service_level__only_monitor_and_only_active(economy):
    a = economy.actors
    deal_id = economy.open_deal(RATE, 10 * DAY, DAY * RATE)
    with boa.reverts("access_control: account is missing role"):
        economy.escrow.report_service_level(deal_id, 10, sender=a.tenant)
    boa.env.time_travel(seconds=2 * DAY)
    with boa.reverts("escrow: deal not active"):
        economy.escrow.report_service_level(deal_id, 10, sender=a.monitor)


def test_rate_provider__once_by_tenant_after_completion(economy):
    a = economy.actors
    deal_id = economy.open_deal(RATE, 10 * DAY, DAY * RATE)
    with boa.reverts("escrow: deal not ended or already rated"):
        economy.escrow.rate_provider(deal_id, 80, sender=a.tenant)
    boa.env.time_travel(seconds=DAY)
    with boa.reverts("escrow: not the tenant"):
        economy.escrow.rate_provider(deal_id, 80, sender=a.bob)
    with boa.reverts("escrow: score above 100"):
        economy.escrow.rate_provider(deal_id, 101, sender=a.tenant)
    economy.escrow.rate_provider(deal_id, 80, sender=a.tenant)
    assert _deal(economy, deal_id)["status"] == COMPLETED + RATED
    assert economy.reputation.components(a.provider)[4] == 8 * WAD // 10
    with boa.reverts("escrow: deal not ended or already rated"):
        economy.escrow.rate_provider(deal_id, 80, sender=a.tenant)


def test_cancel_deal__tenant_gets_the_unused_deposit(economy):
    a = economy.actors
    deal_id = economy.open_deal(RATE, 10 * DAY, 10 * DAY * RATE)
    boa.env.time_travel(seconds=DAY)
    with boa.reverts("escrow: not the tenant"):
        economy.escrow.cancel_deal(deal_id, sender=a.provider)
    economy.escrow.cancel_deal(deal_id, sender=a.tenant)
    assert economy.escrow.balances(a.tenant) == 9 * DAY * RATE
    assert _deal(economy, deal_id)["status"] == COMPLETED


@pytest.mark.parametrize(("rate", "duration", "deposit", "sla", "reason"), [
    (0, DAY, WAD, 90, "escrow: bad rate"),
    (2**80, DAY, 2**81, 90, "escrow: bad rate"),
    (RATE, DAY, RATE - 1, 90, "escrow: deposit below one second"),
    (RATE, 0, WAD, 90, "escrow: deposit below one second"),
    (RATE, DAY, WAD, 101, "escrow: sla above 100"),
])
def test_open_deal__bad_input__reverts(economy, rate, duration, deposit, sla, reason):
    economy.token.approve(economy.escrow.address, 2**255, sender=economy.actors.tenant)
    with boa.reverts(reason):
        economy.escrow.open_deal(economy.actors.provider, economy.actors.app_provider, rate, duration, deposit, sla,
                                 sender=economy.actors.tenant)


def test_unknown_deal__reverts(economy):
    with boa.reverts("escrow: unknown deal"):
        economy.escrow.settle(999)


def test_set_split__only_admin_and_at_most_100_percent(economy):
    with boa.reverts("access_control: account is missing role"):
        economy.escrow.set_split(100, 100, 100, sender=economy.actors.tenant)
    with boa.reverts("escrow: split above 100%"):
        economy.escrow.set_split(6_000, 5_000, 0, sender=economy.actors.deployer)
    economy.escrow.set_split(300, 700, 2_000, sender=economy.actors.deployer)
    assert economy.escrow.split() == (300, 700, 2_000)
