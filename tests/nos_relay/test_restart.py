"""Enclave and relay as real processes, killed with SIGKILL at work and restarted:
nothing is lost and nothing is delivered twice."""

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

from dccn_common.contracts import transact
from dccn_devtools.ports import free_port
from dccn_devtools.pytest_fixtures import BACKENDS
from dccn_devtools.waiting import wait_for
from nos_relay.devsource import DevPki, PriceSource
from tests.nos_relay.conftest import RELAY_PASSWORD, price_params, request_price

SECRET = "enclave sealing secret for tests"
# PostgreSQL: the restarted relay takes over the killed one's lease once it expires.
LEASE_SECONDS = "3"


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def processes() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(module: str, *args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, "-m", module, *args], env={**os.environ, **env},
                                   stdout=open(log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)
def test_enclave_and_relay_killed_and_restarted__no_loss_no_double_delivery(
        w3, chain, deployment, roles, relay_keystore, trusted_pki: DevPki, price_source: PriceSource,
        short_dir: Path, tmp_path: Path, processes: Any, store_target: Any):
    oracle = deployment["oracle"]
    sealed, socket_path, db = short_dir / "enclave.sealed", str(short_dir / "e.sock"), store_target("relay.sqlite")
    enclave_env = {"NOS_ENCLAVE_SECRET": SECRET}
    enclave_port, relay_port = free_port(), free_port()

    def start_enclave() -> subprocess.Popen[bytes]:
        process = processes("nos_enclave", "run", "--socket", socket_path, "--sealed-key", str(sealed),
                            "--ca-bundle", str(trusted_pki.ca_cert), "--health-port", str(enclave_port),
                            env=enclave_env, log=tmp_path / "enclave.log")
        wait_for(lambda: healthy(enclave_port), "enclave health", timeout=30)
        return process

    def start_relay() -> subprocess.Popen[bytes]:
        process = processes("nos_relay.relay", "run", "--rpc-url", chain.url, "--manifest", str(deployment["manifest"]),
                            "--keystore", str(relay_keystore("relayer")), "--db", str(db),
                            "--enclave-socket", socket_path, "--health-port", str(relay_port),
                            env={"NOS_RELAY_PASSWORD": RELAY_PASSWORD, "NOS_RELAY_POLL_INTERVAL": "0.1",
                                 "NOS_RELAY_RETRY_DELAY": "0.1", "NOS_RELAY_LEASE_SECONDS": LEASE_SECONDS},
                            log=tmp_path / "relay.log")
        wait_for(lambda: healthy(relay_port), "relay health", timeout=30)
        return process

    def delivered_ids() -> list[bytes]:
        return [bytes(e["args"]["requestId"]) for e in oracle.events.Delivered().get_logs(from_block=0)]

    params = price_params(price_source)
    subprocess.run([sys.executable, "-m", "nos_enclave", "init", "--sealed-key", str(sealed)],
                   env={**os.environ, **enclave_env}, check=True, capture_output=True, timeout=60)
    enclave = start_enclave()  # unseals the key made by init; the owner registers what it publishes
    info = httpx.get(f"http://127.0.0.1:{enclave_port}/health", timeout=5).json()
    transact(w3, oracle.functions.registerEnclave(info["address"], bytes.fromhex(info["measurement"][2:])),
             sender=roles.deployer.address)
    relay = start_relay()
    ids = [request_price(w3, deployment, roles, params) for _ in range(4)]
    wait_for(lambda: len(delivered_ids()) >= 1, "a first delivery", timeout=30)
    enclave.send_signal(signal.SIGKILL)  # the relay keeps running without its enclave
    ids += [request_price(w3, deployment, roles, params) for _ in range(3)]
    relay.send_signal(signal.SIGKILL)
    enclave.wait()
    relay.wait()
    ids += [request_price(w3, deployment, roles, params) for _ in range(3)]
    start_enclave()
    start_relay()
    wait_for(lambda: len(set(delivered_ids())) == len(ids), "every request delivered", timeout=60)
    time.sleep(1.0)  # anything repeated after a restart would show up now
    assert sorted(delivered_ids()) == sorted(ids)  # each exactly once
    status = httpx.get(f"http://127.0.0.1:{relay_port}/health", timeout=5).json()
    assert status["jobs"] == {"done": len(ids)} and status["pending_transactions"] == 0
