"""JSON over HTTP on loopback (nos_enclave.httpd, the project's one HTTP endpoint), for the
validator's signature endpoint and test doubles of JSON-RPC nodes."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dccn_common.listen import bind_tcp
from nos_enclave.httpd import HttpEndpoint, Reply, Request, json_reply

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


class JsonServer(HttpEndpoint):
    """`app(method, path, query string, body) -> (status, JSON body)` on the project's one HTTP
    endpoint: refused input (BadRequest) is a 400, a bug a 500 with one line, never a traceback."""

    def __init__(self, app: JsonApp, host: str = "127.0.0.1", port: int = 0, *,
                 sock: socket.socket | None = None) -> None:
        def route(request: Request) -> Reply:
            try:
                code, reply = app(request.method, request.path, request.query_string, request.body)
            except BadRequest as err:
                code, reply = 400, {"error": str(err)}
            return json_reply(code, reply)

        # A socket bound by the caller before any work, or bound here.
        super().__init__(route, sock or bind_tcp(host, port), name="json-http")
