# pragma version ~=0.4.3
"""
@title Plasma transaction RLP decoder
@custom:contract-name plasma_rlp
@license MIT
@notice Stateless decoder of the seed's 13-field Plasma transaction
        `[blknum1, txindex1, oindex1, sig1, blknum2, txindex2, oindex2, sig2,
        newowner1, denom1, newowner2, denom2, fee]` (SPEC, docs/plasma.md).
@dev Used by the root chain; snekmate has no RLP module. Revert reasons are
     few and shared ("plasma: malformed transaction"): each one costs bytecode
     in the contract that inlines this module.
"""

# Largest RLP a transaction may take (two 65-byte signatures and 11 words fit well below).
MAX_TX_BYTES: constant(uint256) = 1024
FIELDS: constant(uint256) = 13
SIG_LENGTH: constant(uint256) = 65
# Field indexes of the two signatures and the two owners.
SIG1: constant(uint256) = 3
SIG2: constant(uint256) = 7
OWNER1: constant(uint256) = 8
OWNER2: constant(uint256) = 10
_ADDRESS_LENGTH: constant(uint256) = 20
_WORD: constant(uint256) = 32


@internal
@pure
def _decode(tx_bytes: Bytes[MAX_TX_BYTES]) -> uint256[FIELDS]:
    """
    @dev Parses the 13-field RLP list and refuses anything else.
    @param tx_bytes The transaction's RLP.
    @return Integers as values, owners as the uint256 of the address, and each
            signature as its byte offset in `tx_bytes`.
    """
    return self._decode_first(tx_bytes, FIELDS)


@internal
@pure
def _decode_first(tx_bytes: Bytes[MAX_TX_BYTES], count: uint256) -> uint256[FIELDS]:
    """
    @dev Checks the list header and parses only the first `count` fields (the rest are
         zero): a caller that needs one input of a transaction bound by other proofs (an
         inclusion proof and a confirm signature) skips the cost of the others.
    @param tx_bytes The transaction's RLP.
    @param count How many fields to parse (FIELDS for all, which also checks the list ends).
    @return The fields as `_decode` returns them, zero past `count`.
    """
    n: uint256 = len(tx_bytes)
    buf: Bytes[MAX_TX_BYTES + _WORD] = concat(tx_bytes, empty(bytes32))
    head: uint256 = extract32(buf, 0, output_type=uint256)
    prefix: uint256 = head >> 248
    pos: uint256 = 1
    valid: bool = prefix >= 192
    payload: uint256 = 0
    if prefix >= 248:
        length_bytes: uint256 = prefix - 247
        valid = length_bytes <= 2
        payload = (head >> (248 - 8 * length_bytes)) & ((1 << (8 * length_bytes)) - 1)
        pos += length_bytes
    elif valid:
        payload = prefix - 192
    assert valid and n != 0 and pos + payload == n, "plasma: malformed transaction"

    fields: uint256[FIELDS] = empty(uint256[FIELDS])
    for i: uint256 in range(FIELDS):
        if i == count:
            break
        # pos <= n here (< n after the first field), and buf's zero padding keeps this read in bounds.
        word: uint256 = extract32(buf, pos, output_type=uint256)
        prefix = word >> 248
        start: uint256 = pos + 1
        length: uint256 = n  # a list or long-string prefix: runs past the end, so malformed
        if prefix < 128:
            start = pos
            length = 1
        elif prefix <= 183:
            length = prefix - 128
        elif prefix == 184:
            length = (word >> 240) & 255
            start = pos + 2
        pos = start + length
        # Every field but the last must leave bytes for the next; the last must end the list.
        assert pos <= n and (pos == n) == (i == FIELDS - 1), "plasma: malformed transaction"
        if i == SIG1 or i == SIG2:
            assert length == SIG_LENGTH and prefix == 184, "plasma: signature must be 65 bytes"
            fields[i] = start
        elif i == OWNER1 or i == OWNER2:
            assert length == _ADDRESS_LENGTH, "plasma: owner must be 20 bytes"
            fields[i] = extract32(buf, start, output_type=uint256) >> 96
        else:
            assert length <= _WORD, "plasma: integer too long"
            if length != 0:
                fields[i] = extract32(buf, start, output_type=uint256) >> (256 - 8 * length)
    return fields
