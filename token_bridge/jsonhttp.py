"""A small threaded JSON-over-HTTP server on loopback (stdlib WSGI), for the validator's
signature endpoint and test doubles of JSON-RPC nodes."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

# (method, path, query string, body) -> (HTTP status, JSON body)
JsonApp = Callable[[str, str, str, bytes], tuple[int, Any]]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class JsonServer:
    def __init__(self, app: JsonApp, host: str = "127.0.0.1", port: int = 0) -> None:
        def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            code, reply = app(environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("QUERY_STRING", ""), body)
            payload = json.dumps(reply).encode()
            start_response(f"{code} {'OK' if code == 200 else 'Error'}",
                           [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
            return [payload]

        self._server = make_server(host, port, wsgi, server_class=_ThreadingServer, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="json-http")

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> JsonServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
