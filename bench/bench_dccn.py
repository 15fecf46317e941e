"""DCCN economy benchmark: gas of the hot paths on anvil beside their anchors, and
the WDRF scheduler on 10,000 tasks over 1,000 providers.

Run: `python -m bench.bench_dccn` (writes its section of docs/BENCHMARKS.md).
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from typing import Any

from bench.report import table, verdict, write_section
from dccn_common.anvil import Anvil
from dccn_common.contracts import deploy
from dccn_scheduler.economy import DAY, WAD, deploy_economy, send
from dccn_scheduler.wdrf import Node, Provider, Task, schedule

COMMAND = "python -m bench.bench_dccn"
TASKS = 10_000
PROVIDERS = 1_000
SCHEDULER_GOAL_S = 1.0


@dataclass(frozen=True)
class GasRow:
    operation: str
    gas: int
    anchor: str
    goal: int | None
    note: str


def measure_gas() -> list[GasRow]:
    with Anvil(accounts=8) as node:
        w3 = node.web3()
        deployer, tenant, provider, app, monitor, other, other_tenant, treasury = w3.eth.accounts[:8]
        token = deploy(w3, "AnkrToken", sender=deployer)
        economy = deploy_economy(w3, token.address, sender=deployer, treasury=treasury, monitor=monitor,
                                 reporter=deployer)
        staking, escrow = economy.staking, economy.escrow

        def gas(call: Any, sender: str) -> int:
            return int(send(w3, call, sender)["gasUsed"])

        for account in (tenant, provider, app, other, other_tenant):
            gas(token.functions.transfer(account, 10_000_000 * WAD), deployer)
        # Finite approvals (allowance is written on every pull, as with most wallets).
        for account, spender in ((provider, staking), (other, staking), (deployer, staking), (tenant, escrow),
                                 (other_tenant, escrow)):
            gas(token.functions.approve(spender.address, 5_000_000 * WAD), account)
        gas(staking.functions.fund_rewards(1_000_000 * WAD), deployer)
        # Steady state: another staker is active, a deal exists, the parties are registered.
        gas(staking.functions.stake(50_000 * WAD), other)
        node.warp(2 * DAY)
        gas(staking.functions.stake(WAD), other)
        gas(escrow.functions.register_party(), provider)
        gas(escrow.functions.register_party(), app)
        gas(escrow.functions.open_deal(provider, app, 10**15, 30 * DAY, 10_000 * WAD, 90), other_tenant)
        # 1 ANKR/s: pays the minimum platform fee for reputation long before it is breached at the end.
        gas(escrow.functions.open_deal(provider, app, WAD, 30 * DAY, 30 * DAY * WAD, 90), other_tenant)
        feeding_deal = escrow.functions.deal_count().call()

        stake_first = gas(staking.functions.stake(100_000 * WAD), provider)
        node.warp(2 * DAY)
        epoch_opener = gas(staking.functions.claim(), other)  # first touch of the epoch
        stake_activating = gas(staking.functions.stake(1_000 * WAD), provider)
        node.warp(2 * DAY)
        gas(staking.functions.claim(), other)
        stake_topup = gas(staking.functions.stake(1_000 * WAD), provider)
        node.warp(DAY)
        gas(staking.functions.claim(), other)
        claim = gas(staking.functions.claim(), provider)
        open_deal = gas(escrow.functions.open_deal(provider, app, 10**15, 30 * DAY, 10_000 * WAD, 90), tenant)
        deal_id = escrow.functions.deal_count().call()
        node.warp(3600)
        settle = gas(escrow.functions.settle(deal_id), provider)
        node.warp(3600)
        collect = gas(escrow.functions.collect(deal_id), provider)
        withdraw = gas(escrow.functions.withdraw(), provider)
        breach = gas(escrow.functions.report_service_level(deal_id, 50), monitor)
        unstake = gas(staking.functions.request_unstake(1_000 * WAD), provider)
        feeding_breach = gas(escrow.functions.report_service_level(feeding_deal, 50), monitor)
    return [
        GasRow("stake (first stake of an account)", stake_first, "Synthetix StakingRewards stake 101,698", 95_000,
               "steady state: other stakers exist"),
        GasRow("stake (top-up of an active staker)", stake_topup, "Synthetix stake 101,698", 95_000,
               "accrues w0, activates the previous top-up"),
        GasRow("stake (top-up that activates the account's first stake)", stake_activating, "Synthetix stake 101,698",
               95_000, "once per account: first write of its reward slot"),
        GasRow("claim (stake-holding reward)", claim, "Synthetix StakingRewards getReward 86,445", 60_000,
               "recipient holds ANKR already"),
        GasRow("claim that opens an epoch", epoch_opener, "Synthetix getReward 86,445", 60_000,
               "once per epoch, by whoever comes first: records the epoch's accumulator"),
        GasRow("openDeal", open_deal, "packed Vyper streaming escrow 116,200", 116_000,
               "parties registered; finite approval"),
        GasRow("settle", settle, "packed Vyper streaming escrow 32,900", 33_000, "one slot read and written"),
        GasRow("collect (split + credit w1/w2)", collect, "-", None, "fee, app share, provider share"),
        GasRow("withdraw (pull payment)", withdraw, "-", None, ""),
        GasRow("SLA breach (refund + slash)", breach, "-", None,
               "deal below the minimum fee: reputation unchanged"),
        GasRow("SLA breach of a deal above the minimum fee", feeding_breach, "-", None,
               "first reputation records of all 3 parties (new slots), refund, slash"),
        GasRow("request_unstake", unstake, "-", None, ""),
    ]


def synthetic_market(tasks: int, providers: int, seed: int = 7) -> tuple[list[Provider], list[Task]]:
    rng = random.Random(seed)
    market = []
    for i in range(providers):
        nodes = [
            Node(f"p{i}-n{j}", (rng.choice((8, 16, 32, 64)), rng.choice((16, 32, 64, 128)), rng.choice((500, 1000, 2000)),
                                rng.choice((100, 1000, 10000)), rng.choice((0, 0, 1, 2, 4))),
                 price=rng.uniform(1.5, 20.0))
            for j in range(rng.randint(1, 5))
        ]
        market.append(Provider(f"p{i}", nodes, indices=(rng.random(), rng.random())))
    users = [f"u{k}" for k in range(200)]
    work = [
        Task(f"t{n}", rng.choice(users), (rng.choice((1, 2, 4)), rng.choice((1, 2, 4, 8)), rng.choice((10, 50, 100)),
                                           rng.choice((10, 50)), rng.choice((0, 0, 0, 1))))
        for n in range(tasks)
    ]
    return market, work


@dataclass(frozen=True)
class SchedulerRun:
    wall: float  # best of the runs
    cpu: float  # process CPU time of that run
    floor: float  # one bare pass over the tasks
    placed: int
    load: float  # 1-minute load average when measured


def measure_scheduler(runs: int = 5) -> SchedulerRun:
    market, work = synthetic_market(TASKS, PROVIDERS)
    weights = {f"u{k}": 1.0 + (k % 3) for k in range(200)}
    best = (float("inf"), 0.0)
    placed = 0
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        result = schedule(market, work, user_weights=weights)
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
        placed = len(result.placements)
    # The physical floor of this machine for the same input: one pass touching every task once.
    started = time.perf_counter()
    sum(sum(t.demand) for t in work)
    floor = time.perf_counter() - started
    return SchedulerRun(best[0], best[1], floor, placed, os.getloadavg()[0])


def main() -> None:
    rows = measure_gas()
    run = measure_scheduler()
    gas_table = table(
        ["operation", "gas (anvil receipt)", "anchor", "goal", "verdict", "note"],
        [[r.operation, r.gas, r.anchor, f"≤ {r.goal:,}" if r.goal else "-",
          verdict(r.gas, r.goal) if r.goal else "-", r.note] for r in rows],
    )
    sched_table = table(
        ["workload", "wall (best of 5)", "CPU of that run", "goal", "verdict", "tasks placed",
         "one bare pass over the tasks (floor)", "load average"],
        [[f"{TASKS:,} tasks / {PROVIDERS:,} providers", f"{run.wall:.3f} s", f"{run.cpu:.3f} s",
          f"≤ {SCHEDULER_GOAL_S} s", verdict(run.wall, SCHEDULER_GOAL_S), run.placed,
          f"{run.floor * 1000:.2f} ms ({run.wall / run.floor:,.0f}x)", f"{run.load:.1f}"]],
    )
    body = (
        "Gas from anvil receipts (ANKR token with finite approvals, so every pull writes the allowance). "
        "Storage is packed by hand (Vyper gives every value its own slot): one word per account position, "
        "one per deal. The stake-holding accumulator needs its value at each epoch start; the first "
        "transaction of an epoch that follows new stake records it (one new slot, once per epoch).\n\n"
        f"{gas_table}\n\nWDRF scheduler (filter, prioritise, weighted DRF per provider), pure Python + numpy:\n\n"
        f"{sched_table}\n"
    )
    write_section("dccn", "DCCN economy (issue 6)", body, COMMAND)
    print(body)


if __name__ == "__main__":
    main()
