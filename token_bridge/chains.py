"""The two sides of the bridge as a service sees them: node, bridge contract, chain id."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from web3 import Web3
from web3.contract import Contract

from dccn_common.config import ConfigError
from dccn_common.manifest import Manifest, ManifestError
from dccn_common.service import connect
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

    @property
    def destination(self) -> Destination:
        return Destination(self.chain_id, self.bridge.address)


def open_side(name: str, rpc_url: str, manifest_path: Path, confirmations: int, header_rpc_url: str | None) -> Side:
    manifest = Manifest.load(manifest_path)
    w3 = connect(rpc_url)
    try:
        chain_id = w3.eth.chain_id
    except Exception as err:  # connection refused, not JSON-RPC, ...
        raise ConfigError(f"{name}: cannot reach the node at {rpc_url}: {type(err).__name__}") from err
    if chain_id != manifest.chain_id:
        raise ManifestError(f"{manifest_path} is for chain {manifest.chain_id} but {rpc_url} is chain {chain_id}")
    entry = manifest.get(BRIDGE_CONTRACT[name])
    header_w3 = connect(header_rpc_url) if header_rpc_url else w3
    return Side(name, w3, header_w3, manifest.contract(w3, entry.name), chain_id, entry.block, confirmations)


def other(side: str) -> str:
    return ANKR if side == ETHEREUM else ETHEREUM
