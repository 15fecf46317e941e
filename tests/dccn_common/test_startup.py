"""Start-up hygiene shared by every service: sockets bound first, one instance per database
and per signing key, damaged databases refused untouched, strict config, clear key errors,
health that names the dependency that fails."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from pydantic import BaseModel

from dccn_common.bot import Bot
from dccn_common.config import ConfigError, load_config
from dccn_common.health import Dependencies
from dccn_common.keys import claim_signer
from dccn_common.listen import BindError, bind_tcp, bind_unix
from dccn_common.store import StoreError, open_db, open_store

HOLD_STORE = (
    "import sys, time\nfrom dccn_common.store import open_store\n"
    "held = open_store(sys.argv[1], 'plasma-operator')\nprint('held', flush=True)\ntime.sleep(60)\n"
)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bind_tcp__port_in_use__bind_error_names_the_port(busy_port: int) -> None:
    with pytest.raises(BindError, match=rf"^port {busy_port} is in use \(api_port\)$"):
        bind_tcp("127.0.0.1", busy_port, "api_port")


def test_bind_unix__missing_folder__bind_error_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(BindError, match=r"socket folder .*nowhere does not exist"):
        bind_unix(tmp_path / "nowhere" / "e.sock")


def test_bind_unix__live_socket__refused_stale_socket__replaced(tmp_path: Path) -> None:
    path = tmp_path / "e.sock"
    live = bind_unix(path)
    with pytest.raises(BindError, match="is in use"):
        bind_unix(path)
    live.close()  # the file stays behind, as after a killed enclave
    assert path.exists()
    replacement = bind_unix(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    replacement.close()


def test_open_store__database_held_by_another_process__refused_naming_the_holder(tmp_path: Path) -> None:
    db = tmp_path / "operator.db"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_STORE, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match=rf"database {db} is in use by plasma-operator \(pid {holder.pid} on "):
            open_store(db, "plasma-operator")
    finally:
        holder.kill()
        holder.wait()
    open_store(db, "plasma-operator").release()  # the lock dies with its process


@pytest.mark.parametrize(("kind", "message"), [("not_sqlite", "is not a SQLite database"),
                                               ("malformed", "database disk image is malformed")])
def test_open_store__damaged_database__refused_and_file_untouched(make_broken_db: Any, kind: str,
                                                                    message: str) -> None:
    path = make_broken_db(kind)
    before = _digest(path)
    with pytest.raises(StoreError, match=message) as raised:
        open_store(path, "nos-relay")
    assert str(path) in str(raised.value)
    assert _digest(path) == before
    assert not Path(f"{path}-wal").exists()


def test_open_db__not_sqlite__store_error_not_a_traceback(make_broken_db: Any) -> None:
    path = make_broken_db("not_sqlite")
    with pytest.raises(StoreError, match="is not a SQLite database"):
        open_db(path)


class ServiceSettings(BaseModel):
    rpc_url: str = "http://127.0.0.1:8545"
    block_interval: float = 10.0


def test_config__unknown_key__refused_naming_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "operator.yaml"
    path.write_text("blok_interval: 1\nrpc_url: http://127.0.0.1:1\n")
    with pytest.raises(ConfigError, match=r"operator.yaml: unknown setting blok_interval \(known: block_interval"):
        load_config(ServiceSettings, path, "SVC")


def test_config__known_keys_and_env_override__still_accepted(tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "operator.yaml"
    path.write_text("block_interval: 1\n")
    monkeypatch.setenv("SVC_RPC_URL", "http://127.0.0.1:9")
    assert load_config(ServiceSettings, path, "SVC") == ServiceSettings(rpc_url="http://127.0.0.1:9", block_interval=1)


def test_config__not_utf8_file__one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "operator.yaml"
    path.write_bytes(b"rpc_url: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(ServiceSettings, path, "SVC")


def _keys_cli(*args: str, stdin: str = "", env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dccn_common.keys", *args], input=stdin, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env})


def test_keys_cli__empty_password_variable__says_empty_not_unset(tmp_path: Path) -> None:
    result = _keys_cli("new", str(tmp_path / "k.json"), env={"DCCN_KEYSTORE_PASSWORD": ""})
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: the keystore password is read from $DCCN_KEYSTORE_PASSWORD, "
                                     "which is set but empty")
    assert not (tmp_path / "k.json").exists()


def test_keys_cli__import_all_zero_key__says_out_of_range(tmp_path: Path) -> None:
    result = _keys_cli("import", str(tmp_path / "k.json"), stdin="0x" + "00" * 32 + "\n",
                       env={"DCCN_KEYSTORE_PASSWORD": "pw"})
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: that private key is out of range")
    assert "32 bytes long, instead of 32" not in result.stderr
    assert not (tmp_path / "k.json").exists()


def test_dependencies__turns_bad_then_recovers__each_logged_once(caplog: Any) -> None:
    state = {"reason": None}
    deps = Dependencies({"enclave": lambda: state["reason"]}, interval=0)
    caplog.set_level(logging.INFO, logger="dccn_common.health")
    deps.refresh()
    state["reason"] = "cannot reach the enclave"
    for _ in range(5):
        deps.refresh()
    assert deps.problems() == ["enclave: cannot reach the enclave"]
    state["reason"] = None
    for _ in range(5):
        deps.refresh()
    events = [r.getMessage() for r in caplog.records]
    assert events == ["dependency failing", "dependency recovered"]
    assert deps.report() == {"enclave": "ok"}


def _health_of_running(service: Bot) -> httpx.Response:
    """Run the service loop until its first tick, read /health, stop it."""
    runner = threading.Thread(target=service.run)
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while service._last_tick == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        return httpx.get(f"http://127.0.0.1:{service.health_port}/health", timeout=5)
    finally:
        service.stop_event.set()
        runner.join(timeout=10)


@pytest.mark.anvil
def test_service_health__signer_without_gas__503_naming_the_balance(w3: Any, make_db: Any) -> None:
    broke = Account.create()  # never funded
    db = make_db()
    service = Bot("demo-svc", db=db, poll_interval=0.05, health_port=0)
    service.chain(w3, account=broke)
    reply = _health_of_running(service)
    assert reply.status_code == 503
    body = reply.json()
    assert body["dependencies"]["rpc"] == "ok"
    assert body["reasons"][0].startswith(f"signing_balance: signing account {broke.address} holds 0 wei, less than")


@pytest.mark.anvil
def test_service_health__funded_signer__ok(w3: Any, make_db: Any, roles: Any) -> None:
    db = make_db()
    service = Bot("demo-svc", db=db, poll_interval=0.05, health_port=0)
    service.chain(w3, account=Account.from_key(roles.relayer.key))
    reply = _health_of_running(service)
    assert reply.status_code == 200 and reply.json()["reasons"] == []


@pytest.mark.anvil
def test_claim_signer__same_key_same_chain__refused_naming_the_holder(w3: Any, roles: Any) -> None:
    held = claim_signer(w3, roles.operator.address, "plasma-operator")
    try:
        with pytest.raises(StoreError, match=rf"signing key {roles.operator.address} on chain 31337 is in use by "
                                             rf"plasma-operator \(pid {os.getpid()} on {socket.gethostname()}\)"):
            claim_signer(w3, roles.operator.address, "plasma-watcher")
        claim_signer(w3, roles.alice.address, "plasma-watcher").release()  # another key is free
    finally:
        held.release()


def test_rpc_check__node_down__reason_names_the_url() -> None:
    from dccn_common.chain import connect
    from dccn_common.health import rpc_check
    from dccn_devtools.ports import free_port

    url = f"http://127.0.0.1:{free_port()}"
    assert rpc_check(connect(url, timeout=2), 31337)() == f"cannot reach {url}: ConnectionError"


@pytest.mark.anvil
def test_rpc_check__node_serves_another_chain__reason_names_both_ids(w3: Any) -> None:
    from dccn_common.health import rpc_check

    assert rpc_check(w3)() is None
    assert rpc_check(w3, 31338)() == f"{w3.provider.endpoint_uri} serves chain 31337, expected 31338"
