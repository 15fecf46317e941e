"""The root chain's stateless modules (plasma_rlp, plasma_tx, plasma_merkle, through PlasmaCodecHarness)
agree with plasma_core.wire: RLP decoder, signing hash, signer recovery, deposit leaf and Merkle fold."""

from __future__ import annotations

from typing import Any

import boa
import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from plasma_core import wire
from tests.contracts.plasma.world import deployers

uint256 = st.integers(min_value=0, max_value=2**256 - 1)
addresses = st.binary(min_size=20, max_size=20).map(wire.to_checksum_address)
transactions = st.builds(
    wire.Transaction,
    blknum1=uint256, txindex1=uint256, oindex1=uint256, sig1=st.binary(min_size=65, max_size=65),
    blknum2=uint256, txindex2=uint256, oindex2=uint256, sig2=st.binary(min_size=65, max_size=65),
    newowner1=addresses, denom1=uint256, newowner2=addresses, denom2=uint256, fee=uint256,
)


@pytest.fixture(scope="module")
def codec() -> Any:
    with boa.env.anchor():
        yield deployers()["PlasmaCodecHarness"].deploy()


@given(transactions)
@settings(max_examples=4)
def test_decode_and_signing_hash__match_the_wire_library(codec: Any, tx: wire.Transaction) -> None:
    raw = wire.encode(tx)
    fields = codec.decode(raw)
    expected = [tx.blknum1, tx.txindex1, tx.oindex1, raw.index(tx.sig1, 1),
                tx.blknum2, tx.txindex2, tx.oindex2, raw.index(tx.sig2, raw.index(tx.sig1, 1) + 65),
                int(tx.newowner1, 16), tx.denom1, int(tx.newowner2, 16), tx.denom2, tx.fee]
    assert list(fields) == expected
    assert codec.signingHash(raw) == wire.signing_hash(tx)


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=20), st.data())
@settings(max_examples=3)
def test_merkle_fold__matches_the_wire_tree(codec: Any, leaves: list[bytes], data: st.DataObject) -> None:
    tree = wire.MerkleTree(leaves)
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
    assert codec.rootFromProof(leaves[index], index, tree.proof(index)) == tree.root


@pytest.mark.parametrize("raw", [b"\xc0", b"\xf8\x00", bytes.fromhex("c3808080"), b"\xf9\x00\x01\x80"])
def test_decode__malformed_lists_are_refused(codec: Any, raw: bytes) -> None:
    with boa.reverts():
        codec.decode(raw)


@given(st.integers(min_value=1, max_value=2**95 - 1), addresses)
@settings(max_examples=4)
def test_deposit_leaf__matches_the_wire_deposit_transaction(codec: Any, amount: int, owner: str) -> None:
    assert codec.depositLeaf(owner, amount) == wire.leaf(wire.Transaction(newowner1=owner, denom1=amount))


@given(st.integers(min_value=1, max_value=2**64), st.integers(min_value=1, max_value=2**64))
@settings(max_examples=3)
def test_signer__of_each_slot_is_the_key_that_signed_it(codec: Any, blknum1: int, blknum2: int) -> None:
    alice, bob = Account.create(), Account.create()
    tx = wire.Transaction(blknum1=blknum1, blknum2=blknum2, newowner1=alice.address, denom1=5)
    tx = wire.sign(wire.sign(tx, alice.key, 0), bob.key, 1)
    raw = wire.encode(tx)
    assert (codec.signerOf(raw, 0), codec.signerOf(raw, 1)) == (alice.address, bob.address)
