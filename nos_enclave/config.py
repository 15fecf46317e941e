"""The enclave's settings: a YAML/TOML file, overridden by NOS_ENCLAVE_<FIELD> environment
variables, overridden by CLI flags; any mistake is a `ConfigError` naming the field.

The same rules as the other services' `dccn_common.config`, kept inside this package on
purpose: the enclave imports nothing from the rest of the project, so its measurement
covers every line of project code it runs.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """The configuration (or the sealed key it names) is missing, unreadable or invalid."""


class EnclaveConfig(BaseModel):
    socket_path: str
    sealed_key: Path
    ca_bundle: Path
    secret_env: str = "NOS_ENCLAVE_SECRET"
    health_port: int | None = None
    log_level: str = "INFO"


ENV_PREFIX = "NOS_ENCLAVE_"


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    # A misspelt setting would silently keep its default: refuse it, naming it.
    unknown = sorted(str(key) for key in data if key not in EnclaveConfig.model_fields)
    if unknown:
        raise ConfigError(f"{path}: unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(EnclaveConfig.model_fields))})")
    return data


def load_config(path: Path | None, **overrides: Any) -> EnclaveConfig:
    """File, then environment (`NOS_ENCLAVE_<FIELD>`), then explicit overrides (CLI flags, None = not given)."""
    data: dict[str, Any] = _read_file(path) if path else {}
    for name in EnclaveConfig.model_fields:
        env_value = os.environ.get(ENV_PREFIX + name.upper())
        if env_value is not None:
            data[name] = env_value
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return EnclaveConfig.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"invalid configuration: {problems}") from err
