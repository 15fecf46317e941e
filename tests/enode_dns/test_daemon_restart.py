"""A real `enode-dns run` process, SIGKILLed mid-update and restarted: nothing lost, nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dccn_common import PROJECT_ROOT
from dccn_devtools.anvil import Anvil
from dccn_devtools.ports import free_port
from dccn_devtools.processes import stop_process
from dccn_devtools.pytest_fixtures import BACKENDS
from enode_dns.besu_files import read_toml_array
from enode_dns.enode import enode_url

from .conftest import BOOT, AddressEndpoint, AnvilRegistry, NodeKeys

# Each test runs on SQLite and on PostgreSQL (the db setting a postgresql:// URL).
pytestmark = pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)


class DaemonProcess:
    def __init__(self, config: Path, log: Path, health_port: int) -> None:
        self.argv = [sys.executable, "-m", "enode_dns.daemon", "run", "--config", str(config),
                     "--health-port", str(health_port)]
        self.log = log
        self.health_url = f"http://127.0.0.1:{health_port}/health"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.argv, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                            env=dict(os.environ))

    def health(self) -> dict[str, Any] | None:
        try:
            return dict(httpx.get(self.health_url, timeout=1).json())
        except (httpx.HTTPError, ValueError):
            return None

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()[-2000:]
            body = self.health()
            if body is not None and predicate(body):
                return body
            time.sleep(0.1)
        raise AssertionError(f"timed out; last health {self.health()}; log tail {self.log.read_text()[-1500:]}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def daemon_process(tmp_path: Path) -> Iterator[Callable[[Path], DaemonProcess]]:
    started: list[DaemonProcess] = []

    def factory(config: Path) -> DaemonProcess:
        process = DaemonProcess(config, tmp_path / "daemon.log", free_port())
        started.append(process)
        return process

    yield factory
    for process in started:
        process.stop()


def _state(body: dict[str, Any]) -> str:
    return str(body["address"]["state"])


def test_sigkill_with_update_in_mempool__restart_mines_it_once_and_files_follow(
    chain: Anvil, anvil_registry: AnvilRegistry, make_node_keys: Callable[[str], NodeKeys], relayer_keystore: Path,
    address_endpoint: AddressEndpoint, besu_dir: Path, write_daemon_config: Callable[..., Path],
    daemon_process: Callable[[Path], DaemonProcess],
) -> None:
    me, other = make_node_keys("me"), make_node_keys("other")
    anvil_registry.add_node(me.enode, "203.0.113.10", 30303, BOOT)
    anvil_registry.add_node(other.enode, "10.0.0.2", 30303, BOOT)
    config = write_daemon_config(
        "me", me, relayer_keystore, address_source=address_endpoint.url, follow=True,
        besu_config=besu_dir / "config.toml", static_nodes=besu_dir / "static-nodes.json",
        permissions_config=besu_dir / "permissions_config.toml",
    )
    daemon = daemon_process(config)
    daemon.start()
    daemon.wait_for(lambda b: _state(b) == "in sync" and b["file_writes"] >= 3)

    # Hold blocks back so the signed update sits in the mempool when the process dies.
    chain.set_automine(False)
    address_endpoint.address = "198.51.100.23"
    daemon.wait_for(lambda b: b.get("pending_transactions", 0) >= 1)
    time.sleep(0.5)  # let it broadcast too
    daemon.kill()

    chain.mine(1)
    chain.set_automine(True)
    daemon.start()
    daemon.wait_for(lambda b: _state(b) == "in sync" and b.get("pending_transactions") == 0)
    updates = anvil_registry.endpoint_updates(me.enode)
    assert [(u.args.new_host, u.args.sequence) for u in updates] == [("198.51.100.23", 1)]

    # A second change after the restart still flows; and the other node's update reaches our files.
    address_endpoint.address = "198.51.100.24"
    daemon.wait_for(lambda b: _state(b) == "in sync" and b["address"]["registered"] == "198.51.100.24:30303")
    daemon.kill()  # killed again, this time idle: the restart must not push anything
    daemon.start()
    daemon.wait_for(lambda b: _state(b) == "in sync")
    assert [u.args.sequence for u in anvil_registry.endpoint_updates(me.enode)] == [1, 2]
    allowlist = read_toml_array(besu_dir / "permissions_config.toml", "nodes-allowlist")
    assert enode_url(me.enode.hex, "198.51.100.24", 30303) in allowlist
    assert read_toml_array(besu_dir / "config.toml", "bootnodes") == [enode_url(other.enode.hex, "10.0.0.2", 30303)]
