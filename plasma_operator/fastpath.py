"""The operator's hot path: decode, signing hash and signer recovery of a transaction with
the least Python work per transaction. Results are the wire library's (tests check them
against `wire.decode`, `wire.signing_hash` and `wire.recover_hash_signer` on random input);
on anything unusual it calls the wire library itself, so errors carry its messages.

Why: `wire` re-encodes 11 fields to hash them and checksums every address; at 2
recoveries per transaction those costs were larger than the recoveries themselves. Here:
the signing RLP is cut out of the received bytes (as the RootChain contract does), and
address checksums and public-key -> address are cached (owners repeat). Keccak (pysha3)
and the Merkle tree are wire's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from coincurve._libsecp256k1 import ffi as _ffi
from coincurve._libsecp256k1 import lib as _lib
from coincurve.context import GLOBAL_CONTEXT
from eth_utils import to_checksum_address

from plasma_operator import wire

_SIG_ITEM = b"\xb8\x41"
_CTX = GLOBAL_CONTEXT.ctx
_UNCOMPRESSED = _lib.SECP256K1_EC_UNCOMPRESSED
_SIG_ITEM_LENGTH = 67


keccak = wire.keccak


@lru_cache(maxsize=1 << 16)
def checksum(raw_address: bytes) -> str:
    return to_checksum_address(raw_address)


@lru_cache(maxsize=1 << 16)
def _address_of(public_key: bytes) -> bytes:
    return keccak(public_key[1:])[-20:]


@dataclass(frozen=True)
class Parsed:
    raw: bytes
    tx: wire.Transaction
    signing_hash: bytes
    leaf: bytes


def parse_raw(raw: bytes) -> Parsed:
    """Decode `raw` (13-field RLP); raises wire.WireError exactly as wire.decode would."""
    items = _split_items(raw)
    if items is None:
        return _slow(raw)
    sig1, sig2, owner1, owner2 = items[3], items[7], items[8], items[10]
    if len(sig1) != 65 or len(sig2) != 65 or len(owner1) != 20 or len(owner2) != 20:
        return _slow(raw)
    ints = []
    for index in (0, 1, 2, 4, 5, 6, 9, 11, 12):
        item = items[index]
        if len(item) > 32 or item[:1] == b"\x00":
            return _slow(raw)
        ints.append(int.from_bytes(item, "big"))
    tx = wire.Transaction(ints[0], ints[1], ints[2], sig1, ints[3], ints[4], ints[5], sig2,
                          checksum(owner1), ints[6], checksum(owner2), ints[7], ints[8])
    return Parsed(raw, tx, _signing_hash(raw, items), keccak(raw))


def _split_items(raw: bytes) -> list[bytes] | None:
    """The 13 byte strings of a canonical RLP list of short strings; None for anything else
    (the wire library then decodes it and names the problem)."""
    size = len(raw)
    if size < 2 or raw[0] < 0xC0:
        return None
    if raw[0] >= 0xF8:
        width = raw[0] - 0xF7
        if width > 2 or raw[1] == 0:
            return None
        pos, length = 1 + width, int.from_bytes(raw[1:1 + width], "big")
        if length < 56:
            return None
    else:
        pos, length = 1, raw[0] - 0xC0
    if pos + length != size:
        return None
    items = []
    for _ in range(13):
        if pos >= size:
            return None
        prefix = raw[pos]
        if prefix < 0x80:
            items.append(raw[pos:pos + 1])
            pos += 1
        elif prefix <= 0xB7:
            end = pos + 1 + prefix - 0x80
            if prefix == 0x81 and end <= size and raw[pos + 1] < 0x80:
                return None  # a single low byte must encode itself
            items.append(raw[pos + 1:end])
            pos = end
        elif prefix == 0xB8 and pos + 1 < size and raw[pos + 1] >= 56:
            end = pos + 2 + raw[pos + 1]
            items.append(raw[pos + 2:end])
            pos = end
        else:
            return None
        if pos > size:
            return None
    return items if pos == size else None


def _slow(raw: bytes) -> Parsed:
    tx = wire.decode(raw)  # raises the reason; returns only if our checks were stricter than needed
    return Parsed(raw, tx, wire.signing_hash(tx), wire.keccak(raw))


def _item_length(item: bytes) -> int:
    if len(item) == 1 and item[0] < 0x80:
        return 1
    return 1 + len(item)  # every field but the signatures is at most 32 bytes: a one-byte prefix


def _signing_hash(raw: bytes, items: list[bytes]) -> bytes:
    """keccak of the 11-field RLP: the received list without its two 67-byte signature items."""
    header = 1 + (raw[0] - 0xF7 if raw[0] > 0xF7 else 0)
    sig1_at = header + sum(_item_length(items[i]) for i in (0, 1, 2))
    sig2_at = sig1_at + _SIG_ITEM_LENGTH + sum(_item_length(items[i]) for i in (4, 5, 6))
    payload_length = len(raw) - header - 2 * _SIG_ITEM_LENGTH
    if payload_length <= 55:
        prefix = bytes([0xC0 + payload_length])
    elif payload_length < 256:
        prefix = bytes([0xF8, payload_length])
    else:
        prefix = b"\xf9" + payload_length.to_bytes(2, "big")
    return keccak(prefix + raw[header:sig1_at] + raw[sig1_at + _SIG_ITEM_LENGTH:sig2_at]
                  + raw[sig2_at + _SIG_ITEM_LENGTH:])


def recover(message_hash: bytes, signature: bytes) -> bytes:
    """20-byte address that signed `message_hash`; WireError (wire's checks and messages) otherwise."""
    v = signature[64] if len(signature) == 65 else 0
    s = int.from_bytes(signature[32:64], "big")
    r = int.from_bytes(signature[:32], "big")
    if v not in (27, 28) or not 0 < r < wire.SECP256K1_N or not 0 < s <= wire.SECP256K1_HALF_N:
        wire.recover_hash_signer(message_hash, signature)  # raises with the reason
    public_key = _recover_public_key(signature[:64], v - 27, message_hash)
    if public_key is None:
        return bytes.fromhex(wire.recover_hash_signer(message_hash, signature)[2:])  # raises with the reason
    return _address_of(public_key)


def _recover_public_key(compact: bytes, recid: int, message_hash: bytes) -> bytes | None:
    """Uncompressed public key, straight through coincurve's libsecp256k1 binding: the same
    calls as coincurve.PublicKey.from_signature_and_message without its Python objects."""
    signature = _ffi.new("secp256k1_ecdsa_recoverable_signature *")
    if not _lib.secp256k1_ecdsa_recoverable_signature_parse_compact(_CTX, signature, compact, recid):
        return None
    public_key = _ffi.new("secp256k1_pubkey *")
    if len(message_hash) != 32 or not _lib.secp256k1_ecdsa_recover(_CTX, public_key, signature, message_hash):
        return None
    out = _ffi.new("unsigned char[65]")
    _lib.secp256k1_ec_pubkey_serialize(_CTX, out, _ffi.new("size_t *", 65), public_key, _UNCOMPRESSED)
    return bytes(_ffi.buffer(out, 65))


def merkle_levels(leaves: list[bytes], last: bytes | None = None) -> list[list[bytes]]:
    """wire.merkle_levels (same layout: no padding; a fee leaf on its own path)."""
    return wire.merkle_levels(leaves, last)


merkle_root = wire.merkle_root_of
