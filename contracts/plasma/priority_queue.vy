# pragma version ~=0.4.3
"""
@title Indexed binary min-heap
@custom:contract-name priority_queue
@license MIT
@notice A binary min-heap of unique uint128 keys that supports removal of
        any key in O(log n) without tombstones: an index map holds each
        key's heap position. Each key also carries a caller-defined payload
        (< 2**224) stored beside its position, so the root chain keeps an
        exit's maturity time without a storage slot of its own.
@dev Storage layout, chosen for gas:
     - positions are 1-based; the two children of node i (2i and 2i+1) share
       storage word i of `_heap` (low and high 128 bits), so a sift-down
       reads both children with one SLOAD;
     - `_index[key]` = payload << 32 | position (position 0 = absent).
     Keys must be unique and non-zero: inserting a key already present is
     refused (an exit id names one output, which exits at most once).
"""

_MASK_128: constant(uint256) = 2**128 - 1
_MASK_32: constant(uint256) = 2**32 - 1
_MAX_KEY: constant(uint256) = 2**128 - 1
_MAX_PAYLOAD: constant(uint256) = 2**224 - 1
# A heap this deep is far beyond any gas limit; the bound only satisfies the compiler.
_MAX_DEPTH: constant(uint256) = 32

_heap: HashMap[uint256, uint256]
_index: HashMap[uint256, uint256]
_size: uint256


@deploy
def __init__():
    pass


@internal
@view
def _read(pos: uint256) -> uint256:
    word: uint256 = self._heap[pos >> 1]
    if pos & 1 == 1:
        return word >> 128
    return word & _MASK_128


@internal
def _write(pos: uint256, key: uint256):
    slot: uint256 = pos >> 1
    word: uint256 = self._heap[slot]
    if pos & 1 == 1:
        self._heap[slot] = (word & _MASK_128) | (key << 128)
    else:
        self._heap[slot] = (word & (_MASK_128 << 128)) | key


@internal
def _place(pos: uint256, key: uint256):
    # Move `key` to `pos` and keep its payload.
    self._write(pos, key)
    self._index[key] = (self._index[key] & ~_MASK_32) | pos


@internal
def _sift_up(start: uint256, key: uint256) -> uint256:
    pos: uint256 = start
    for _: uint256 in range(_MAX_DEPTH):
        if pos <= 1:
            break
        parent: uint256 = pos >> 1
        parent_key: uint256 = self._read(parent)
        if parent_key <= key:
            break
        self._place(pos, parent_key)
        pos = parent
    return pos


@internal
def _sift_down(start: uint256, key: uint256, size: uint256) -> uint256:
    pos: uint256 = start
    for _: uint256 in range(_MAX_DEPTH):
        child: uint256 = pos << 1
        if child > size:
            break
        # Both children live in word `pos`.
        word: uint256 = self._heap[pos]
        child_key: uint256 = word & _MASK_128
        if child < size:
            right: uint256 = word >> 128
            if right < child_key:
                child_key = right
                child += 1
        if child_key >= key:
            break
        self._place(pos, child_key)
        pos = child
    return pos


@internal
@view
def _contains(key: uint256) -> bool:
    return self._index[key] & _MASK_32 != 0


@internal
@view
def _payload(key: uint256) -> uint256:
    return self._index[key] >> 32


@internal
@view
def _size_of() -> uint256:
    return self._size


@internal
@view
def _top() -> uint256:
    """
    @dev Smallest key; reverts on an empty heap.
    """
    assert self._size != 0, "priority_queue: empty"
    return self._heap[0] >> 128


@internal
def _insert(key: uint256, payload: uint256):
    """
    @dev Adds `key` with `payload`; refuses 0, keys >= 2**128, payloads >= 2**224 and duplicates.
    """
    assert key != 0 and key <= _MAX_KEY, "priority_queue: bad key"
    assert payload <= _MAX_PAYLOAD, "priority_queue: bad payload"
    assert self._index[key] == 0, "priority_queue: duplicate key"
    size: uint256 = self._size + 1
    self._size = size
    pos: uint256 = self._sift_up(size, key)
    self._write(pos, key)
    self._index[key] = (payload << 32) | pos


@internal
def _remove(key: uint256) -> uint256:
    """
    @dev Removes `key` from anywhere in the heap and returns its payload.
    """
    entry: uint256 = self._index[key]
    pos: uint256 = entry & _MASK_32
    assert pos != 0, "priority_queue: missing key"
    self._index[key] = 0
    size: uint256 = self._size
    last: uint256 = self._read(size)
    self._write(size, 0)
    size -= 1
    self._size = size
    if pos <= size:
        # Refill the hole with the last key, then restore order in the one direction it can break.
        new_pos: uint256 = pos
        if pos > 1 and self._read(pos >> 1) > last:
            new_pos = self._sift_up(pos, last)
        else:
            new_pos = self._sift_down(pos, last, size)
        self._place(new_pos, last)
    return entry >> 32


@internal
def _pop() -> (uint256, uint256):
    """
    @dev Removes the smallest key; returns (key, payload).
    """
    key: uint256 = self._top()
    return key, self._remove(key)
