"""Factories for the Plasma root chain on titanoboa (fast, in-process EVM); actors named by role."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import boa
import pytest

from tests.contracts.plasma.world import PlasmaWorld, User, deployers

USER_ROLES = ("alice", "bob", "carol", "dave", "challenger")


@pytest.fixture
def isolated() -> Iterator[None]:
    # An anchor rewinds state but not boa's storage-key trace (used to print storage in revert
    # messages): a contract deployed at a reused address would inherit the last test's keys, and
    # boa fails decoding another layout's nested keys (e.g. the token's allowances).
    boa.env.sstore_trace = {}
    with boa.env.anchor():
        yield


@pytest.fixture(scope="session")
def plasma_users(roles) -> dict[str, User]:  # type: ignore[no-untyped-def]
    return {role: User(role, roles[role].key) for role in USER_ROLES}


@pytest.fixture(scope="session")
def plasma_operator_user(roles) -> User:  # type: ignore[no-untyped-def]
    return User("operator", roles.operator.key)


@pytest.fixture
def make_world(isolated: None, plasma_users: dict[str, User],
               plasma_operator_user: User) -> Callable[..., PlasmaWorld]:
    """Factory: make_world(with_token=False, exit_period=..., exit_bond=...) -> PlasmaWorld."""
    deployers()

    def factory(**kwargs: object) -> PlasmaWorld:
        return PlasmaWorld.create(plasma_users, plasma_operator_user, **kwargs)  # type: ignore[arg-type]

    return factory


@pytest.fixture
def world(make_world: Callable[..., PlasmaWorld]) -> PlasmaWorld:
    """A native-coin root chain."""
    return make_world()
