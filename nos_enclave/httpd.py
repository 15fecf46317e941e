"""The one small HTTP server of the project: health and metrics endpoints, the bridge
validator's signature endpoint. Threaded, on a socket bound beforehand (see listen.py),
every request answered (a failing route is a 500 with one line, never a traceback).

It lives in the enclave's package, which imports nothing from the rest of the project
(its measurement covers every file it runs); the other services import it from here.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from nos_enclave.listen import adopt

log = logging.getLogger(__name__)

# (HTTP status, body, content type)
Reply = tuple[int, bytes, str]
MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query_string: str
    body: bytes

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.query_string, keep_blank_values=True)


Route = Callable[[Request], Reply]


def json_reply(code: int, body: Any) -> Reply:
    return code, json.dumps(body, default=str).encode(), "application/json"


def status_reply(status: Callable[[], dict[str, Any]]) -> Reply:
    """A /health answer: the status as JSON, 200 while status["ok"] is true, else 503."""
    try:
        body = status()
    except Exception as err:  # report, never crash the endpoint
        body = {"ok": False, "error": f"{type(err).__name__}: {err}"}
    return json_reply(200 if body.get("ok") else 503, body)


class HttpEndpoint:
    """Serves `route(request)` for GET, POST, PUT and DELETE on an already bound, listening socket."""

    def __init__(self, route: Route, sock: socket.socket, *, name: str = "http") -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def do_PUT(self) -> None:
                self._answer("PUT")

            def do_DELETE(self) -> None:
                self._answer("DELETE")

            def _answer(self, method: str) -> None:
                length = self.headers.get("Content-Length") or "0"
                if not length.isdigit() or int(length) > MAX_BODY:
                    self._send(*json_reply(400, {"error": f"bad Content-Length {length[:40]!r}"}))
                    return
                body = self.rfile.read(int(length)) if int(length) else b""
                parts = urlsplit(self.path)
                try:
                    reply = route(Request(method, parts.path, parts.query, body))
                except Exception as err:  # every request answered; the cause logged
                    log.error("request failed", extra={"path": parts.path, "error": repr(err)})
                    reply = json_reply(500, {"error": f"internal error: {type(err).__name__}"})
                self._send(*reply)

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
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name=name)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def health_routes(status: Callable[[], dict[str, Any]],
                  metrics: Callable[[], tuple[bytes, str]] | None) -> Route:
    """GET /health (or /healthz) and, when given, GET /metrics."""
    def route(request: Request) -> Reply:
        if request.method != "GET":
            return json_reply(405, {"error": f"{request.method} not allowed; GET /health"})
        if request.path == "/metrics" and metrics is not None:
            body, content_type = metrics()
            return 200, body, content_type
        if request.path not in ("/health", "/healthz"):
            return json_reply(404, {"error": "not found; try /health"})
        return status_reply(status)

    return route
