"""Root-chain settings the operator's and the watcher's (OperatorConfig, WatcherConfig) share, and
the RootChain they bind to: a YAML/TOML file, then PLASMA_OPERATOR_* / PLASMA_WATCHER_*
environment variables, then command-line flags (dccn_common.config)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from web3 import Web3
from web3.contract import Contract

from dccn_common.chain import ChainBinding, bind_chain
from dccn_common.config import ConfigError, StoreLocation
from dccn_common.sender import DEFAULT_LEASE_SECONDS


class ChainSettings(BaseModel):
    rpc_url: str = "http://127.0.0.1:8545"
    manifest: Path = Field(description="deployment manifest (deployments/<chain-id>.json)")
    contract: str = "RootChain"
    keystore: Path
    password_env: str
    db: StoreLocation = Field(description="SQLite state file, or a postgresql:// URL (instances sharing it: "
                                       "one active, the others stand by)")
    confirmations: int = Field(default=2, ge=0)
    poll_interval: float = Field(default=1.0, gt=0)
    lease_seconds: float = Field(default=DEFAULT_LEASE_SECONDS, gt=0, description=(
        "PostgreSQL: a standby takes over this long after the active instance stops renewing its lease"))


def bind_root_chain(settings: ChainSettings, label: str) -> ChainBinding:
    """The root chain checked against the manifest (reachable, the manifest's chain id)."""
    return bind_chain(settings.rpc_url, settings.manifest, label=label)


def load_rootchain(binding: ChainBinding, settings: ChainSettings) -> tuple[Contract, int]:
    """The RootChain web3 contract and its deployment block, from the manifest (refused without code)."""
    entry = binding.manifest.get(settings.contract)
    if not binding.w3.eth.get_code(Web3.to_checksum_address(entry.address)):
        # The operator's message since before bind_chain (scripts and tests match on it).
        raise ConfigError(f"no contract at {entry.address} ({settings.contract} in {settings.manifest}) "
                          f"on {settings.rpc_url}")
    return binding.contract(settings.contract), binding.deployment_block(settings.contract)
