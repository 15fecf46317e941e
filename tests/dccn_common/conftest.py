"""Fixtures for the shared services core: a token whose Transfer events we follow."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account

from dccn_common.sender import TxSender
from dccn_common.store import open_db
from dccn_devtools.pytest_fixtures import postgres_server, store_backend, store_target  # noqa: F401

RECORD_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    amount TEXT NOT NULL
)
"""


@pytest.fixture
def make_db(store_target: Callable[[str], str]) -> Callable[..., Any]:  # noqa: F811 (the fixture)
    """Factory: open (or reopen) a service database by name (SQLite unless parametrized, see BACKENDS)."""

    def factory(name: str = "service.db") -> Any:
        return open_db(store_target(name), RECORD_SCHEMA)

    return factory


@pytest.fixture
def send_transfers(w3: Any, ankr_token: Any, roles: Any) -> Callable[[int], list[int]]:
    """Factory: make `n` token transfers (one block each); returns the amounts sent."""
    counter = {"next": 1}

    def factory(n: int) -> list[int]:
        amounts = []
        for _ in range(n):
            amount = counter["next"]
            counter["next"] += 1
            ankr_token.functions.transfer(roles.bob.address, amount).transact({"from": roles.deployer.address})
            amounts.append(amount)
        return amounts

    return factory


class TcpProxy:
    """A loopback TCP forwarder that can be cut and restored, to simulate an RPC outage."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._listener.listen(64)
        self.up = True
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while self.up and (data := source.recv(65536)):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self._stop = True
        self._listener.close()


@pytest.fixture
def rpc_proxy(chain: Any) -> Iterator[TcpProxy]:
    proxy = TcpProxy(chain.port)
    yield proxy
    proxy.close()


@pytest.fixture
def make_sender(w3: Any, make_db: Any, roles: Any) -> Callable[..., TxSender]:
    def factory(name: str = "sender.db", **kwargs: Any) -> TxSender:
        return TxSender(w3, make_db(name), Account.from_key(roles.relayer.key), **kwargs)

    return factory


@pytest.fixture
def funded_token(ankr_token: Any, roles: Any) -> Any:
    """ANKR with a balance for the relayer, the sender tests' signer."""
    ankr_token.functions.transfer(roles.relayer.address, 10**21).transact({"from": roles.deployer.address})
    return ankr_token


def transfer_data(token: Any, to: str, amount: int) -> bytes:
    return bytes.fromhex(token.functions.transfer(to, amount)._encode_transaction_data()[2:])

