"""The enclave's loopback HTTP endpoint: GET /health (or /healthz) answers the status as JSON,
HTTP 200 while status["ok"] is true, else 503; GET /metrics the Prometheus exposition of its
process-level figures. It only listens (the sandbox allows that): it never connects out."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from nos_enclave.httpd import HttpEndpoint, health_routes

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


class HealthServer(HttpEndpoint):
    """Serves `status()` at /health and `metrics` at /metrics on an already bound socket."""

    def __init__(self, status: StatusFn, metrics: EnclaveMetrics, sock: socket.socket) -> None:
        super().__init__(health_routes(status, metrics.exposition), sock, name="health")
