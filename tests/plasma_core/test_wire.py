"""The Plasma wire format: RLP round trips, strict decoding, signatures, the positional Merkle tree."""

from __future__ import annotations

import pytest
import rlp
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from plasma_core import wire

DEV_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_ADDRESS_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
DEV_KEY_1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
DEV_ADDRESS_1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

uint256 = st.integers(min_value=0, max_value=2**256 - 1)
addresses = st.binary(min_size=20, max_size=20).map(lambda raw: wire.to_checksum_address(raw))
signatures = st.binary(min_size=65, max_size=65)
transactions = st.builds(
    wire.Transaction,
    blknum1=uint256, txindex1=uint256, oindex1=uint256, sig1=signatures,
    blknum2=uint256, txindex2=uint256, oindex2=uint256, sig2=signatures,
    newowner1=addresses, denom1=uint256, newowner2=addresses, denom2=uint256, fee=uint256,
)
private_keys = st.integers(min_value=1, max_value=wire.SECP256K1_N - 1)


def _spend(owner_key: str = DEV_KEY_0) -> wire.Transaction:
    tx = wire.Transaction(blknum1=1, newowner1=DEV_ADDRESS_1, denom1=7, newowner2=DEV_ADDRESS_0, denom2=2, fee=1)
    return wire.sign(tx, owner_key, 0)


# --- encoding -----------------------------------------------------------------------------------

@given(transactions)
def test_encode_decode__round_trips_every_transaction(tx: wire.Transaction) -> None:
    assert wire.decode(wire.encode(tx)) == tx


@given(transactions)
def test_signing_bytes__is_the_full_rlp_without_the_two_signatures(tx: wire.Transaction) -> None:
    full = rlp.decode(wire.encode(tx))
    assert rlp.decode(wire.signing_bytes(tx)) == [f for i, f in enumerate(full) if i not in (3, 7)]


def test_encode__deposit_transaction_known_bytes() -> None:
    raw = wire.encode(wire.deposit_transaction(DEV_ADDRESS_1, 10))
    expected = (
        b"\x80\x80\x80" + b"\xb8\x41" + b"\x00" * 65 + b"\x80\x80\x80" + b"\xb8\x41" + b"\x00" * 65
        + b"\x94" + bytes.fromhex(DEV_ADDRESS_1[2:]) + b"\x0a" + b"\x94" + b"\x00" * 20 + b"\x80\x80"
    )
    assert raw == b"\xf8" + bytes([len(expected)]) + expected


def test_zero_subtree_hashes__known_answers() -> None:
    assert wire.ZERO_SUBTREE_HASHES[0] == b"\x00" * 32
    assert wire.ZERO_SUBTREE_HASHES[1].hex() == "ad3228b676f7d3cd4284a5443f17f1962b36e491b30a40b2405849e597ba5fb5"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "malformed RLP"),
        (b"\xf8", "malformed RLP"),
        (rlp.encode(b"not a list"), "RLP list"),
        (rlp.encode([b""] * 12), "13 fields"),
        (rlp.encode([b""] * 14), "13 fields"),
        (rlp.encode([[]] + [b""] * 12), "not a list"),
        (rlp.encode([b""] * 3 + [b"\x00" * 64] + [b""] * 9), "signature must be 65"),
        (rlp.encode([b""] * 3 + [wire.ZERO_SIG] + [b""] * 3 + [wire.ZERO_SIG] + [b"\x01" * 19] + [b""] * 4),
         "owner must be 20"),
        (rlp.encode([b"\x00\x01"] + [b""] * 12), "leading zero"),
        (rlp.encode([b"\x01" * 33] + [b""] * 12), "longer than 32"),
        (wire.encode(wire.Transaction()) + b"\x00", "malformed RLP"),
    ],
)
def test_decode__malformed_input__raises_wire_error_with_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(wire.WireError, match=reason):
        wire.decode(raw)


@given(st.binary(max_size=300))
def test_decode__arbitrary_bytes__either_parses_or_raises_wire_error(raw: bytes) -> None:
    try:
        tx = wire.decode(raw)
    except wire.WireError:
        return
    assert wire.encode(tx) == raw


def test_encode__bad_signature_length__raises_wire_error() -> None:
    with pytest.raises(wire.WireError, match="65 bytes"):
        wire.encode(wire.Transaction(sig1=b"\x01" * 64))


# --- signatures ---------------------------------------------------------------------------------

def test_sign__recovers_the_dev_account_and_matches_eth_account() -> None:
    tx = _spend()
    assert wire.recover_signer(tx, 0) == DEV_ADDRESS_0
    assert wire.recover_signer(tx, 1) is None
    assert Account._recover_hash(wire.signing_hash(tx), signature=tx.sig1) == DEV_ADDRESS_0
    independent = Account.unsafe_sign_hash(wire.signing_hash(tx), DEV_KEY_0)
    assert independent.signature == tx.sig1


@given(private_keys, st.binary(min_size=32, max_size=32))
def test_sign_hash__is_low_s_with_v_27_or_28_and_recovers(key: int, message_hash: bytes) -> None:
    signature = wire.sign_hash(message_hash, key)
    assert signature[64] in (27, 28)
    assert int.from_bytes(signature[32:64], "big") <= wire.SECP256K1_HALF_N
    assert wire.recover_hash_signer(message_hash, signature) == Account.from_key(key.to_bytes(32, "big")).address


def test_recover__high_s_twin__is_refused() -> None:
    tx = _spend()
    s = int.from_bytes(tx.sig1[32:64], "big")
    twin = tx.sig1[:32] + (wire.SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - tx.sig1[64]])
    with pytest.raises(wire.WireError, match="low"):
        wire.recover_hash_signer(wire.signing_hash(tx), twin)


@pytest.mark.parametrize("v", [0, 1, 26, 29])
def test_recover__v_outside_27_28__is_refused(v: int) -> None:
    tx = _spend()
    with pytest.raises(wire.WireError, match="v must be"):
        wire.recover_hash_signer(wire.signing_hash(tx), tx.sig1[:64] + bytes([v]))


def test_recover__zero_r__is_refused() -> None:
    with pytest.raises(wire.WireError, match="out of range"):
        wire.recover_hash_signer(b"\x01" * 32, b"\x00" * 32 + b"\x01" * 32 + b"\x1b")


def test_signature__covers_every_field_but_the_signatures() -> None:
    tx = _spend()
    tampered = wire.Transaction(**{**tx.__dict__, "denom1": tx.denom1 + 1})
    assert wire.recover_signer(tampered, 0) != DEV_ADDRESS_0
    assert wire.signing_hash(wire.sign(tx, DEV_KEY_1, 1)) == wire.signing_hash(tx)


def test_confirm_sign__recovers_the_input_owner() -> None:
    leaf = wire.leaf(_spend())
    root = wire.MerkleTree([leaf]).root
    signature = wire.confirm_sign(leaf, root, DEV_KEY_1)
    assert wire.confirm_hash(leaf, root) == wire.keccak(leaf + root)
    assert wire.recover_hash_signer(wire.confirm_hash(leaf, root), signature) == DEV_ADDRESS_1


# --- Merkle tree --------------------------------------------------------------------------------

# Real leaves are hashes of distinct transactions: unique and never zero (zero is an empty
# slot, which any position "proves"; two equal leaves would prove each other's positions).
leaf_lists = st.lists(
    st.binary(min_size=32, max_size=32).filter(lambda leaf: leaf != bytes(32)), min_size=1, max_size=40, unique=True
)


def test_merkle_tree__empty_and_single_leaf_known_answers() -> None:
    assert wire.MerkleTree([]).root == wire.ZERO_SUBTREE_HASHES[16]
    leaf = b"\x11" * 32
    node = leaf
    for height in range(16):
        node = wire.keccak(node + wire.ZERO_SUBTREE_HASHES[height])
    assert wire.MerkleTree([leaf]).root == node


def test_merkle_tree__two_levels_by_hand() -> None:
    a, b, c = (bytes([i]) * 32 for i in (1, 2, 3))
    tree = wire.MerkleTree([a, b, c], depth=2)
    assert tree.root == wire.keccak(wire.keccak(a + b) + wire.keccak(c + b"\x00" * 32))
    assert tree.proof(2) == b"\x00" * 32 + wire.keccak(a + b)


@given(leaf_lists, st.data())
def test_merkle_proof__verifies_each_leaf_at_its_index_only(leaves: list[bytes], data: st.DataObject) -> None:
    tree = wire.MerkleTree(leaves)
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
    proof = tree.proof(index)
    assert len(proof) == wire.PROOF_LENGTH
    assert wire.verify_proof(leaves[index], index, proof, tree.root)
    other = data.draw(st.integers(min_value=0, max_value=wire.MAX_LEAVES - 1).filter(lambda i: i != index))
    assert not wire.verify_proof(leaves[index], other, proof, tree.root)


@given(leaf_lists, st.data())
def test_merkle_proof__tampered_proof_or_leaf_fails(leaves: list[bytes], data: st.DataObject) -> None:
    tree = wire.MerkleTree(leaves)
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
    proof = bytearray(tree.proof(index))
    position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    proof[position] ^= 0x01
    assert not wire.verify_proof(leaves[index], index, bytes(proof), tree.root)
    assert not wire.verify_proof(wire.keccak(leaves[index]), index, tree.proof(index), tree.root)


def test_verify_proof__index_at_or_above_2_16_is_refused() -> None:
    leaves = [b"\x05" * 32]
    tree = wire.MerkleTree(leaves)
    assert not wire.verify_proof(leaves[0], 1 << 16, tree.proof(0), tree.root)
    assert not wire.verify_proof(leaves[0], 0, tree.proof(0)[:-32], tree.root)


def test_merkle_tree__hashes_only_the_non_empty_part() -> None:
    tree = wire.MerkleTree([b"\x01" * 32, b"\x02" * 32, b"\x03" * 32])
    # Each level keeps at most ceil(previous / 2) nodes: 3, 2, 1, 1, ... never 2^16.
    assert [len(level) for level in tree.levels] == [3, 2] + [1] * 15


def test_merkle_tree__full_block_builds_fast() -> None:
    import time

    leaves = [i.to_bytes(32, "big") for i in range(wire.MAX_LEAVES)]
    start = time.perf_counter()
    tree = wire.MerkleTree(leaves)
    # About 0.4 s on an idle core (the operator's budget is 1 s); loose bound for a loaded CI host.
    assert time.perf_counter() - start < 5.0
    assert wire.verify_proof(leaves[-1], wire.MAX_LEAVES - 1, tree.proof(wire.MAX_LEAVES - 1), tree.root)


def _dense_root(leaves: list[bytes], last: bytes, depth: int) -> bytes:
    level = leaves + [wire.ZERO_HASH] * ((1 << depth) - 1 - len(leaves)) + [last]
    for _ in range(depth):
        level = [wire.keccak(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


@given(st.lists(st.binary(min_size=32, max_size=32), max_size=15), st.binary(min_size=32, max_size=32), st.data())
def test_merkle_tree__last_leaf_on_its_own_path__equals_the_dense_tree(leaves: list[bytes], last: bytes,
                                                                      data: st.DataObject) -> None:
    # depth 4: the prefix may fill every leaf but the last, so the two paths meet at any height
    tree = wire.MerkleTree(leaves, depth=4, last=last)
    assert tree.root == _dense_root(leaves, last, 4)
    index = data.draw(st.integers(min_value=0, max_value=15))
    leaf = leaves[index] if index < len(leaves) else last if index == 15 else wire.ZERO_HASH
    assert wire.compute_root(leaf, index, tree.proof(index)) == tree.root


def test_merkle_tree__fee_leaf_at_65535__stored_sparsely_and_proven_from_the_blob() -> None:
    from plasma_core import store

    leaves, last = [bytes([i]) * 32 for i in range(1, 4)], b"\xfe" * 32
    tree = wire.MerkleTree(leaves, last=last)
    assert tree.root == _dense_root(leaves, last, wire.TREE_DEPTH)
    assert sum(len(level) for level in tree.levels) < 60  # never 2^16 leaves
    blob = store.tree_blob(tree.levels)
    for index in (0, 2, 3, 1000, wire.FEE_TXINDEX - 1, wire.FEE_TXINDEX):
        assert store.proof_from_blob(blob, len(leaves), index) == tree.proof(index)
    assert wire.verify_proof(last, wire.FEE_TXINDEX, tree.proof(wire.FEE_TXINDEX), tree.root)
    raws: list[bytes | None] = [b"\x01", None, b"\x02"] + [None] * (wire.FEE_TXINDEX - 3) + [b"\x03"]
    by_block = wire.MerkleTree.of_block(raws)
    assert by_block.root == _dense_root([wire.keccak(b"\x01"), wire.ZERO_HASH, wire.keccak(b"\x02")],
                                        wire.keccak(b"\x03"), wire.TREE_DEPTH)


def test_merkle_tree__too_many_leaves__raises() -> None:
    with pytest.raises(wire.WireError, match="too many"):
        wire.MerkleTree([b"\x00" * 32] * 5, depth=2)


# --- positions ----------------------------------------------------------------------------------

@given(st.integers(min_value=0, max_value=2**64), st.integers(min_value=0, max_value=65535), st.sampled_from([0, 1]))
def test_utxo_position__orders_like_blocks_then_txindex_and_round_trips(blknum: int, txindex: int, oindex: int) -> None:
    position = wire.utxo_position(blknum, txindex, oindex)
    assert wire.decode_position(position) == (blknum, txindex, oindex)
    assert wire.exit_id(blknum, txindex, oindex) == position
    assert position < wire.utxo_position(blknum + 1, 0, 0)


def test_utxo_position__known_answer_and_bad_input() -> None:
    assert wire.utxo_position(2000, 3, 1) == 2_000_000_030_001
    with pytest.raises(wire.WireError):
        wire.utxo_position(1000, 65536, 0)
    with pytest.raises(wire.WireError):
        wire.utxo_position(1000, 0, 2)
