"""The indexed binary min-heap (contracts/plasma/priority_queue.vy) through its harness contract."""

from __future__ import annotations

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
GAS_CEILING = 400_000


@pytest.fixture
def heap(isolated: None) -> Any:
    return deployers()["PriorityQueueHarness"].deploy()


def _assert_consistent(heap: Any, expected: dict[int, int]) -> None:
    """Heap order holds at every node and the index map agrees with the positions."""
    assert heap.size() == len(expected)
    entries = heap.entries()
    assert {key: payload for key, _, payload in entries} == expected
    for pos, (key, indexed_pos, _) in enumerate(entries, start=1):
        assert indexed_pos == pos
        if pos > 1:
            assert entries[pos // 2 - 1][0] <= key
    assert heap.at(len(expected) + 1) == 0


def test_pop__returns_keys_in_ascending_order_with_payloads(heap: Any) -> None:
    keys = [50, 10, 40, 30, 20, 60, 5]
    for key in keys:
        heap.insert(key, key * 3)
    popped = [heap.pop() for _ in keys]
    assert popped == [(key, key * 3) for key in sorted(keys)]
    assert heap.size() == 0


def test_remove__any_position_keeps_order(heap: Any) -> None:
    keys = list(range(10, 160, 10))
    for key in keys:
        heap.insert(key, 1)
    for victim in (10, 150, 70, 40):  # root, last, middle, inner
        assert heap.remove(victim) == 1
        keys.remove(victim)
        _assert_consistent(heap, dict.fromkeys(keys, 1))
    assert [heap.pop()[0] for _ in keys] == sorted(keys)


def test_remove__refill_from_last_that_must_sift_up(heap: Any) -> None:
    # Removing a deep node in one subtree and refilling from the other subtree's smaller last key.
    for key in (1, 100, 2, 101, 102, 3, 4):
        heap.insert(key, 0)
    heap.remove(101)
    _assert_consistent(heap, dict.fromkeys([1, 100, 2, 102, 3, 4], 0))
    assert heap.top() == 1


def test_delete_then_insert__same_key_is_accepted_again(heap: Any) -> None:
    for key in (7, 3, 9):
        heap.insert(key, key)
    heap.remove(3)
    assert not heap.contains(3)
    heap.insert(3, 33)
    assert heap.top() == 3 and heap.payloadOf(3) == 33
    _assert_consistent(heap, {7: 7, 9: 9, 3: 33})


def test_insert__duplicate_key_is_refused(heap: Any) -> None:
    heap.insert(42, 1)
    with boa.reverts("priority_queue: duplicate key"):
        heap.insert(42, 2)
    assert heap.size() == 1 and heap.payloadOf(42) == 1


@pytest.mark.parametrize("key", [0, 2**128])
def test_insert__zero_or_oversized_key_is_refused(heap: Any, key: int) -> None:
    with boa.reverts("priority_queue: bad key"):
        heap.insert(key, 0)


def test_insert__oversized_payload_is_refused(heap: Any) -> None:
    with boa.reverts("priority_queue: bad payload"):
        heap.insert(1, 2**224)


def test_pop_and_top__empty_heap_revert(heap: Any) -> None:
    with boa.reverts("priority_queue: empty"):
        heap.top()
    with boa.reverts("priority_queue: empty"):
        heap.pop()


def test_remove__missing_key_is_refused(heap: Any) -> None:
    heap.insert(5, 0)
    heap.pop()
    with boa.reverts("priority_queue: missing key"):
        heap.remove(5)


@given(st.lists(st.integers(min_value=1, max_value=2**128 - 1), unique=True, min_size=1, max_size=40), st.data())
@settings(max_examples=15)
def test_order_property__pops_sorted_after_random_removals(
    isolated: None, keys: list[int], data: st.DataObject
) -> None:
    with boa.env.anchor():
        heap = deployers()["PriorityQueueHarness"].deploy()
        for key in keys:
            heap.insert(key, key % 1000)
        removed = data.draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys)))
        for key in removed:
            heap.remove(key)
        remaining = sorted(set(keys) - set(removed))
        assert [heap.pop()[0] for _ in remaining] == remaining


class HeapMachine(RuleBasedStateMachine):
    """Random inserts, removals anywhere and pops against a dict model."""

    def __init__(self) -> None:
        super().__init__()
        self._anchor: Iterator[None] | None = None
        self.model: dict[int, int] = {}

    @initialize()
    def deploy(self) -> None:
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        self.heap = deployers()["PriorityQueueHarness"].deploy()

    def teardown(self) -> None:
        if self._anchor is not None:
            self._anchor.__exit__(None, None, None)

    @rule(key=st.integers(min_value=1, max_value=10**12), payload=st.integers(min_value=0, max_value=2**64))
    def insert(self, key: int, payload: int) -> None:
        if key in self.model:
            with boa.reverts("priority_queue: duplicate key"):
                self.heap.insert(key, payload)
            return
        self.heap.insert(key, payload)
        self.model[key] = payload

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove_any(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        assert self.heap.remove(key) == self.model.pop(key)

    @precondition(lambda self: self.model)
    @rule()
    def pop(self) -> None:
        smallest = min(self.model)
        assert self.heap.pop() == (smallest, self.model.pop(smallest))

    @invariant()
    def order_and_index_consistent(self) -> None:
        _assert_consistent(self.heap, self.model)


TestHeapMachine = HeapMachine.TestCase


# -- worst-case gas on a real node -----------------------------------------------------------------

def _fill(w3: Any, heap: Any, sender: str, count: int, first: int = 10**9, step: int = 10) -> None:
    for start in range(0, count, 250):
        batch = min(250, count - start)
        transact(w3, heap.functions.insertMany(first + start * step, batch, step), sender=sender)


@pytest.mark.anvil
@pytest.mark.parametrize("size", [1, 1000, 3000])
def test_worst_case_gas__insert_and_removals_stay_bounded(w3: Any, deploy_contract: Any, roles: Any,
                                                          size: int) -> None:
    sender = roles.deployer.address
    heap = deploy_contract("PriorityQueueHarness")
    _fill(w3, heap, sender, size)
    # A key smaller than all climbs from the bottom to the root: the longest sift-up.
    insert_gas = transact(w3, heap.functions.insert(1, 7), sender=sender)["gasUsed"]
    # Popping the root moves the last (largest) key down the whole height: the longest sift-down.
    pop_gas = transact(w3, heap.functions.pop(), sender=sender)["gasUsed"]
    middle = heap.functions.at(max(1, (size + 1) // 2)).call()
    remove_gas = transact(w3, heap.functions.remove(middle), sender=sender)["gasUsed"]
    assert max(insert_gas, pop_gas, remove_gas) < GAS_CEILING
    if size >= 1000:
        assert pop_gas < ANCHOR_HEAP_POP_AT_1000 * (1 if size == 1000 else 1.3)
