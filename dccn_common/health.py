"""A tiny HTTP health endpoint every service exposes (GET /health -> JSON)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

StatusFn = Callable[[], dict[str, Any]]


class HealthServer:
    """Serves `status()` at /health: HTTP 200 when status["ok"] is true, else 503."""

    def __init__(self, status: StatusFn, host: str = "127.0.0.1", port: int = 0) -> None:
        self._status = status

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] not in ("/health", "/healthz"):
                    self._reply(404, {"error": "not found; try /health"})
                    return
                try:
                    body = outer._status()
                except Exception as err:  # report, never crash the endpoint
                    body = {"ok": False, "error": f"{type(err).__name__}: {err}"}
                self._reply(200 if body.get("ok") else 503, body)

            def _reply(self, code: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body, default=str).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
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
