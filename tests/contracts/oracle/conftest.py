"""Factories for the NOS oracle tests: the oracle with a registered enclave key,
requests, enclave signatures, and small callback contracts compiled from source."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
import vyper
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractLogicError

from dccn_common.contracts import transact
from dccn_deploy.parts.oracle import OracleParams
from nos_enclave.crypto import sign_digest
from nos_enclave.protocol import response_digest

REQUEST_TTL = 600
DELIVERY_OVERHEAD = 100_000
MAX_GAS_PRICE = 10 * 10**9
CALLBACK_GAS = 60_000
ENCLAVE_KEY = keccak(b"nos test enclave")
OTHER_KEY = keccak(b"nos impostor enclave")
MEASUREMENT = keccak(b"enclave program v1")
PARAMS = b'{"url":"https://127.0.0.1:1/price.json","path":"json:data.price","type":"uint256"}'
PRICE_DATA = (123_45).to_bytes(32, "big")
DELIVERY_GAS = 1_000_000
STATUS = {"none": 0, "pending": 1, "delivered": 2, "failed": 3, "cancelled": 4}

# Callback contracts that misbehave in the ways the issue lists.
CALLBACKS = {
    "recorder": """
# pragma version ~=0.4.3
gas_at_entry: public(uint256)
last_data: public(Bytes[512])
@external
def nosCallback(requestId: bytes32, data: Bytes[512]):
    self.gas_at_entry = msg.gas
    self.last_data = data
""",
    "reverter": """
# pragma version ~=0.4.3
@external
def nosCallback(requestId: bytes32, data: Bytes[512]):
    raise "consumer: no thanks"
""",
    "burner": """
# pragma version ~=0.4.3
counter: uint256
@external
def nosCallback(requestId: bytes32, data: Bytes[512]):
    for i: uint256 in range(100000):
        self.counter += 1
""",
    "reentrant": """
# pragma version ~=0.4.3
interface Oracle:
    def deliver(requestId: bytes32, paramsHash: bytes32, data: Bytes[512], signature: Bytes[65]): nonpayable
ORACLE: immutable(address)
@deploy
def __init__(oracle: address):
    ORACLE = oracle
@external
def nosCallback(requestId: bytes32, data: Bytes[512]):
    extcall Oracle(ORACLE).deliver(requestId, empty(bytes32), data, b"")
""",
}


@dataclass(frozen=True)
class Requested:
    request_id: bytes
    params_hash: bytes
    params: bytes
    fee: int
    receipt: Any


def revert_reason(call: Any, tx: dict[str, Any]) -> str:
    """The revert string `call` would fail with (raises if it would succeed)."""
    try:
        call.call(tx)
    except ContractLogicError as err:
        return str(err)
    raise AssertionError("the call did not revert")


@pytest.fixture
def oracle_part(create_parts: Callable[..., Any], roles: Any) -> Any:
    """The oracle part, from roles.deployer: NosOracle, and PriceConsumer owned by roles.tenant."""
    params = OracleParams(REQUEST_TTL, DELIVERY_OVERHEAD, consumer_owner=roles.tenant.address)
    return create_parts("oracle", oracle=params)


@pytest.fixture
def oracle(oracle_part: Any) -> Any:
    return oracle_part.at("NosOracle")


@pytest.fixture
def enclave_address() -> str:
    from eth_account import Account

    return Account.from_key(ENCLAVE_KEY).address


@pytest.fixture
def live_oracle(w3: Web3, oracle: Any, roles: Any, enclave_address: str) -> Any:
    """The oracle with the test enclave key registered."""
    transact(w3, oracle.functions.registerEnclave(enclave_address, MEASUREMENT), sender=roles.deployer.address)
    return oracle


@pytest.fixture
def make_request(w3: Web3, live_oracle: Any, roles: Any) -> Callable[..., Requested]:
    def factory(requester: str | None = None, *, callback: str | None = None, gas_limit: int = CALLBACK_GAS,
                params: bytes = PARAMS, max_gas_price: int = MAX_GAS_PRICE) -> Requested:
        sender = requester or roles.alice.address
        fee = live_oracle.functions.requestFee(gas_limit, max_gas_price).call()
        call = live_oracle.functions.request(params, callback or sender, gas_limit)
        receipt = transact(w3, call, sender=sender, value=fee, gas=500_000)
        event = live_oracle.events.Request().process_receipt(receipt)[0]["args"]
        return Requested(bytes(event["requestId"]), bytes(event["paramsHash"]), params, fee, receipt)

    return factory


@pytest.fixture
def sign(w3: Web3, live_oracle: Any) -> Callable[..., bytes]:
    def signer(request: Requested, data: bytes = PRICE_DATA, *, key: bytes = ENCLAVE_KEY,
               params_hash: bytes | None = None) -> bytes:
        digest = response_digest(w3.eth.chain_id, live_oracle.address, request.request_id,
                                 params_hash or request.params_hash, data)
        return sign_digest(key, digest)

    return signer


@pytest.fixture
def deliver(w3: Web3, live_oracle: Any, roles: Any, sign: Callable[..., bytes]) -> Callable[..., Any]:
    """Deliver a correctly signed response from the operator; returns the receipt."""

    def send(request: Requested, data: bytes = PRICE_DATA, *, gas: int = DELIVERY_GAS) -> Any:
        call = live_oracle.functions.deliver(request.request_id, request.params_hash, data, sign(request, data))
        return transact(w3, call, sender=roles.operator.address, gas=gas)

    return send


@cache
def compiled_callback(kind: str) -> dict[str, Any]:
    return dict(vyper.compile_code(CALLBACKS[kind], output_formats=["abi", "bytecode"]))


@pytest.fixture
def create_callback(w3: Web3, roles: Any) -> Callable[..., Any]:
    def factory(kind: str, *args: Any) -> Any:
        out = compiled_callback(kind)
        factory_contract = w3.eth.contract(abi=out["abi"], bytecode=out["bytecode"])
        receipt = transact(w3, factory_contract.constructor(*args), sender=roles.deployer.address)
        return w3.eth.contract(address=receipt["contractAddress"], abi=out["abi"])

    return factory


@pytest.fixture
def consumer(oracle_part: Any, live_oracle: Any) -> Any:
    """The part's PriceConsumer (of the live oracle, owned by roles.tenant)."""
    return oracle_part.at("PriceConsumer")
