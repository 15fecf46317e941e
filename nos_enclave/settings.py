"""Settings of every process: a YAML/TOML file, overridden by environment variables,
overridden by explicit values (CLI flags); any mistake is a `ConfigError` whose message names
the field, never a traceback.

Each process defines a pydantic model of its settings. `load_config` reads the file (if
given), then `<PREFIX>_<FIELD>` environment variables on top. The one copy lives in the
enclave's package, which may import nothing from the project (its measurement covers all it
runs); dccn_common.config re-exports it for the other services.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)


class ConfigError(ValueError):
    """The configuration is missing, unreadable or invalid."""


def read_config_file(path: Path) -> dict[str, Any]:
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
    return data


def load_config(model: type[T], path: Path | str | None, env_prefix: str, **overrides: Any) -> T:
    """File, then environment (`PREFIX_FIELD`), then explicit overrides (CLI flags)."""
    data: dict[str, Any] = read_config_file(Path(path)) if path else {}
    if path:
        reject_unknown_keys(model, data, Path(path))
    prefix = env_prefix.upper().rstrip("_") + "_"
    for name in model.model_fields:
        env_value = os.environ.get(prefix + name.upper())
        if env_value is not None:
            data[name] = env_value
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from err


def reject_unknown_keys(model: type[BaseModel], data: dict[str, Any], path: Path) -> None:
    """A misspelt setting (`blok_interval`) would silently keep its default: refuse it, naming it."""
    known = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
    unknown = sorted(str(key) for key in data if key not in known)
    if unknown:
        raise ConfigError(f"{path}: unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(model.model_fields))})")


def required_env(env_var: str, what: str, error: type[Exception]) -> str:
    """The secret in `env_var` (a password, a sealing secret): unset and empty are both refused."""
    value = os.environ.get(env_var)
    if value is None:
        raise error(f"{what} is read from ${env_var}, which is not set")
    if not value:
        raise error(f"{what} is read from ${env_var}, which is set but empty")
    return value
