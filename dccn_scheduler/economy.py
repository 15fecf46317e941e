"""The DCCN economy's units and a transaction helper for its contracts.

The contracts' parameters, roles and deployment are the deploy part's
(dccn_deploy/parts/dccn.py: `EconomyParams`, `role_grants`, `deploy`)."""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from dccn_common.contracts import transact

WAD = 10**18
DAY = 86_400


def send(w3: Web3, call: Any, sender: str | LocalAccount) -> Any:
    """`transact` with a gas margin: anvil estimates at the latest block's timestamp, but
    the economy's checkpoints cost more when the clock has moved (the next block)."""
    address = sender if isinstance(sender, str) else sender.address
    estimate = call.estimate_gas({"from": Web3.to_checksum_address(address)})
    return transact(w3, call, sender=sender, gas=estimate * 5 // 4 + 20_000)
