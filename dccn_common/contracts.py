"""Contract helpers the services use at run time: the ABI hash a manifest records, and
sending one contract call from an unlocked or local account. Compiling and deploying from
source is dev tooling: dccn_devtools.contracts."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3


def abi_hash(abi: list[dict[str, Any]]) -> str:
    return "0x" + hashlib.sha256(json.dumps(abi, sort_keys=True).encode()).hexdigest()



def transact(
    w3: Web3, call: Any, *, sender: str | LocalAccount, value: int = 0, gas: int | None = None
) -> Any:
    """Send a contract call (or constructor) from `sender`; raise if it reverted."""
    params: dict[str, Any] = {"value": value}
    if gas:
        params["gas"] = gas
    if isinstance(sender, str):
        params["from"] = Web3.to_checksum_address(sender)
        tx_hash = call.transact(params)
    else:
        params["from"] = sender.address
        params["nonce"] = w3.eth.get_transaction_count(sender.address, "pending")
        params["chainId"] = w3.eth.chain_id
        tx = call.build_transaction(params)
        tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
    return receipt
