"""The Python reference of the on-chain host rules (contracts/permissioning/host_validator.vy).

Written independently of the contract (on top of `ipaddress`) so a property test
can compare the two; the daemon also uses it to refuse a bad address before it
signs anything.
"""

from __future__ import annotations

import ipaddress
import re
from enum import IntEnum


class HostKind(IntEnum):
    INVALID = 0
    DNS = 1
    IPV4 = 2
    IPV6 = 3


MAX_HOST_LENGTH = 253
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def classify_host(host: str) -> tuple[HostKind, bytes]:
    """(kind, 16-byte address); the address is zero bytes unless the host is an IP literal."""
    zero = bytes(16)
    if not host or len(host) > MAX_HOST_LENGTH or not host.isascii():
        return HostKind.INVALID, zero
    if ":" in host:
        # Zone ids and embedded IPv4 are valid for `ipaddress`, not for the registry.
        if "%" in host or "." in host:
            return HostKind.INVALID, zero
        try:
            return HostKind.IPV6, ipaddress.IPv6Address(host).packed
        except ValueError:
            return HostKind.INVALID, zero
    if re.fullmatch(r"[0-9.]+", host):
        try:
            return HostKind.IPV4, ipaddress.IPv6Address(f"::ffff:{ipaddress.IPv4Address(host)}").packed
        except ValueError:
            return HostKind.INVALID, zero
    labels = host.split(".")
    if all(_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit():
        return HostKind.DNS, zero
    return HostKind.INVALID, zero


def is_valid_host(host: str) -> bool:
    return classify_host(host)[0] != HostKind.INVALID
