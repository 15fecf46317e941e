"""`nos-enclave` and `nos-relay` as real processes: only `init` creates an identity, sockets are
bound before any work (one line and exit 2 when they cannot be), one relay per database, and a
relay whose enclave socket is missing says so in /health."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from dccn_devtools.ports import free_port
from nos_relay.devsource import DevPki
from tests.nos_relay.conftest import RELAY_PASSWORD

SECRET = "enclave sealing secret for tests"
ENCLAVE_ENV = {"NOS_ENCLAVE_SECRET": SECRET}


@pytest.fixture
def sealed_key(cli_run: Any, short_dir: Path) -> Path:
    path = short_dir / "enclave.sealed"
    result = cli_run("nos_enclave", "init", "--sealed-key", str(path), env=ENCLAVE_ENV)
    assert result.returncode == 0, result.stderr
    return path


def test_enclave_info__mistyped_sealed_key__refused_no_identity_created(cli_run: Any, sealed_key: Path) -> None:
    mistyped = sealed_key.with_name("enclave.seald")
    result = cli_run("nos_enclave", "info", "--sealed-key", str(mistyped), env=ENCLAVE_ENV)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: sealed key not found: {mistyped} "
                                     f"(create one with `nos-enclave init --sealed-key {mistyped}`)")
    assert not mistyped.exists()


def test_enclave_init__empty_secret_variable__says_empty_creates_nothing(cli_run: Any, short_dir: Path) -> None:
    path = short_dir / "enclave.sealed"
    result = cli_run("nos_enclave", "init", "--sealed-key", str(path), env={"NOS_ENCLAVE_SECRET": ""})
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: the enclave's sealing secret is read from $NOS_ENCLAVE_SECRET, "
                                     "which is set but empty")
    assert not path.exists()


def test_enclave_init__then_info__same_identity__second_init_refused(cli_run: Any, sealed_key: Path) -> None:
    info = cli_run("nos_enclave", "info", "--sealed-key", str(sealed_key), env=ENCLAVE_ENV)
    assert info.returncode == 0 and json.loads(info.stdout)["address"].startswith("0x")
    before = sealed_key.read_bytes()
    again = cli_run("nos_enclave", "init", "--sealed-key", str(sealed_key), env=ENCLAVE_ENV)
    assert again.returncode == 2 and "refusing to replace an enclave identity" in again.stderr
    assert sealed_key.read_bytes() == before
    assert json.loads(cli_run("nos_enclave", "info", "--sealed-key", str(sealed_key),
                              env=ENCLAVE_ENV).stdout) == json.loads(info.stdout)


def test_enclave_run__missing_sealed_key__refused(cli_run: Any, short_dir: Path, trusted_pki: DevPki) -> None:
    missing = short_dir / "none.sealed"
    result = cli_run("nos_enclave", "run", "--socket", str(short_dir / "e.sock"), "--sealed-key", str(missing),
                     "--ca-bundle", str(trusted_pki.ca_cert), env=ENCLAVE_ENV)
    assert result.returncode == 2 and result.stderr.startswith("error: sealed key not found")
    assert not missing.exists()


def test_enclave_run__health_port_in_use__one_line_exit_2(cli_run: Any, sealed_key: Path, short_dir: Path,
                                                          trusted_pki: DevPki, busy_port: int) -> None:
    result = cli_run("nos_enclave", "run", "--socket", str(short_dir / "e.sock"), "--sealed-key",
                     str(sealed_key), "--ca-bundle", str(trusted_pki.ca_cert), "--health-port", str(busy_port),
                     env=ENCLAVE_ENV)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: port {busy_port} is in use (health_port)"


def test_enclave_run__socket_folder_missing__one_line_exit_2(cli_run: Any, sealed_key: Path, short_dir: Path,
                                                             trusted_pki: DevPki) -> None:
    result = cli_run("nos_enclave", "run", "--socket", str(short_dir / "gone" / "e.sock"), "--sealed-key",
                     str(sealed_key), "--ca-bundle", str(trusted_pki.ca_cert), env=ENCLAVE_ENV)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: socket folder {short_dir / 'gone'} does not exist (enclave socket)"


def test_enclave_run__socket_of_a_live_enclave__refused(spawn: Any, cli_run: Any, sealed_key: Path, short_dir: Path,
                                                        trusted_pki: DevPki) -> None:
    socket_path, port = short_dir / "e.sock", free_port()
    args = ["run", "--socket", str(socket_path), "--sealed-key", str(sealed_key), "--ca-bundle",
            str(trusted_pki.ca_cert)]
    first = spawn("nos_enclave", *args, "--health-port", str(port), env=ENCLAVE_ENV, name="enclave")
    assert first.wait_healthy(port).status_code == 200
    second = cli_run("nos_enclave", *args, env=ENCLAVE_ENV)
    assert second.returncode == 2 and second.stderr.strip() == f"error: socket {socket_path} is in use (enclave socket)"
    assert first.process.poll() is None


def _relay_args(chain: Any, deployment: dict[str, Any], keystore: Path, db: Path, socket_path: str) -> list[str]:
    return ["run", "--rpc-url", chain.url, "--manifest", str(deployment["manifest"]), "--keystore", str(keystore),
            "--db", str(db), "--enclave-socket", socket_path]


RELAY_ENV = {"NOS_RELAY_PASSWORD": RELAY_PASSWORD, "NOS_RELAY_POLL_INTERVAL": "0.1"}


@pytest.mark.anvil
def test_relay_run__enclave_socket_missing__health_503_naming_it_logged_once(
        spawn: Any, chain: Any, deployment: dict[str, Any], relay_keystore: Any, short_dir: Path,
        tmp_path: Path) -> None:
    missing = str(short_dir / "no-enclave.sock")
    port = free_port()
    relay = spawn("nos_relay.relay", *_relay_args(chain, deployment, relay_keystore("relayer"), tmp_path / "r.sqlite",
                                                 missing), "--health-port", str(port), env=RELAY_ENV, name="relay")
    reply = relay.health(port)
    for _ in range(30):  # the first answer may come before the first check
        if reply.json().get("reasons"):
            break
        time.sleep(0.1)
        reply = relay.health(port)
    assert reply.status_code == 503
    assert reply.json()["reasons"] == [f"enclave {missing}: cannot reach the enclave at {missing}: "
                                       "[Errno 2] No such file or directory"]
    assert relay.output().count('"event": "dependency failing"') == 1


@pytest.mark.anvil
def test_relay_run__database_of_a_running_relay__refused_naming_the_holder(
        spawn: Any, cli_run: Any, chain: Any, deployment: dict[str, Any], relay_keystore: Any, short_dir: Path,
        tmp_path: Path) -> None:
    db, port = tmp_path / "r.sqlite", free_port()
    socket_path = str(short_dir / "e.sock")
    first = spawn("nos_relay.relay", *_relay_args(chain, deployment, relay_keystore("relayer"), db, socket_path),
                  "--health-port", str(port), env=RELAY_ENV, name="relay")
    first.health(port)
    same_db = cli_run("nos_relay.relay", *_relay_args(chain, deployment, relay_keystore("operator"), db, socket_path),
                      env=RELAY_ENV)
    assert same_db.returncode == 2
    assert same_db.stderr.strip() == (f"error: database {db} is in use by nos-relay "
                                      f"(pid {first.process.pid} on {_host()}); stop it first")
    same_key = cli_run("nos_relay.relay", *_relay_args(chain, deployment, relay_keystore("relayer"),
                                                       tmp_path / "other.sqlite", socket_path), env=RELAY_ENV)
    assert same_key.returncode == 2
    assert same_key.stderr.startswith("error: signing key ") and f"in use by nos-relay (pid {first.process.pid}" \
        in same_key.stderr


def test_relay_status__not_a_database__one_line_file_untouched(cli_run: Any, make_broken_db: Any) -> None:
    path = make_broken_db("not_sqlite")
    before = path.read_bytes()
    result = cli_run("nos_relay.relay", "status", "--db", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {path} is not a SQLite database; refusing to touch it"
    assert path.read_bytes() == before


def _host() -> str:
    import socket

    return socket.gethostname()
