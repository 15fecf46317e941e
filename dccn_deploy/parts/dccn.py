"""DCCN economy: staking and rewards, reputation, the deal escrow and capacity rewards,
paid in ANKR, with their roles wired (Ethereum side).

Parameters (config/deploy.*.yaml, `dccn:`): every field of `EconomyParams` (weights,
periods, fee, split, slash), and its accounts `monitor` (reports service levels),
`reporter` (reports capacities) and `treasury` (receives platform fees) — each
defaults to the deployer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from web3 import Web3

if TYPE_CHECKING:
    from dccn_deploy import DeployContext

SIDES = {"ethereum"}
WAD = 10**18
DAY = 86_400
ACCOUNT_KEYS = ("monitor", "reporter", "treasury")
CONTRACT_NAMES = ("DccnStaking", "DccnReputation", "DccnDealEscrow", "DccnCapacityRewards")

ESCROW_ROLE = Web3.keccak(text="ESCROW_ROLE")
REWARDER_ROLE = Web3.keccak(text="REWARDER_ROLE")
RECORDER_ROLE = Web3.keccak(text="RECORDER_ROLE")
MONITOR_ROLE = Web3.keccak(text="MONITOR_ROLE")
REPORTER_ROLE = Web3.keccak(text="REPORTER_ROLE")


@dataclass(frozen=True)
class EconomyParams:
    """Governance parameters and the part's accounts; defaults are seed 000's weights and the issue's fee."""

    epoch_length: int = DAY
    unbonding_period: int = 7 * DAY
    w0: int = 5 * 10**13  # 0.00005 per day on stake held (WAD)
    w1: int = 2 * 10**15  # 0.002 on stake consumed (WAD)
    w2: int = 2 * 10**15  # 0.002 on fees earned (WAD)
    w3: int = 100 * WAD  # 100 ANKR per month x reputation
    finder_fee_bps: int = 1_000
    # Share of an account's fee backing (platform fees of the qualifying deals that fed its
    # reputation) it can ever earn as w3: a sybil ring paying F in fees earns <= 0.5 F of w3.
    reputation_reward_backing_bps: int = 5_000
    psi: int = 2 * 10**17  # EMA factor (WAD)
    log_divisor: int = 1_000  # seed: log10(p) / 1000
    fee_bps: int = 500  # platform fee, 5%
    app_bps: int = 1_000  # application provider's share
    slash_bps: int = 1_000  # of the deal's value, on an SLA breach
    # Platform fee a deal must pay before it feeds reputation (and backs w3 rewards); w1/w2 plus
    # the backed w3 return at most 0.578 of any deal's fee at these defaults (docs/dccn.md).
    min_reputation_fee: int = 2_500 * WAD
    daily_capacity_reward: int = 10_000 * WAD
    # Accounts ("" = the deployer): reports service levels, reports capacities, receives platform fees.
    monitor: str = ""
    reporter: str = ""
    treasury: str = ""

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> EconomyParams:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown dccn parameter(s): {', '.join(sorted(unknown))}")
        # Accounts are str, the rest int: one value type per key, which a dict's type cannot say.
        converted: dict[str, Any] = {k: str(v or "") if k in ACCOUNT_KEYS else int(v) for k, v in values.items()}
        return cls(**converted)

    def as_mapping(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ACCOUNT_KEYS or v}

    def staking_args(self, token: str) -> tuple[Any, ...]:
        return (token, self.epoch_length, self.unbonding_period, self.w0, self.w1, self.w2, self.w3,
                self.finder_fee_bps, self.reputation_reward_backing_bps)

    def reputation_args(self) -> tuple[Any, ...]:
        return (self.psi, self.log_divisor)

    def escrow_args(self, token: str, staking: str, reputation: str, treasury: str) -> tuple[Any, ...]:
        return (token, staking, reputation, treasury, self.fee_bps, self.app_bps, self.slash_bps,
                self.min_reputation_fee)

    def capacity_args(self, token: str) -> tuple[Any, ...]:
        return (token, self.daily_capacity_reward)


def role_grants(economy: Any, monitor: str, reporter: str) -> list[tuple[str, Any, bytes, str]]:
    """(description, contract, role, account) for every role the contracts need of each other."""
    escrow = economy.escrow.address
    return [
        ("staking: escrow may slash", economy.staking, ESCROW_ROLE, escrow),
        ("staking: escrow credits w1/w2 rewards", economy.staking, REWARDER_ROLE, escrow),
        ("reputation: escrow records deals", economy.reputation, RECORDER_ROLE, escrow),
        ("escrow: monitor reports service levels", economy.escrow, MONITOR_ROLE, monitor),
        ("capacity: reporter reports capacities", economy.capacity, REPORTER_ROLE, reporter),
    ]


@dataclass
class Economy:
    """The four deployed contracts (the backend's instances)."""

    staking: Any
    reputation: Any
    escrow: Any
    capacity: Any

    @classmethod
    def of(cls, ctx: DeployContext) -> Economy:
        return cls(*(ctx.at(name) for name in CONTRACT_NAMES))


def read_params(raw: dict[str, Any] | EconomyParams) -> EconomyParams:
    from dccn_deploy import DeployError

    if isinstance(raw, EconomyParams):
        return raw
    try:
        return EconomyParams.from_mapping(raw)
    except (TypeError, ValueError) as err:
        raise DeployError(f"dccn parameters: {err}") from err


def deploy(ctx: DeployContext) -> None:
    from dccn_deploy import DeployError

    params = read_params(ctx.part_params("dccn"))
    accounts = {key: getattr(params, key) or ctx.deployer_address for key in ACCOUNT_KEYS}
    token = ctx.at("AnkrToken").address
    staking = ctx.deploy("DccnStaking", *params.staking_args(token), part="dccn")
    reputation = ctx.deploy("DccnReputation", *params.reputation_args(), part="dccn")
    escrow = ctx.deploy("DccnDealEscrow", *params.escrow_args(token, staking.address, reputation.address,
                                                              accounts["treasury"]), part="dccn")
    capacity = ctx.deploy("DccnCapacityRewards", *params.capacity_args(token), part="dccn")

    economy = Economy(staking, reputation, escrow, capacity)
    for description, contract, role, account in role_grants(economy, accounts["monitor"], accounts["reporter"]):
        if not ctx.read(contract, "hasRole", role, account):
            ctx.call(f"{description} ({account})", contract, "grantRole", role, account)
        else:
            ctx.echo(f"  = {description} already granted")
    if str(ctx.read(staking, "reputation_source")).lower() != str(reputation.address).lower():
        ctx.call("staking: w3 reads DccnReputation", staking, "set_reputation_source", reputation.address)
    else:
        ctx.echo("  = staking already reads DccnReputation")
    if str(ctx.read(staking, "fee_source")).lower() != str(escrow.address).lower():
        ctx.call("staking: weights checked against DccnDealEscrow's fee", staking, "set_fee_source", escrow.address)
    else:
        ctx.echo("  = staking already checks weights against DccnDealEscrow's fee")
    clock = str(ctx.read(reputation, "reward_clock")).lower()
    if clock == "0x" + "0" * 40:
        ctx.call("reputation: w3 clock of DccnStaking", reputation, "set_reward_clock", staking.address)
    elif clock == str(staking.address).lower():
        ctx.echo("  = reputation already weighs by DccnStaking's w3 clock")
    else:
        raise DeployError(f"DccnReputation's reward clock is {clock}, not DccnStaking {staking.address}")
