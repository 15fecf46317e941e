"""The operator's hot path gives exactly the wire library's answers (and errors)."""

from __future__ import annotations

import pytest
import rlp
from hypothesis import given
from hypothesis import strategies as st

from plasma_operator import fastpath, wire

uint = st.one_of(st.integers(0, 300), st.integers(0, 2**256 - 1))
addresses = st.binary(min_size=20, max_size=20).map(wire.to_checksum_address)
transactions = st.builds(
    wire.Transaction,
    blknum1=uint, txindex1=uint, oindex1=uint, sig1=st.binary(min_size=65, max_size=65),
    blknum2=uint, txindex2=uint, oindex2=uint, sig2=st.binary(min_size=65, max_size=65),
    newowner1=addresses, denom1=uint, newowner2=addresses, denom2=uint, fee=uint,
)


@given(transactions)
def test_parse_raw__same_transaction_signing_hash_and_leaf_as_wire(tx: wire.Transaction) -> None:
    raw = wire.encode(tx)
    parsed = fastpath.parse_raw(raw)
    assert parsed.tx == wire.decode(raw)
    assert parsed.signing_hash == wire.signing_hash(tx)
    assert parsed.leaf == wire.keccak(raw)


@given(st.binary(max_size=300))
def test_parse_raw__garbage__same_error_as_wire(raw: bytes) -> None:
    try:
        expected = wire.decode(raw)
    except wire.WireError as err:
        with pytest.raises(wire.WireError, match=str(err)[:30].replace("(", r"\(").replace(")", r"\)")
                           .replace("[", r"\[").replace("]", r"\]")):
            fastpath.parse_raw(raw)
        return
    assert fastpath.parse_raw(raw).tx == expected


def test_parse_raw__non_canonical_integer__refused() -> None:
    items = rlp.decode(wire.encode(wire.Transaction(blknum1=5)))
    items[0] = b"\x00\x05"
    with pytest.raises(wire.WireError, match="leading zero"):
        fastpath.parse_raw(rlp.encode(items))


@given(st.integers(1, wire.SECP256K1_N - 1), st.binary(min_size=32, max_size=32))
def test_recover__same_signer_as_wire(key: int, digest: bytes) -> None:
    signature = wire.sign_hash(digest, key)
    assert fastpath.checksum(fastpath.recover(digest, signature)) == wire.recover_hash_signer(digest, signature)


@given(st.binary(min_size=65, max_size=65), st.binary(min_size=32, max_size=32))
def test_recover__bad_signatures__refused_like_wire(signature: bytes, digest: bytes) -> None:
    try:
        expected = wire.recover_hash_signer(digest, signature)
    except wire.WireError:
        with pytest.raises(wire.WireError):
            fastpath.recover(digest, signature)
        return
    assert fastpath.checksum(fastpath.recover(digest, signature)) == expected


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=0, max_size=70))
def test_merkle_levels__same_levels_and_root_as_wire(leaves: list[bytes]) -> None:
    tree = wire.MerkleTree(leaves)
    levels = fastpath.merkle_levels(leaves)
    assert levels == tree.levels
    assert fastpath.merkle_root(levels) == tree.root


@given(transactions, st.integers(0, 10_000), st.integers(0, 255), st.booleans())
def test_parse_raw__mutated_encoding__same_answer_as_wire(tx: wire.Transaction, where: int, byte: int,
                                                          truncate: bool) -> None:
    raw = bytearray(wire.encode(tx))
    where %= len(raw)
    if truncate:
        del raw[where:]
    else:
        raw[where] = byte
    try:
        expected = wire.decode(bytes(raw))
    except wire.WireError:
        with pytest.raises(wire.WireError):
            fastpath.parse_raw(bytes(raw))
        return
    parsed = fastpath.parse_raw(bytes(raw))
    assert parsed.tx == expected
    assert parsed.signing_hash == wire.signing_hash(expected)
