"""pytest fixtures for a real PostgreSQL on loopback: import them into a conftest.py.

    from dccn_devtools.pytest_fixtures import postgres_server, store_backend, store_target  # noqa: F401

One server per test session (per xdist worker), one database per test. A test module runs
on both backends with `pytestmark = pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dccn_devtools.postgres import PostgresServer

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def store_backend(request: pytest.FixtureRequest) -> str:
    """"sqlite" unless the test is parametrized over `BACKENDS`."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def store_target(request: pytest.FixtureRequest, store_backend: str, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Factory: the store setting (a SQLite path or a postgresql:// DSN) for a database name.

    The same name gives the same database within a test, so a test can reopen it as a restart would.
    """
    made: dict[str, str] = {}
    server = request.getfixturevalue("postgres_server") if store_backend == "postgresql" else None

    def factory(name: str = "service.db") -> str:
        if name not in made:
            if server is None:
                made[name] = str(tmp_path / name)
            else:
                made[name] = server.create_database(f"{request.node.name[:24]}_{name}")
        return made[name]

    yield factory
    if server is not None:
        for dsn in made.values():
            server.drop_database(dsn)
