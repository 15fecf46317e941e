# pragma version ~=0.4.3
"""
@title Packed 4-ary min-heap with lazy deletion
@custom:contract-name priority_queue
@license MIT
@notice A min-heap of non-zero 64-bit keys. Removal from the middle is lazy:
        the caller keeps its own record of which keys are dead (the root
        chain's challenged exits), counts them here with `_discard`, and
        pops a dead key when it reaches the top. No position index is kept,
        so a sift moves keys without touching any per-key slot.
@dev Storage layout, chosen for gas (docs/gas/plasma.md):
     - 0-based positions, children of node i at 4i+1 .. 4i+4, which is
       exactly storage word i of `_heap` (four 64-bit lanes): a sift-down
       level reads all four children with one SLOAD, and a heap of 10,000
       keys is 7 levels deep instead of 14;
     - the root key, the size and the dead count share the word `_meta`,
       so reading the top costs the same SLOAD as reading the size.
     Keys need not be unique here; the root chain never inserts an exit
     id twice (its exit record is never cleared).
"""

MAX_KEY: constant(uint256) = 2**64 - 1
_LANE_BITS: constant(uint256) = 64
_ARITY: constant(uint256) = 4
_MASK_64: constant(uint256) = 2**64 - 1
_SIZE_SHIFT: constant(uint256) = 64
_DEAD_SHIFT: constant(uint256) = 128
# A 4-ary heap this deep holds 4**32 keys, far beyond any gas limit; the bound only satisfies the compiler.
_MAX_DEPTH: constant(uint256) = 32

# root key | size << 64 | dead << 128
_meta: uint256
# Word i: the children of node i, lane j (bits 64j..64j+63) = position 4i+1+j.
_heap: HashMap[uint256, uint256]


@deploy
def __init__():
    pass


@internal
@view
def _read(pos: uint256) -> uint256:
    """
    @dev The key at 0-based position `pos` (0 past the end of a lane that was never written).
    @param pos A heap position.
    @return The key.
    """
    if pos == 0:
        return self._meta & _MASK_64
    p: uint256 = pos - 1
    return (self._heap[p >> 2] >> ((p & 3) * _LANE_BITS)) & _MASK_64


@internal
def _write_lane(pos: uint256, key: uint256):
    # pos >= 1: lane (pos - 1) & 3 of word (pos - 1) >> 2.
    p: uint256 = pos - 1
    lane_shift: uint256 = (p & 3) * _LANE_BITS
    word: uint256 = self._heap[p >> 2]
    self._heap[p >> 2] = (word & ~(_MASK_64 << lane_shift)) | (key << lane_shift)


@internal
@pure
def _set_lane(word: uint256, pos: uint256, key: uint256) -> uint256:
    # `word` with position pos's lane (pos >= 1) set to `key`.
    lane_shift: uint256 = ((pos - 1) & 3) * _LANE_BITS
    return (word & ~(_MASK_64 << lane_shift)) | (key << lane_shift)


@internal
@view
def _size_of() -> uint256:
    """
    @dev Number of keys in the heap, dead ones included.
    @return The size.
    """
    return (self._meta >> _SIZE_SHIFT) & _MASK_64


@internal
@view
def _live_size() -> uint256:
    """
    @dev Number of keys not counted dead by `_discard`.
    @return The live size.
    """
    meta: uint256 = self._meta
    return ((meta >> _SIZE_SHIFT) & _MASK_64) - (meta >> _DEAD_SHIFT)


@internal
@view
def _top() -> uint256:
    """
    @dev Smallest key, dead or not; reverts on an empty heap.
    @return The key.
    """
    meta: uint256 = self._meta
    assert (meta >> _SIZE_SHIFT) & _MASK_64 != 0, "priority_queue: empty"
    return meta & _MASK_64


@internal
def _discard():
    """
    @dev Counts one key still in the heap as dead (the caller remembers which one);
         it leaves the heap when `_pop(True)` takes it from the top.
    """
    # No check here (bytecode: the root chain is near EIP-170): the caller discards only keys it
    # knows are in the heap and live; `_live_size` would revert on more dead keys than keys.
    self._meta += 1 << _DEAD_SHIFT


@internal
def _insert(key: uint256):
    """
    @dev Adds `key` (a sift-up); refuses 0 and keys above MAX_KEY.
    @param key The key.
    """
    assert key != 0 and key <= MAX_KEY, "priority_queue: bad key"
    meta: uint256 = self._meta
    size: uint256 = (meta >> _SIZE_SHIFT) & _MASK_64
    root: uint256 = meta & _MASK_64
    pos: uint256 = size
    for _: uint256 in range(_MAX_DEPTH):
        if pos == 0:
            break
        parent: uint256 = (pos - 1) >> 2
        parent_key: uint256 = root
        if parent != 0:
            parent_key = self._read(parent)
        if parent_key <= key:
            break
        self._write_lane(pos, parent_key)
        pos = parent
    if pos == 0:
        root = key
    else:
        self._write_lane(pos, key)
    # size + 1 cannot carry into the dead count: 2**64 keys are beyond any gas budget.
    self._meta = ((meta & ~_MASK_64) + (1 << _SIZE_SHIFT)) | root


@internal
def _pop(dead: bool) -> uint256:
    """
    @dev Removes the smallest key (a sift-down of the last key from the root).
    @param dead Whether the caller counted this key dead with `_discard`.
    @return The key.
    """
    meta: uint256 = self._meta
    size: uint256 = (meta >> _SIZE_SHIFT) & _MASK_64
    assert size != 0, "priority_queue: empty"
    top: uint256 = meta & _MASK_64
    dead_count: uint256 = meta >> _DEAD_SHIFT
    if dead:
        dead_count -= 1  # checked arithmetic: reverts when no key was discarded
    size -= 1
    root: uint256 = 0
    if size != 0:
        # Take the last key out of its lane, then sift it down from the root.
        p: uint256 = size - 1
        lane_shift: uint256 = (p & 3) * _LANE_BITS
        word: uint256 = self._heap[p >> 2]
        last: uint256 = (word >> lane_shift) & _MASK_64
        self._heap[p >> 2] = word & ~(_MASK_64 << lane_shift)
        # The hole starts at the root; `hole_word` is the storage word holding the hole's lane,
        # read one level up and not written since, so moving a key into it needs no second SLOAD.
        pos: uint256 = 0
        hole_word: uint256 = 0
        for _: uint256 in range(_MAX_DEPTH):
            first: uint256 = pos * _ARITY + 1
            if first >= size:
                break
            children: uint256 = self._heap[pos]
            # Lanes past the end hold 0 (never written, or cleared by a pop): k - 1 wraps them to the
            # largest value, so the smallest of the four needs no bound checks.
            best: uint256 = unsafe_sub(children & _MASK_64, 1)
            lane: uint256 = 0
            candidate: uint256 = unsafe_sub((children >> 64) & _MASK_64, 1)
            if candidate < best:
                best = candidate
                lane = 1
            candidate = unsafe_sub((children >> 128) & _MASK_64, 1)
            if candidate < best:
                best = candidate
                lane = 2
            candidate = unsafe_sub(children >> 192, 1)
            if candidate < best:
                best = candidate
                lane = 3
            # first < size, so lane 0 holds a key and best + 1 is a key.
            best = unsafe_add(best, 1)
            if best >= last:
                break
            if pos == 0:
                root = best
            else:
                self._heap[(pos - 1) >> 2] = self._set_lane(hole_word, pos, best)
            pos = first + lane
            hole_word = children
        if pos == 0:
            root = last
        else:
            self._heap[(pos - 1) >> 2] = self._set_lane(hole_word, pos, last)
    self._meta = root | (size << _SIZE_SHIFT) | (dead_count << _DEAD_SHIFT)
    return top
