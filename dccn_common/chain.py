"""A service's view of one chain: a web3 client checked against its deployment manifest.

Every service binds its chains through `bind_chain`, the one place that connects, reads
the chain id, compares it with the manifest's and checks that the named contracts have
code there; each mistake is one line (ConfigError / ManifestError), never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from web3 import HTTPProvider, Web3
from web3.contract import Contract

from dccn_common.config import ConfigError
from dccn_common.manifest import Manifest, ManifestError


def connect(rpc_url: str, *, timeout: float = 30.0) -> Web3:
    """A web3 client for `rpc_url`; loopback or whatever the operator configured."""
    return Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))


def reachable_chain_id(w3: Web3, label: str = "chain") -> int:
    """The node's chain id, or a ConfigError naming the URL when the node cannot be reached."""
    try:
        return int(w3.eth.chain_id)
    except Exception as err:  # connection refused, not JSON-RPC, a proxy's HTML page, ...
        url = getattr(w3.provider, "endpoint_uri", "the node")
        raise ConfigError(f"{label}: cannot reach the node at {url}: {type(err).__name__}") from None


@dataclass(frozen=True)
class ChainBinding:
    """A connected node whose chain id matches `manifest`."""

    label: str
    rpc_url: str
    w3: Web3
    chain_id: int
    manifest: Manifest
    manifest_path: Path | None = None

    def contract(self, name: str) -> Contract:
        """The manifest's `name` as a web3 contract, refused when the chain has no code there."""
        entry = self.manifest.get(name)
        address = Web3.to_checksum_address(entry.address)
        if not self.w3.eth.get_code(address):
            where = f" in {self.manifest_path}" if self.manifest_path else ""
            raise ConfigError(f"{self.label}: no contract at {address} ({name}{where}) on {self.rpc_url}")
        return self.manifest.contract(self.w3, name)

    def deployment_block(self, name: str) -> int:
        return int(self.manifest.get(name).block)


def bind_chain(rpc_url: str, manifest: Manifest | Path | str, *, label: str = "chain",
               timeout: float = 30.0) -> ChainBinding:
    """Connect to `rpc_url` and check it is the chain `manifest` describes."""
    path = None if isinstance(manifest, Manifest) else Path(manifest)
    loaded = manifest if isinstance(manifest, Manifest) else Manifest.load(path)  # type: ignore[arg-type]
    w3 = connect(rpc_url, timeout=timeout)
    chain_id = reachable_chain_id(w3, label)
    if chain_id != loaded.chain_id:
        source = str(path) if path else "the manifest"
        raise ManifestError(f"{label}: {source} is for chain {loaded.chain_id} but {rpc_url} is chain {chain_id}")
    return ChainBinding(label, rpc_url, w3, chain_id, loaded, path)
