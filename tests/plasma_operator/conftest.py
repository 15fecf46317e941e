"""The operator's tests: a RootChain on anvil with a running operator, watchers and the client CLI
(tests/plasma_fixtures.py), on either store backend."""

from dccn_devtools.pytest_fixtures import postgres_server, store_backend, store_target  # noqa: F401
from tests.plasma_fixtures import cli, eventually, plasma, start_operator, start_watcher  # noqa: F401
