"""The one EIP-712 encoder (nos_enclave.eip712): for each message the suite signs (the enclave's Response,
the bridge's Transfer, the enode registry's EndpointUpdate) its digest equals eth-account's generic
typed-data encoder over the types as SPEC.md writes them, for any field values."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import SignableMessage, _hash_eip191_message, encode_typed_data
from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from enode_dns.enode import EnodeId, endpoint_update_digest, endpoint_update_typed_data, sign_endpoint_update
from nos_enclave.eip712 import Domain, Struct, digest, typed_data
from nos_enclave.protocol import response_digest
from token_bridge.transfer import Destination, Transfer, struct_hash, transfer_digest

DOMAIN_TYPES = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
RESPONSE_TYPES = [
    {"name": "requestId", "type": "bytes32"},
    {"name": "paramsHash", "type": "bytes32"},
    {"name": "dataHash", "type": "bytes32"},
]
TRANSFER_TYPES = [
    {"name": "srcChainId", "type": "uint256"},
    {"name": "srcBridge", "type": "address"},
    {"name": "srcTxHash", "type": "bytes32"},
    {"name": "logIndex", "type": "uint256"},
    {"name": "recipient", "type": "address"},
    {"name": "amount", "type": "uint256"},
]
ENDPOINT_UPDATE_TYPES = [
    {"name": "enodeKey", "type": "bytes32"},
    {"name": "host", "type": "string"},
    {"name": "port", "type": "uint16"},
    {"name": "sequence", "type": "uint256"},
]

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
words = st.binary(min_size=32, max_size=32)
uint256 = st.integers(min_value=0, max_value=2**256 - 1)


def signable(primary: str, types: list[dict[str, str]], domain: dict[str, Any], message: dict[str, Any]) -> SignableMessage:
    """eth-account's encoding of the typed data, built here by hand (nothing taken from the encoder under test)."""
    return encode_typed_data(full_message={
        "types": {"EIP712Domain": DOMAIN_TYPES, primary: types},
        "primaryType": primary,
        "domain": {**domain, "verifyingContract": to_checksum_address(domain["verifyingContract"])},
        "message": message,
    })


def reference(primary: str, types: list[dict[str, str]], domain: dict[str, Any], message: dict[str, Any]) -> bytes:
    return bytes(_hash_eip191_message(signable(primary, types, domain, message)))


@settings(max_examples=150, deadline=None)
@given(uint256, addresses, words, words, st.binary(max_size=600))
def test_response_digest__any_fields__equals_eth_account(
    chain_id: int, oracle: str, request_id: bytes, params_hash: bytes, data: bytes
) -> None:
    expected = reference("Response", RESPONSE_TYPES, {"name": "NOS", "version": "1", "chainId": chain_id,
                                                      "verifyingContract": oracle},
                         {"requestId": request_id, "paramsHash": params_hash, "dataHash": keccak(data)})
    assert response_digest(chain_id, oracle, request_id, params_hash, data) == expected


@settings(max_examples=150, deadline=None)
@given(uint256, addresses, words, uint256, addresses, uint256, uint256, addresses)
def test_transfer_digest__any_fields__equals_eth_account(
    src_chain: int, src_bridge: str, tx_hash: bytes, log_index: int, recipient: str, amount: int,
    dst_chain: int, dst_bridge: str,
) -> None:
    transfer = Transfer(src_chain, src_bridge, "0x" + tx_hash.hex(), log_index, recipient, amount)
    reference_message = signable(
        "Transfer", TRANSFER_TYPES,
        {"name": "Ankr Bridge", "version": "1", "chainId": dst_chain, "verifyingContract": dst_bridge},
        {"srcChainId": src_chain, "srcBridge": to_checksum_address(src_bridge), "srcTxHash": tx_hash,
         "logIndex": log_index, "recipient": to_checksum_address(recipient), "amount": amount})
    assert transfer_digest(transfer, Destination(dst_chain, dst_bridge)) == _hash_eip191_message(reference_message)
    assert struct_hash(transfer) == bytes(reference_message.body)  # the relayer's row key


@settings(max_examples=150, deadline=None)
@given(uint256, addresses, words, st.text(max_size=80), st.integers(min_value=0, max_value=2**16 - 1), uint256)
def test_endpoint_update_digest__any_fields__equals_eth_account(
    chain_id: int, rules: str, enode_key: bytes, host: str, port: int, sequence: int
) -> None:
    expected = reference(
        "EndpointUpdate", ENDPOINT_UPDATE_TYPES,
        {"name": "DCCN Enode Registry", "version": "1", "chainId": chain_id, "verifyingContract": rules},
        {"enodeKey": enode_key, "host": host, "port": port, "sequence": sequence})
    assert endpoint_update_digest(chain_id, rules, enode_key, host, port, sequence) == expected
    data = endpoint_update_typed_data(chain_id, rules, enode_key, host, port, sequence)
    assert bytes(_hash_eip191_message(encode_typed_data(full_message=data))) == expected


def test_sign_endpoint_update__recovers_the_enode_address() -> None:
    node = Account.from_key("0x" + "7b" * 32)
    rules = "0x" + "ab" * 20
    signature = sign_endpoint_update(node, 31337, rules, "boot1.example.org", 30303, 7)
    message = endpoint_update_digest(31337, rules, EnodeId.of_account(node).key, "boot1.example.org", 30303, 7)
    assert len(signature) == 65
    assert Account._recover_hash(message, signature=signature) == node.address == EnodeId.of_account(node).address


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=-(2**255), max_value=2**255 - 1), st.booleans(), st.binary(max_size=100),
       st.binary(min_size=1, max_size=8), uint256, addresses)
def test_struct_hash__other_atomic_types__equal_eth_account(
    signed: int, flag: bool, blob: bytes, short: bytes, chain_id: int, contract: str
) -> None:
    mail = Struct("Mail", [("int256", "delta"), ("bool", "flag"), ("bytes", "blob"), ("bytes8", "tag")])
    domain = Domain("Test", "2", chain_id, contract)
    expected = reference("Mail", mail.types(), domain.as_json(),
                         {"delta": signed, "flag": flag, "blob": blob, "tag": short})
    assert digest(domain, mail.hash(signed, flag, blob, short)) == expected
    full = typed_data(domain, mail, signed, flag, blob, short)
    assert bytes(_hash_eip191_message(encode_typed_data(full_message=full))) == expected


def test_struct__encode_type_and_type_list() -> None:
    struct = Struct.from_types("Response", RESPONSE_TYPES)
    assert struct.encode_type == "Response(bytes32 requestId,bytes32 paramsHash,bytes32 dataHash)"
    assert struct.type_hash == keccak(struct.encode_type.encode())
    assert struct.types() == RESPONSE_TYPES
    assert struct == Struct("Response", [("bytes32", "requestId"), ("bytes32", "paramsHash"), ("bytes32", "dataHash")])


@pytest.mark.parametrize("kind", ["uint7", "uint264", "bytes33", "bytes0", "Person", "uint256[]", "string[2]"])
def test_struct__unsupported_type__refused(kind: str) -> None:
    with pytest.raises(ValueError, match="unsupported EIP-712 field type"):
        Struct("Bad", [(kind, "x")])


@pytest.mark.parametrize(("kind", "value"), [
    ("uint16", 2**16), ("uint256", -1), ("uint256", True), ("int8", 128), ("bytes32", b"\x01" * 33),
    ("address", "0x" + "11" * 19), ("address", "not hex"), ("bytes32", 5),
])
def test_struct_hash__value_outside_the_type__refused(kind: str, value: Any) -> None:
    with pytest.raises(ValueError):
        Struct("One", [(kind, "x")]).hash(value)


def test_struct_hash__wrong_number_of_values__refused() -> None:
    with pytest.raises(ValueError, match="has 2 fields, got 1"):
        Struct("Two", [("uint256", "a"), ("uint256", "b")]).hash(1)


def test_domain__not_an_address__refused() -> None:
    for contract in ("0x1234", "0x" + "zz" * 20, ""):
        with pytest.raises(ValueError, match="not an address"):
            Domain("NOS", "1", 1, contract)


def test_domain__separator_cached_per_domain() -> None:
    domain = Domain("NOS", "1", 5, "0x" + "cd" * 20)
    assert domain.separator is domain.separator
    assert domain == Domain("NOS", "1", 5, "0x" + "cd" * 20) and hash(domain) == hash(Domain("NOS", "1", 5, "0x" + "cd" * 20))
