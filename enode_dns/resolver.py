"""Turn registered hosts into IP addresses for Besu's files (Besu wants IPs in enode URLs).

    system              the operating system's resolver (getaddrinfo)
    hosts:<path>        a hosts-file style mapping ("10.0.0.7 boot1.example.org"),
                        re-read on every lookup so edits apply at once
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from enode_dns.hosts import HostKind, classify_host


class Resolver(Protocol):
    @property
    def description(self) -> str: ...

    def lookup(self, name: str) -> str | None: ...


@dataclass
class SystemResolver:
    description: str = "system"

    def lookup(self, name: str) -> str | None:
        try:
            infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            return None
        # Prefer IPv4: what most Besu deployments listen on.
        addresses = sorted({str(info[4][0]) for info in infos}, key=lambda a: (":" in a, a))
        return addresses[0] if addresses else None


@dataclass
class HostsFileResolver:
    path: Path

    @property
    def description(self) -> str:
        return f"hosts file {self.path}"

    def lookup(self, name: str) -> str | None:
        try:
            lines = self.path.read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2 and name in fields[1:] and classify_host(fields[0])[0] in (HostKind.IPV4, HostKind.IPV6):
                return fields[0]
        return None


def resolve(resolver: Resolver, host: str) -> str | None:
    """IP literals stand for themselves; names go to the resolver."""
    if classify_host(host)[0] in (HostKind.IPV4, HostKind.IPV6):
        return host
    return resolver.lookup(host)


def parse_resolver(spec: str) -> Resolver:
    if spec == "system":
        return SystemResolver()
    if spec.startswith("hosts:") and spec[len("hosts:"):].strip():
        return HostsFileResolver(Path(spec[len("hosts:"):].strip()))
    raise ValueError(f"resolver {spec!r}: expected 'system' or hosts:<path>")
