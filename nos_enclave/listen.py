"""Listening sockets, bound before a process does any work, then adopted by its servers.

A port in use or a missing socket folder ends the start with one line (`error: port 8700 is
in use`) instead of a process running without its API or health endpoint. The enclave's
package holds the one copy (it imports nothing from the project); dccn_common.listen re-exports it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import socketserver
import stat
from http.server import HTTPServer
from pathlib import Path
from typing import Any, TypeVar

BACKLOG = 128
S = TypeVar("S", bound=socketserver.BaseServer)


class BindError(ValueError):
    """A socket the process needs cannot be bound (in use, missing folder, ...)."""


def _named(message: str, what: str) -> str:
    return f"{message} ({what})" if what else message


def bind_tcp(host: str, port: int, what: str = "") -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise BindError(_named(f"cannot listen on {host}:{port}: {err.strerror}", what)) from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    # A restarted process may bind while its old connections sit in TIME_WAIT; a live listener still conflicts.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise BindError(_named(f"port {port} is in use", what)) from None
        raise BindError(_named(f"cannot listen on {host}:{port}: {err.strerror or err}", what)) from None
    return sock


def bind_unix(path: str | Path, what: str = "") -> socket.socket:
    """A listening Unix socket at `path`, mode 0600; a stale socket file of a killed run is replaced."""
    path = Path(path)
    if not path.parent.is_dir():
        raise BindError(_named(f"socket folder {path.parent} does not exist", what))
    if path.is_symlink() or path.exists():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise BindError(_named(f"{path} exists and is not a socket; refusing to replace it", what))
        if _answers(path):
            raise BindError(_named(f"socket {path} is in use", what))
        path.unlink()  # nobody listens: left over from a killed run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # 0600 from the moment it exists
    try:
        sock.bind(str(path))
        sock.listen(BACKLOG)
    except OSError as err:
        sock.close()
        raise BindError(_named(f"cannot listen on {path}: {err.strerror or err}", what)) from None
    finally:
        os.umask(old_umask)
    return sock


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def adopt(server_class: type[S], sock: socket.socket, handler: Any) -> S:
    """A socketserver (HTTP, WSGI, Unix) serving on an already bound, listening socket."""
    server = server_class(sock.getsockname(), handler, bind_and_activate=False)  # type: ignore[call-arg]
    with contextlib.suppress(AttributeError):
        server.socket.close()  # type: ignore[attr-defined]
    server.socket = sock  # type: ignore[attr-defined]
    server.server_address = sock.getsockname()  # type: ignore[attr-defined]
    if isinstance(server, HTTPServer):
        # What HTTPServer.server_bind would have set (WSGI environ uses them).
        host, port = server.server_address[:2]
        server.server_name = socket.getfqdn(str(host))
        server.server_port = int(port)
    return server
