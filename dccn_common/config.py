"""Service configuration: a YAML/TOML file, overridden by environment variables.

Every service defines a pydantic model of its settings and loads it with `load_config`;
any mistake is a `ConfigError` naming the field. The code is `nos_enclave.settings`, shared
with the enclave (which may import nothing from the project). `StoreLocation` is the type of
a service's `db` setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator

from dccn_common.store import postgres_dsn
from nos_enclave.settings import ConfigError, load_config, read_config_file, reject_unknown_keys


def store_location(value: Any) -> Any:
    """A `db` setting as `open_db` takes it: a postgresql:// (or postgres://) URL as the URL, even one
    that went through `Path`; anything else names a SQLite file."""
    if isinstance(value, str | Path):
        return postgres_dsn(value) or Path(value)
    return value


# A SQLite file or a postgresql:// URL (instances sharing that database: one active, the others stand by).
StoreLocation = Annotated[Path | str, BeforeValidator(store_location)]

__all__ = ["ConfigError", "StoreLocation", "load_config", "read_config_file", "reject_unknown_keys", "store_location"]
