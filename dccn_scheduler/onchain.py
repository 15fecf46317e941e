"""Stake and reputation read from the deployed contracts (manifest + RPC): the
providers' reputation indices z_m and the users' task weights w_i of seed 000."""

from __future__ import annotations

from dataclasses import replace

from web3 import Web3

from dccn_common.manifest import Manifest
from dccn_scheduler.economy import WAD
from dccn_scheduler.wdrf import Provider


class OnChainIndices:
    """z = (reputation, share of the total stake) per provider; w = 1 + reputation per user."""

    def __init__(self, w3: Web3, manifest: Manifest) -> None:
        self.staking = manifest.contract(w3, "DccnStaking")
        self.reputation = manifest.contract(w3, "DccnReputation")

    def provider_indices(self, address: str, total_stake: int) -> tuple[float, float]:
        account = Web3.to_checksum_address(address)
        reputation = self.reputation.functions.reputation(account).call() / WAD
        stake = self.staking.functions.staked(account).call()
        return reputation, (stake / total_stake if total_stake else 0.0)

    def enrich(self, providers: list[Provider], user_addresses: dict[str, str],
               user_weights: dict[str, float]) -> tuple[list[Provider], dict[str, float]]:
        total = self.staking.functions.total_staked().call()
        enriched = [replace(p, indices=self.provider_indices(p.address, total)) if p.address else p for p in providers]
        weights = dict(user_weights)
        for user, address in user_addresses.items():
            weights[user] = 1.0 + self.reputation.functions.reputation(Web3.to_checksum_address(address)).call() / WAD
        return enriched, weights
