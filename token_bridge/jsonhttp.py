"""A small threaded JSON-over-HTTP server on loopback (stdlib WSGI), for the validator's
signature endpoint and test doubles of JSON-RPC nodes."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from dccn_common.listen import adopt, bind_tcp

# (method, path, query string, body) -> (HTTP status, JSON body)
JsonApp = Callable[[str, str, str, bytes], tuple[int, Any]]

log = logging.getLogger(__name__)
# The widest integer SQLite stores: every number a handler passes to a query fits in it.
SQLITE_MAX_INT = 2**63 - 1
_DECIMAL = re.compile(r"[0-9]{1,30}")


class BadRequest(ValueError):
    """Input an app refuses: answered 400 with the message."""


def int_param(query: Mapping[str, Sequence[str]], name: str, *, low: int, high: int,
              default: int | None = None) -> int:
    """The query parameter `name` as a decimal integer in [low, high], or BadRequest."""
    values = query.get(name)
    if not values:
        if default is None:
            raise BadRequest(f"{name} is required (an integer from {low} to {high})")
        return default
    text = values[0]
    if not _DECIMAL.fullmatch(text) or not low <= int(text) <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}, got {text[:40]!r}")
    return int(text)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class JsonServer:
    def __init__(self, app: JsonApp, host: str = "127.0.0.1", port: int = 0, *,
                 sock: socket.socket | None = None) -> None:
        def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            code, reply = _answer(app, environ)
            payload = json.dumps(reply).encode()
            start_response(f"{code} {'OK' if code == 200 else 'Error'}",
                           [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
            return [payload]

        # A socket bound by the caller before any work, or bound here.
        self._server = adopt(_ThreadingServer, sock or bind_tcp(host, port), _QuietHandler)
        self._server.setup_environ()
        self._server.set_app(wsgi)
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


def _answer(app: JsonApp, environ: dict[str, Any]) -> tuple[int, Any]:
    """The app's answer; refused input is a 400 and a bug a 500 with one line, never a traceback."""
    length = str(environ.get("CONTENT_LENGTH") or "0")
    if not _DECIMAL.fullmatch(length):
        return 400, {"error": f"bad Content-Length {length[:40]!r}"}
    try:
        body = environ["wsgi.input"].read(int(length)) if int(length) else b""
        return app(environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("QUERY_STRING", ""), body)
    except BadRequest as err:
        return 400, {"error": str(err)}
    except Exception as err:  # the server answers every request, and logs the cause
        log.error("request failed", extra={"path": environ.get("PATH_INFO"), "error": repr(err)})
        return 500, {"error": f"internal error: {type(err).__name__}"}
