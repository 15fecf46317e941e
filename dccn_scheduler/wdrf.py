"""The WDRF scheduler of seed 000 ("Resource Scheduler and Fairness Algorithms").

1. Filter: the node instances of each provider whose every resource parameter
   x_{i,j,k} >= the request's y_k (CPU, memory, disk, bandwidth, GPU).
2. Prioritise: per provider, p_{i,j} = the lowest price among its eligible nodes;
   the provider maximising  w0 / log(p_{i,j}) + sum_m w_m * z_{i,m}  (its reputation
   indices, e.g. on-chain reputation and stake share) gets the task, on that node.
3. WDRFSche, per provider, exactly the seed's pseudocode: R = the provider's total
   capacities, C = consumed; pick the user with the lowest dominant share s_i,
   D = its next task's demand; if C + D fits R, C += D, U_i += D,
   s_i = max_j(u_{i,j} / r_j) / w_i; else the provider is full.

"Fits" is C + D <= R per resource (the seed writes "<"; a strict test would refuse
every task on a resource a provider has none of, e.g. GPU 0 demanded of GPU 0).
A task must also fit the free room of one node instance: the cheapest eligible one
with room, so no node ever runs over capacity. Tasks left waiting at a full provider
go back to step 2 among the providers that are not full.
"""

from __future__ import annotations

import heapq
import operator
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

RESOURCES = ("cpu", "memory", "disk", "bandwidth", "gpu")
Vector = tuple[float, ...]
ZERO: Vector = (0.0,) * len(RESOURCES)


@dataclass(frozen=True)
class Node:
    id: str
    capacity: Vector  # one value per RESOURCES entry
    price: float  # > 1: the seed scores 1 / log(price)


@dataclass(frozen=True)
class Provider:
    id: str
    nodes: list[Node]
    indices: Vector = ()  # z_{i,m}: reputation indices in [0, 1]
    address: str | None = None


@dataclass(frozen=True)
class Task:
    id: str
    user: str
    demand: Vector


@dataclass(frozen=True)
class Weights:
    price: float = 1.0  # w0
    indices: Vector = (1.0, 1.0)  # w_m, one per reputation index


@dataclass(frozen=True)
class Placement:
    task: str
    user: str
    provider: str
    node: str


@dataclass
class Schedule:
    placements: list[Placement] = field(default_factory=list)
    unscheduled: dict[str, str] = field(default_factory=dict)  # task id -> reason
    dominant_shares: dict[str, dict[str, float]] = field(default_factory=dict)  # provider -> user -> s_i


class SchedulerInputError(ValueError):
    """The providers, tasks or weights cannot be scheduled as given."""


@dataclass
class _ProviderState:
    """The seed's per-provider WDRFSche state."""

    index: int
    capacity: Vector  # R
    consumed: list[float]  # C
    node_free: list[list[float]]  # free room of each node instance
    given: dict[str, list[float]] = field(default_factory=dict)  # U_i
    shares: dict[str, float] = field(default_factory=dict)  # s_i
    # Users whose next task chose this provider, grouped by that task's request.
    waiting: dict[Vector, dict[str, None]] = field(default_factory=dict)
    full: bool = False
    inverse_capacity: Vector = ()  # 1 / r_j (0 where the provider has none of resource j)

    @classmethod
    def of(cls, index: int, provider: Provider) -> _ProviderState:
        total = tuple(float(sum(values)) for values in zip(*(n.capacity for n in provider.nodes), strict=True))
        return cls(index, total, [0.0] * len(total), [list(map(float, n.capacity)) for n in provider.nodes],
                   inverse_capacity=tuple(1.0 / r if r > 0 else 0.0 for r in total))


def validate(providers: list[Provider], tasks: list[Task], weights: Weights) -> None:
    width = len(RESOURCES)
    seen: set[str] = set()
    for provider in providers:
        if provider.id in seen:
            raise SchedulerInputError(f"provider {provider.id!r} appears twice")
        seen.add(provider.id)
        if not provider.nodes:
            raise SchedulerInputError(f"provider {provider.id!r} has no node instances")
        if len(provider.indices) > len(weights.indices):
            raise SchedulerInputError(f"provider {provider.id!r} has {len(provider.indices)} reputation indices "
                                      f"but only {len(weights.indices)} index weights are given")
        for node in provider.nodes:
            if len(node.capacity) != width or min(node.capacity) < 0:
                raise SchedulerInputError(f"node {node.id!r}: capacity needs {width} non-negative values")
            if not node.price > 1:
                raise SchedulerInputError(f"node {node.id!r}: price must be > 1 (the seed scores 1 / log(price))")
    for task in tasks:
        if len(task.demand) != width or min(task.demand) < 0:
            raise SchedulerInputError(f"task {task.id!r}: demand needs {width} non-negative values")
    if min(weights.indices, default=0) < 0 or weights.price < 0:
        raise SchedulerInputError("weights must be >= 0")


def schedule(providers: list[Provider], tasks: list[Task], *, user_weights: dict[str, float] | None = None,
             weights: Weights | None = None) -> Schedule:
    """Place `tasks` on the node instances of `providers` (see the module docstring).

    Each user's tasks are taken in order ("user i's next task"); a user waits at the
    provider that steps 1 and 2 chose for its next task.
    """
    weights = weights or Weights()
    user_weights = user_weights or {}
    validate(providers, tasks, weights)
    if any(w <= 0 for w in user_weights.values()):
        raise SchedulerInputError("user weights must be > 0")
    result = Schedule()
    if not providers:
        result.unscheduled = {t.id: "no providers" for t in tasks}
        return result
    market = _Market(providers, weights)
    states = [_ProviderState.of(i, p) for i, p in enumerate(providers)]
    queues: dict[str, deque[Task]] = {}
    for task in tasks:
        queues.setdefault(task.user, deque()).append(task)
    order = {user: n for n, user in enumerate(queues)}
    active: dict[int, None] = {}  # providers with waiting users
    full = bytearray(len(providers))

    def seat(user: str) -> int | None:
        """Seats the user at the provider chosen for its next task; returns that provider."""
        queue = queues[user]
        while queue:
            demand = queue[0].demand
            index = market.best_provider(demand, full)
            if index is not None:
                states[index].waiting.setdefault(demand, {})[user] = None
                active[index] = None
                return index
            reason = "every provider that fits it is full" if market.eligible_any(demand) \
                else "no node instance satisfies the request"
            result.unscheduled[queue.popleft().id] = reason
        return None

    for user in queues:
        seat(user)
    while active:
        index = next(iter(active))
        state = states[index]
        shares = state.shares
        heap = [(shares.get(user, 0.0), order[user], user) for users in state.waiting.values() for user in users]
        heapq.heapify(heap)
        while heap:
            _, _, user = heapq.heappop(heap)  # the user with the lowest dominant share
            task = queues[user][0]
            if not _allocate(providers[index], state, market, task, user_weights, result):
                state.full = True  # "else return: the resource provider is full"
                full[index] = 1
                _move_on(state, market, full, states, active, seat)  # back to step 2
                break
            queues[user].popleft()
            group = state.waiting[task.demand]
            del group[user]
            if not group:
                del state.waiting[task.demand]
            if seat(user) == index:
                heapq.heappush(heap, (state.shares[user], order[user], user))
        del active[index]
    for provider, state in zip(providers, states, strict=True):
        if state.shares:
            result.dominant_shares[provider.id] = dict(state.shares)
    return result


def _move_on(state: _ProviderState, market: _Market, full: bytearray, states: list[_ProviderState],
             active: dict[int, None], seat: Callable[[str], int | None]) -> None:
    """A full provider's waiting users go to the next-best provider for their next
    task, a whole group of users with the same request at a time."""
    groups, state.waiting = state.waiting, {}
    for demand, users in groups.items():
        index = market.best_provider(demand, full)
        if index is None:
            for user in users:
                seat(user)  # records the task as unscheduled and seats the user's next one
            continue
        target = states[index].waiting
        if demand in target:
            target[demand].update(users)
        else:
            target[demand] = users
        active[index] = None


class _Market:
    """Steps 1 and 2 (filter and prioritise), vectorised over all node instances and
    computed once per distinct request (tasks of one application share a request)."""

    def __init__(self, providers: list[Provider], weights: Weights) -> None:
        self.providers = providers
        nodes = [(i, node) for i, p in enumerate(providers) for node in p.nodes]
        self.capacity = np.array([n.capacity for _, n in nodes], dtype=float)
        self.price = np.array([n.price for _, n in nodes], dtype=float)
        counts = [len(p.nodes) for p in providers]
        self.offsets = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(int)
        self.reputation = np.array(
            [sum(w * z for w, z in zip(weights.indices, p.indices, strict=False)) for p in providers], dtype=float)
        self.price_weight = weights.price
        self._rankings: dict[Vector, tuple[list[int], list[int]]] = {}  # request -> (providers best first, cursor)
        self._nodes: dict[tuple[int, Vector], list[int]] = {}
        self._by_price = [_nodes_by_price(p) for p in providers]

    def _ranking(self, demand: Vector) -> tuple[list[int], list[int]]:
        ranking = self._rankings.get(demand)
        if ranking is None:
            eligible = (self.capacity >= np.array(demand, dtype=float)).all(axis=1)  # filter
            prices = np.where(eligible, self.price, np.inf)
            cheapest = np.minimum.reduceat(prices, self.offsets)  # p_{i,j}: cheapest eligible node per provider
            fits = np.isfinite(cheapest)
            score = np.full(len(self.providers), -np.inf)
            score[fits] = self.price_weight / np.log(cheapest[fits]) + self.reputation[fits]
            order = np.argsort(-score, kind="stable")
            ranking = (order[fits[order]].tolist(), [0])
            self._rankings[demand] = ranking
        return ranking

    def eligible_any(self, demand: Vector) -> bool:
        return bool(self._ranking(demand)[0])

    def best_provider(self, demand: Vector, full: bytearray) -> int | None:
        """The highest-scoring provider that fits the request and is not full."""
        ranking = self._rankings.get(demand) or self._ranking(demand)
        ranked, cursor = ranking
        position, end = cursor[0], len(ranked)
        while position < end and full[ranked[position]]:
            position += 1  # a full provider stays full: never look at it again
        cursor[0] = position
        return ranked[position] if position < end else None

    def nodes_for(self, index: int, demand: Vector) -> list[int]:
        """The provider's node instances that satisfy the request, cheapest first."""
        key = (index, demand)
        nodes = self._nodes.get(key)
        if nodes is None:
            provider = self.providers[index]
            nodes = [j for j in self._by_price[index] if _fits(provider.nodes[j].capacity, demand)]
            self._nodes[key] = nodes
        return nodes


def _nodes_by_price(provider: Provider) -> list[int]:
    """Indices of the provider's nodes, cheapest first (ties keep their order)."""
    return sorted(range(len(provider.nodes)), key=lambda j: provider.nodes[j].price)


def _fits(free: Vector | list[float], demand: Vector) -> bool:
    return all(map(operator.le, demand, free))


def _allocate(provider: Provider, state: _ProviderState, market: _Market, task: Task,
              user_weights: dict[str, float], result: Schedule) -> bool:
    """One step of the seed's WDRFSche loop: D = the task's demand; if C + D fits R (and
    a node instance has room), C += D, U_i += D, s_i = max_j(u_ij / r_j) / w_i."""
    demand = task.demand
    free = state.node_free
    node = -1
    for j in market.nodes_for(state.index, demand):
        if all(map(operator.le, demand, free[j])):
            node = j
            break
    # A node instance with room implies C + D <= R: R - C is the sum of the nodes' free room.
    if node < 0:
        return False
    state.consumed = list(map(operator.add, state.consumed, demand))
    free[node] = list(map(operator.sub, free[node], demand))
    given = list(map(operator.add, state.given.get(task.user, ZERO), demand))
    state.given[task.user] = given
    dominant = max(map(operator.mul, given, state.inverse_capacity))  # max_j u_ij / r_j
    state.shares[task.user] = dominant / user_weights.get(task.user, 1.0)
    result.placements.append(Placement(task.id, task.user, provider.id, provider.nodes[node].id))
    return True
