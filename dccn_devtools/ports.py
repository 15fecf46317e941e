"""Loopback ports for the processes tests and the demo start, drawn below the ephemeral range.

`bind(("127.0.0.1", 0))` hands out a port from the kernel's ephemeral range, the same range
every outgoing connection on the host takes its source port from. Between that probe and the
server's own bind, any client socket (an RPC call, a health probe) can take the port, and the
server exits with "port in use": a flake seen on the loaded CI host. Ports below that range are
only ever taken by an explicit bind, and each pytest-xdist worker draws from its own slice, so
neither clients nor the other worker can take a port between the probe and the bind.
"""

from __future__ import annotations

import os
import random
import socket
import threading
from pathlib import Path

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10_000
DEFAULT_EPHEMERAL_START = 32_768  # Linux's default when the file cannot be read

_handed_out: set[int] = set()
_lock = threading.Lock()
_random = random.SystemRandom()  # not reseeded by pytest-randomly or hypothesis


class NoFreePort(RuntimeError):
    pass


def ephemeral_start() -> int:
    try:
        return int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_START


def worker_slice() -> range:
    """This process's share of [LOWEST_PORT, ephemeral start): one slice per xdist worker,
    and one more for processes outside xdist (the demo, a plain pytest run)."""
    top = max(ephemeral_start(), LOWEST_PORT + 1_000)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else workers
    size = (top - LOWEST_PORT) // (workers + 1)
    start = LOWEST_PORT + index * size
    return range(start, start + size)


def _bindable(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody holds now, never handed out before by this process."""
    ports = worker_slice()
    if not ports:
        raise NoFreePort(f"no free port: the slice {ports} is empty")
    offset = _random.randrange(len(ports))  # two runs of the same slice start apart
    with _lock:
        for step in range(len(ports)):
            port = ports[(offset + step) % len(ports)]
            if port not in _handed_out and _bindable(host, port):
                _handed_out.add(port)
                return port
    raise NoFreePort(f"no free port in {ports.start}..{ports.stop - 1} on {host}")
