"""/metrics of the relay and of the enclave, both started as real processes: requests answered,
failed and pending, and the enclave's own (process-level) counts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from dccn_common.contracts import transact
from dccn_devtools.ports import free_port
from dccn_devtools.waiting import wait_for
from nos_relay.devsource import DevPki, PriceSource
from tests.nos_relay.conftest import RELAY_PASSWORD, price_params, request_price
from tests.nos_relay.test_restart import SECRET, healthy

pytestmark = pytest.mark.anvil


def test_metrics__relay_and_enclave_processes__report_requests_answered(
        w3: Any, chain: Any, deployment: Any, roles: Any, relay_keystore: Any, trusted_pki: DevPki,
        price_source: PriceSource, short_dir: Path, spawn: Any, scrape_metrics: Any, documented_metrics: Any) -> None:
    sealed, socket_path = short_dir / "enclave.sealed", str(short_dir / "e.sock")
    enclave_port, relay_port = free_port(), free_port()
    env = {"NOS_ENCLAVE_SECRET": SECRET}
    subprocess.run([sys.executable, "-m", "nos_enclave", "init", "--sealed-key", str(sealed)],
                   env={**os.environ, **env}, check=True, capture_output=True, timeout=60)
    spawn("nos_enclave", "run", "--socket", socket_path, "--sealed-key", str(sealed), "--ca-bundle",
          str(trusted_pki.ca_cert), "--health-port", str(enclave_port), env=env, name="enclave")
    wait_for(lambda: healthy(enclave_port), "enclave health", timeout=30)
    info = httpx.get(f"http://127.0.0.1:{enclave_port}/health", timeout=5).json()
    transact(w3, deployment["oracle"].functions.registerEnclave(info["address"], bytes.fromhex(info["measurement"][2:])),
             sender=roles.deployer.address)
    spawn("nos_relay.relay", "run", "--rpc-url", chain.url, "--manifest", str(deployment["manifest"]),
          "--keystore", str(relay_keystore("relayer")), "--db", str(short_dir / "relay.sqlite"),
          "--enclave-socket", socket_path, "--health-port", str(relay_port),
          env={"NOS_RELAY_PASSWORD": RELAY_PASSWORD, "NOS_RELAY_POLL_INTERVAL": "0.1"}, name="relay")
    wait_for(lambda: healthy(relay_port), "relay health", timeout=30)
    params = price_params(price_source)
    for _ in range(2):
        request_price(w3, deployment, roles, params)
    relay_url = f"http://127.0.0.1:{relay_port}/metrics"
    wait_for(lambda: scrape_metrics(relay_url).value("dccn_oracle_requests", state="answered") == 2, "both requests answered", timeout=60)
    relay = scrape_metrics(relay_url)
    assert relay.value("dccn_oracle_requests", service="nos-relay", state="pending") == 0
    assert relay.value("dccn_oracle_requests", state="failed") == 0
    assert relay.value("dccn_oracle_jobs", status="done") == 2
    assert relay.value("dccn_outbox_transactions", status="mined") >= 1
    assert relay.value("dccn_dependency_ok", dependency=f"enclave {socket_path}") == 1
    assert relay.value("dccn_leader", signer=roles.relayer.address) == 1

    enclave = scrape_metrics(f"http://127.0.0.1:{enclave_port}/metrics")
    assert enclave.value("dccn_enclave_responses_total", service="nos-enclave", outcome="signed") == 2
    assert enclave.value("dccn_enclave_responses_total", outcome="failed") == 0
    assert enclave.value("dccn_service_start_time_seconds") > 0
    assert enclave.value("dccn_leader") is None  # no outbox key: the relay sends for it
    assert documented_metrics.missing(documented_metrics.with_prefix("dccn_oracle_"), relay) == set()
    assert documented_metrics.missing(documented_metrics.with_prefix("dccn_enclave_"), enclave) == set()
    assert documented_metrics.undocumented(relay) | documented_metrics.undocumented(enclave) == set()
