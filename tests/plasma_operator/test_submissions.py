"""The operator's record of each block's submitBlock attempts (block_submissions), kept from the
outbox's final outcomes (bot.on_settled) and rewinds instead of scanning the outbox's keys: the
back-fill of a database of an earlier version, only the latest attempt counting, rewinds, and
block 10000's outcome never taken for block 1000's. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from dccn_common.sender import OutboxEntry, TxSender
from dccn_common.store import apply_schema, open_db, transaction
from dccn_devtools.pytest_fixtures import BACKENDS
from plasma_operator.server import (
    _submissions_v1,
    parse_submit_key,
    submission_settled,
    submissions_rewound,
    submit_key,
)

on_both_backends = pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)

ROOTCHAIN = "0x" + "11" * 20


@pytest.fixture
def outbox(store_target: Callable[[str], str]) -> Iterator[tuple[Any, TxSender]]:
    db = open_db(store_target("operator.db"))
    sender = TxSender(Web3(), db, Account.create())  # enqueue only: no node is asked anything
    yield db, sender
    db.close()


def _enqueue(db: Any, sender: TxSender, key: str, status: str = "pending", block: int | None = None) -> None:
    with transaction(db):
        assert sender.enqueue(db, key, ROOTCHAIN, b"\x01")
        db.execute("UPDATE outbox SET status = ?, block_number = ?, error = ? WHERE key = ?",
                   (status, block, "boom" if status in ("reverted", "failed") else None, key))


def _submissions(db: Any) -> dict[int, tuple[int, str, int | None]]:
    rows = db.execute("SELECT blknum, attempts, status, block_number FROM block_submissions").fetchall()
    return {int(r["blknum"]): (int(r["attempts"]), r["status"], r["block_number"]) for r in rows}


def _settle(db: Any, key: str, status: str, block: int | None) -> None:
    with transaction(db):
        submission_settled(OutboxEntry(key, status, "0x" + "ab" * 32, block, 21000, None, "0x" + "cd" * 32), db)


def test_keys__block_and_attempt_round_trip() -> None:
    assert [parse_submit_key(submit_key(b, a)) for b, a in [(1000, 0), (10000, 0), (1000, 3)]] == [
        (1000, 0), (10000, 0), (1000, 3)]
    assert submit_key(2000, 1) == "submitBlock:2000:retry1"


@on_both_backends
def test_database_of_an_earlier_version__backfilled_from_the_outbox_latest_attempt_each(outbox: Any) -> None:
    db, sender = outbox
    _enqueue(db, sender, "submitBlock:1000", "mined", 5)
    _enqueue(db, sender, "submitBlock:2000", "reverted", 6)
    _enqueue(db, sender, "submitBlock:2000:retry1", "sent")
    _enqueue(db, sender, "submitBlock:3000", "failed")
    _enqueue(db, sender, "submitBlock:10000", "mined", 9)
    _enqueue(db, sender, "other:1", "mined", 7)
    apply_schema(db, "plasma_submissions", 1, _submissions_v1)
    assert _submissions(db) == {1000: (1, "mined", 5), 2000: (2, "pending", None), 3000: (1, "failed", None),
                                10000: (1, "mined", 9)}
    apply_schema(db, "plasma_submissions", 1, _submissions_v1)  # once only
    assert len(_submissions(db)) == 4


@on_both_backends
def test_outcomes__only_the_latest_attempt_counts__rewind_puts_removed_ones_in_flight(outbox: Any) -> None:
    db, _ = outbox
    apply_schema(db, "plasma_submissions", 1, _submissions_v1)
    with transaction(db):
        for blknum, attempts in [(1000, 1), (2000, 2), (10000, 1)]:
            db.execute("INSERT INTO block_submissions (blknum, attempts, status) VALUES (?, ?, 'pending')",
                       (blknum, attempts))
    _settle(db, "submitBlock:2000", "reverted", 4)  # the first attempt, after the retry was enqueued: ignored
    _settle(db, "submitBlock:10000", "reverted", 4)  # block 10000's, not block 1000's
    assert _submissions(db) == {1000: (1, "pending", None), 2000: (2, "pending", None), 10000: (1, "reverted", 4)}
    _settle(db, "submitBlock:1000", "mined", 3)
    _settle(db, "submitBlock:2000:retry1", "mined", 6)
    assert _submissions(db)[2000] == (2, "mined", 6)
    with transaction(db):
        submissions_rewound(4, db)  # blocks >= 4 removed: the retry and block 10000's attempt are in flight again
    assert _submissions(db) == {1000: (1, "mined", 3), 2000: (2, "pending", None), 10000: (1, "pending", None)}
