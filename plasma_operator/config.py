"""Settings of the operator and the watcher: a YAML/TOML file, then PLASMA_OPERATOR_* /
PLASMA_WATCHER_* environment variables, then command-line flags (dccn_common.config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator
from web3 import Web3
from web3.contract import Contract

from dccn_common.chain import ChainBinding, bind_chain
from dccn_common.config import ConfigError
from dccn_common.sender import DEFAULT_LEASE_SECONDS
from dccn_common.store import postgres_dsn


class ChainSettings(BaseModel):
    rpc_url: str = "http://127.0.0.1:8545"
    manifest: Path = Field(description="deployment manifest (deployments/<chain-id>.json)")
    contract: str = "RootChain"
    keystore: Path
    password_env: str
    db: Path | str = Field(description="SQLite state file, or a postgresql:// URL (instances sharing it: "
                                       "one active, the others stand by)")
    confirmations: int = Field(default=2, ge=0)
    poll_interval: float = Field(default=1.0, gt=0)
    lease_seconds: float = Field(default=DEFAULT_LEASE_SECONDS, gt=0, description=(
        "PostgreSQL: a standby takes over this long after the active instance stops renewing its lease"))

    @field_validator("db", mode="before")
    @classmethod
    def _store(cls, value: Any) -> Any:
        if isinstance(value, str | Path):
            return postgres_dsn(value) or Path(value)
        return value


class OperatorConfig(ChainSettings):
    password_env: str = "PLASMA_OPERATOR_PASSWORD"
    db: Path | str = Path("plasma-operator.db")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8700, ge=0, le=65535)
    block_interval: float = Field(default=10.0, gt=0, description="seconds between blocks")
    block_size: int = Field(default=65_535, ge=1, le=65_535, description="user transactions per block")
    max_batch: int = Field(default=10_000, ge=1)
    recovery_workers: int = Field(default=2, ge=0, le=64, description=(
        "processes recovering a batch's signatures while the operator decodes and applies it "
        "(2 suits a 2-core host); 0 recovers in process"))
    fee_outputs: bool = Field(default=True, description=(
        "collect each block's fees as an output to the operator: a fee transaction (no inputs) in the "
        "block's last leaf, txindex 65535, which the RootChain exempts from fraud proofs"))


class WatcherConfig(ChainSettings):
    password_env: str = "PLASMA_WATCHER_PASSWORD"
    db: Path | str = Path("plasma-watcher.db")
    operator_url: str = "http://127.0.0.1:8700"
    health_port: int = Field(default=8701, ge=0, le=65535)
    withhold_grace: float = Field(default=30.0, ge=0, description="seconds a submitted block may stay unserved")
    exit_on_fraud: bool = True


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
    return binding.contract(settings.contract), binding.deploy_block(settings.contract)
