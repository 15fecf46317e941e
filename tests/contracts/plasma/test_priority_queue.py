"""The packed 4-ary min-heap with lazy deletion (contracts/plasma/priority_queue.vy) through its harness."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from dccn_common.contracts import transact
from tests.contracts.plasma.world import deployers

ANCHOR_HEAP_POP_AT_1000 = 144_832
# Issue 16: every heap operation at 10,000 keys stays below this (whole transaction).
GOAL_AT_10000 = 150_000
GAS_CEILING = 400_000
MAX_KEY = 2**64 - 1


@pytest.fixture
def heap(isolated: None) -> Any:
    return deployers()["PriorityQueueHarness"].deploy()


def _assert_heap_order(heap: Any, expected: Counter[int]) -> None:
    """Every node is at most each of its four children, and the heap holds exactly `expected`."""
    keys = heap.keys()
    assert heap.size() == len(keys) == sum(expected.values())
    assert Counter(keys) == expected
    for pos in range(1, len(keys)):
        assert keys[(pos - 1) // 4] <= keys[pos]
    assert heap.at(len(keys)) == 0 or len(keys) == 0


def test_pop__returns_keys_in_ascending_order(heap: Any) -> None:
    keys = [50, 10, 40, 30, 20, 60, 5, 70, 1, 90, 80]
    for key in keys:
        heap.insert(key)
    assert [heap.pop() for _ in keys] == sorted(keys)
    assert heap.size() == 0


def test_children__of_node_i_share_storage_word_i(heap: Any) -> None:
    # Root at position 0, its children at 1..4, node 1's children at 5..8: a sift level reads one word.
    for key in range(1, 10):
        heap.insert(key)
    assert [heap.at(pos) for pos in range(9)] == list(range(1, 10))


def test_discard__dead_keys_leave_when_they_reach_the_top(heap: Any) -> None:
    keys = list(range(10, 160, 10))
    for key in keys:
        heap.insert(key)
    for victim in (10, 150, 70, 40):  # root, last, middle, inner
        heap.discard(victim)
        keys.remove(victim)
    assert heap.liveSize() == len(keys) and heap.size() == len(keys) + 4
    assert [heap.pop() for _ in keys] == sorted(keys)
    # The dead 150 was never on top of a live key: it is still there, counted dead.
    assert heap.size() == 1 and heap.liveSize() == 0
    assert heap.popRaw(True) == 150 and heap.size() == 0


def test_duplicate_keys__both_copies_pop(heap: Any) -> None:
    # The root chain never inserts an exit id twice; the heap itself is a multiset.
    for key in (7, 3, 7):
        heap.insert(key)
    assert [heap.pop() for _ in range(3)] == [3, 7, 7]


@pytest.mark.parametrize("key", [0, MAX_KEY + 1])
def test_insert__zero_or_oversized_key_is_refused(heap: Any, key: int) -> None:
    with boa.reverts("priority_queue: bad key"):
        heap.insert(key)


def test_insert__largest_key_is_accepted(heap: Any) -> None:
    heap.insert(MAX_KEY)
    heap.insert(1)
    assert (heap.pop(), heap.pop()) == (1, MAX_KEY)


def test_pop_and_top__empty_heap_revert(heap: Any) -> None:
    with boa.reverts("priority_queue: empty"):
        heap.top()
    with boa.reverts("priority_queue: empty"):
        heap.popRaw(False)


def test_pop_dead__without_a_discard_is_refused(heap: Any) -> None:
    heap.insert(5)
    with boa.reverts():
        heap.popRaw(True)
    assert heap.size() == 1


@given(st.lists(st.integers(min_value=1, max_value=MAX_KEY), unique=True, min_size=1, max_size=40), st.data())
@settings(max_examples=15)
def test_order_property__pops_sorted_after_random_discards(
    isolated: None, keys: list[int], data: st.DataObject
) -> None:
    with boa.env.anchor():
        heap = deployers()["PriorityQueueHarness"].deploy()
        for key in keys:
            heap.insert(key)
        removed = data.draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys)))
        for key in removed:
            heap.discard(key)
        remaining = sorted(set(keys) - set(removed))
        assert heap.liveSize() == len(remaining)
        assert [heap.pop() for _ in remaining] == remaining


class HeapMachine(RuleBasedStateMachine):
    """Random inserts, lazy discards anywhere and pops against a multiset model."""

    def __init__(self) -> None:
        super().__init__()
        self._anchor: Iterator[None] | None = None
        self.live: Counter[int] = Counter()
        self.dead: Counter[int] = Counter()

    @initialize()
    def deploy(self) -> None:
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        self.heap = deployers()["PriorityQueueHarness"].deploy()

    def teardown(self) -> None:
        if self._anchor is not None:
            self._anchor.__exit__(None, None, None)

    @rule(key=st.integers(min_value=1, max_value=10**12))
    def insert(self, key: int) -> None:
        self.heap.insert(key)
        self.live[key] += 1

    @precondition(lambda self: +self.live)
    @rule(data=st.data())
    def discard_any(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(+self.live)))
        self.heap.discard(key)
        self.live[key] -= 1
        self.dead[key] += 1

    @precondition(lambda self: +self.live)
    @rule()
    def pop(self) -> None:
        smallest = min(+self.live)
        # Dead copies of keys below the smallest live one are popped on the way.
        for key in [k for k in +self.dead if k <= smallest]:
            del self.dead[key]
        assert self.heap.pop() == smallest
        self.live[smallest] -= 1

    @invariant()
    def order_and_counts_hold(self) -> None:
        _assert_heap_order(self.heap, +self.live + +self.dead)
        assert self.heap.liveSize() == sum((+self.live).values())


TestHeapMachine = HeapMachine.TestCase


# -- worst-case gas on a real node -----------------------------------------------------------------

def _fill(w3: Any, heap: Any, sender: str, count: int, first: int = 10**9, step: int = 10) -> None:
    for start in range(0, count, 250):
        batch = min(250, count - start)
        transact(w3, heap.functions.insertMany(first + start * step, batch, step), sender=sender)


@pytest.mark.anvil
@pytest.mark.parametrize("size", [1, 1000, 3000])
def test_worst_case_gas__insert_and_pops_stay_bounded(w3: Any, create_contract: Any, roles: Any,
                                                      size: int) -> None:
    sender = roles.deployer.address
    heap = create_contract("PriorityQueueHarness")
    _fill(w3, heap, sender, size)
    # A key smaller than all climbs from the bottom to the root: the longest sift-up.
    insert_gas = transact(w3, heap.functions.insert(1), sender=sender)["gasUsed"]
    # Popping the root moves the last (largest) key down the whole height: the longest sift-down.
    pop_gas = transact(w3, heap.functions.pop(), sender=sender)["gasUsed"]
    middle = heap.functions.at(max(1, (size + 1) // 2)).call()
    discard_gas = transact(w3, heap.functions.discard(middle), sender=sender)["gasUsed"]
    assert max(insert_gas, pop_gas, discard_gas) < GAS_CEILING
    if size >= 1000:
        assert pop_gas < ANCHOR_HEAP_POP_AT_1000
        assert max(insert_gas, pop_gas) < GOAL_AT_10000
