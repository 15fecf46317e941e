# pragma version ~=0.4.3
"""
@title Plasma codec harness
@custom:contract-name PlasmaCodecHarness
@license MIT
@notice Exposes the stateless modules plasma_rlp, plasma_tx and plasma_merkle
        for their unit tests (against plasma_core.wire). Not deployed by
        the deploy script.
"""

from ..plasma import plasma_merkle
from ..plasma import plasma_rlp
from ..plasma import plasma_tx


@external
@pure
def decode(txBytes: Bytes[plasma_rlp.MAX_TX_BYTES]) -> uint256[plasma_rlp.FIELDS]:
    """
    @notice Decodes a 13-field Plasma transaction.
    @param txBytes The transaction's RLP.
    @return Its fields, signatures as byte offsets.
    """
    return plasma_rlp._decode(txBytes)


@external
@pure
def signingHash(txBytes: Bytes[plasma_rlp.MAX_TX_BYTES]) -> bytes32:
    """
    @notice The hash each input owner signs.
    @param txBytes The transaction's RLP.
    @return keccak256 of the 11-field RLP.
    """
    return plasma_tx._signing_hash(txBytes, plasma_rlp._decode(txBytes))


@external
@pure
def signerOf(txBytes: Bytes[plasma_rlp.MAX_TX_BYTES], slot: uint256) -> address:
    """
    @notice The signer of input `slot`'s signature over the signing hash.
    @param txBytes The transaction's RLP.
    @param slot 0 or 1.
    @return The recovered signer.
    """
    fields: uint256[plasma_rlp.FIELDS] = plasma_rlp._decode(txBytes)
    offset: uint256 = fields[plasma_rlp.SIG1]
    if slot == 1:
        offset = fields[plasma_rlp.SIG2]
    return plasma_tx._recover(plasma_tx._signing_hash(txBytes, fields), txBytes, offset)


@external
@pure
def rootFromProof(leaf: bytes32, index: uint256, proof: Bytes[plasma_merkle.PROOF_LENGTH]) -> bytes32:
    """
    @notice The positional Merkle root from a leaf, its index and its proof.
    @param leaf The leaf hash.
    @param index Its position.
    @param proof 16 x 32-byte siblings.
    @return The root.
    """
    return plasma_merkle._root_from_proof(leaf, index, proof)


@external
@pure
def depositLeaf(owner: address, amount: uint256) -> bytes32:
    """
    @notice The leaf of a deposit transaction the root chain computes itself.
    @param owner The depositor.
    @param amount The deposit (< 2**96).
    @return keccak256 of its 13-field RLP.
    """
    return plasma_tx._deposit_leaf(convert(owner, uint256) | (amount << 160))
