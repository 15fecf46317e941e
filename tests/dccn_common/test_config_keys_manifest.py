"""Config files + environment, encrypted keystores, deployment manifests, health."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from dccn_common.config import ConfigError, StoreLocation, load_config
from dccn_common.contracts import abi_hash
from dccn_common.health import HealthServer
from dccn_common.keys import KeystoreError, load_account, write_keystore
from dccn_common.keys import main as keys_cli
from dccn_common.manifest import DeployedContract, Manifest, ManifestError

OPERATOR_KEY = "0x" + "11" * 32


class ExampleConfig(BaseModel):
    rpc_url: str
    confirmations: int = 2
    db_path: str = "state.db"


def test_config__file_then_env_then_overrides(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "svc.yaml"
    path.write_text("rpc_url: http://127.0.0.1:1\nconfirmations: 5\n")
    monkeypatch.setenv("SVC_CONFIRMATIONS", "7")
    config = load_config(ExampleConfig, path, "SVC", db_path="/tmp/x.db")
    assert (config.rpc_url, config.confirmations, config.db_path) == ("http://127.0.0.1:1", 7, "/tmp/x.db")


def test_config__toml_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "svc.toml"
    path.write_text('rpc_url = "http://127.0.0.1:2"\n')
    assert load_config(ExampleConfig, path, "SVC").rpc_url == "http://127.0.0.1:2"


@pytest.mark.parametrize(
    ("content", "message"),
    [("confirmations: many\nrpc_url: x\n", "confirmations"), ("- a list\n", "mapping"), ("a: [\n", "not valid")],
)
def test_config__bad_input__clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "svc.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config(ExampleConfig, path, "SVC")


def test_config__missing_required_field__named_in_error() -> None:
    with pytest.raises(ConfigError, match="rpc_url"):
        load_config(ExampleConfig, None, "SVC_UNSET")


class StoreConfig(BaseModel):
    db: StoreLocation = Path("svc.db")


@pytest.mark.parametrize(("given", "expected"), [
    ("state/svc.db", Path("state/svc.db")),
    ("postgresql://dccn@127.0.0.1:5432/dccn", "postgresql://dccn@127.0.0.1:5432/dccn"),
    ("postgres://dccn@db/dccn", "postgresql://dccn@db/dccn"),
    (Path("postgresql://dccn@db/dccn"), "postgresql://dccn@db/dccn"),  # a URL that went through Path
])
def test_store_location__sqlite_path_or_postgresql_url(given: str | Path, expected: str | Path, monkeypatch) -> None:
    assert StoreConfig(db=given).db == expected
    monkeypatch.setenv("SVC_DB", str(given))
    assert load_config(StoreConfig, None, "SVC").db == expected
    assert StoreConfig().db == Path("svc.db")


def test_keystore__round_trip_with_password_from_env(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "operator.json"
    address = write_keystore(path, OPERATOR_KEY, "s3cret")
    assert OPERATOR_KEY[2:] not in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("OP_PASSWORD", "s3cret")
    assert load_account(path, "OP_PASSWORD").address == address


def test_keystore__wrong_or_missing_password__refused(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "operator.json"
    write_keystore(path, OPERATOR_KEY, "s3cret")
    with pytest.raises(KeystoreError, match="OP_PASSWORD"):
        load_account(path, "OP_PASSWORD")
    monkeypatch.setenv("OP_PASSWORD", "wrong")
    with pytest.raises(KeystoreError, match="cannot unlock"):
        load_account(path, "OP_PASSWORD")


def test_keys_cli__new_then_address__and_refuses_overwrite(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"DCCN_KEYSTORE_PASSWORD": "pw"}
    path = tmp_path / "k.json"
    created = runner.invoke(keys_cli, ["new", str(path)], env=env)
    assert created.exit_code == 0
    shown = runner.invoke(keys_cli, ["address", str(path)], env=env)
    assert shown.output.strip() == created.output.strip()
    again = runner.invoke(keys_cli, ["new", str(path)], env=env)
    assert again.exit_code == 2 and "refusing" in again.output


def _entry() -> DeployedContract:
    abi = [{"type": "function", "name": "f", "inputs": [], "outputs": [], "stateMutability": "view"}]
    return DeployedContract("Thing", "0x" + "ab" * 20, 3, "0x" + "00" * 32, abi, abi_hash(abi))


def test_manifest__save_load_round_trip(tmp_path: Path) -> None:
    manifest = Manifest(chain_id=31337, network="ethereum:local:foundry")
    manifest.add(_entry())
    manifest.save(tmp_path / "31337.json")
    loaded = Manifest.load(tmp_path / "31337.json")
    assert loaded.get("Thing").block == 3


def test_manifest__tampered_abi__refused(tmp_path: Path) -> None:
    manifest = Manifest(chain_id=1)
    manifest.add(_entry())
    path = tmp_path / "1.json"
    manifest.save(path)
    data = json.loads(path.read_text())
    data["contracts"]["Thing"]["abi"][0]["name"] = "g"
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="does not match"):
        Manifest.load(path)


def test_manifest__unknown_contract_and_missing_file__clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="ape run deploy"):
        Manifest.load(tmp_path / "none.json")
    with pytest.raises(ManifestError, match="not in the manifest"):
        Manifest(chain_id=1).get("Nope")


def test_health__ok_is_200__failing_is_503() -> None:
    state = {"ok": True}
    server = HealthServer(lambda: dict(state)).start()
    try:
        url = f"http://127.0.0.1:{server.port}/health"
        assert httpx.get(url).status_code == 200
        state["ok"] = False
        assert httpx.get(url).status_code == 503
        assert httpx.get(url.replace("/health", "/nope")).status_code == 404
    finally:
        server.stop()
