"""The enclave has no network of its own: an audit hook refuses every outbound
connection and name lookup in the process (it may only listen on loopback for
its health endpoint and talk over its Unix socket)."""

from __future__ import annotations

import sys
from typing import Any

_DENIED = {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.sendto"}


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event in _DENIED:
        raise PermissionError(f"enclave has no network access ({event})")
    if event == "socket.connect" and isinstance(args[1], tuple):
        raise PermissionError(f"enclave has no network access (connect to {args[1]})")


def deny_network() -> None:
    """Irreversible for the process (audit hooks cannot be removed)."""
    sys.addaudithook(_hook)
