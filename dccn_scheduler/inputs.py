"""The scheduler's JSON input: providers with their node instances, users, tasks, weights.

    {"weights": {"price": 1.0, "indices": [1.0, 1.0]},
     "providers": [{"id": "p1", "address": "0x...", "indices": [0.8, 0.1],
                    "nodes": [{"id": "n1", "cpu": 8, "memory": 32, "disk": 500,
                               "bandwidth": 1000, "gpu": 0, "price": 12.5}]}],
     "users": {"alice": {"weight": 2.0, "address": "0x..."}},
     "tasks": [{"id": "t1", "user": "alice", "cpu": 2, "memory": 4, "disk": 10,
                "bandwidth": 10, "gpu": 0}]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dccn_scheduler.wdrf import RESOURCES, Node, Provider, SchedulerInputError, Task, Weights


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Resources(_Strict):
    """The five resources the seed filters on; a node offers them, a task asks for them."""

    cpu: float = Field(ge=0)
    memory: float = Field(ge=0)
    disk: float = Field(default=0, ge=0)
    bandwidth: float = Field(default=0, ge=0)
    gpu: float = Field(default=0, ge=0)


class NodeIn(_Resources):
    id: str
    price: float = Field(gt=1, description="the seed scores 1 / log(price), so > 1")


class ProviderIn(_Strict):
    id: str
    address: str | None = None
    indices: list[float] = Field(default_factory=list, description="reputation indices z_m in [0, 1]")
    nodes: list[NodeIn] = Field(min_length=1)


class UserIn(_Strict):
    weight: float = Field(default=1.0, gt=0)
    address: str | None = None


class TaskIn(_Resources):
    id: str
    user: str


class WeightsIn(_Strict):
    price: float = Field(default=1.0, ge=0)
    indices: list[float] = Field(default_factory=lambda: [1.0, 1.0])


class ScheduleInput(_Strict):
    weights: WeightsIn = Field(default_factory=WeightsIn)
    providers: list[ProviderIn]
    users: dict[str, UserIn] = Field(default_factory=dict)
    tasks: list[TaskIn]

    def to_domain(self) -> tuple[list[Provider], list[Task], dict[str, float], Weights]:
        providers = [
            Provider(p.id, [Node(n.id, _vector(n), n.price) for n in p.nodes], tuple(p.indices), p.address)
            for p in self.providers
        ]
        tasks = [Task(t.id, t.user, _vector(t)) for t in self.tasks]
        user_weights = {name: u.weight for name, u in self.users.items()}
        return providers, tasks, user_weights, Weights(self.weights.price, tuple(self.weights.indices))


def _vector(item: _Resources) -> tuple[float, ...]:
    return tuple(float(getattr(item, r)) for r in RESOURCES)


def parse_input(text: str, source: str = "input") -> ScheduleInput:
    """Parse and validate; every problem becomes one SchedulerInputError naming where it is."""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as err:
        raise SchedulerInputError(f"{source}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    try:
        return ScheduleInput.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise SchedulerInputError(f"{source}: {where}: {first['msg']}{more}") from None


def load_input(path: Path) -> ScheduleInput:
    try:
        text = path.read_text()
    except OSError as err:
        raise SchedulerInputError(f"cannot read {path}: {err.strerror}") from None
    return parse_input(text, str(path))


EXAMPLE: dict[str, Any] = {
    "weights": {"price": 1.0, "indices": [1.0, 1.0]},
    "providers": [
        {"id": "edge-1", "indices": [0.9, 0.2], "nodes": [
            {"id": "edge-1a", "cpu": 8, "memory": 32, "disk": 500, "bandwidth": 1000, "gpu": 0, "price": 12},
            {"id": "edge-1b", "cpu": 16, "memory": 64, "disk": 1000, "bandwidth": 1000, "gpu": 1, "price": 30}]},
        {"id": "dc-2", "indices": [0.6, 0.7], "nodes": [
            {"id": "dc-2a", "cpu": 64, "memory": 256, "disk": 4000, "bandwidth": 10000, "gpu": 4, "price": 90}]},
    ],
    "users": {"alice": {"weight": 2.0}, "bob": {"weight": 1.0}},
    "tasks": [
        {"id": "web-1", "user": "alice", "cpu": 2, "memory": 4, "disk": 20, "bandwidth": 50},
        {"id": "web-2", "user": "alice", "cpu": 2, "memory": 4, "disk": 20, "bandwidth": 50},
        {"id": "ml-1", "user": "bob", "cpu": 8, "memory": 32, "disk": 200, "bandwidth": 100, "gpu": 1},
    ],
}
