"""The WDRF scheduler: the seed's filter, prioritise and WDRFSche steps, and their properties."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dccn_scheduler.wdrf import Node, Provider, SchedulerInputError, Task, Weights, schedule

SMALL = (1.0, 1.0, 1.0, 1.0, 0.0)


def _node(node_id: str, cpu: float, memory: float, price: float = 10.0, gpu: float = 0.0) -> Node:
    return Node(node_id, (cpu, memory, 100.0, 100.0, gpu), price)


# -- step 1 and 2: filter and prioritise ------------------------------------------------


def test_filter__node_short_of_any_resource_is_never_chosen():
    gpu_less = Provider("cheap", [_node("c1", 64, 64, price=2.0)], indices=(1.0, 1.0))
    with_gpu = Provider("gpu", [_node("g1", 8, 8, price=50.0, gpu=1)])
    result = schedule([gpu_less, with_gpu], [Task("t", "u", (1, 1, 1, 1, 1))])
    assert [(p.provider, p.node) for p in result.placements] == [("gpu", "g1")]


def test_prioritise__cheaper_node_wins_at_equal_reputation():
    cheap = Provider("cheap", [_node("a", 8, 8, price=5.0)], indices=(0.5,))
    dear = Provider("dear", [_node("b", 8, 8, price=500.0)], indices=(0.5,))
    result = schedule([dear, cheap], [Task("t", "u", SMALL)])
    assert result.placements[0].provider == "cheap"


def test_prioritise__reputation_beats_price_when_weighted_more():
    cheap = Provider("cheap", [_node("a", 8, 8, price=5.0)], indices=(0.1,))
    trusted = Provider("trusted", [_node("b", 8, 8, price=50.0)], indices=(0.9,))
    # w0 / log(5) + 1 x 0.1 = 0.72 against w0 / log(50) + 1 x 0.9 = 1.16
    assert schedule([cheap, trusted], [Task("t", "u", SMALL)]).placements[0].provider == "trusted"
    # with the price weighted 10x: 6.31 against 3.46
    result = schedule([cheap, trusted], [Task("t", "u", SMALL)], weights=Weights(10.0, (1.0,)))
    assert result.placements[0].provider == "cheap"


def test_prioritise__uses_the_providers_cheapest_eligible_node():
    provider = Provider("p", [_node("big-dear", 64, 64, price=90.0), _node("small-cheap", 2, 2, price=3.0)])
    result = schedule([provider], [Task("t1", "u", SMALL), Task("t2", "u", (8, 8, 1, 1, 0))])
    assert {p.task: p.node for p in result.placements} == {"t1": "small-cheap", "t2": "big-dear"}


def test_unsatisfiable_request__reported_not_placed():
    result = schedule([Provider("p", [_node("n", 2, 2)])], [Task("huge", "u", (64, 1, 1, 1, 0))])
    assert result.placements == []
    assert result.unscheduled == {"huge": "no node instance satisfies the request"}


# -- step 3: WDRFSche ------------------------------------------------------------------


def test_wdrf__full_provider__remaining_tasks_go_to_the_next_best():
    best = Provider("best", [_node("b", 2, 2, price=2.0)], indices=(1.0,))
    second = Provider("second", [_node("s", 4, 4, price=2.0)])
    tasks = [Task(f"t{i}", "u", SMALL) for i in range(5)]
    result = schedule([best, second], tasks)
    counts = defaultdict(int)
    for p in result.placements:
        counts[p.provider] += 1
    assert counts == {"best": 2, "second": 3}
    more = schedule([best, second], [*tasks, Task("t5", "u", SMALL), Task("t6", "u", SMALL)])
    assert set(more.unscheduled.values()) == {"every provider that fits it is full"}


def test_wdrf__lowest_dominant_share_is_served_first():
    provider = Provider("p", [_node("n", 100, 100)])
    heavy = [Task(f"h{i}", "heavy", (10, 1, 0, 0, 0)) for i in range(5)]
    light = [Task(f"l{i}", "light", (1, 1, 0, 0, 0)) for i in range(5)]
    result = schedule([provider], heavy + light)
    # heavy's first task gives it share 0.1; light then runs until its share passes 0.1.
    assert [p.user for p in result.placements][:6] == ["heavy", "light", "light", "light", "light", "light"]


def test_wdrf__weights_respected():
    provider = Provider("p", [_node("n", 30, 300)])
    tasks = [Task(f"{user}{i}", user, (1, 1, 0, 0, 0)) for user in ("gold", "plain") for i in range(40)]
    result = schedule([provider], tasks, user_weights={"gold": 2.0, "plain": 1.0})
    placed = defaultdict(int)
    for p in result.placements:
        placed[p.user] += 1
    assert placed == {"gold": 20, "plain": 10}


# -- properties --------------------------------------------------------------------------

resource = st.integers(0, 16).map(float)
nodes = st.lists(st.tuples(st.tuples(resource, resource, resource, resource, resource),
                           st.floats(1.5, 100.0)), min_size=1, max_size=3)
markets = st.lists(st.tuples(nodes, st.floats(0, 1)), min_size=1, max_size=5)
demands = st.tuples(*(st.integers(0, 6).map(float) for _ in range(5)))
workloads = st.lists(st.tuples(st.sampled_from("abcd"), demands), max_size=40)
user_weights = st.fixed_dictionaries({u: st.sampled_from([0.5, 1.0, 2.0, 3.0]) for u in "abcd"})


def _build(market, workload):
    providers = [Provider(f"p{i}", [Node(f"p{i}n{j}", cap, price) for j, (cap, price) in enumerate(ns)], (z,))
                 for i, (ns, z) in enumerate(market)]
    tasks = [Task(f"t{k}", user, demand) for k, (user, demand) in enumerate(workload)]
    return providers, tasks


@given(markets, workloads, user_weights)
def test_property__no_node_over_capacity_and_every_task_accounted(market, workload, weights):
    providers, tasks = _build(market, workload)
    result = schedule(providers, tasks, user_weights=weights)
    capacity = {n.id: n.capacity for p in providers for n in p.nodes}
    demand = {t.id: t.demand for t in tasks}
    used = defaultdict(lambda: [0.0] * 5)
    for p in result.placements:
        assert all(d <= c for d, c in zip(demand[p.task], capacity[p.node], strict=True))  # filter held
        used[p.node] = [u + d for u, d in zip(used[p.node], demand[p.task], strict=True)]
    for node, total in used.items():
        assert all(u <= c + 1e-9 for u, c in zip(total, capacity[node], strict=True))
    placed = [p.task for p in result.placements]
    assert len(placed) == len(set(placed))
    assert set(placed) | set(result.unscheduled) == set(demand)
    assert not set(placed) & set(result.unscheduled)


@given(st.lists(st.tuples(st.sampled_from("abcd"), demands), min_size=1, max_size=40), user_weights)
def test_property__each_pick_is_a_lowest_weighted_dominant_share(workload, weights):
    """On one provider, replaying the allocation: every task went to a user whose
    weighted dominant share was the lowest among the users still waiting."""
    provider = Provider("p", [Node("n", (20.0, 20.0, 20.0, 20.0, 20.0), 5.0)])
    _, tasks = _build([], workload)
    result = schedule([provider], tasks, user_weights=weights)
    queues = defaultdict(list)
    for t in tasks:
        queues[t.user].append(t)
    given_to = defaultdict(lambda: [0.0] * 5)
    shares = defaultdict(float)
    for p in result.placements:
        waiting = [u for u, q in queues.items() if q]
        assert shares[p.user] <= min(shares[u] for u in waiting) + 1e-12
        task = queues[p.user].pop(0)
        assert task.id == p.task  # a user's tasks are taken in order
        given_to[p.user] = [g + d for g, d in zip(given_to[p.user], task.demand, strict=True)]
        shares[p.user] = max(g / 20.0 for g in given_to[p.user]) / weights[p.user]
    for user, share in result.dominant_shares.get("p", {}).items():
        assert math.isclose(share, shares[user])


@given(st.integers(1, 6), st.sampled_from([1.0, 2.0, 3.0]))
def test_property__weights_respected_under_contention(size, weight):
    provider = Provider("p", [Node("n", (60.0, 60.0, 0.0, 0.0, 0.0), 5.0)])
    tasks = [Task(f"{u}{i}", u, (float(size), 1.0, 0, 0, 0)) for u in ("w", "one") for i in range(100)]
    result = schedule([provider], tasks, user_weights={"w": weight, "one": 1.0})
    shares = result.dominant_shares["p"]
    # Equal weighted shares, up to one task's share of the heavier user.
    assert abs(shares["w"] - shares["one"]) <= size / 60.0 + 1e-9


# -- input errors ------------------------------------------------------------------------


@pytest.mark.parametrize(("providers", "tasks", "message"), [
    ([Provider("p", [])], [], "has no node instances"),
    ([Provider("p", [Node("n", (1, 1, 1, 1, 1), 1.0)])], [], "price must be > 1"),
    ([Provider("p", [Node("n", (1, 1, 1), 2.0)])], [], "capacity needs 5"),
    ([Provider("p", [Node("n", (1, 1, 1, 1, 1), 2.0)])], [Task("t", "u", (1, -1, 0, 0, 0))], "demand needs 5"),
    ([Provider("p", [Node("n", (1, 1, 1, 1, 1), 2.0)])] * 2, [], "appears twice"),
    ([Provider("p", [Node("n", (1, 1, 1, 1, 1), 2.0)], indices=(1, 1, 1))], [], "index weights"),
])
def test_schedule__bad_input__clear_error(providers, tasks, message):
    with pytest.raises(SchedulerInputError, match=message):
        schedule(providers, tasks)
