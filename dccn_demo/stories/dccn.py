"""The DCCN economy: a provider stakes, the WDRF scheduler picks providers for a
tenant's tasks, a deal streams payment, is settled with the 5% fee split, breaches
its SLA (refund + slash), is rated, and rewards are claimed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dccn_scheduler.economy import DAY, WAD, send
from dccn_scheduler.onchain import OnChainIndices
from dccn_scheduler.wdrf import Node, Provider, Task, schedule

if TYPE_CHECKING:
    from dccn_demo.context import DemoContext

TITLE = "DCCN economy: staking, scheduler, SLA deal, reputation, rewards"
ANKR = WAD


def _ankr(amount: int) -> str:
    return f"{amount / ANKR:,.4f} ANKR"


def run(ctx: DemoContext) -> None:
    chain = ctx.ethereum
    w3, manifest = chain.w3, chain.manifest
    token = manifest.contract(w3, "AnkrToken")
    staking = manifest.contract(w3, "DccnStaking")
    reputation = manifest.contract(w3, "DccnReputation")
    escrow = manifest.contract(w3, "DccnDealEscrow")
    capacity = manifest.contract(w3, "DccnCapacityRewards")
    deployer, tenant, provider = ctx.actor("deployer"), ctx.actor("tenant"), ctx.actor("provider")
    app, monitor = ctx.actor("app_provider"), ctx.actor("monitor")

    def gas(receipt: object) -> int:
        return int(receipt["gasUsed"])  # type: ignore[index]

    # -- staking ------------------------------------------------------------------------
    send(w3, token.functions.transfer(provider.address, 200_000 * ANKR), deployer)
    send(w3, token.functions.approve(staking.address, 100_000 * ANKR), deployer)
    send(w3, staking.functions.fund_rewards(100_000 * ANKR), deployer)
    ctx.step("deployer funded the provider with 200,000 ANKR and the reward pool with 100,000 ANKR")
    send(w3, token.functions.approve(staking.address, 100_000 * ANKR), provider)
    receipt = send(w3, staking.functions.stake(100_000 * ANKR), provider)
    ctx.done("provider staked 100,000 ANKR (counts from the next epoch)", part="dccn", address=staking.address,
             gas=gas(receipt))
    chain.anvil.warp(DAY)
    ctx.step(f"next epoch: provider's active stake {_ankr(staking.functions.staked(provider.address).call())}, "
             f"total {_ankr(staking.functions.total_staked().call())}")

    # -- scheduler ----------------------------------------------------------------------
    market = [
        Provider("provider", [Node("prov-a", (16, 64, 1000, 1000, 1), 20.0), Node("prov-b", (8, 32, 500, 1000, 0), 12.0)],
                 address=provider.address),
        Provider("no-stake", [Node("ns-a", (16, 64, 1000, 1000, 0), 11.0)], address=app.address),
        Provider("tiny", [Node("tiny-a", (2, 4, 50, 100, 0), 2.0)]),
    ]
    tasks = [Task(f"web-{i}", "tenant", (2, 4, 20, 50, 0)) for i in range(3)] + [Task("gpu-1", "tenant", (4, 16, 100, 100, 1))]
    market, weights = OnChainIndices(w3, manifest).enrich(market, {"tenant": tenant.address}, {})
    result = schedule(market, tasks, user_weights=weights)
    for p in market:
        ctx.step(f"provider {p.id}: on-chain indices (reputation, stake share) = "
                 f"({p.indices[0]:.3f}, {p.indices[1]:.3f})" if p.indices else f"provider {p.id}: no on-chain data")
    for placement in result.placements:
        ctx.step(f"WDRF placed {placement.task} on {placement.provider}/{placement.node}")
    ctx.done(f"scheduler placed {len(result.placements)} of {len(tasks)} tasks (stake + reputation from chain)",
             part="dccn")

    # -- the deal -----------------------------------------------------------------------
    rate, deposit = 10**16, 10_000 * ANKR  # 0.01 ANKR/s, up to 30 days
    send(w3, escrow.functions.register_party(), provider)
    send(w3, escrow.functions.register_party(), app)
    send(w3, token.functions.approve(escrow.address, deposit), tenant)
    receipt = send(w3, escrow.functions.open_deal(provider.address, app.address, rate, 30 * DAY, deposit, 95),
                       tenant)
    deal_id = escrow.functions.deal_count().call()
    ctx.done(f"tenant opened deal #{deal_id}: 0.01 ANKR/s, deposit {_ankr(deposit)}, SLA 95", part="dccn",
             address=escrow.address, gas=gas(receipt))
    chain.anvil.warp(6 * 3600)
    receipt = send(w3, escrow.functions.settle(deal_id), provider)
    ctx.done(f"settled after 6 h: streamed {_ankr(escrow.functions.streamed(deal_id).call())} (O(1))",
             part="dccn", gas=gas(receipt))
    receipt = send(w3, escrow.functions.collect(deal_id), provider)
    treasury = escrow.functions.treasury().call()
    ctx.step(f"split: platform fee 5% {_ankr(escrow.functions.balances(treasury).call())}, app provider "
             f"{_ankr(escrow.functions.balances(app.address).call())}, provider "
             f"{_ankr(escrow.functions.balances(provider.address).call())}")
    ctx.done("collected: 5% fee / app share / provider share credited", part="dccn", gas=gas(receipt))
    receipt = send(w3, escrow.functions.withdraw(), provider)
    ctx.done("provider withdrew its share (pull payment)", part="dccn", gas=gas(receipt))

    chain.anvil.warp(3600)
    tenant_before = token.functions.balanceOf(tenant.address).call()
    receipt = send(w3, escrow.functions.report_service_level(deal_id, 80), monitor)
    slashed = token.functions.balanceOf(tenant.address).call() - tenant_before
    ctx.step(f"monitor measured service level 80 < SLA 95: refund {_ankr(escrow.functions.balances(tenant.address).call())}"
             f" credited, slash paid {_ankr(slashed)} to the tenant (finder fee to the monitor)")
    ctx.done("SLA breach: pro-rata refund + provider stake slashed", part="dccn", gas=gas(receipt))
    receipt = send(w3, escrow.functions.rate_provider(deal_id, 40), tenant)
    ctx.done("tenant rated the provider 40/100", part="dccn", gas=gas(receipt))
    ctx.step(f"the deal paid {_ankr(escrow.functions.platform_fee_paid(deal_id).call())} platform fee; deals below "
             f"{_ankr(escrow.functions.min_reputation_fee().call())} would leave reputation unchanged")
    send(w3, escrow.functions.collect(deal_id), app)
    receipt = send(w3, escrow.functions.withdraw(), tenant)
    ctx.done("tenant withdrew its refund", part="dccn", gas=gas(receipt))
    ctx.step(f"provider reputation now {reputation.functions.reputation(provider.address).call() / WAD:.4f}, "
             f"tenant reputation {reputation.functions.reputation(tenant.address).call() / WAD:.4f}")

    # -- rewards ------------------------------------------------------------------------
    chain.anvil.warp(DAY)
    before = token.functions.balanceOf(provider.address).call()
    receipt = send(w3, staking.functions.claim(), provider)
    ctx.done(f"provider claimed {_ankr(token.functions.balanceOf(provider.address).call() - before)} "
             "(w0 stake held + w2 fees earned)", part="dccn", gas=gas(receipt))
    before = token.functions.balanceOf(tenant.address).call()
    receipt = send(w3, staking.functions.claim(), tenant)
    ctx.done(f"tenant claimed {_ankr(token.functions.balanceOf(tenant.address).call() - before)} "
             "(w1 stake consumed)", part="dccn", gas=gas(receipt))

    # -- capacity rewards (seed 003) ------------------------------------------------------
    send(w3, token.functions.approve(capacity.address, 50_000 * ANKR), deployer)
    send(w3, capacity.functions.fund(50_000 * ANKR), deployer)
    day = w3.eth.get_block("latest")["timestamp"] // DAY
    receipt = send(w3, capacity.functions.report(provider.address, 2, 8, 100, WAD, 500, 120), deployer)
    ctx.done("reporter posted the provider's daily capacity C = P/Q*(sqrt(t)*o)+(sR-sT)", part="dccn",
             address=capacity.address, gas=gas(receipt))
    chain.anvil.warp(DAY)
    before = token.functions.balanceOf(provider.address).call()
    receipt = send(w3, capacity.functions.claim([day]), provider)
    ctx.done(f"provider claimed the day's RW1 pool share {_ankr(token.functions.balanceOf(provider.address).call() - before)}",
             part="dccn", gas=gas(receipt))
