"""The relay's half of a fetch: it carries the enclave's TLS records to the
source over TCP and back, without being able to read or change them."""

from __future__ import annotations

import socket
from typing import Any

from nos_enclave.framing import EnclaveClient, WireError, b64, unb64
from nos_enclave.protocol import FetchFailed


class TcpCarrier:
    """Moves bytes between the enclave and the source; subclasses may misbehave (tests)."""

    def __init__(self, timeout: float = 15.0) -> None:
        self.timeout = timeout

    def connect(self, host: str, port: int) -> socket.socket:
        return socket.create_connection((host, port), timeout=self.timeout)

    def incoming(self, data: bytes) -> bytes:
        """Hook on bytes from the source before they reach the enclave."""
        return data


def fetch_signed(client: EnclaveClient, request: dict[str, Any], carrier: TcpCarrier) -> dict[str, Any]:
    """Run one request through the enclave; returns its signed response."""
    reply = client.call({"op": "fetch", **request})
    if reply.get("op") == "error":
        raise FetchFailed(str(reply.get("error")), permanent=bool(reply.get("permanent")))
    if reply.get("op") != "connect":
        raise WireError(f"unexpected enclave reply {reply.get('op')!r}")
    try:
        connection = carrier.connect(str(reply["host"]), int(reply["port"]))
    except OSError as err:
        raise FetchFailed(f"cannot reach {reply['host']}:{reply['port']}: {err}") from err
    with connection:
        while True:
            outgoing = unb64(str(reply.get("send") or reply.get("close") or ""))
            if outgoing:
                try:
                    connection.sendall(outgoing)
                except OSError:
                    if reply.get("op") != "done":
                        raise
            if reply.get("op") == "done":
                return reply
            try:
                received = connection.recv(65536)
            except OSError as err:
                raise FetchFailed(f"source connection failed: {err}") from err
            reply = client.call({"op": "recv", "data": b64(carrier.incoming(received)), "eof": not received})
            if reply.get("op") == "error":
                raise FetchFailed(str(reply.get("error")))
