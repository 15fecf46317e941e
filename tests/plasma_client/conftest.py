"""The user side's tests: the client CLI and watchers against a running operator on a RootChain
on anvil (tests/plasma_fixtures.py)."""

from dccn_devtools.pytest_fixtures import postgres_server, store_backend, store_target  # noqa: F401
from tests.plasma_fixtures import cli, client_run, eventually, plasma, start_operator, start_watcher  # noqa: F401
