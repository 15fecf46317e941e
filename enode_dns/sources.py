"""Where the node learns its public address: a command, a file, or an HTTP endpoint.

    command:curl -s https://ifconfig.me     (any program printing the address)
    file:/run/public-ip                      (first line of a file)
    http://127.0.0.1:8080/ip                 (a body holding the address)
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from enode_dns.hosts import is_valid_host


class AddressSourceError(RuntimeError):
    """The source failed or returned something that is not a host."""


class AddressSource(Protocol):
    @property
    def description(self) -> str: ...

    def fetch(self) -> str: ...


def _validated(raw: str, origin: str) -> str:
    lines = raw.strip().splitlines()
    host = lines[0].strip() if lines else ""
    if not is_valid_host(host):
        raise AddressSourceError(f"{origin} returned {host[:80]!r}, which is not an IP literal or DNS name")
    return host


@dataclass
class CommandSource:
    command: str
    timeout: float = 10.0

    @property
    def description(self) -> str:
        return f"command {self.command!r}"

    def fetch(self) -> str:
        try:
            result = subprocess.run(shlex.split(self.command), capture_output=True, text=True, timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise AddressSourceError(f"{self.description} failed: {err}") from err
        if result.returncode != 0:
            raise AddressSourceError(f"{self.description} exited with {result.returncode}: {result.stderr.strip()[:200]}")
        return _validated(result.stdout, self.description)


@dataclass
class FileSource:
    path: Path

    @property
    def description(self) -> str:
        return f"file {self.path}"

    def fetch(self) -> str:
        try:
            return _validated(self.path.read_text(), self.description)
        except OSError as err:
            raise AddressSourceError(f"cannot read {self.path}: {err.strerror}") from err


@dataclass
class HttpSource:
    url: str
    timeout: float = 5.0

    @property
    def description(self) -> str:
        return f"endpoint {self.url}"

    def fetch(self) -> str:
        try:
            response = httpx.get(self.url, timeout=self.timeout)
            response.raise_for_status()
        except httpx.HTTPError as err:
            raise AddressSourceError(f"{self.description} failed: {err}") from err
        return _validated(response.text, self.description)


def parse_source(spec: str) -> AddressSource:
    """`command:...`, `file:...` or an http(s) URL; ValueError otherwise."""
    if spec.startswith("command:") and spec[len("command:"):].strip():
        return CommandSource(spec[len("command:"):].strip())
    if spec.startswith("file:") and spec[len("file:"):].strip():
        return FileSource(Path(spec[len("file:"):].strip()))
    if spec.startswith(("http://", "https://")):
        return HttpSource(spec)
    raise ValueError(f"address source {spec!r}: expected command:<program>, file:<path> or an http(s) URL")
