"""The enclave's settings: a YAML/TOML file, overridden by NOS_ENCLAVE_<FIELD> environment
variables, overridden by CLI flags; any mistake is a `ConfigError` naming the field.

The rules are `nos_enclave.settings`, which the other services use too: the enclave imports
nothing from the rest of the project, so its measurement covers every line of code it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nos_enclave.settings import ConfigError
from nos_enclave.settings import load_config as load_settings

__all__ = ["ConfigError", "EnclaveConfig", "load_config"]


class EnclaveConfig(BaseModel):
    socket_path: str
    sealed_key: Path
    ca_bundle: Path
    secret_env: str = "NOS_ENCLAVE_SECRET"
    health_port: int | None = None
    log_level: str = "INFO"


ENV_PREFIX = "NOS_ENCLAVE_"


def load_config(path: Path | None, **overrides: Any) -> EnclaveConfig:
    """File, then environment (`NOS_ENCLAVE_<FIELD>`), then explicit overrides (CLI flags, None = not given)."""
    return load_settings(EnclaveConfig, path, ENV_PREFIX, **overrides)
