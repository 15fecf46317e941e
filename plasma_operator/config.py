"""Settings of the operator: a YAML/TOML file, then PLASMA_OPERATOR_* environment variables, then
command-line flags (dccn_common.config); the root-chain part is plasma_core.config's."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from plasma_core.config import ChainSettings


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
