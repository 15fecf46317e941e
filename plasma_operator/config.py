"""Settings of the operator and the watcher: a YAML/TOML file, then PLASMA_OPERATOR_* /
PLASMA_WATCHER_* environment variables, then command-line flags (dccn_common.config)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from web3 import Web3
from web3.contract import Contract

from dccn_common.config import ConfigError
from dccn_common.manifest import Manifest
from dccn_common.service import connect


class ChainSettings(BaseModel):
    rpc_url: str = "http://127.0.0.1:8545"
    manifest: Path = Field(description="deployment manifest (deployments/<chain-id>.json)")
    contract: str = "RootChain"
    keystore: Path
    password_env: str
    db: Path
    confirmations: int = Field(default=2, ge=0)
    poll_interval: float = Field(default=1.0, gt=0)


class OperatorConfig(ChainSettings):
    password_env: str = "PLASMA_OPERATOR_PASSWORD"
    db: Path = Path("plasma-operator.db")
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
    db: Path = Path("plasma-watcher.db")
    operator_url: str = "http://127.0.0.1:8700"
    health_port: int = Field(default=8701, ge=0, le=65535)
    withhold_grace: float = Field(default=30.0, ge=0, description="seconds a submitted block may stay unserved")
    exit_on_fraud: bool = True


def load_rootchain(w3: Web3, settings: ChainSettings) -> tuple[Contract, int]:
    """The RootChain web3 contract and its deployment block, from the manifest."""
    manifest = Manifest.load(settings.manifest)
    entry = manifest.get(settings.contract)
    if not w3.eth.get_code(Web3.to_checksum_address(entry.address)):
        raise ConfigError(f"no contract at {entry.address} ({settings.contract} in {settings.manifest}) on {settings.rpc_url}")
    return manifest.contract(w3, settings.contract), entry.block


def connect_checked(rpc_url: str) -> Web3:
    w3 = connect(rpc_url)
    try:
        _ = w3.eth.chain_id
    except Exception as err:
        raise ConfigError(f"cannot reach the root chain at {rpc_url}: {type(err).__name__}") from None
    return w3
