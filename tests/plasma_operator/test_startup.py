"""`plasma-operator` and `plasma-watcher` start-up as real processes: the API and health ports
are bound before any work (one line and exit 2 when taken), a second operator on the same
database or key is refused naming the first, damaged databases are refused untouched, and
misspelt settings are named."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from dccn_devtools.ports import free_port

PASSWORD = "plasma-test-password"
OPERATOR_ENV = {"PLASMA_OPERATOR_PASSWORD": PASSWORD}
WATCHER_ENV = {"PLASMA_WATCHER_PASSWORD": PASSWORD}


@pytest.fixture
def keystore(tmp_path: Path, roles: Any) -> Path:
    from dccn_common.keys import write_keystore

    path = tmp_path / "operator.json"
    write_keystore(path, roles.operator.key, PASSWORD, kdf_n=2**4)
    return path


def _operator_args(rpc_url: str, manifest: Path, keystore: Path, db: Path, port: int) -> list[str]:
    return ["--rpc-url", rpc_url, "--manifest", str(manifest), "--keystore", str(keystore), "--db", str(db),
            "--api-port", str(port), "--block-interval", "0.5", "--confirmations", "0", "--poll-interval", "0.1"]


def test_operator__api_port_in_use__one_line_exit_2_before_connecting(cli_run: Any, keystore: Path, tmp_path: Path,
                                                                       busy_port: int) -> None:
    # Nothing listens at the RPC URL: the port is checked before anything connects.
    dead_rpc = f"http://127.0.0.1:{free_port()}"
    result = cli_run("plasma_operator.server", *_operator_args(dead_rpc, tmp_path / "m.json", keystore,
                                                               tmp_path / "op.db", busy_port), env=OPERATOR_ENV)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: port {busy_port} is in use (api_port)"


def test_watcher__health_port_in_use__one_line_exit_2(cli_run: Any, keystore: Path, tmp_path: Path,
                                                      busy_port: int) -> None:
    result = cli_run("plasma_client.watcher", "--rpc-url", f"http://127.0.0.1:{free_port()}", "--manifest",
                     str(tmp_path / "m.json"), "--keystore", str(keystore), "--db", str(tmp_path / "w.db"),
                     "--health-port", str(busy_port), env=WATCHER_ENV)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: port {busy_port} is in use (health_port)"


@pytest.mark.parametrize(("kind", "expected"), [
    ("not_sqlite", "error: {db} is not a SQLite database; refusing to touch it"),
    ("malformed", "error: {db}: database disk image is malformed; refusing to touch it"),
])
def test_operator__damaged_database__one_line_naming_it_file_untouched(cli_run: Any, keystore: Path, tmp_path: Path,
                                                                        make_broken_db: Any, kind: str,
                                                                        expected: str) -> None:
    db = make_broken_db(kind)
    before = db.read_bytes()
    result = cli_run("plasma_operator.server", *_operator_args(f"http://127.0.0.1:{free_port()}", tmp_path / "m.json",
                                                               keystore, db, 0), env=OPERATOR_ENV)
    assert result.returncode == 2
    assert result.stderr.strip() == expected.format(db=db)
    assert db.read_bytes() == before


def test_operator__misspelt_setting__named_with_the_file(cli_run: Any, tmp_path: Path) -> None:
    config = tmp_path / "operator.yaml"
    config.write_text("manifest: m.json\nkeystore: k.json\nblok_interval: 1\n")
    result = cli_run("plasma_operator.server", "--config", str(config), env=OPERATOR_ENV)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {config}: unknown setting blok_interval (known: ")
    assert "block_interval" in result.stderr


@pytest.mark.anvil
def test_operator__second_instance_same_database_or_key__refused_naming_the_first(
        plasma: Any, spawn: Any, cli_run: Any, keystore: Path, tmp_path: Path) -> None:
    db, port = tmp_path / "op.db", free_port()
    first = spawn("plasma_operator.server", *_operator_args(plasma.anvil.url, plasma.manifest, keystore, db, port),
                  env=OPERATOR_ENV, name="operator")
    assert first.wait_healthy(port).status_code == 200
    holder = f"plasma-operator (pid {first.process.pid} on {socket.gethostname()}); stop it first"
    same_db = cli_run("plasma_operator.server", *_operator_args(plasma.anvil.url, plasma.manifest, keystore, db, 0),
                      env=OPERATOR_ENV)
    assert same_db.returncode == 2
    assert same_db.stderr.strip() == f"error: database {db} is in use by {holder}"
    same_key = cli_run("plasma_operator.server", *_operator_args(plasma.anvil.url, plasma.manifest, keystore,
                                                                 tmp_path / "other.db", 0), env=OPERATOR_ENV)
    assert same_key.returncode == 2
    assert same_key.stderr.strip() == (f"error: signing key {plasma.roles.operator.address} on chain 31337 is in use "
                                       f"by {holder}")
    assert first.process.poll() is None


@pytest.mark.anvil
def test_operator__database_of_another_program__one_line_exit_2_file_untouched(
        plasma: Any, cli_run: Any, keystore: Path, tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "other-program.db"
    foreign = sqlite3.connect(db)
    foreign.execute("CREATE TABLE outbox (x TEXT)")  # a name this operator uses, in another shape
    foreign.execute("INSERT INTO outbox VALUES ('theirs')")
    foreign.commit()
    foreign.close()
    result = cli_run("plasma_operator.server", *_operator_args(plasma.anvil.url, plasma.manifest, keystore, db, 0),
                     env=OPERATOR_ENV)
    assert result.returncode == 2
    assert result.stderr.startswith("error: schema outbox version 1 does not fit this database (")
    assert result.stderr.strip().endswith("is it another program's database? refusing to use it")
    assert "Traceback" not in result.stderr
    check = sqlite3.connect(db)
    assert check.execute("SELECT x FROM outbox").fetchall() == [("theirs",)]
    assert [row[1] for row in check.execute("PRAGMA table_info(outbox)")] == ["x"]
    check.close()
