"""Wire format of the Plasma child chain, shared by the root-chain tests, the operator and the client.

A transaction is the seed's 13-field RLP list::

    [blknum1, txindex1, oindex1, sig1, blknum2, txindex2, oindex2, sig2,
     newowner1, denom1, newowner2, denom2, fee]

Integers are canonical RLP big-endian integers (at most 32 bytes), every `sig` is exactly
65 bytes `r || s || v` (65 zero bytes for an unused input), every `newowner` exactly 20 bytes
(20 zero bytes for an unused output). Signatures are over the raw 32-byte hash (no EIP-191
prefix), low s, v in {27, 28}; the root chain checks them the same way.

Input slots are numbered 0 and 1 (slot 0 is `sig1`), the same numbering `challengeExit` uses.

`parse`/`decode` and `recover` are the only decoder and signer recovery of the project. Each
runs the compiled path (native/plasma_fast) when it is built, and otherwise, or whenever the
compiled path declines, the pure-Python reference (`parse_reference`, `recover_reference`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from types import ModuleType
from typing import NamedTuple, Protocol

import coincurve
import rlp
import sha3  # safe-pysha3 (eth-hash's fast backend): several times faster than pycryptodome here
from eth_utils import to_canonical_address, to_checksum_address

CHILD_BLOCK_INTERVAL = 1000
TREE_DEPTH = 16
MAX_LEAVES = 1 << TREE_DEPTH
SIG_LENGTH = 65
PROOF_LENGTH = 32 * TREE_DEPTH
ZERO_SIG = b"\x00" * SIG_LENGTH
ZERO_ADDRESS = "0x" + "00" * 20
ZERO_HASH = b"\x00" * 32

# secp256k1 group order; s above half of it is the malleable twin and is refused.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2

_FIELD_COUNT = 13
_SIG_FIELDS = (3, 7)
_ADDRESS_FIELDS = (8, 10)


class WireError(ValueError):
    """Malformed transaction bytes, signature or proof; the message says what is wrong."""


def keccak(data: bytes) -> bytes:
    return sha3.keccak_256(data).digest()  # type: ignore[no-any-return]


def _load_native() -> ModuleType | None:
    """plasma_fast (native/plasma_fast, built by tools/bootstrap.sh), bound to the
    libsecp256k1 functions coincurve bundles; None when it is not built or
    PLASMA_PURE_PYTHON is set: every function here then runs its pure-Python reference."""
    if os.environ.get("PLASMA_PURE_PYTHON"):
        return None
    try:
        import plasma_fast  # type: ignore[import-not-found]
        from coincurve._libsecp256k1 import ffi, lib
        from coincurve.context import GLOBAL_CONTEXT
    except ImportError:
        return None

    def address(name: str) -> int:
        return int(ffi.cast("uintptr_t", ffi.addressof(lib, name)))

    plasma_fast.bind(int(ffi.cast("uintptr_t", GLOBAL_CONTEXT.ctx)),
                     address("secp256k1_ecdsa_recoverable_signature_parse_compact"),
                     address("secp256k1_ecdsa_recover"), address("secp256k1_ec_pubkey_serialize"),
                     int(lib.SECP256K1_EC_UNCOMPRESSED))
    return plasma_fast


_native = _load_native()
NATIVE = _native is not None


@contextmanager
def reference_only() -> Iterator[None]:
    """Run the pure-Python reference path inside (what runs where plasma_fast is not built)."""
    global _native, NATIVE
    saved = _native, NATIVE
    _native, NATIVE = None, False
    try:
        yield
    finally:
        _native, NATIVE = saved


@dataclass(frozen=True)
class Transaction:
    """The 13 fields of a child-chain transaction; owners are checksummed hex addresses."""

    blknum1: int = 0
    txindex1: int = 0
    oindex1: int = 0
    sig1: bytes = ZERO_SIG
    blknum2: int = 0
    txindex2: int = 0
    oindex2: int = 0
    sig2: bytes = ZERO_SIG
    newowner1: str = ZERO_ADDRESS
    denom1: int = 0
    newowner2: str = ZERO_ADDRESS
    denom2: int = 0
    fee: int = 0

    def input(self, slot: int) -> tuple[int, int, int]:
        """(blknum, txindex, oindex) of input `slot` (0 or 1)."""
        if slot == 0:
            return (self.blknum1, self.txindex1, self.oindex1)
        if slot == 1:
            return (self.blknum2, self.txindex2, self.oindex2)
        raise WireError(f"input slot must be 0 or 1, got {slot}")

    def input_used(self, slot: int) -> bool:
        return (self.blknum1 if slot == 0 else self.input(slot)[0]) != 0

    def sig(self, slot: int) -> bytes:
        if slot == 0:
            return self.sig1
        if slot == 1:
            return self.sig2
        raise WireError(f"input slot must be 0 or 1, got {slot}")

    def output(self, oindex: int) -> tuple[str, int]:
        """(owner, amount) of output `oindex` (0 or 1)."""
        if oindex == 0:
            return (self.newowner1, self.denom1)
        if oindex == 1:
            return (self.newowner2, self.denom2)
        raise WireError(f"output index must be 0 or 1, got {oindex}")

    @property
    def is_deposit(self) -> bool:
        return self.blknum1 == 0 and self.blknum2 == 0


def _fields(tx: Transaction, with_sigs: bool) -> list[object]:
    values: list[object] = [
        tx.blknum1, tx.txindex1, tx.oindex1, tx.sig1,
        tx.blknum2, tx.txindex2, tx.oindex2, tx.sig2,
        _address_bytes(tx.newowner1), tx.denom1, _address_bytes(tx.newowner2), tx.denom2, tx.fee,
    ]
    for index, value in enumerate(values):
        if index in _SIG_FIELDS:
            if not isinstance(value, bytes) or len(value) != SIG_LENGTH:
                raise WireError(f"field {index}: a signature must be exactly {SIG_LENGTH} bytes")
        elif isinstance(value, int) and not 0 <= value < 2**256:
            raise WireError(f"field {index}: integer {value} out of uint256 range")
    if not with_sigs:
        return [v for i, v in enumerate(values) if i not in _SIG_FIELDS]
    return values


def _address_bytes(owner: str) -> bytes:
    try:
        raw = to_canonical_address(owner)
    except (ValueError, TypeError) as exc:
        raise WireError(f"invalid owner address {owner!r}") from exc
    return raw


def encode(tx: Transaction) -> bytes:
    """The full 13-field RLP of `tx` (what goes into a block)."""
    return rlp.encode(_fields(tx, with_sigs=True))


def signing_bytes(tx: Transaction) -> bytes:
    """The 11-field RLP without the two signatures."""
    return rlp.encode(_fields(tx, with_sigs=False))


def signing_hash(tx: Transaction) -> bytes:
    return keccak(signing_bytes(tx))


class Parsed(NamedTuple):
    """A decoded transaction with the two hashes the operator needs of it."""

    raw: bytes
    tx: Transaction
    signing_hash: bytes
    leaf: bytes


_FIELD_NAMES = tuple(Transaction.__dataclass_fields__)
_new_object = object.__new__


def parse(raw: bytes) -> Parsed:
    """Decode the 13-field RLP with its signing hash and leaf; WireError on malformed input.

    The compiled path (plasma_fast) answers canonical transactions; it returns None for
    anything else, and the reference decoder then accepts it or names the problem, so the
    two never disagree (tests/plasma_core/test_native.py checks it on random input)."""
    if _native is not None and type(raw) is bytes:
        out = _native.parse(raw)
        if out is not None:
            fields = list(out[:13])
            fields[8], fields[10] = checksum(fields[8]), checksum(fields[10])
            # The dataclass's own __init__ would store exactly these (it has no checks); filling
            # __dict__ directly saves its 13 frozen-attribute writes per transaction.
            tx = _new_object(Transaction)
            tx.__dict__.update(zip(_FIELD_NAMES, fields, strict=True))
            return Parsed(raw, tx, out[13], out[14])
    return parse_reference(raw)


def decode(raw: bytes) -> Transaction:
    """Parse the 13-field RLP; raise WireError on malformed RLP, wrong shape or field sizes."""
    return parse(raw).tx


def parse_reference(raw: bytes) -> Parsed:
    """The pure-Python decoder (the reference the compiled one is tested against)."""
    if not isinstance(raw, bytes | bytearray):
        raise WireError("transaction must be bytes")
    raw = bytes(raw)
    try:
        items = rlp.decode(raw, strict=True)
    except rlp.exceptions.DecodingError as exc:
        raise WireError(f"malformed RLP: {exc}") from None
    if not isinstance(items, list):
        raise WireError("transaction must be an RLP list")
    if len(items) != _FIELD_COUNT:
        raise WireError(f"transaction must have {_FIELD_COUNT} fields, got {len(items)}")
    values: list[object] = []
    for index, item in enumerate(items):
        if not isinstance(item, bytes):
            raise WireError(f"field {index} must be a byte string, not a list")
        if index in _SIG_FIELDS:
            if len(item) != SIG_LENGTH:
                raise WireError(f"field {index}: signature must be {SIG_LENGTH} bytes, got {len(item)}")
            values.append(item)
        elif index in _ADDRESS_FIELDS:
            if len(item) != 20:
                raise WireError(f"field {index}: owner must be 20 bytes, got {len(item)}")
            values.append(checksum(item))
        else:
            if len(item) > 32:
                raise WireError(f"field {index}: integer longer than 32 bytes")
            if item[:1] == b"\x00":
                raise WireError(f"field {index}: integer with leading zero bytes")
            values.append(int.from_bytes(item, "big"))
    tx = Transaction(*values)  # type: ignore[arg-type]
    return Parsed(raw, tx, signing_hash(tx), keccak(raw))


@lru_cache(maxsize=1 << 16)
def checksum(raw_address: bytes) -> str:
    """EIP-55 text of a 20-byte address (cached: owners repeat)."""
    return to_checksum_address(raw_address)


def _private_key(key: bytes | str | int) -> coincurve.PrivateKey:
    if isinstance(key, int):
        key = key.to_bytes(32, "big")
    elif isinstance(key, str):
        key = bytes.fromhex(key.removeprefix("0x"))
    if len(key) != 32:
        raise WireError("private key must be 32 bytes")
    return coincurve.PrivateKey(key)


def sign_hash(message_hash: bytes, key: bytes | str | int) -> bytes:
    """65-byte r || s || v signature (low s, v in {27, 28}) of a raw 32-byte hash."""
    if len(message_hash) != 32:
        raise WireError("a signed hash must be 32 bytes")
    signature = _private_key(key).sign_recoverable(message_hash, hasher=None)
    # libsecp256k1 always produces low-s signatures.
    return signature[:64] + bytes([signature[64] + 27])


def recover(message_hash: bytes, signature: bytes) -> bytes:
    """20-byte address that signed `message_hash` (raw hash, low s, v in {27, 28}: the root
    chain's checks); WireError with the reason otherwise."""
    if _native is not None:
        signer = _native.recover(message_hash, signature)
        if signer is not None:
            return signer  # type: ignore[no-any-return]
    return recover_reference(message_hash, signature)  # refused: the reference names the reason


def recover_reference(message_hash: bytes, signature: bytes) -> bytes:
    """The pure-Python recovery through coincurve's objects (the compiled one's reference)."""
    if len(signature) != SIG_LENGTH:
        raise WireError(f"signature must be {SIG_LENGTH} bytes, got {len(signature)}")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28):
        raise WireError(f"signature v must be 27 or 28, got {v}")
    if not 0 < r < SECP256K1_N or not 0 < s <= SECP256K1_HALF_N:
        raise WireError("signature r/s out of range (s must be low)")
    try:
        public_key = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([v - 27]), message_hash, hasher=None
        )
    except Exception as exc:  # coincurve raises plain Exception on an unrecoverable point
        raise WireError(f"signature does not recover: {exc}") from None
    return _address_of(public_key.format(compressed=False))


@lru_cache(maxsize=1 << 16)
def _address_of(public_key: bytes) -> bytes:
    return keccak(public_key[1:])[-20:]


def recover_hash_signer(message_hash: bytes, signature: bytes) -> str:
    """Checksummed address that signed `message_hash`; the same checks as the root chain."""
    return checksum(recover(message_hash, signature))


def recover_many(hashes: bytes, signatures: bytes) -> list[bytes | None]:
    """Signers of n (32-byte hash, 65-byte signature) pairs given concatenated; None where
    recovery fails (`recover` names the reason). The compiled path runs without the GIL,
    so threads calling this use every core."""
    if len(hashes) % 32 or len(signatures) != len(hashes) // 32 * SIG_LENGTH:
        raise WireError("recover_many takes n 32-byte hashes and n 65-byte signatures")
    if _native is not None:
        return _native.recover_many(hashes, signatures)  # type: ignore[no-any-return]
    signers: list[bytes | None] = []
    for i in range(len(hashes) // 32):
        try:
            signers.append(recover_reference(hashes[32 * i:32 * i + 32], signatures[65 * i:65 * i + 65]))
        except WireError:
            signers.append(None)
    return signers


class RecoveryThreads(Protocol):
    """plasma_fast.Recovery: `add` queues (hash, signature) pairs, `signer(i)` waits for the
    i-th pair's signer (None where recovery fails: `recover` names the reason)."""

    def add(self, hashes: bytes, signatures: bytes) -> None: ...
    def signer(self, index: int) -> bytes | None: ...
    def close(self) -> None: ...


def recovery_threads(threads: int) -> RecoveryThreads:
    """`threads` C threads recovering what is added to them, without the GIL (compiled path only)."""
    if _native is None:
        raise WireError("recovery threads need the compiled path (plasma_fast)")
    return _native.Recovery(threads)  # type: ignore[no-any-return]


def sign(tx: Transaction, key: bytes | str | int, slot: int) -> Transaction:
    """Return `tx` with input `slot`'s signature (0 → sig1, 1 → sig2) set by `key`."""
    tx.input(slot)
    signature = sign_hash(signing_hash(tx), key)
    return replace(tx, sig1=signature) if slot == 0 else replace(tx, sig2=signature)


def recover_signer(tx: Transaction, slot: int) -> str | None:
    """Signer of input `slot`; None for the all-zero signature of an unused input."""
    signature = tx.sig(slot)
    if signature == ZERO_SIG:
        return None
    return recover_hash_signer(signing_hash(tx), signature)


def leaf(raw_or_tx: bytes | Transaction) -> bytes:
    """Merkle leaf = keccak256 of the full 13-field RLP."""
    raw = encode(raw_or_tx) if isinstance(raw_or_tx, Transaction) else bytes(raw_or_tx)
    return keccak(raw)


def _zero_hashes(depth: int) -> list[bytes]:
    hashes = [ZERO_HASH]
    for _ in range(depth):
        hashes.append(keccak(hashes[-1] + hashes[-1]))
    return hashes


ZERO_SUBTREE_HASHES: tuple[bytes, ...] = tuple(_zero_hashes(TREE_DEPTH))


# The operator's fee transaction always takes the last leaf of its block (docs/plasma.md).
FEE_TXINDEX = MAX_LEAVES - 1

HashPair = Callable[[bytes], bytes]


def merkle_levels(leaves: Sequence[bytes], last: bytes | None = None, depth: int = TREE_DEPTH,
                  hasher: HashPair | None = None) -> list[list[bytes]]:
    """Every level of the positional tree, leaves first, each only as long as its non-empty
    prefix (the rest are zero-subtree hashes). With `last` (the leaf at index 2**depth - 1,
    the fee transaction's), one more list follows: the depth + 1 nodes on the path from that
    leaf to the root, so a block with a fee leaf never stores 2**16 leaves."""
    if len(leaves) > (1 << depth) - (last is not None):
        raise WireError(f"too many leaves for depth {depth}: {len(leaves)}")
    hash_ = hasher or keccak
    zeros = ZERO_SUBTREE_HASHES if depth <= TREE_DEPTH else tuple(_zero_hashes(depth))
    spine = [] if last is None else [last]
    levels = [list(leaves)]
    level = levels[0]
    for height in range(depth):
        width = 1 << (depth - height)
        if len(level) % 2:
            level = [*level, spine[height] if spine and len(level) == width - 1 else zeros[height]]
        if spine:
            spine.append(hash_((level[width - 2] if width - 2 < len(level) else zeros[height]) + spine[height]))
        level = [hash_(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
    if spine:
        levels.append(spine)
    return levels


def merkle_root_of(levels: list[list[bytes]], depth: int = TREE_DEPTH) -> bytes:
    if len(levels) > depth + 1:
        return levels[depth + 1][depth]
    top = levels[depth]
    return top[0] if top else _zeros_for(depth)[depth]


def merkle_sibling(level: Sequence[bytes], height: int, index: int, spine: Sequence[bytes] | None,
                   depth: int = TREE_DEPTH) -> bytes:
    """The sibling at `height` of the node at `index` of that height (level = that height's prefix)."""
    sibling = index ^ 1
    if sibling < len(level):
        return level[sibling]
    if spine and sibling == (1 << (depth - height)) - 1:
        return spine[height]
    return _zeros_for(depth)[height]


def _zeros_for(depth: int) -> Sequence[bytes]:
    return ZERO_SUBTREE_HASHES if depth <= TREE_DEPTH else _zero_hashes(depth)


def split_block(raws: Sequence[bytes | None]) -> tuple[list[bytes | None], bytes | None]:
    """A block's transactions by txindex (None = empty leaf) -> (the rest, the fee transaction
    at FEE_TXINDEX or None), the rest without trailing empty leaves."""
    rest = list(raws[:FEE_TXINDEX])
    last = raws[FEE_TXINDEX] if len(raws) > FEE_TXINDEX else None
    while rest and rest[-1] is None:
        rest.pop()
    return rest, last


class MerkleTree:
    """Positional binary Merkle tree of fixed depth; unfilled leaves are bytes32(0).

    Only the non-empty prefix is hashed; the right part uses the precomputed zero-subtree
    hashes, and a leaf at the last index (`last`) is carried on its own path to the root.
    """

    def __init__(self, leaves: Sequence[bytes], depth: int = TREE_DEPTH, last: bytes | None = None) -> None:
        for item in [*leaves, *([last] if last is not None else [])]:
            if len(item) != 32:
                raise WireError("every leaf must be 32 bytes")
        self.depth = depth
        self.levels = merkle_levels(leaves, last, depth)
        self._spine = self.levels[depth + 1] if last is not None else None

    @classmethod
    def of_block(cls, raws: Sequence[bytes | None]) -> MerkleTree:
        """The tree of a block given its transactions by txindex (None for an empty leaf)."""
        rest, last = split_block(raws)
        return cls([ZERO_HASH if r is None else keccak(r) for r in rest],
                   last=None if last is None else keccak(last))

    @property
    def root(self) -> bytes:
        return merkle_root_of(self.levels, self.depth)

    def proof(self, index: int) -> bytes:
        """Siblings from level 0 up, 32 bytes each (depth * 32 bytes)."""
        if not 0 <= index < 1 << self.depth:
            raise WireError(f"leaf index {index} outside the tree")
        return b"".join(merkle_sibling(self.levels[height], height, index >> height, self._spine, self.depth)
                        for height in range(self.depth))


def compute_root(leaf_hash: bytes, index: int, proof: bytes) -> bytes:
    """Root implied by `leaf_hash` at `index` with `proof`; raises WireError on bad shapes."""
    if len(proof) % 32 or len(proof) // 32 > 256:
        raise WireError("proof length must be a multiple of 32 bytes")
    depth = len(proof) // 32
    if not 0 <= index < 1 << depth:
        raise WireError(f"leaf index {index} outside a tree of depth {depth}")
    node = leaf_hash
    for height in range(depth):
        sibling = proof[32 * height: 32 * height + 32]
        node = keccak(sibling + node) if (index >> height) & 1 else keccak(node + sibling)
    return node


def verify_proof(leaf_hash: bytes, index: int, proof: bytes, root: bytes) -> bool:
    """True when `proof` (16 * 32 bytes) shows `leaf_hash` at `index` (< 2^16) under `root`."""
    if len(proof) != PROOF_LENGTH or not 0 <= index < MAX_LEAVES or len(leaf_hash) != 32:
        return False
    return compute_root(leaf_hash, index, proof) == root


def confirm_hash(leaf_hash: bytes, root: bytes) -> bytes:
    return keccak(leaf_hash + root)


def confirm_sign(leaf_hash: bytes, root: bytes, key: bytes | str | int) -> bytes:
    """An input owner's 65-byte confirm signature of keccak256(leaf || block root)."""
    return sign_hash(confirm_hash(leaf_hash, root), key)


def deposit_transaction(owner: str, amount: int) -> Transaction:
    """The single transaction of a deposit block (what the root chain hashes on chain)."""
    return Transaction(newowner1=to_checksum_address(owner), denom1=amount)


def deposit_block_root(owner: str, amount: int) -> bytes:
    return MerkleTree([leaf(deposit_transaction(owner, amount))]).root


def utxo_position(blknum: int, txindex: int, oindex: int) -> int:
    """Position of an output, equal to its exit id / exit priority on the root chain."""
    if not 0 <= txindex < MAX_LEAVES or oindex not in (0, 1) or blknum < 0:
        raise WireError(f"bad output position ({blknum}, {txindex}, {oindex})")
    return blknum * 1_000_000_000 + txindex * 10_000 + oindex


exit_id = utxo_position

# The highest block number whose every output position fits a signed 64-bit integer, the
# widest SQLite stores (the operator keys outputs by position): ~9.2e9, far beyond any chain.
MAX_BLKNUM = (2**63 - 1 - utxo_position(0, MAX_LEAVES - 1, 1)) // 1_000_000_000


def decode_position(position: int) -> tuple[int, int, int]:
    """Inverse of utxo_position: (blknum, txindex, oindex)."""
    return position // 1_000_000_000, (position % 1_000_000_000) // 10_000, position % 10_000
