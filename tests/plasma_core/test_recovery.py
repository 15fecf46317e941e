"""Signer recovery on worker processes or compiled threads (plasma_core.recovery): the
same decisions as in process, and no worker outlives the operator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from plasma_core import store, wire
from plasma_core.ledger import ChildChain
from plasma_core.recovery import CHUNK_TXS, Pool, SignerPool, ThreadSignerPool
from plasma_core.validation import TxRejected, parse


@pytest.fixture(scope="module", params=["processes", "threads"])
def pool(request: pytest.FixtureRequest) -> Iterator[Pool]:
    if request.param == "threads" and not wire.NATIVE:
        pytest.skip("threads recover in parallel only on the compiled path (plasma_fast)")
    with (SignerPool(2) if request.param == "processes" else ThreadSignerPool(2)) as signer_pool:
        yield signer_pool


def _ledger_like(ledger: Any, path: Path, recovery: Pool | None) -> Any:
    """A fresh ledger as the `ledger` fixture builds it, recovering on `recovery`."""
    chain = ChildChain(ledger.chain.operator, ledger.roots, recovery=recovery)
    return replace(ledger, chain=chain, db=store.open_chain_db(path), next_deposit=1)


def _decoded(raw_hex: str) -> wire.Transaction:
    return wire.decode(bytes.fromhex(raw_hex[2:]))


def _high_s(raw_hex: str) -> str:
    tx = _decoded(raw_hex)
    s = int.from_bytes(tx.sig1[32:64], "big")
    sig = tx.sig1[:32] + (wire.SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - tx.sig1[64]])
    return "0x" + wire.encode(replace(tx, sig1=sig)).hex()


def _mixed_batch(ledger: Any, roles: Any, pay: Any) -> list[str]:
    """Valid transfers with, spread over several worker jobs, a wrong signer, a high-s
    signature, a bad v and double spends (of a pending and of an already spent output)."""
    alice, bob = roles.alice, roles.bob
    coins = [ledger.deposit(alice.address, 100) for _ in range(2 * CHUNK_TXS + 40)]
    spent_before, only_bad_v = coins.pop(), coins.pop()
    ledger.chain.submit(ledger.db, [pay([spent_before], alice, bob.address, 100)])
    batch = [pay([coin], alice, bob.address, 100) for coin in coins]
    batch.insert(5, pay([coins[7]], bob, bob.address, 100))  # signed by someone else
    batch.insert(CHUNK_TXS + 3, _high_s(pay([coins[CHUNK_TXS + 10]], alice, bob.address, 100)))
    bad_v = _decoded(pay([only_bad_v], alice, bob.address, 100))
    batch.insert(CHUNK_TXS - 1, "0x" + wire.encode(replace(bad_v, sig1=bad_v.sig1[:64] + b"\x01")).hex())
    batch.append(pay([coins[3]], alice, roles.carol.address, 100))  # spends a pending output again
    batch.insert(2 * CHUNK_TXS + 1, pay([spent_before], alice, roles.carol.address, 100))  # spent in a past batch
    return batch


def _outcomes(ledger: Any, batch: list[str]) -> list[tuple[object, ...]]:
    """Submit, drop the rejected transaction, resubmit, until the batch is accepted."""
    outcomes: list[tuple[object, ...]] = []
    while batch:
        try:
            accepted = ledger.chain.submit(ledger.db, batch)
        except TxRejected as err:
            assert err.index is not None
            outcomes.append((err.index, type(err).__name__, err.reason))
            batch = batch[:err.index] + batch[err.index + 1:]
            continue
        outcomes.append(("accepted", tuple(a.as_json()["hash"] for a in accepted)))
        break
    return outcomes


def test_pooled_recovery__mixed_batch__same_accept_reject_results_as_in_process(
    ledger: Any, tmp_path: Path, roles: Any, pay: Any, pool: Pool
) -> None:
    in_process = ledger
    pooled = _ledger_like(ledger, tmp_path / "pooled.db", pool)
    batch = _mixed_batch(in_process, roles, pay)
    assert _mixed_batch(pooled, roles, pay) == batch

    expected = _outcomes(in_process, list(batch))
    assert _outcomes(pooled, list(batch)) == expected

    reasons = [outcome[2] for outcome in expected[:-1]]
    assert len(reasons) == 5
    assert any("but its owner is" in r for r in reasons) and any("low" in r for r in reasons)
    assert any("v must be" in r for r in reasons) and sum("already spent" in r for r in reasons) == 2
    assert not pool.broken
    assert pooled.snapshot() == in_process.snapshot()


def test_pooled_recovery__worker_dies__batch_recovered_in_process_with_the_same_result(
    ledger: Any, tmp_path: Path, roles: Any, pay: Any
) -> None:
    with SignerPool(1) as fragile:
        fragile._workers[0].process.kill()
        fragile._workers[0].process.wait()
        ledger = _ledger_like(ledger, tmp_path / "fragile.db", fragile)
        coins = [ledger.deposit(roles.alice.address, 100) for _ in range(3)]
        accepted = ledger.chain.submit(ledger.db, [pay([c], roles.alice, roles.bob.address, 100) for c in coins])
        assert [a.txindex for a in accepted] == [0, 1, 2]
        assert fragile.broken


_OWNER = """
import sys, time
from plasma_core.recovery import SignerPool
pool = SignerPool(2)
print(" ".join(str(w.process.pid) for w in pool._workers), flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waiting for its (gone) parent is not running
        return stat.read().split(") ")[-1][0] != "Z"


def test_pool__owner_killed_with_sigkill__workers_exit() -> None:
    owner = subprocess.Popen([sys.executable, "-c", _OWNER], stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    pids = [int(p) for p in owner.stdout.readline().split()]
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)


def test_pool__recovers_the_signers_of_every_used_input(ledger: Any, roles: Any, pay: Any, pool: Pool) -> None:
    coins = [ledger.deposit(roles.alice.address, 100) for _ in range(CHUNK_TXS + 5)]
    parsed = [parse(pay([coin], roles.alice, roles.bob.address, 100)) for coin in coins]
    with pool.recover_batch() as batch:
        batch.add(parsed)
        signers = [batch.signers(i) for i in range(len(parsed))]
    assert signers == [(bytes.fromhex(roles.alice.address[2:]), None)] * len(parsed)


def test_thread_pool__closed__batch_recovered_in_process_with_the_same_result(
    ledger: Any, tmp_path: Path, roles: Any, pay: Any
) -> None:
    if not wire.NATIVE:
        pytest.skip("a ThreadSignerPool needs the compiled path (plasma_fast)")
    closed = ThreadSignerPool(1)
    closed.close()
    ledger = _ledger_like(ledger, tmp_path / "closed.db", closed)
    coins = [ledger.deposit(roles.alice.address, 100) for _ in range(3)]
    accepted = ledger.chain.submit(ledger.db, [pay([c], roles.alice, roles.bob.address, 100) for c in coins])
    assert [a.txindex for a in accepted] == [0, 1, 2]
    assert closed.broken


def test_thread_pool__without_the_compiled_path__refused() -> None:
    with wire.reference_only(), pytest.raises(RuntimeError, match="compiled path"):
        ThreadSignerPool(1)
