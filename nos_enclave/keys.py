"""The enclave's identity: a signing key (its Ethereum address) and an encryption key, sealed at
rest with AES-256-GCM under a key derived (scrypt) from a secret read from the environment."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from coincurve import PrivateKey
from eth_account import Account

from nos_enclave.config import ConfigError
from nos_enclave.crypto import DecryptionError, public_key_of, seal, unseal
from nos_enclave.settings import required_env


@dataclass(frozen=True)
class EnclaveKeys:
    signing_key: bytes
    encryption_key: bytes

    @property
    def address(self) -> str:
        return str(Account.from_key(self.signing_key).address)

    @property
    def encryption_public_key(self) -> bytes:
        return public_key_of(self.encryption_key)

    @classmethod
    def generate(cls) -> EnclaveKeys:
        return cls(PrivateKey().secret, PrivateKey().secret)

    def sealed(self, secret: str) -> bytes:
        body = json.dumps({"signing": self.signing_key.hex(), "encryption": self.encryption_key.hex()})
        return seal(secret, body.encode())

    @classmethod
    def unsealed(cls, secret: str, blob: bytes) -> EnclaveKeys:
        body = json.loads(unseal(secret, blob))
        return cls(bytes.fromhex(body["signing"]), bytes.fromhex(body["encryption"]))


def secret_from_env(env_var: str) -> str:
    return required_env(env_var, "the enclave's sealing secret", ConfigError)


def load_keys(path: Path, secret: str) -> EnclaveKeys:
    """Unseal an existing key file; a missing one is an error (a typo must not mint a new identity)."""
    if not path.is_file():
        raise ConfigError(f"sealed key not found: {path} (create one with `nos-enclave init --sealed-key {path}`)")
    try:
        return EnclaveKeys.unsealed(secret, path.read_bytes())
    except DecryptionError as err:
        raise ConfigError(f"{path}: {err}") from err
    except (ValueError, KeyError) as err:
        raise ConfigError(f"{path} is not a sealed enclave key") from err


def create_keys(path: Path, secret: str) -> EnclaveKeys:
    """Generate and seal a new identity; never overwrites an existing file."""
    if path.exists():
        raise ConfigError(f"{path} exists; refusing to replace an enclave identity")
    if not path.parent.is_dir():
        raise ConfigError(f"folder {path.parent} does not exist")
    keys = EnclaveKeys.generate()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(keys.sealed(secret))
    tmp.replace(path)
    return keys
