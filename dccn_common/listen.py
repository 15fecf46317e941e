"""Listening sockets, bound before a service does any work.

A service binds its TCP ports and Unix sockets first, so a port in use ends the
start-up with one line (`error: port 8700 is in use`) instead of a service that
runs without its API or health endpoint. The servers then adopt the bound socket.
The code is `nos_enclave.listen`: the enclave may import nothing from the rest of the
project, so the one copy lives there.
"""

from __future__ import annotations

from nos_enclave.listen import BACKLOG, BindError, adopt, bind_tcp, bind_unix

__all__ = ["BACKLOG", "BindError", "adopt", "bind_tcp", "bind_unix"]
