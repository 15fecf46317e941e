"""Settings of the watcher: a YAML/TOML file, then PLASMA_WATCHER_* environment variables, then
command-line flags (dccn_common.config); the root-chain part is plasma_core.config's."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from plasma_core.config import ChainSettings


class WatcherConfig(ChainSettings):
    password_env: str = "PLASMA_WATCHER_PASSWORD"
    db: Path | str = Path("plasma-watcher.db")
    operator_url: str = "http://127.0.0.1:8700"
    health_port: int = Field(default=8701, ge=0, le=65535)
    withhold_grace: float = Field(default=30.0, ge=0, description="seconds a submitted block may stay unserved")
    exit_on_fraud: bool = True
