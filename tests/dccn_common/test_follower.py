"""The shared chain follower on a real anvil: exactly once, confirmations, reorgs,
restarts (including SIGKILL of a real process) and RPC outages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from web3 import HTTPProvider, Web3

from dccn_common import PROJECT_ROOT
from dccn_common.follower import ChainEvent, ChainFollower
from dccn_devtools.pytest_fixtures import BACKENDS

# Every test here runs on SQLite and on a real PostgreSQL server (dccn_devtools.postgres).
pytestmark = pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)


def _follow_transfers(w3: Any, db: Any, token: Any, **kwargs: Any) -> ChainFollower:
    follower = ChainFollower(w3, db, "test", **kwargs)

    @follower.on(token, "Transfer")
    def record(event: ChainEvent, tx: Any) -> None:
        tx.execute("INSERT INTO seen VALUES (?, ?, ?, ?)",
                   (event.block_number, event.log_index, event.args["receiver"], str(event.args["value"])))

    @follower.on_rewind
    def undo(first_removed: int, tx: Any) -> None:
        tx.execute("DELETE FROM seen WHERE block_number >= ?", (first_removed,))

    return follower


def _seen_amounts(db: Any) -> list[int]:
    return [int(row["amount"]) for row in db.execute("SELECT amount FROM seen ORDER BY block_number, log_index")]


def _start_block(w3: Any) -> int:
    return int(w3.eth.block_number) + 1


def test_follow__every_event_handled_once_in_order(w3, ankr_token, make_db, send_transfers) -> None:
    db = make_db()
    follower = _follow_transfers(w3, db, ankr_token, start_block=_start_block(w3), chunk_size=3)
    amounts = send_transfers(10)
    assert follower.poll_once() == 10
    assert follower.poll_once() == 0
    assert _seen_amounts(db) == amounts


def test_confirmations__event_waits_for_n_blocks(chain, w3, ankr_token, make_db, send_transfers) -> None:
    db = make_db()
    follower = _follow_transfers(w3, db, ankr_token, start_block=_start_block(w3), confirmations=3)
    amounts = send_transfers(1)
    follower.poll_once()
    assert _seen_amounts(db) == []
    chain.mine(3)
    follower.poll_once()
    assert _seen_amounts(db) == amounts


def test_restart__new_instance_resumes_from_cursor_without_repeats(w3, ankr_token, make_db, send_transfers) -> None:
    start = _start_block(w3)
    first = send_transfers(4)
    _follow_transfers(w3, make_db(), ankr_token, start_block=start).poll_once()
    second = send_transfers(3)
    restarted = _follow_transfers(w3, make_db(), ankr_token, start_block=start)  # same file, new process state
    assert restarted.poll_once() == 3
    assert _seen_amounts(make_db()) == first + second


def test_handler_failure__rolls_back_its_writes_and_is_retried(w3, ankr_token, make_db, send_transfers) -> None:
    db = make_db()
    follower = ChainFollower(w3, db, "flaky", start_block=_start_block(w3))
    failures = {"left": 1}

    @follower.on(ankr_token, "Transfer")
    def record(event: ChainEvent, tx: Any) -> None:
        tx.execute("INSERT INTO seen VALUES (?, ?, ?, ?)", (event.block_number, event.log_index, "", str(event.args["value"])))
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("handler crashed after writing")

    amounts = send_transfers(2)
    with pytest.raises(RuntimeError):
        follower.poll_once()
    assert _seen_amounts(db) == []
    follower.poll_once()
    assert _seen_amounts(db) == amounts


@pytest.mark.reorgs
def test_reorg__removed_event_is_rewound_and_replacement_followed(chain, w3, ankr_token, make_db, send_transfers, roles) -> None:
    db = make_db()
    follower = _follow_transfers(w3, db, ankr_token, start_block=_start_block(w3))
    kept = send_transfers(2)
    dropped = send_transfers(1)
    follower.poll_once()
    assert _seen_amounts(db) == kept + dropped
    replacement = ankr_token.functions.transfer(roles.carol.address, 777).build_transaction(
        {"from": roles.deployer.address, "nonce": w3.eth.get_transaction_count(roles.deployer.address) - 1,
         "gas": 100_000}
    )
    chain.reorg(1, [(replacement, 0)])
    follower.poll_once()
    assert _seen_amounts(db) == [*kept, 777]


@pytest.mark.reorgs
def test_reorg_deeper_than_chunk__rewinds_to_common_ancestor(chain, w3, ankr_token, make_db, send_transfers) -> None:
    db = make_db()
    follower = _follow_transfers(w3, db, ankr_token, start_block=_start_block(w3), chunk_size=2)
    kept = send_transfers(3)
    send_transfers(4)
    follower.poll_once()
    chain.reorg(4)  # the last four transfers vanish; empty blocks replace them
    follower.poll_once()
    assert _seen_amounts(db) == kept


def test_rpc_outage__follower_keeps_trying_and_recovers(w3, ankr_token, make_db, send_transfers, rpc_proxy) -> None:
    proxied = Web3(HTTPProvider(rpc_proxy.url, request_kwargs={"timeout": 2}))
    db = make_db()
    follower = _follow_transfers(proxied, db, ankr_token, start_block=_start_block(w3))
    rpc_proxy.up = False
    amounts = send_transfers(3)
    stop = threading.Event()
    runner = threading.Thread(target=follower.run, args=(stop,), kwargs={"interval": 0.05}, daemon=True)
    runner.start()
    deadline = time.monotonic() + 10
    while follower.status.last_error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert follower.status.last_error is not None, "the outage was not noticed"
    assert _seen_amounts(db) == []
    rpc_proxy.up = True
    deadline = time.monotonic() + 20
    while len(_seen_amounts(db)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    runner.join(timeout=10)
    assert _seen_amounts(db) == amounts


def test_sigkill_mid_stream__restart_loses_nothing_repeats_nothing(
    chain, w3, ankr_token, send_transfers, store_target
) -> None:
    amounts = send_transfers(40)
    db_path = store_target("crash.db")
    argv = [sys.executable, str(Path(__file__).with_name("follower_worker.py")), chain.url, ankr_token.address, str(db_path)]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    from dccn_common.store import open_db
    from tests.dccn_common.conftest import RECORD_SCHEMA

    db = open_db(db_path, RECORD_SCHEMA)
    kills = 0
    deadline = time.monotonic() + 60
    while len(_seen_amounts(db)) < len(amounts) + 1 and time.monotonic() < deadline:  # +1: the deploy mint
        process = subprocess.Popen(argv, env=env, cwd=PROJECT_ROOT)
        target = min(len(_seen_amounts(db)) + 9, len(amounts) + 1)
        while len(_seen_amounts(db)) < target and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        if len(_seen_amounts(db)) <= len(amounts):
            process.send_signal(signal.SIGKILL)
            kills += 1
        else:
            process.terminate()
        process.wait()
    seen = _seen_amounts(db)
    assert kills >= 3
    assert len(seen) == len(set(seen)) == len(amounts) + 1
    assert seen[1:] == amounts
