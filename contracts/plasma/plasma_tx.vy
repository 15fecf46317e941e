# pragma version ~=0.4.3
"""
@title Plasma transaction hashes and signers
@custom:contract-name plasma_tx
@license MIT
@notice Stateless helpers over a decoded Plasma transaction: the signing
        hash (keccak256 of the 11-field RLP without both signatures), the
        signer of a 65-byte `r || s || v` signature (snekmate's ECDSA:
        low s only, zero recovery refused), and the RLP of a deposit
        transaction, whose leaf the root chain computes itself.
"""

from snekmate.utils import ecdsa

from . import plasma_rlp

# Both signature items are `184 65 || 65 bytes`; the signing RLP drops them.
_SIG_ITEM_LENGTH: constant(uint256) = plasma_rlp.SIG_LENGTH + 2
_SIG_ITEMS_LENGTH: constant(uint256) = 2 * _SIG_ITEM_LENGTH
_MASK_160: constant(uint256) = 2**160 - 1


@internal
@pure
def _signing_hash(tx_bytes: Bytes[plasma_rlp.MAX_TX_BYTES], fields: uint256[plasma_rlp.FIELDS]) -> bytes32:
    """
    @dev keccak256 of the 11-field RLP: the 13-field list without both signature items.
    @param tx_bytes The transaction's RLP, already decoded into `fields`.
    @param fields Its decoded fields (`plasma_rlp._decode`), whose signature entries are offsets.
    @return The hash each input owner signs.
    """
    n: uint256 = len(tx_bytes)
    start: uint256 = 1
    first: uint256 = convert(slice(tx_bytes, 0, 1), uint256)
    if first >= 248:
        start += first - 247
    sig1: uint256 = fields[plasma_rlp.SIG1] - 2
    sig2: uint256 = fields[plasma_rlp.SIG2] - 2
    payload: uint256 = n - start - _SIG_ITEMS_LENGTH
    header: Bytes[3] = b""
    if payload <= 55:
        header = slice(convert(192 + payload, bytes32), 31, 1)
    elif payload < 256:
        header = slice(convert((248 << 8) | payload, bytes32), 30, 2)
    else:
        header = slice(convert((249 << 16) | payload, bytes32), 29, 3)
    return keccak256(concat(
        header,
        slice(tx_bytes, start, sig1 - start),
        slice(tx_bytes, sig1 + _SIG_ITEM_LENGTH, sig2 - sig1 - _SIG_ITEM_LENGTH),
        slice(tx_bytes, sig2 + _SIG_ITEM_LENGTH, n - sig2 - _SIG_ITEM_LENGTH),
    ))


@internal
@pure
def _recover(digest: bytes32, data: Bytes[plasma_rlp.MAX_TX_BYTES], offset: uint256) -> address:
    """
    @dev Signer of the 65-byte `r || s || v` signature at `offset` of `data`; snekmate refuses
         high s and a zero (failed) recovery, and ecrecover returns zero for v outside {27, 28}.
    @param digest The signed hash.
    @param data Bytes holding the signature.
    @param offset Where the signature starts.
    @return The signer.
    """
    r: uint256 = extract32(data, offset, output_type=uint256)
    s: uint256 = extract32(data, offset + 32, output_type=uint256)
    v: uint256 = convert(slice(data, offset + 64, 1), uint256)
    return ecdsa._recover_vrs(digest, v, r, s)


@internal
@pure
def _owner(fields: uint256[plasma_rlp.FIELDS], oindex: uint256) -> address:
    """
    @dev The owner of output `oindex` (0 or 1) of a decoded transaction.
    @param fields Decoded fields.
    @param oindex Output index.
    @return The owner (zero for an unused output).
    """
    return convert(convert(fields[plasma_rlp.OWNER1 + 2 * oindex], uint160), address)


@internal
@pure
def _deposit_leaf(record: uint256) -> bytes32:
    """
    @dev Merkle leaf of the deposit transaction `[0,0,0,zero-sig, 0,0,0,zero-sig, owner, amount, 0x0, 0, 0]`.
    @param record owner | amount << 160, as the root chain stores a deposit.
    @return keccak256 of its 13-field RLP.
    """
    amount: uint256 = record >> 160
    amount_rlp: Bytes[33] = b""
    if amount < 128:
        amount_rlp = slice(convert(amount, bytes32), 31, 1)
    else:
        length: uint256 = 32 - self._leading_zero_bytes(amount)
        amount_rlp = concat(slice(convert(128 + length, bytes32), 31, 1), slice(convert(amount, bytes32), 32 - length, length))
    zero_input: Bytes[70] = concat(b"\x80\x80\x80\xb8\x41", empty(bytes32), empty(bytes32), b"\x00")
    body: Bytes[256] = concat(
        zero_input,
        zero_input,
        b"\x94",
        convert(convert(record & _MASK_160, uint160), bytes20),
        amount_rlp,
        b"\x94",
        empty(bytes20),
        b"\x80\x80",
    )
    return keccak256(concat(b"\xf8", slice(convert(len(body), bytes32), 31, 1), body))


@internal
@pure
def _leading_zero_bytes(x: uint256) -> uint256:
    count: uint256 = 0
    for i: uint256 in range(32):
        if x >> (248 - 8 * i) != 0:
            break
        count += 1
    return count
