"""The enclave's loopback HTTP endpoint: GET /health (or /healthz) answers the status as JSON,
HTTP 200 while status["ok"] is true, else 503; GET /metrics the Prometheus exposition of its
process-level figures. It only listens (the sandbox allows that): it never connects out."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from nos_enclave.listen import adopt

SERVICE = "nos-enclave"
StatusFn = Callable[[], dict[str, Any]]
StatsFn = Callable[[], dict[str, int]]


class EnclaveMetrics:
    """Process-level figures only: the enclave has no chain, database or signing outbox. Names and
    the `service` label are the ones every service uses (docs/operations.md)."""

    def __init__(self, stats: StatsFn, started: float | None = None) -> None:
        self._stats = stats
        self.started = time.time() if started is None else started
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        start = GaugeMetricFamily("dccn_service_start_time_seconds", "Unix time the service process started.",
                                  labels=["service"])
        start.add_metric([SERVICE], self.started)
        yield start
        responses = CounterMetricFamily("dccn_enclave_responses",
                                        "Oracle responses since start: signed, or failed (error replies).",
                                        labels=["service", "outcome"])
        for outcome, count in self._stats().items():
            responses.add_metric([SERVICE, outcome], float(count))
        yield responses

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class HealthServer:
    """Serves `status()` at /health and `metrics` at /metrics on an already bound socket."""

    def __init__(self, status: StatusFn, metrics: EnclaveMetrics, sock: socket.socket) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/metrics":
                    self._send(200, *metrics.exposition())
                    return
                if path not in ("/health", "/healthz"):
                    self._reply(404, {"error": "not found; try /health"})
                    return
                try:
                    body = status()
                except Exception as err:  # report, never crash the endpoint
                    body = {"ok": False, "error": f"{type(err).__name__}: {err}"}
                self._reply(200 if body.get("ok") else 503, body)

            def _reply(self, code: int, body: dict[str, Any]) -> None:
                self._send(code, json.dumps(body, default=str).encode(), "application/json")

            def _send(self, code: int, payload: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = adopt(ThreadingHTTPServer, sock, Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="health")

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
