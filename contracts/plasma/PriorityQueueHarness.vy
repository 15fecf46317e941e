# pragma version ~=0.4.3
"""
@title Priority queue harness
@custom:contract-name PriorityQueueHarness
@license MIT
@notice Exposes the `priority_queue` module for its unit tests and gas
        benchmarks. Not deployed by the deploy script.
"""

from . import priority_queue

initializes: priority_queue


event Inserted:
    key: indexed(uint256)
    payload: uint256


event Removed:
    key: indexed(uint256)
    payload: uint256


@deploy
def __init__():
    priority_queue.__init__()


@external
def insert(key: uint256, payload: uint256):
    """
    @notice Adds `key` carrying `payload`.
    @param key A unique non-zero key below 2**128.
    @param payload Caller data below 2**224.
    """
    priority_queue._insert(key, payload)
    log Inserted(key=key, payload=payload)


@external
def insertMany(first: uint256, count: uint256, step: uint256):
    """
    @notice Adds keys first, first + step, ... (count of them) to fill the heap quickly.
    @param first The first key.
    @param count How many keys (at most 500 per call).
    @param step The distance between keys.
    """
    for i: uint256 in range(count, bound=500):
        priority_queue._insert(first + i * step, i)


@external
def remove(key: uint256) -> uint256:
    """
    @notice Removes `key` from anywhere in the heap.
    @param key A key in the heap.
    @return The key's payload.
    """
    payload: uint256 = priority_queue._remove(key)
    log Removed(key=key, payload=payload)
    return payload


@external
def pop() -> (uint256, uint256):
    """
    @notice Removes the smallest key.
    @return The key and its payload.
    """
    key: uint256 = 0
    payload: uint256 = 0
    key, payload = priority_queue._pop()
    log Removed(key=key, payload=payload)
    return key, payload


@external
@view
def top() -> uint256:
    """
    @notice The smallest key; reverts when empty.
    """
    return priority_queue._top()


@external
@view
def size() -> uint256:
    """
    @notice Number of keys in the heap.
    """
    return priority_queue._size_of()


@external
@view
def contains(key: uint256) -> bool:
    """
    @notice Whether `key` is in the heap.
    """
    return priority_queue._contains(key)


@external
@view
def payloadOf(key: uint256) -> uint256:
    """
    @notice The payload stored with `key` (0 when absent).
    """
    return priority_queue._payload(key)


@external
@view
def at(pos: uint256) -> uint256:
    """
    @notice The key at 1-based heap position `pos` (0 past the end), for invariant checks.
    """
    return priority_queue._read(pos)


@external
@view
def positionOf(key: uint256) -> uint256:
    """
    @notice The 1-based heap position of `key` (0 when absent), for invariant checks.
    """
    return priority_queue._index[key] & 2**32 - 1


@external
@view
def entries() -> DynArray[uint256[3], 256]:
    """
    @notice [key, indexed position, payload] for heap positions 1..size (first 256), for invariant checks.
    """
    result: DynArray[uint256[3], 256] = []
    for pos: uint256 in range(1, 257):
        if pos > priority_queue._size_of():
            break
        key: uint256 = priority_queue._read(pos)
        result.append([key, priority_queue._index[key] & 2**32 - 1, priority_queue._payload(key)])
    return result
