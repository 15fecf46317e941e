"""Relay <-> enclave framing over the enclave's Unix socket: one JSON object per
line (at most MAX_LINE bytes), binary fields base64. Both ends use this module:
the enclave's server (`nos_enclave.enclave.serve`) and the relay's `EnclaveClient`.

(Not to be confused with `plasma_core/wire.py`, the Plasma transaction encoding.)"""

from __future__ import annotations

import base64
import json
import socket
from typing import Any, Protocol

MAX_LINE = 4 << 20


class WireError(RuntimeError):
    """The peer sent something that is not a protocol message, or hung up."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


class ByteStream(Protocol):
    """A buffered byte stream: a socket's makefile("rwb") or its read or write half."""

    def readline(self, size: int | None = -1, /) -> bytes: ...
    def write(self, data: bytes, /) -> int: ...
    def flush(self) -> None: ...


def write_message(stream: ByteStream, message: dict[str, Any]) -> None:
    stream.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    stream.flush()


def read_message(stream: ByteStream) -> dict[str, Any] | None:
    line = stream.readline(MAX_LINE)
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise WireError("message too long or truncated")
    try:
        message = json.loads(line)
    except json.JSONDecodeError as err:
        raise WireError(f"not JSON: {err}") from err
    if not isinstance(message, dict):
        raise WireError("a message is a JSON object")
    return message


class EnclaveClient:
    """The relay's end of one enclave connection (one conversation at a time)."""

    def __init__(self, socket_path: str, timeout: float = 30.0) -> None:
        self.socket_path = socket_path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(socket_path)
        except OSError as err:
            self._sock.close()
            raise WireError(f"cannot reach the enclave at {socket_path}: {err}") from err
        self._stream = self._sock.makefile("rwb")

    def call(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            write_message(self._stream, message)
            reply = read_message(self._stream)
        except OSError as err:
            raise WireError(f"enclave connection failed: {err}") from err
        if reply is None:
            raise WireError("the enclave hung up")
        return reply

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._sock.close()

    def __enter__(self) -> EnclaveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
