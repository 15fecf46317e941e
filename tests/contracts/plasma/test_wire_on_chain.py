"""The contract's RLP decoder, signing hash and Merkle fold agree with plasma_operator.wire."""

from __future__ import annotations

from typing import Any

import boa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plasma_operator import wire
from tests.contracts.plasma.world import ZERO_ADDRESS, deployers

uint256 = st.integers(min_value=0, max_value=2**256 - 1)
addresses = st.binary(min_size=20, max_size=20).map(wire.to_checksum_address)
transactions = st.builds(
    wire.Transaction,
    blknum1=uint256, txindex1=uint256, oindex1=uint256, sig1=st.binary(min_size=65, max_size=65),
    blknum2=uint256, txindex2=uint256, oindex2=uint256, sig2=st.binary(min_size=65, max_size=65),
    newowner1=addresses, denom1=uint256, newowner2=addresses, denom2=uint256, fee=uint256,
)


@pytest.fixture(scope="module")
def root_chain() -> Any:
    with boa.env.anchor():
        boa.env.set_balance(boa.env.eoa, 10**20)
        yield deployers()["RootChain"].deploy(boa.env.eoa, ZERO_ADDRESS, 1, 1, value=1)


@given(transactions)
@settings(max_examples=4)
def test_decode_and_signing_hash__match_the_wire_library(root_chain: Any, tx: wire.Transaction) -> None:
    raw = wire.encode(tx)
    fields = root_chain.internal._decode(raw)
    expected = [tx.blknum1, tx.txindex1, tx.oindex1, raw.index(tx.sig1, 1),
                tx.blknum2, tx.txindex2, tx.oindex2, raw.index(tx.sig2, raw.index(tx.sig1, 1) + 65),
                int(tx.newowner1, 16), tx.denom1, int(tx.newowner2, 16), tx.denom2, tx.fee]
    assert list(fields) == expected
    assert root_chain.internal._signing_hash(raw, fields) == wire.signing_hash(tx)


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=20), st.data())
@settings(max_examples=3)
def test_merkle_fold__matches_the_wire_tree(root_chain: Any, leaves: list[bytes], data: st.DataObject) -> None:
    tree = wire.MerkleTree(leaves)
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
    assert root_chain.internal._root_from_proof(leaves[index], index, tree.proof(index)) == tree.root


@pytest.mark.parametrize("raw", [b"\xc0", b"\xf8\x00", bytes.fromhex("c3808080"), b"\xf9\x00\x01\x80"])
def test_decode__malformed_lists_are_refused(root_chain: Any, raw: bytes) -> None:
    with boa.reverts():
        root_chain.internal._decode(raw)
