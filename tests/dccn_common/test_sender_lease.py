"""One active sender per (chain, signer) among instances on one PostgreSQL database.

The lease's epoch fences every outbox write and every broadcast: a leader paused past
its lease (SIGSTOP) and resumed sends nothing once a standby took over; no nonce twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from dccn_common import PROJECT_ROOT
from dccn_common.sender import FINAL_STATUSES, Lease, LeaseLost, TxSender
from dccn_common.store import open_db, transaction
from dccn_devtools.waiting import wait_for
from tests.dccn_common.conftest import transfer_data

pytestmark = pytest.mark.parametrize("store_backend", ["postgresql"], indirect=True)


class RecordingSender(TxSender):
    """Counts the broadcasts that got past the lease check."""

    broadcasts: int = 0

    def _broadcast(self, raw: bytes) -> None:
        super()._broadcast(raw)
        self.broadcasts += 1


def _leased(w3: Any, dsn: str, roles: Any, holder: str, seconds: float) -> RecordingSender:
    db = open_db(dsn)
    account = Account.from_key(roles.relayer.key)
    return RecordingSender(w3, db, account, lease=Lease(db, int(w3.eth.chain_id), account.address,
                                                         holder=holder, seconds=seconds))


def _enqueue(sender: TxSender, keys: list[str], token: Any, to: str) -> None:
    with transaction(sender.db):
        for i, key in enumerate(keys):
            sender.enqueue(sender.db, key, token.address, transfer_data(token, to, i + 1))


def _drive_until_final(sender: TxSender, keys: list[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while any((e := sender.entry(k)) is None or e.status not in FINAL_STATUSES for k in keys):
        assert time.monotonic() < deadline, "outbox rows not final in time"
        sender.process()
        time.sleep(0.05)


def _nonces(db: Any, signer: str) -> list[int]:
    return [int(r["nonce"]) for r in db.execute("SELECT nonce FROM outbox WHERE sender = ? ORDER BY nonce", (signer,))]


def test_standby__does_nothing_while_the_leader_renews(w3, store_target, roles, funded_token) -> None:
    dsn = store_target("lease.db")
    leader, standby = _leased(w3, dsn, roles, "a", 5), _leased(w3, dsn, roles, "b", 5)
    assert leader.process() == 0 and leader.is_leader
    _enqueue(leader, ["k1", "k2"], funded_token, roles.bob.address)
    assert standby.process() == 0 and not standby.is_leader
    with pytest.raises(LeaseLost, match="held by a"), transaction(standby.db):
        standby.enqueue(standby.db, "k3", funded_token.address, b"")
    _drive_until_final(leader, ["k1", "k2"])
    assert standby.broadcasts == 0 and leader.broadcasts == 2


def test_leader_paused_past_its_lease__standby_takes_over__resumed_leader_sends_nothing(
    w3, store_target, roles, funded_token
) -> None:
    dsn = store_target("lease.db")
    old, new = _leased(w3, dsn, roles, "old", 0.5), _leased(w3, dsn, roles, "new", 0.5)
    start_nonce = w3.eth.get_transaction_count(roles.relayer.address)
    old.process()
    _enqueue(old, ["a1", "a2"], funded_token, roles.bob.address)
    _drive_until_final(old, ["a1", "a2"])
    time.sleep(0.6)  # the old leader is "paused": its lease expires unrenewed
    assert new.process() == 0 and new.is_leader  # takeover: the epoch goes up
    _enqueue(new, ["b1", "b2"], funded_token, roles.bob.address)
    sent_by_old = old.broadcasts
    # The old leader resumes mid-pass, still believing it leads (it has not renewed):
    # the first fenced write refuses, so it signs nothing and broadcasts nothing.
    assert old.lease is not None and old.lease.is_leader
    with pytest.raises(LeaseLost):
        old._process()
    assert old.process() == 0 and not old.is_leader
    _drive_until_final(new, ["b1", "b2"])
    assert old.broadcasts == sent_by_old
    assert _nonces(new.db, roles.relayer.address) == list(range(start_nonce, start_nonce + 4))
    assert w3.eth.get_transaction_count(roles.relayer.address) == start_nonce + 4


def _log_lines(path: Path) -> list[tuple[float, str]]:
    if not path.exists():
        return []
    return [(float(t), h) for t, h in (line.split() for line in path.read_text().splitlines())]


def test_two_sender_processes__leader_sigstopped_past_its_lease__standby_takes_over__no_nonce_twice(
    chain, w3, store_target, roles, funded_token, tmp_path: Path
) -> None:
    dsn = store_target("lease.db")
    lease_seconds = 2.0
    queue = TxSender(w3, open_db(dsn), Account.from_key(roles.relayer.key))  # enqueues only, never processes
    start_nonce = w3.eth.get_transaction_count(roles.relayer.address)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "SENDER_KEY": roles.relayer.key}
    logs = {name: tmp_path / f"{name}.log" for name in ("a", "b")}

    def start(name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "dccn_devtools.sender_worker", chain.url, dsn, name,
                                 str(lease_seconds), "--log", str(logs[name])], env=env, cwd=PROJECT_ROOT)

    def final(keys: list[str]) -> bool:
        return all((e := queue.entry(k)) is not None and e.status in FINAL_STATUSES for k in keys)

    first = [f"first-{i}" for i in range(5)]
    second = [f"second-{i}" for i in range(5)]
    a = start("a")
    b: subprocess.Popen[bytes] | None = None
    try:
        _enqueue(queue, first, funded_token, roles.bob.address)
        wait_for(lambda: final(first), "the leader to send the first batch", timeout=60)
        b = start("b")
        time.sleep(1.0)
        assert _log_lines(logs["b"]) == []  # a standby while the leader renews
        a.send_signal(signal.SIGSTOP)
        stopped_at = time.time()
        _enqueue(queue, second, funded_token, roles.bob.address)
        wait_for(lambda: final(second), "the standby to take over and send the second batch", timeout=60)
        takeover = _log_lines(logs["b"])[0][0] - stopped_at
        a_lines = len(_log_lines(logs["a"]))
        a.send_signal(signal.SIGCONT)
        time.sleep(2 * lease_seconds)  # the resumed old leader gets every chance to send
        assert len(_log_lines(logs["a"])) == a_lines
        print(f"takeover after SIGSTOP: {takeover:.2f} s (lease {lease_seconds} s)")
        assert takeover < lease_seconds + 3
    finally:
        for process in (a, b):
            if process is not None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait()
    assert all(queue.entry(k).status == "mined" for k in first + second)
    assert _nonces(queue.db, roles.relayer.address) == list(range(start_nonce, start_nonce + 10))
    assert w3.eth.get_transaction_count(roles.relayer.address) == start_nonce + 10
