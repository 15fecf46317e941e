"""The two sides of the bridge as a service sees them: node, bridge contract, chain id."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from web3 import Web3
from web3.contract import Contract

from dccn_common.chain import ChainBinding, bind_chain, connect
from token_bridge.transfer import Destination

ETHEREUM = "ethereum"
ANKR = "ankr"
BRIDGE_CONTRACT = {ETHEREUM: "ForeignBridge", ANKR: "HomeBridge"}


@dataclass
class Side:
    name: str
    w3: Web3
    header_w3: Web3
    bridge: Contract
    chain_id: int
    deploy_block: int
    confirmations: int
    binding: ChainBinding | None = None  # how the side was bound (dccn_common.chain.bind_chain)

    @property
    def destination(self) -> Destination:
        return Destination(self.chain_id, self.bridge.address)


def open_side(name: str, rpc_url: str, manifest_path: Path, confirmations: int, header_rpc_url: str | None) -> Side:
    """Bind one side: its node must be the manifest's chain (dccn_common.chain.bind_chain)."""
    binding = bind_chain(rpc_url, manifest_path, label=name)
    entry = binding.manifest.get(BRIDGE_CONTRACT[name])
    header_w3 = connect(header_rpc_url) if header_rpc_url else binding.w3
    # binding.contract refuses an address without code (a manifest of another deployment).
    return Side(name, binding.w3, header_w3, binding.contract(entry.name), binding.chain_id, entry.block,
                confirmations, binding)


def other(side: str) -> str:
    return ANKR if side == ETHEREUM else ETHEREUM
