# pragma version ~=0.4.3
"""
@title Priority queue harness
@custom:contract-name PriorityQueueHarness
@license MIT
@notice Exposes the `priority_queue` module for its unit tests and gas
        benchmarks. Keeps its own dead set the way the root chain does
        (its challenged exits), so `discard` and `pop` skip dead keys.
        Not deployed by the deploy script.
"""

from ..plasma import priority_queue

initializes: priority_queue


event Inserted:
    key: indexed(uint256)


event Discarded:
    key: indexed(uint256)


event Popped:
    key: indexed(uint256)


# key -> number of its copies counted dead and not yet popped
_dead: HashMap[uint256, uint256]


@deploy
def __init__():
    priority_queue.__init__()


@external
def insert(key: uint256):
    """
    @notice Adds `key`.
    @param key A non-zero key below 2**64.
    """
    priority_queue._insert(key)
    log Inserted(key=key)


@external
def insertMany(first: uint256, count: uint256, step: uint256):
    """
    @notice Adds keys first, first + step, ... (count of them) to fill the heap quickly.
    @param first The first key.
    @param count How many keys (at most 500 per call).
    @param step The distance between keys.
    """
    for i: uint256 in range(count, bound=500):
        priority_queue._insert(first + i * step)


@external
def discard(key: uint256):
    """
    @notice Marks one copy of `key` dead (lazy removal: it leaves when it reaches the top).
    @dev The harness trusts the caller that `key` is in the heap, as the root chain knows its exits.
    @param key A key in the heap.
    """
    self._dead[key] += 1
    priority_queue._discard()
    log Discarded(key=key)


@external
def pop() -> uint256:
    """
    @notice Removes dead keys from the top, then the smallest live key.
    @return The smallest live key.
    """
    for _: uint256 in range(1000):
        key: uint256 = priority_queue._top()
        if self._dead[key] == 0:
            break
        self._dead[key] -= 1
        priority_queue._pop(True)
    key: uint256 = priority_queue._pop(False)
    log Popped(key=key)
    return key


@external
def popRaw(dead: bool) -> uint256:
    """
    @notice Removes the top key as it is, telling the heap whether it was counted dead.
    @param dead Whether the top was discarded.
    @return The key.
    """
    key: uint256 = priority_queue._pop(dead)
    log Popped(key=key)
    return key


@external
@view
def top() -> uint256:
    """
    @notice The smallest key, dead or not; reverts when empty.
    @return The key.
    """
    return priority_queue._top()


@external
@view
def size() -> uint256:
    """
    @notice Number of keys in the heap, dead ones included.
    @return The size.
    """
    return priority_queue._size_of()


@external
@view
def liveSize() -> uint256:
    """
    @notice Number of keys not discarded.
    @return The live size.
    """
    return priority_queue._live_size()


@external
@view
def at(pos: uint256) -> uint256:
    """
    @notice The key at 0-based heap position `pos` (0 past the end), for invariant checks.
    @param pos A heap position.
    @return The key.
    """
    return priority_queue._read(pos)


@external
@view
def keys() -> DynArray[uint256, 1024]:
    """
    @notice Keys at positions 0..size-1 (first 1024), for invariant checks.
    @return The keys in heap order.
    """
    result: DynArray[uint256, 1024] = []
    for pos: uint256 in range(1024):
        if pos >= priority_queue._size_of():
            break
        result.append(priority_queue._read(pos))
    return result
