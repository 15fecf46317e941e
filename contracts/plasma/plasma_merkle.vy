# pragma version ~=0.4.3
"""
@title Positional Merkle root of a Plasma block
@custom:contract-name plasma_merkle
@license MIT
@notice Stateless: the root of a depth-16 tree (65,536 leaves, unfilled
        leaves bytes32(0), node = keccak256(left || right)) from a leaf, its
        index and a 16 x 32-byte proof, sibling of level 0 first; bit d of
        the index says the sibling at level d is on the left.
@dev The tree is positional: snekmate's `merkle_proof_verification` hashes
     sorted pairs and does not fit it.
"""

TREE_DEPTH: constant(uint256) = 16
MAX_LEAVES: constant(uint256) = 2**TREE_DEPTH
PROOF_LENGTH: constant(uint256) = 32 * TREE_DEPTH

# keccak256 of an all-zero subtree of height i (the tree's empty leaves are bytes32(0)).
_ZERO_HASHES: constant(bytes32[TREE_DEPTH]) = [
    0x0000000000000000000000000000000000000000000000000000000000000000,
    0xad3228b676f7d3cd4284a5443f17f1962b36e491b30a40b2405849e597ba5fb5,
    0xb4c11951957c6f8f642c4af61cd6b24640fec6dc7fc607ee8206a99e92410d30,
    0x21ddb9a356815c3fac1026b6dec5df3124afbadb485c9ba5a3e3398a04b7ba85,
    0xe58769b32a1beaf1ea27375a44095a0d1fb664ce2dd358e7fcbfb78c26a19344,
    0x0eb01ebfc9ed27500cd4dfc979272d1f0913cc9f66540d7e8005811109e1cf2d,
    0x887c22bd8750d34016ac3c66b5ff102dacdd73f6b014e710b51e8022af9a1968,
    0xffd70157e48063fc33c97a050f7f640233bf646cc98d9524c6b92bcf3ab56f83,
    0x9867cc5f7f196b93bae1e27e6320742445d290f2263827498b54fec539f756af,
    0xcefad4e508c098b9a7e1d8feb19955fb02ba9675585078710969d3440f5054e0,
    0xf9dc3e7fe016e050eff260334f18a5d4fe391d82092319f5964f2e2eb7c1c3a5,
    0xf8b13a49e282f609c317a833fb8d976d11517c571d1221a265d25af778ecf892,
    0x3490c6ceeb450aecdc82e28293031d10c7d73bf85e57bf041a97360aa2c5d99c,
    0xc1df82d9c4b87413eae2ef048f94b4d3554cea73d92b0f7af96e0271c691e2bb,
    0x5c67add7c6caf302256adedf7ab114da0acfe870d449a3a489f781d659e8becc,
    0xda7bce9f4e8618b6bd2f4132ce798cdc7a60e7e1460a7299e3c6342a579626d2,
]


@internal
@pure
def _root_from_proof(leaf: bytes32, index: uint256, proof: Bytes[PROOF_LENGTH]) -> bytes32:
    """
    @dev Folds `proof` into the root of the tree holding `leaf` at `index`.
    @param leaf The leaf hash.
    @param index Its position (< 2**16).
    @param proof 16 x 32-byte siblings, level 0 first.
    @return The root; the caller compares it with the stored one.
    """
    assert len(proof) == PROOF_LENGTH, "plasma: proof must be 16 x 32 bytes"
    assert index < MAX_LEAVES, "plasma: txindex out of range"
    # One copy into a static array (the length is exact): indexing it is cheaper than extract32.
    siblings: bytes32[TREE_DEPTH] = abi_decode(proof, bytes32[TREE_DEPTH])
    node: bytes32 = leaf
    bits: uint256 = index
    for sibling: bytes32 in siblings:
        if bits & 1 == 0:
            node = keccak256(concat(node, sibling))
        else:
            node = keccak256(concat(sibling, node))
        bits >>= 1
    return node


@internal
@pure
def _root_of_first_leaf(leaf: bytes32) -> bytes32:
    """
    @dev Root of a tree whose only non-empty leaf is `leaf` at index 0 (a deposit block).
    @param leaf The leaf hash.
    @return The root.
    """
    node: bytes32 = leaf
    for d: uint256 in range(TREE_DEPTH):
        node = keccak256(concat(node, _ZERO_HASHES[d]))
    return node
