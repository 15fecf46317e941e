"""The enclave's identity: sealed at rest, reloaded only with the right secret, signing as its address;
and its settings: file, then NOS_ENCLAVE_<FIELD> environment, then flags."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak

from nos_enclave.config import ConfigError, load_config
from nos_enclave.crypto import sign_digest
from nos_enclave.keys import EnclaveKeys, create_keys, load_keys


def test_sealed_keys__reloaded_with_secret__refused_with_wrong_one(tmp_path: Path):
    path = tmp_path / "enclave.sealed"
    keys = create_keys(path, "right secret")
    assert load_keys(path, "right secret") == keys
    assert keys.signing_key not in path.read_bytes()
    with pytest.raises(ConfigError, match="cannot unseal"):
        load_keys(path, "wrong secret")
    with pytest.raises(ConfigError, match="refusing to replace"):
        create_keys(path, "right secret")


def test_sign_digest__recovers_to_the_enclave_address():
    keys = EnclaveKeys.generate()
    digest = keccak(b"anything")
    assert Account._recover_hash(digest, signature=sign_digest(keys.signing_key, digest)) == keys.address


def test_config__file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "enclave.yaml"
    path.write_text("socket_path: /run/a.sock\nsealed_key: /k\nca_bundle: /ca.pem\nhealth_port: 9101\n")
    monkeypatch.setenv("NOS_ENCLAVE_HEALTH_PORT", "9102")
    monkeypatch.setenv("NOS_ENCLAVE_LOG_LEVEL", "DEBUG")
    settings = load_config(path, socket_path="/run/b.sock", health_port=None)
    assert (settings.socket_path, settings.health_port, settings.log_level) == ("/run/b.sock", 9102, "DEBUG")
    assert settings.sealed_key == Path("/k") and settings.secret_env == "NOS_ENCLAVE_SECRET"


def test_config__misspelt_setting_or_bad_value__refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "enclave.toml"
    path.write_text('socket_path = "/s"\nsealed_key = "/k"\nca_bundle = "/c"\nhealth_prot = 1\n')
    with pytest.raises(ConfigError, match=r"unknown setting health_prot \(known: ca_bundle, health_port"):
        load_config(path)
    with pytest.raises(ConfigError, match="invalid configuration: health_port"):
        load_config(None, socket_path="/s", sealed_key="/k", ca_bundle="/c", health_port="many")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
