"""Settings of the validator and the relayer (file + TOKEN_BRIDGE_* environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from dccn_common.config import StoreLocation
from dccn_common.sender import DEFAULT_LEASE_SECONDS

ENV_PREFIX = "TOKEN_BRIDGE"


class BridgeConfig(BaseModel):
    """One file serves both roles; each role checks the fields it needs."""

    ethereum_rpc_url: str = "http://127.0.0.1:8545"
    ankr_rpc_url: str = "http://127.0.0.1:8546"
    # Optional second nodes that only supply block headers for the receipts check.
    ethereum_header_rpc_url: str | None = None
    ankr_header_rpc_url: str | None = None
    ethereum_manifest: Path = Path("deployments/31337.json")
    ankr_manifest: Path = Path("deployments/31338.json")
    # Ethereum finality is slow; the Ankr chain (a BFT chain in production) is final sooner.
    ethereum_confirmations: int = Field(default=12, ge=0)
    ankr_confirmations: int = Field(default=2, ge=0)
    # A SQLite file, or a postgresql:// URL: instances sharing it are one active, the others
    # standing by. The relayer keeps one store per destination: SQLite files <stem>-ethereum.db
    # and <stem>-ankr.db beside this path; on PostgreSQL the schemas relay_ethereum and
    # relay_ankr of this database (token_bridge.cli.relay_db_path).
    db_path: StoreLocation = Path("token-bridge.db")
    keystore: Path | None = None
    password_env: str = "TOKEN_BRIDGE_PASSWORD"
    health_port: int | None = Field(default=None, ge=0, le=65535)
    # Validator: where it serves its signatures (loopback); relayer: where it fetches them.
    signatures_host: str = "127.0.0.1"
    signatures_port: int = Field(default=0, ge=0, le=65535)
    validator_urls: list[str] = Field(default_factory=list)
    poll_interval: float = Field(default=1.0, gt=0)
    # PostgreSQL: a standby takes over this long after the active instance stops renewing its lease.
    lease_seconds: float = Field(default=DEFAULT_LEASE_SECONDS, gt=0)

    @field_validator("validator_urls", mode="before")
    @classmethod
    def split_urls(cls, value: object) -> object:
        # From the environment the list arrives as "url1,url2".
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
