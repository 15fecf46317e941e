"""Fixtures for the enclave and relay: real HTTPS sources on 127.0.0.1 (one CA
the enclave trusts, one it does not), an enclave serving a Unix socket, the
oracle and example consumer deployed with a manifest, and relays."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from web3.logs import DISCARD

from dccn_common.contracts import transact
from dccn_common.keys import write_keystore
from dccn_deploy.parts.oracle import OracleParams
from dccn_devtools.pytest_fixtures import postgres_server, store_backend, store_target  # noqa: F401
from nos_enclave.enclave import Enclave, serve
from nos_enclave.keys import EnclaveKeys
from nos_enclave.protocol import Params
from nos_relay.carrier import TcpCarrier
from nos_relay.devsource import DevPki, PriceSource
from nos_relay.relay import Relay, RelayConfig

REQUEST_TTL = 600
DELIVERY_OVERHEAD = 100_000
MAX_GAS_PRICE = 20 * 10**9
RELAY_PASSWORD = "relay-test-password"


@pytest.fixture(scope="session")
def trusted_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return DevPki.create(tmp_path_factory.mktemp("pki-trusted"), "NOS test CA")


@pytest.fixture(scope="session")
def untrusted_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return DevPki.create(tmp_path_factory.mktemp("pki-untrusted"), "Some other CA")


@pytest.fixture(scope="session")
def price_source(trusted_pki: DevPki) -> Iterator[PriceSource]:
    with PriceSource(trusted_pki, price="2345.67") as source:
        yield source


@pytest.fixture(scope="session")
def rogue_source(untrusted_pki: DevPki) -> Iterator[PriceSource]:
    """Serves the same paths with a certificate from a CA the enclave does not trust."""
    with PriceSource(untrusted_pki, price="1.00") as source:
        yield source


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Unix socket paths must stay under ~100 characters: pytest's tmp_path may not."""
    path = Path(tempfile.mkdtemp(prefix="nos", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def enclave_keys() -> EnclaveKeys:
    return EnclaveKeys.generate()


@pytest.fixture
def start_enclave(short_dir: Path, trusted_pki: DevPki) -> Iterator[Callable[..., tuple[str, Enclave]]]:
    """Factory: an enclave serving a Unix socket from a thread; returns (socket path, enclave)."""
    servers: list[Any] = []

    def factory(keys: EnclaveKeys, name: str = "enclave") -> tuple[str, Enclave]:
        enclave = Enclave(keys, str(trusted_pki.ca_cert))
        socket_path = str(short_dir / f"{name}.sock")
        server = serve(enclave, socket_path)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return socket_path, enclave

    yield factory
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def enclave_socket(start_enclave: Callable[..., tuple[str, Enclave]], enclave_keys: EnclaveKeys) -> str:
    return start_enclave(enclave_keys)[0]


def price_params(source: PriceSource, path: str = "/price.json", selector: str = "json:data.price",
                 decimals: int = 2) -> bytes:
    return Params(source.url(path), selector, "uint256", decimals).to_json()


@pytest.fixture
def deployment(w3: Web3, roles: Any, enclave_keys: EnclaveKeys, create_parts: Callable[..., Any]) -> dict[str, Any]:
    """NosOracle (enclave registered) + PriceConsumer (owned by the tenant) from the oracle part on
    anvil, and the manifest a relay reads."""
    from nos_enclave.measurement import measurement

    ctx = create_parts("oracle", oracle=OracleParams(REQUEST_TTL, DELIVERY_OVERHEAD, roles.tenant.address))
    oracle, consumer = ctx.at("NosOracle"), ctx.at("PriceConsumer")
    transact(w3, oracle.functions.registerEnclave(enclave_keys.address, measurement()), sender=roles.deployer.address)
    return {"oracle": oracle, "consumer": consumer, "manifest": ctx.manifest_file}


@pytest.fixture
def relay_keystore(tmp_path: Path, roles: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    monkeypatch.setenv("NOS_RELAY_PASSWORD", RELAY_PASSWORD)

    def factory(role: str) -> Path:
        path = tmp_path / f"{role}.keystore.json"
        if not path.exists():
            write_keystore(path, roles[role].key, RELAY_PASSWORD, kdf_n=2**4)
        return path

    return factory


@pytest.fixture
def make_relay(chain: Any, deployment: dict[str, Any], relay_keystore: Callable[[str], Path],
               store_target: Callable[[str], str]) -> Callable[..., Relay]:  # noqa: F811 (the fixture)
    """Factory: a relay on its own database (SQLite unless the test is parametrized over `store_backend`)."""

    def factory(sockets: list[str], *, role: str = "relayer", name: str = "relay", carrier: TcpCarrier | None = None,
                **settings: Any) -> Relay:
        config = RelayConfig(rpc_url=chain.url, manifest=deployment["manifest"], keystore=relay_keystore(role),
                             db=store_target(f"{name}.sqlite"), enclave_sockets=sockets, poll_interval=0.05,
                             retry_delay=0.05, workers=2, **settings)
        return Relay(config, carrier=carrier)

    return factory


def drive(relays: list[Relay], until: Callable[[], bool], timeout: float = 30.0) -> None:
    """Run relays in this thread (fetch workers in theirs) until `until()` holds."""
    bots = [relay.bot for relay in relays]
    for relay in relays:
        relay.start_workers()
    deadline = time.monotonic() + timeout
    try:
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not reached in {timeout}s: {[r.counts() for r in relays]}")
            for bot in bots:
                bot.tick()
            time.sleep(0.02)
    finally:
        for relay in relays:
            relay.stop_event.set()


def request_price(w3: Web3, deployment: dict[str, Any], roles: Any, params: bytes) -> bytes:
    """The tenant's consumer asks for a price; returns the request id."""
    oracle, consumer = deployment["oracle"], deployment["consumer"]
    fee = oracle.functions.requestFee(60_000, MAX_GAS_PRICE).call()
    receipt = transact(w3, consumer.functions.requestPrice(params), sender=roles.tenant.address, value=fee,
                       gas=500_000)
    return bytes(oracle.events.Request().process_receipt(receipt, errors=DISCARD)[0]["args"]["requestId"])
