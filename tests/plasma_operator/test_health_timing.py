"""The operator's /health timing as docs/plasma_operator.md states it: 503 from the first failed
tick of an RPC outage (not after 30 s), 200 again after the next successful tick."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dccn_devtools.ports import free_port
from token_bridge.jsonhttp import JsonServer

pytestmark = pytest.mark.anvil

PASSWORD = "plasma-test-password"
# The poll limit the docs give for a hung (not failing) RPC: max(30 s, 10 x poll_interval).
POLL_LIMIT = 30.0


class RpcLink:
    """A real HTTP hop in front of anvil that can be cut, as a network outage would."""

    def __init__(self, upstream: str) -> None:
        self.up = True
        self._upstream = httpx.Client(base_url=upstream, timeout=30)
        self._server = JsonServer(self._forward).start()
        self.url = self._server.url

    def _forward(self, method: str, _path: str, _query: str, body: bytes) -> tuple[int, Any]:
        if not self.up:
            return 503, {"error": "link down"}
        response = self._upstream.post("/", content=body, headers={"Content-Type": "application/json"})
        return response.status_code, response.json()

    def stop(self) -> None:
        self._server.stop()
        self._upstream.close()


@pytest.fixture
def rpc_link(plasma: Any) -> Iterator[RpcLink]:
    link = RpcLink(plasma.anvil.url)
    yield link
    link.stop()


def _health(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None


def _wait_status(url: str, status: int, timeout: float) -> float:
    """Seconds until /health answers `status`; fails the test after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        response = _health(url)
        if response is not None and response.status_code == status:
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"/health did not answer {status} within {timeout}s")


def test_health__rpc_outage__503_from_the_first_failed_tick_then_200_after_it(
    plasma: Any, rpc_link: RpcLink, tmp_path: Path
) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "plasma_operator.server", "--rpc-url", rpc_link.url,
            "--manifest", str(plasma.manifest), "--keystore", str(plasma.keystore(plasma.roles.operator)),
            "--db", str(tmp_path / "operator.db"), "--api-port", str(port), "--confirmations", "0",
            "--poll-interval", "0.2", "--log-level", "WARNING"]
    with open(tmp_path / "operator.log", "ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=log,
                                   env={**os.environ, "PLASMA_OPERATOR_PASSWORD": PASSWORD})
    health = f"http://127.0.0.1:{port}/health"
    try:
        _wait_status(health, 200, 30)
        rpc_link.up = False
        _wait_status(health, 503, POLL_LIMIT / 2)  # well before the poll limit: the failed tick did it
        body = httpx.get(health, timeout=2).json()
        assert body["ok"] is False and body["last_error"]
        rpc_link.up = True
        _wait_status(health, 200, POLL_LIMIT + 5)  # after the next tick (backoff reaches at most 30 s)
    finally:
        process.terminate()
        process.wait(timeout=20)
