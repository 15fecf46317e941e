"""DCCN economy: staking and rewards, reputation, the deal escrow and capacity rewards,
paid in ANKR, with their roles wired (Ethereum side).

Parameters (config/deploy.*.yaml, `dccn:`): every field of
`dccn_scheduler.economy.EconomyParams` (weights, periods, fee, split, slash), plus
`monitor` (reports service levels), `reporter` (reports capacities) and `treasury`
(receives platform fees) — each defaults to the deployer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dccn_scheduler.economy import EconomyParams, role_grants

if TYPE_CHECKING:
    from dccn_deploy import DeployContext

SIDES = {"ethereum"}
ACCOUNT_KEYS = ("monitor", "reporter", "treasury")


class _Economy:
    def __init__(self, staking: Any, reputation: Any, escrow: Any, capacity: Any) -> None:
        self.staking, self.reputation, self.escrow, self.capacity = staking, reputation, escrow, capacity


def deploy(ctx: DeployContext) -> None:
    from dccn_deploy import DeployError

    raw = ctx.part_params("dccn")
    accounts = {key: str(raw.pop(key, "") or ctx.deployer.address) for key in ACCOUNT_KEYS}
    try:
        params = EconomyParams.from_mapping(raw)
    except (TypeError, ValueError) as err:
        raise DeployError(f"dccn parameters: {err}") from err
    token = ctx.at("AnkrToken").address
    staking = ctx.deploy("DccnStaking", *params.staking_args(token), part="dccn")
    reputation = ctx.deploy("DccnReputation", *params.reputation_args(), part="dccn")
    escrow = ctx.deploy("DccnDealEscrow", *params.escrow_args(token, staking.address, reputation.address,
                                                              accounts["treasury"]), part="dccn")
    capacity = ctx.deploy("DccnCapacityRewards", *params.capacity_args(token), part="dccn")

    economy = _Economy(staking, reputation, escrow, capacity)
    for description, contract, role, account in role_grants(economy, accounts["monitor"], accounts["reporter"]):
        if not contract.hasRole(role, account):
            ctx.call(f"{description} ({account})", contract, "grantRole", role, account)
        else:
            ctx.echo(f"  = {description} already granted")
    if str(staking.reputation_source()).lower() != str(reputation.address).lower():
        ctx.call("staking: w3 reads DccnReputation", staking, "set_reputation_source", reputation.address)
    else:
        ctx.echo("  = staking already reads DccnReputation")
    if str(staking.fee_source()).lower() != str(escrow.address).lower():
        ctx.call("staking: weights checked against DccnDealEscrow's fee", staking, "set_fee_source", escrow.address)
    else:
        ctx.echo("  = staking already checks weights against DccnDealEscrow's fee")
    clock = str(reputation.reward_clock()).lower()
    if clock == "0x" + "0" * 40:
        ctx.call("reputation: w3 clock of DccnStaking", reputation, "set_reward_clock", staking.address)
    elif clock == str(staking.address).lower():
        ctx.echo("  = reputation already weighs by DccnStaking's w3 clock")
    else:
        raise DeployError(f"DccnReputation's reward clock is {clock}, not DccnStaking {staking.address}")
