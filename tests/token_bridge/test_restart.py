"""Real processes: validators and the relayer SIGKILLed mid-transfer and restarted lose
nothing and pay nothing twice."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dccn_common import PROJECT_ROOT
from dccn_common.keys import write_keystore
from dccn_common.store import open_db
from dccn_devtools.ports import free_port
from dccn_devtools.processes import stop_process
from dccn_devtools.pytest_fixtures import BACKENDS
from dccn_devtools.waiting import wait_for as devtools_wait_for
from token_bridge.cli import relay_db_path

from .conftest import ANKR_WEI, CONFIRMATIONS, BridgeHarness

PASSWORD_ENV = "TOKEN_BRIDGE_TEST_PASSWORD"


class Process:
    """One `token-bridge` subprocess with its config and health port."""

    def __init__(self, role: str, config: Path, health_port: int, log: Path) -> None:
        self.role, self.config, self.health_port, self.log = role, config, health_port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.launch()
        self.wait_healthy()

    def launch(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "token_bridge.cli", self.role, "--config", str(self.config)],
                cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, PASSWORD_ENV: "pw"}, start_new_session=True,
            )

    def wait_healthy(self) -> None:
        wait_for(lambda: self.health() is not None, f"{self.config.stem} healthy", timeout=60)

    def health(self) -> dict[str, Any] | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.config.stem} exited: {self.log.read_text()[-2000:]}")
        try:
            response = httpx.get(f"http://127.0.0.1:{self.health_port}/health", timeout=2)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def stop(self) -> None:
        stop_process(self.proc)


# The bridge waits on confirmations of two chains: a longer default than other tests.
wait_for = functools.partial(devtools_wait_for, timeout=45.0, interval=0.2)


@pytest.fixture
def services(make_bridge: Any, roles: Any, tmp_path: Path) -> Iterator[tuple[BridgeHarness, dict[str, Process]]]:
    h: BridgeHarness = make_bridge(4, 3)
    base = {
        "ethereum_rpc_url": h.eth.url, "ankr_rpc_url": h.ankr.url,
        "ethereum_manifest": str(h.bridge.ethereum_manifest), "ankr_manifest": str(h.bridge.ankr_manifest),
        "ethereum_confirmations": CONFIRMATIONS["ethereum"], "ankr_confirmations": CONFIRMATIONS["ankr"],
        "password_env": PASSWORD_ENV, "poll_interval": 0.2,
    }
    processes: dict[str, Process] = {}
    urls = []
    for index, account in enumerate(h.validator_accounts):
        name = f"v{index + 1}"
        keystore = tmp_path / f"{name}.json"
        write_keystore(keystore, account.key, "pw")
        port = free_port()
        urls.append(f"http://127.0.0.1:{port}")
        processes[name] = _process("validator", name, tmp_path, {**base, "keystore": str(keystore),
                                                                  "signatures_port": port,
                                                                  "db_path": str(h.db(name))})
    write_keystore(tmp_path / "relayer.json", roles.relayer.key, "pw")
    processes["relayer"] = _process("relayer", "relayer", tmp_path, {**base, "keystore": str(tmp_path / "relayer.json"),
                                                                      "validator_urls": urls,
                                                                      "db_path": str(h.db("relayer"))})
    try:
        yield h, processes
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.stop()


def _process(role: str, name: str, directory: Path, settings: dict[str, Any]) -> Process:
    health_port = free_port()
    config = directory / f"{name}.yaml"
    config.write_text(yaml.safe_dump({"db_path": str(directory / f"{name}.db"), **settings, "health_port": health_port}))
    return Process(role, config, health_port, directory / f"{name}.log")


def _outbox_statuses(h: BridgeHarness) -> list[str]:
    path = relay_db_path(h.db("relayer"), "ankr")
    if isinstance(path, Path) and not path.exists():
        return []
    conn = open_db(path)
    try:
        return [row["status"] for row in conn.execute("SELECT status FROM outbox").fetchall()]
    except Exception:
        return []  # the relayer has not created its tables yet
    finally:
        conn.close()


@pytest.mark.anvil
@pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)
def test_restart__relayer_and_validator_killed_mid_transfer__paid_exactly_once(
    services: tuple[BridgeHarness, dict[str, Process]], roles: Any, tmp_path: Path
) -> None:
    h, processes = services
    for process in processes.values():
        process.launch()
    for process in processes.values():
        process.wait_healthy()
    dave_before = h.ankr_w3.eth.get_balance(roles.dave.address)
    h.ankr.set_automine(False)  # the relayer's transaction waits in the mempool

    h.lock(roles.alice, roles.dave.address, 9 * ANKR_WEI)
    h.eth.mine(CONFIRMATIONS["ethereum"])
    wait_for(lambda: _outbox_statuses(h) == ["sent"], "relayer broadcast the execution")
    processes["relayer"].kill()
    processes["v1"].kill()
    h.ankr.rpc("anvil_dropAllTransactions")  # the broadcast is lost with the relayer

    h.ankr.mine(3)
    assert h.ankr_w3.eth.get_balance(roles.dave.address) == dave_before  # nothing paid yet
    h.ankr.set_automine(True)
    processes["relayer"].start()  # rebroadcasts the stored transaction, never a second one
    wait_for(lambda: h.ankr_w3.eth.get_balance(roles.dave.address) > dave_before, "transfer paid",
             tick=lambda: h.ankr.mine())
    assert h.ankr_w3.eth.get_balance(roles.dave.address) - dave_before == 9 * ANKR_WEI

    # The killed validator catches up on restart and signs what it missed, once.
    processes["v1"].start()
    h.lock(roles.alice, roles.dave.address, 4 * ANKR_WEI)
    h.eth.mine(CONFIRMATIONS["ethereum"])
    wait_for(lambda: (processes["v1"].health() or {}).get("signed") == 2, "restarted validator signed both")
    wait_for(lambda: h.ankr_w3.eth.get_balance(roles.dave.address) - dave_before == 13 * ANKR_WEI,
             "second transfer paid", tick=lambda: h.ankr.mine())
    for _ in range(5):
        h.mine_both()
        time.sleep(0.2)
    assert h.ankr_w3.eth.get_balance(roles.dave.address) - dave_before == 13 * ANKR_WEI
    assert h.locked() == h.native_outside() == 13 * ANKR_WEI
    assert _outbox_statuses(h) == ["mined", "mined"]
