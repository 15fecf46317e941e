"""The DCCN economy contracts from Python: their parameters, constructor arguments,
roles, a web3 deployment (tests, benchmarks) and the on-chain reads the scheduler needs."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from dccn_common.contracts import deploy, transact

WAD = 10**18
DAY = 86_400

ESCROW_ROLE = Web3.keccak(text="ESCROW_ROLE")
REWARDER_ROLE = Web3.keccak(text="REWARDER_ROLE")
RECORDER_ROLE = Web3.keccak(text="RECORDER_ROLE")
MONITOR_ROLE = Web3.keccak(text="MONITOR_ROLE")
REPORTER_ROLE = Web3.keccak(text="REPORTER_ROLE")

CONTRACT_NAMES = ("DccnStaking", "DccnReputation", "DccnDealEscrow", "DccnCapacityRewards")


@dataclass(frozen=True)
class EconomyParams:
    """Governance parameters; defaults are seed 000's weights and the issue's fee."""

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

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> EconomyParams:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown dccn parameter(s): {', '.join(sorted(unknown))}")
        return cls(**{k: int(v) for k, v in values.items()})

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


@dataclass
class Economy:
    staking: Contract
    reputation: Contract
    escrow: Contract
    capacity: Contract


def role_grants(economy: Any, monitor: str, reporter: str) -> list[tuple[str, Any, bytes, str]]:
    """(description, contract, role, account) for every role the parts need of each other."""
    escrow = economy.escrow.address
    return [
        ("staking: escrow may slash", economy.staking, ESCROW_ROLE, escrow),
        ("staking: escrow credits w1/w2 rewards", economy.staking, REWARDER_ROLE, escrow),
        ("reputation: escrow records deals", economy.reputation, RECORDER_ROLE, escrow),
        ("escrow: monitor reports service levels", economy.escrow, MONITOR_ROLE, monitor),
        ("capacity: reporter reports capacities", economy.capacity, REPORTER_ROLE, reporter),
    ]


def deploy_economy(w3: Web3, token: str, *, sender: str | LocalAccount, treasury: str, monitor: str,
                   reporter: str, params: EconomyParams | None = None) -> Economy:
    """Deploy and wire the four contracts with web3 (tests, benchmarks)."""
    params = params or EconomyParams()
    staking = deploy(w3, "DccnStaking", *params.staking_args(token), sender=sender)
    reputation = deploy(w3, "DccnReputation", *params.reputation_args(), sender=sender)
    escrow = deploy(w3, "DccnDealEscrow", *params.escrow_args(token, staking.address, reputation.address, treasury),
                    sender=sender)
    capacity = deploy(w3, "DccnCapacityRewards", *params.capacity_args(token), sender=sender)
    economy = Economy(staking, reputation, escrow, capacity)
    for _, contract, role, account in role_grants(economy, monitor, reporter):
        transact(w3, contract.functions.grantRole(role, account), sender=sender)
    transact(w3, staking.functions.set_reputation_source(reputation.address), sender=sender)
    transact(w3, staking.functions.set_fee_source(escrow.address), sender=sender)
    transact(w3, reputation.functions.set_reward_clock(staking.address), sender=sender)
    return economy


def send(w3: Web3, call: Any, sender: str | LocalAccount) -> Any:
    """`transact` with a gas margin: anvil estimates at the latest block's timestamp, but
    the economy's checkpoints cost more when the clock has moved (the next block)."""
    address = sender if isinstance(sender, str) else sender.address
    estimate = call.estimate_gas({"from": Web3.to_checksum_address(address)})
    return transact(w3, call, sender=sender, gas=estimate * 5 // 4 + 20_000)
