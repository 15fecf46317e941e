"""The protocol's tests: a ledger on a real SQLite file (tests/plasma_fixtures.py)."""

from tests.plasma_fixtures import ledger, pay  # noqa: F401
