"""Reading a running service's /health from a test or a benchmark."""

from __future__ import annotations

from typing import Any

import httpx


def health(port: int, host: str = "127.0.0.1") -> dict[str, Any] | None:
    """The /health body (on 200 and 503 alike), or None while nothing answers."""
    try:
        return httpx.get(f"http://{host}:{port}/health", timeout=1).json()
    except (httpx.HTTPError, ValueError):
        return None


def role(port: int, host: str = "127.0.0.1") -> str | None:
    """"leader" or "standby" as the instance reports it, or None while it does not answer."""
    body = health(port, host)
    return body.get("role") if body else None
