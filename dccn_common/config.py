"""Service configuration: a YAML/TOML file, overridden by environment variables.

Every service defines a pydantic model of its settings; `load_config` reads the file,
then `<PREFIX>_<FIELD>` environment variables, then explicit overrides, and turns any
mistake into a `ConfigError` naming the field. The code is `nos_enclave.settings`: the
enclave may import nothing from the rest of the project, so the one copy lives there.
"""

from __future__ import annotations

from nos_enclave.settings import ConfigError, load_config, read_config_file, reject_unknown_keys

__all__ = ["ConfigError", "load_config", "read_config_file", "reject_unknown_keys"]
