"""Deal escrow: lazy streaming, the fee split, SLA breaches, pull withdrawals, ratings."""

from __future__ import annotations

import boa
import pytest

from dccn_scheduler.economy import DAY, WAD

RATE = 10**15  # ANKR wei per second
# 1 ANKR/s: a day streams 86,400 ANKR, a platform fee of 4,320 ANKR, above the default minimum for reputation.
FEEDING_RATE = 10**18
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
    deal_id = economy.open_deal(FEEDING_RATE, 30 * DAY, DAY * FEEDING_RATE)
    boa.env.time_travel(seconds=2 * DAY)
    economy.escrow.settle(deal_id)
    d = _deal(economy, deal_id)
    assert d["status"] == COMPLETED and d["settled_to"] == d["end"]
    assert economy.escrow.streamed(deal_id) == DAY * FEEDING_RATE
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
    economy.stake(a.provider, 100_000 * WAD)
    deal_value = 10 * DAY * FEEDING_RATE
    deal_id = economy.open_deal(FEEDING_RATE, 10 * DAY, deal_value, sla=95)
    boa.env.time_travel(seconds=DAY)
    tenant_before = economy.token.balanceOf(a.tenant)
    economy.escrow.report_service_level(deal_id, 60, sender=a.monitor)
    d = _deal(economy, deal_id)
    assert d["status"] == BREACHED and d["end"] == d["settled_to"] == d["start"] + DAY
    refund = 9 * DAY * FEEDING_RATE
    assert economy.escrow.balances(a.tenant) == refund
    slash = deal_value * economy.params.slash_bps // 10_000
    finder_fee = slash * economy.params.finder_fee_bps // 10_000
    assert economy.token.balanceOf(a.tenant) - tenant_before == slash - finder_fee
    assert economy.token.balanceOf(a.monitor) == finder_fee
    assert economy.staking.staked(a.provider) == 100_000 * WAD - slash
    assert economy.reputation.deals(a.provider)[3] == 1  # a failed deal
    economy.escrow.withdraw(sender=a.tenant)
    boa.env.time_travel(seconds=DAY)
    assert economy.escrow.streamed(deal_id) == DAY * FEEDING_RATE  # nothing streams after the breach


def test_service_level_at_or_above_sla__is_recorded_not_a_breach(economy):
    a = economy.actors
    deal_id = economy.open_deal(FEEDING_RATE, 10 * DAY, 2 * DAY * FEEDING_RATE, sla=95)
    boa.env.time_travel(seconds=DAY)  # the deal has paid the minimum fee
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
    deal_id = economy.open_deal(FEEDING_RATE, 10 * DAY, DAY * FEEDING_RATE)
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


# -- self-dealing and the minimum fee for reputation (issue 13) -----------------------


def _reputation_state(economy, accounts):
    return [(economy.reputation.deals(x), economy.reputation.scores(x), economy.reputation.reputation(x))
            for x in accounts]


@pytest.mark.parametrize(("provider", "app_provider"), [
    ("tenant", "app_provider"),  # tenant is the provider
    ("provider", "tenant"),  # tenant is the application provider
    ("provider", "provider"),  # provider is the application provider
    ("tenant", "tenant"),  # one account in all three roles
])
def test_open_deal__self_dealing__reverts_and_changes_nothing(economy, provider, app_provider):
    a = economy.actors
    economy.token.approve(economy.escrow.address, 2**255, sender=a.tenant)
    accounts = (a.tenant, a.provider, a.app_provider)
    before = (economy.escrow.deal_count(), [economy.token.balanceOf(x) for x in accounts],
              [economy.escrow.party_id(x) for x in accounts])
    with boa.reverts("escrow: parties must be distinct"):  # the 1-wei deal
        economy.escrow.open_deal(getattr(a, provider), getattr(a, app_provider), 1, DAY, 1, 90, sender=a.tenant)
    assert (economy.escrow.deal_count(), [economy.token.balanceOf(x) for x in accounts],
            [economy.escrow.party_id(x) for x in accounts]) == before


def test_deal_below_min_fee__completes_and_is_rated_but_reputation_unchanged(economy):
    a = economy.actors
    parties = (a.tenant, a.provider, a.app_provider)
    before = _reputation_state(economy, parties)
    deal_id = economy.open_deal(RATE, 10 * DAY, DAY * RATE)  # fee 4.32 ANKR, minimum 2,500
    boa.env.time_travel(seconds=DAY)
    economy.escrow.settle(deal_id)
    skipped = [log for log in economy.escrow.get_logs() if type(log).__name__ == "ReputationUnchanged"]
    assert _deal(economy, deal_id)["status"] == COMPLETED
    fee = DAY * RATE * economy.params.fee_bps // 10_000
    assert economy.escrow.platform_fee_paid(deal_id) == fee
    assert [(x.deal_id, x.kind, x.platform_fee_paid, x.min_reputation_fee) for x in skipped] == [
        (deal_id, 1, fee, economy.params.min_reputation_fee)]
    economy.escrow.rate_provider(deal_id, 100, sender=a.tenant)
    assert [log.kind for log in economy.escrow.get_logs() if type(log).__name__ == "ReputationUnchanged"] == [3]
    assert _deal(economy, deal_id)["status"] == COMPLETED + RATED
    assert _reputation_state(economy, parties) == before


def test_service_level_below_min_fee__breach_still_slashes_but_reputation_unchanged(economy):
    a = economy.actors
    economy.stake(a.provider, 10_000 * WAD)
    before = _reputation_state(economy, (a.tenant, a.provider, a.app_provider))
    deal_id = economy.open_deal(RATE, 10 * DAY, 10 * DAY * RATE, sla=90)
    boa.env.time_travel(seconds=3_600)
    economy.escrow.report_service_level(deal_id, 10, sender=a.monitor)
    kinds = [log.kind for log in economy.escrow.get_logs() if type(log).__name__ == "ReputationUnchanged"]
    assert _deal(economy, deal_id)["status"] == BREACHED
    assert economy.escrow.balances(a.tenant) == (10 * DAY - 3_600) * RATE  # the refund still works
    assert economy.staking.stake_info(a.provider)[1] == 10_000 * WAD - 10 * DAY * RATE // 10  # and the slash
    assert kinds == [2, 1]  # neither the service level nor the failed deal counts
    assert _reputation_state(economy, (a.tenant, a.provider, a.app_provider)) == before


@pytest.mark.parametrize(("seconds", "feeds"), [(50_000, True), (49_999, False)])
def test_min_fee__deal_feeds_reputation_only_from_the_minimum(economy, seconds, feeds):
    """At 1 ANKR/s and 5%, 50,000 s pay exactly the default minimum of 2,500 ANKR."""
    a = economy.actors
    deal_id = economy.open_deal(FEEDING_RATE, seconds, seconds * FEEDING_RATE)
    boa.env.time_travel(seconds=seconds)
    economy.escrow.settle(deal_id)
    economy.escrow.rate_provider(deal_id, 100, sender=a.tenant)
    for account in (a.tenant, a.provider, a.app_provider):
        assert economy.reputation.deals(account)[2] == (1 if feeds else 0)
    assert economy.reputation.scores(a.provider)[2] == (1 if feeds else 0)  # the rating


def test_set_min_reputation_fee__only_admin_and_logged(economy):
    a = economy.actors
    with boa.reverts("access_control: account is missing role"):
        economy.escrow.set_min_reputation_fee(0, sender=a.tenant)
    with boa.reverts("escrow: minimum fee too large"):
        economy.escrow.set_min_reputation_fee(2**96, sender=a.deployer)
    assert economy.escrow.min_reputation_fee() == economy.params.min_reputation_fee
    economy.escrow.set_min_reputation_fee(7 * WAD, sender=a.deployer)
    (log,) = economy.escrow.get_logs()
    assert (log.name, log.old_value, log.new_value) == ("min_reputation_fee", economy.params.min_reputation_fee,
                                                         7 * WAD)
    assert economy.escrow.min_reputation_fee() == 7 * WAD
    assert economy.escrow.split() == (500, 1_000, 1_000)  # packed beside the split, which stays
