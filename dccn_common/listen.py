"""Listening sockets, bound before a service does any work, then adopted by its servers.

The code lives in the enclave's package (`nos_enclave.listen`), which may import nothing from
the project so that its measurement covers all it runs; every other service uses that one copy.
"""

from nos_enclave.listen import BindError, adopt, bind_tcp, bind_unix

__all__ = ["BindError", "adopt", "bind_tcp", "bind_unix"]
