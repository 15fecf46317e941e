"""Service configuration: a YAML/TOML file, overridden by environment variables.

Every service defines a pydantic model of its settings and loads it with `load_config`;
any mistake is a `ConfigError` naming the field. The code is `nos_enclave.settings`, shared
with the enclave (which may import nothing from the project).
"""

from nos_enclave.settings import ConfigError, load_config, read_config_file, reject_unknown_keys

__all__ = ["ConfigError", "load_config", "read_config_file", "reject_unknown_keys"]
