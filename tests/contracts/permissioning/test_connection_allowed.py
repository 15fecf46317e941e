"""connectionAllowed answers a well-formed ABI bool for every call the ABI can carry (issue 13).

Vyper's ABI decoder reverts on strings longer than their declared bound, so EnodeIngress
decodes this call itself in `__default__`; these tests hold it to a Python model for ids and
hosts of any length and content, and to `false` for malformed, truncated or hostile calldata.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth.exceptions import Revert
from eth_abi import decode
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from dccn_common.contracts import transact
from dccn_devtools.contracts import load_artifact

from .conftest import (
    CONNECTION_ALLOWED_SELECTOR,
    ModelEntry,
    Node,
    Registry,
    call_ingress,
    connection_allowed,
    connection_allowed_calldata,
    model_connection_allowed,
)

FALSE, TRUE = bytes(32), (1).to_bytes(32, "big")
ERROR_SELECTOR = keccak(text="Error(string)")[:4]


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


@pytest.fixture
def listed(registry: Registry, boot_node: Node) -> tuple[Registry, Node]:
    """A registry with a boot node listed at 10.0.0.1:30303."""
    registry.add(boot_node, "10.0.0.1", 30303)
    return registry, boot_node


# -- the examples of the issue ----------------------------------------------------------------


def test_connection_allowed__129_character_id__answers_false(listed: tuple[Registry, Node]) -> None:
    registry, node = listed
    assert not connection_allowed(registry.ingress, node.enode.hex + "0", "10.0.0.1", 30303)


def test_connection_allowed__enode_prefixed_id__answers_false(listed: tuple[Registry, Node]) -> None:
    registry, node = listed
    assert not connection_allowed(registry.ingress, "enode://" + node.enode.hex, "10.0.0.1", 30303)


def test_connection_allowed__254_character_host__answers_false(listed: tuple[Registry, Node]) -> None:
    registry, node = listed
    assert not connection_allowed(registry.ingress, node.enode.hex, "a" * 250 + ".org", 30303)


def test_connection_allowed__host_of_253_characters__is_read_whole(registry: Registry, boot_node: Node) -> None:
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters, the longest DNS name
    registry.add(boot_node, longest, 30303)
    assert connection_allowed(registry.ingress, boot_node.enode.hex, longest, 30303)
    assert not connection_allowed(registry.ingress, boot_node.enode.hex, longest[:-1] + "c", 30303)


def test_connection_allowed__strings_of_64_kib__answer_false_in_constant_gas(listed: tuple[Registry, Node]) -> None:
    registry, node = listed
    huge = "a" * 65_536
    assert not connection_allowed(registry.ingress, huge, "10.0.0.1", 30303)
    assert not connection_allowed(registry.ingress, node.enode.hex, huge, 30303)
    assert not connection_allowed(registry.ingress, node.enode.hex, "10.0.0.1" + huge, 30303)


# -- malformed calldata -----------------------------------------------------------------------


def test_connection_allowed__every_truncation_of_a_listed_call__answers_false(
        listed: tuple[Registry, Node]) -> None:
    registry, node = listed
    calldata = connection_allowed_calldata(node.enode.hex, "10.0.0.1", 30303)
    assert call_ingress(registry.ingress, calldata) == TRUE
    # Cutting any whole word off loses the host's padded word or more; a byte less, too.
    for cut in (1, 31, 32, 33, 64, 96, 128, 160, 192, 224, 256):
        assert call_ingress(registry.ingress, calldata[:-cut]) == FALSE, cut
    assert call_ingress(registry.ingress, CONNECTION_ALLOWED_SELECTOR) == FALSE


def test_connection_allowed__non_canonical_offsets__decode_the_same_call(listed: tuple[Registry, Node]) -> None:
    # The ABI allows tails in any order: host first, then id, with a gap word between.
    registry, node = listed
    host, enode_id = b"10.0.0.1", node.enode.hex.encode()
    host_tail = _word(len(host)) + host + bytes(24)
    id_tail = _word(len(enode_id)) + enode_id
    head = _word(96 + len(host_tail) + 32) + _word(96) + _word(30303)
    calldata = CONNECTION_ALLOWED_SELECTOR + head + host_tail + bytes(32) + id_tail
    assert call_ingress(registry.ingress, calldata) == TRUE


@pytest.mark.parametrize("head_index, value", [
    (0, 2**256 - 1), (1, 2**256 - 1), (0, 2**255), (1, 10**6),  # offsets far outside the call
    (0, 2**256 - 32), (1, 2**256 - 96),  # offsets that would wrap around when added
])
def test_connection_allowed__hostile_offset__answers_false(
        listed: tuple[Registry, Node], head_index: int, value: int) -> None:
    registry, node = listed
    calldata = bytearray(connection_allowed_calldata(node.enode.hex, "10.0.0.1", 30303))
    calldata[4 + 32 * head_index:4 + 32 * head_index + 32] = _word(value)
    assert call_ingress(registry.ingress, bytes(calldata)) == FALSE


@pytest.mark.parametrize("length", [2**256 - 1, 2**256 - 31, 2**255, 129, 10**6])
def test_connection_allowed__hostile_id_length__answers_false(listed: tuple[Registry, Node], length: int) -> None:
    registry, node = listed
    calldata = bytearray(connection_allowed_calldata(node.enode.hex, "10.0.0.1", 30303))
    calldata[4 + 96:4 + 128] = _word(length)  # the id's length word
    assert call_ingress(registry.ingress, bytes(calldata)) == FALSE


@pytest.mark.parametrize("port_word", [30303 + 2**16, 2**255 + 30303, 2**256 - 1])
def test_connection_allowed__port_word_above_uint16__answers_false(
        listed: tuple[Registry, Node], port_word: int) -> None:
    # The low 16 bits name the listed port, but the word is not an ABI uint16.
    registry, node = listed
    calldata = bytearray(connection_allowed_calldata(node.enode.hex, "10.0.0.1", 30303))
    calldata[4 + 64:4 + 96] = _word(port_word)
    assert call_ingress(registry.ingress, bytes(calldata)) == FALSE


@pytest.mark.parametrize("calldata", [b"\x12\x34\x56\x78" + bytes(96), b"\x12", b""])
def test_ingress__unknown_selector__reverts_with_message(registry: Registry, calldata: bytes) -> None:
    with pytest.raises(Revert) as reverted:
        call_ingress(registry.ingress, calldata)
    assert reverted.value.args[0][:4] == ERROR_SELECTOR
    assert decode(["string"], reverted.value.args[0][4:]) == ("permissioning: unknown function",)


# -- properties --------------------------------------------------------------------------------

HEX = "0123456789abcdefABCDEF"
# Long values by repetition: hypothesis draws at most a few KB of raw bytes per example.
LONG = st.tuples(st.binary(min_size=1, max_size=40), st.integers(10, 1_000)).map(lambda t: t[0] * t[1])
IDS = st.one_of(
    st.binary(max_size=300),
    st.text(alphabet=HEX, min_size=126, max_size=130).map(str.encode),
    LONG,
)
HOSTS = st.one_of(
    st.sampled_from([b"10.0.0.1", b"::ffff:a00:1", b"0:0:0:0:0:ffff:a00:1", b"boot1.example.org",
                     b"BOOT1.example.org", b"boot1.example.org.", b"10.0.0.01", b"10.0.0.1\x00"]),
    st.binary(max_size=300),
    LONG,
    LONG.map(lambda tail: b"10.0.0.1" + tail),
)
PORTS = st.one_of(st.sampled_from([30303, 30304]), st.integers(0, 2**16 - 1))


@pytest.fixture
def model_registry(make_registry: Callable[..., Registry]) -> tuple[Registry, dict[bytes, ModelEntry], list[Node]]:
    """Three listed nodes (by IPv4, by DNS name, by id only) and their model."""
    registry = make_registry(admins=1, threshold=1)
    nodes = [Node.create() for _ in range(3)]
    entries = {}
    for node, (host, port, id_only) in zip(nodes, [("10.0.0.1", 30303, False),
                                                    ("boot1.example.org", 30304, False),
                                                    ("10.9.9.9", 1, True)], strict=True):
        registry.add(node, host, port, id_only=id_only)
        entries[node.enode.key] = ModelEntry(host, port, id_only)
    return registry, entries, nodes


@settings(max_examples=max(150, settings().max_examples))  # the "long" profile runs more
@given(data=st.data())
def test_connection_allowed__any_id_host_port__matches_model_and_never_reverts(
        model_registry: tuple[Registry, dict[bytes, ModelEntry], list[Node]], data: st.DataObject) -> None:
    registry, entries, nodes = model_registry
    node = data.draw(st.sampled_from(nodes))
    listed_id = st.sampled_from([node.enode.hex, node.enode.hex.upper(), "enode://" + node.enode.hex,
                                 "0x" + node.enode.hex]).map(str.encode)
    enode_id = data.draw(st.one_of(listed_id, IDS))
    host, port = data.draw(HOSTS), data.draw(PORTS)
    assert connection_allowed(registry.ingress, enode_id, host, port) == model_connection_allowed(
        entries, enode_id, host, port)


@settings(max_examples=max(150, settings().max_examples))  # the "long" profile runs more
@given(tail=st.one_of(st.binary(max_size=600), LONG))
def test_connection_allowed__arbitrary_calldata__answers_one_abi_bool(
        model_registry: tuple[Registry, dict[bytes, ModelEntry], list[Node]], tail: bytes) -> None:
    registry, _, _ = model_registry
    assert call_ingress(registry.ingress, CONNECTION_ALLOWED_SELECTOR + tail) in (FALSE, TRUE)


# -- through a node's eth_call, as Besu calls it ---------------------------------------------


@pytest.fixture
def anvil_ingress(create_parts: Callable[..., Any], roles: Any, w3: Any) -> tuple[Any, Node]:
    """EnodeIngress on anvil (the permissioning part) with one boot node listed (one admin, threshold 1)."""
    deployed = create_parts("permissioning", permissioning={"admins": ["deployer"], "threshold": 1,
                                                            "proposal_ttl": 3600})
    ingress, rules = deployed.at("EnodeIngress"), deployed.at("EnodeRules")
    node = Node.create()
    transact(w3, rules.functions.proposeAddNode(node.enode.high, node.enode.low, "10.0.0.1", 30303, 1, "ankr", False),
             sender=roles.deployer.address)
    return ingress, node


def test_connection_allowed__eth_call_through_the_published_abi(anvil_ingress: tuple[Any, Node]) -> None:
    ingress, node = anvil_ingress
    assert any(e.get("name") == "connectionAllowed" for e in load_artifact("EnodeIngress").abi)
    allowed = ingress.functions.connectionAllowed
    assert allowed(node.enode.hex, "10.0.0.1", 30303).call() is True
    assert allowed(node.enode.hex + "0", "10.0.0.1", 30303).call() is False
    assert allowed("enode://" + node.enode.hex, "10.0.0.1", 30303).call() is False
    assert allowed(node.enode.hex, "a" * 60_000, 30303).call() is False


def test_connection_allowed__malformed_eth_call__returns_false(w3: Any, anvil_ingress: tuple[Any, Node]) -> None:
    ingress, node = anvil_ingress
    calldata = connection_allowed_calldata(node.enode.hex, "10.0.0.1", 30303)
    for data in (calldata[:-32], CONNECTION_ALLOWED_SELECTOR + _word(2**256 - 1) * 3, CONNECTION_ALLOWED_SELECTOR):
        assert bytes(w3.eth.call({"to": ingress.address, "data": data})) == FALSE
