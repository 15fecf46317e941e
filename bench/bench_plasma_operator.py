"""Plasma operator throughput: validation of 2-input transactions applied durably to the
UTXO set against the secp256k1 limit of this machine, sealing a full block, and the HTTP
API end to end with batch submission.

    python -m bench.bench_plasma_operator
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import coincurve
import httpx
import uvicorn

from bench.report import table, verdict, write_section
from dccn_devtools.ports import free_port
from plasma_client.wallet import Coin, build_transfer
from plasma_core import store, wire
from plasma_core.ledger import ChildChain
from plasma_core.recovery import signer_pool
from plasma_operator.api import ApiState, create_app
from plasma_operator.config import OperatorConfig

OPERATOR = "0x" + "0f" * 20
VALIDATION_TXS = 20_000
REFERENCE_TXS = 5_000  # the pure-Python path, for comparison only
BATCH = 2_000
ELIXIR_OMG_TPS = "3,000-4,000 tx/s (synthetic)"
WORKERS = OperatorConfig.model_fields["recovery_workers"].default


def recoveries_per_second(seconds: float = 2.0) -> float:
    """The physical limit: coincurve public-key recoveries per second on one core."""
    key = coincurve.PrivateKey(os.urandom(32))
    samples = []
    for _ in range(256):
        digest = os.urandom(32)
        samples.append((key.sign_recoverable(digest, hasher=None), digest))
    done, started = 0, time.process_time()
    while time.process_time() - started < seconds:
        for signature, digest in samples:
            coincurve.PublicKey.from_signature_and_message(signature, digest, hasher=None)
        done += len(samples)
    return done / (time.process_time() - started)


def _users(count: int) -> list[tuple[str, bytes]]:
    keys = [os.urandom(32) for _ in range(count)]
    return [(wire.to_checksum_address(wire.keccak(coincurve.PrivateKey(k).public_key.format(False)[1:])[-20:]), k)
            for k in keys]


def _deposit_blknum(n: int) -> int:
    """The n-th deposit block number (never a multiple of 1000, which are operator blocks)."""
    return (n // 999) * 1000 + n % 999 + 1


def _funded_ledger(path: Path, count: int) -> tuple[ChildChain, object, list[str]]:
    """A ledger holding 2 deposits per transaction, and `count` signed 2-input transfers (not timed)."""
    db = store.open_chain_db(path)
    chain = ChildChain(OPERATOR, lambda *_: None)
    users = _users(64)
    rows, raws = [], []
    for i in range(count):
        owner, key = users[i % len(users)]
        first, second = _deposit_blknum(2 * i), _deposit_blknum(2 * i + 1)
        rows += [(wire.utxo_position(first, 0, 0), first, owner, "100"), (wire.utxo_position(second, 0, 0), second, owner, "100")]
        tx = build_transfer([Coin(first, 0, 0, 100), Coin(second, 0, 0, 100)], owner, users[(i + 1) % len(users)][0],
                            150, 1, key)
        raws.append("0x" + wire.encode(tx).hex())
    db.execute("BEGIN")
    db.executemany("INSERT INTO utxos (pos, blknum, owner, amount) VALUES (?, ?, ?, ?)", rows)
    db.execute("COMMIT")
    return chain, db, raws


@dataclass(frozen=True)
class Validation:
    cpu_rate: float  # tx per CPU second of the whole process (every thread)
    wall_rate: float  # tx per wall second
    main_us: float  # CPU µs per tx of the calling thread (decode, checks, SQLite, bookkeeping)
    process_us: float  # CPU µs per tx of the process (the above + in-process recovery threads)


def validation_throughput(workdir: Path, workers: int, count: int = VALIDATION_TXS) -> Validation:
    """Validating + applying 2-input txs durably in batches, with `workers` recovery threads
    (compiled path) or processes (pure-Python path); 0: in the calling thread. The pool is
    started before the clock, as the operator starts it once."""
    chain, db, raws = _funded_ledger(workdir / f"validation-{workers}-{wire.NATIVE}.db", count)
    with contextlib.ExitStack() as stack:
        if workers:
            chain.recovery = stack.enter_context(signer_pool(workers))
        thread, cpu, wall = time.thread_time(), time.process_time(), time.perf_counter()
        for i in range(0, len(raws), BATCH):
            chain.submit(db, raws[i:i + BATCH])  # type: ignore[arg-type]
        thread, cpu, wall = time.thread_time() - thread, time.process_time() - cpu, time.perf_counter() - wall
    return Validation(len(raws) / cpu, len(raws) / wall, thread / len(raws) * 1e6, cpu / len(raws) * 1e6)


def seal_full_block(workdir: Path) -> tuple[float, float]:
    """(CPU, wall) seconds to seal a block of 65,536 leaves: Merkle root, every level stored, root enqueued."""
    db = store.open_chain_db(workdir / "seal.db")
    chain = ChildChain(OPERATOR, lambda *_: None)
    blknum, _ = chain.open_block(db)
    filler = wire.encode(wire.Transaction(blknum1=1, newowner1=OPERATOR, denom1=1))
    db.execute("BEGIN")
    db.executemany("INSERT INTO txs (id, blknum, txindex, kind, raw, leaf, fee) VALUES (?, ?, ?, 'transfer', ?, ?, '1')",
                   [(store.tx_id(blknum, i), blknum, i, filler, wire.keccak(filler + i.to_bytes(4, "big")))
                    for i in range(wire.MAX_LEAVES - 1)])
    db.execute("COMMIT")
    chain.fee_outputs = True  # the fee transaction fills the last leaf: 65,536 in all
    cpu, wall = time.process_time(), time.perf_counter()
    chain.seal(db)
    return time.process_time() - cpu, time.perf_counter() - wall


def api_throughput(workdir: Path, count: int = 10_000, batch: int = 1_000) -> float:
    """Transactions per second through POST /txs on a real uvicorn server (client in this process)."""
    chain, db, raws = _funded_ledger(workdir / "api.db", count)
    port = free_port()
    state = ApiState(chain, db, lambda: {"ok": True}, lambda _db: {}, max_batch=batch)  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off", access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
    while True:
        try:
            client.get("/health")
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    started = time.perf_counter()
    for i in range(0, count, batch):
        response = client.post("/txs", json={"txs": raws[i:i + batch]})
        response.raise_for_status()
    elapsed = time.perf_counter() - started
    server.should_exit = True
    return count / elapsed


def main() -> None:
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        recoveries = recoveries_per_second()
        in_process = validation_throughput(workdir, 0)
        pooled = validation_throughput(workdir, WORKERS)
        with wire.reference_only():  # what runs where plasma_fast is not built
            reference = validation_throughput(workdir, 0, REFERENCE_TXS)
            reference_pooled = validation_throughput(workdir, WORKERS, REFERENCE_TXS)
        recoveries = max(recoveries, recoveries_per_second())  # the limit: best of before and after
        seal_cpu, seal_wall = seal_full_block(workdir)
        api_rate = api_throughput(workdir)
    duration, load_after = time.perf_counter() - started, os.getloadavg()[0]
    limit = recoveries / 2
    ratio = pooled.wall_rate / limit
    cores = os.cpu_count()
    path = "compiled (plasma_fast)" if wire.NATIVE else "pure Python (plasma_fast not built)"
    pool_kind = "C threads" if wire.NATIVE else "worker processes"
    recovery_us = 2e6 / recoveries  # two coincurve recoveries, as the limit counts them
    rows = [
        ["secp256k1 recoveries per CPU second, one core (coincurve)", f"{recoveries:,.0f}", "", "", ""],
        ["physical limit for 2-input txs (recoveries / 2)", f"{limit:,.0f} tx/s", "", "", ""],
        [f"validate + apply 2-input txs durably, {WORKERS} recovery {pool_kind}, {path} ({VALIDATION_TXS:,} txs, "
         f"batches of {BATCH:,}; {cores} cores)",
         f"{pooled.wall_rate:,.0f} tx/s wall ({pooled.cpu_rate:,.0f} tx per CPU s of the operator process)",
         f"{ratio:.2f} of the limit", f"≥ 0.75 of the limit; anchor elixir-omg {ELIXIR_OMG_TPS}",
         verdict(ratio, 0.75, lower_is_better=False)],
        ["same, in process (recovery_workers: 0; one core)",
         f"{in_process.wall_rate:,.0f} tx/s wall ({in_process.cpu_rate:,.0f} tx per CPU s)",
         f"{in_process.wall_rate / limit:.2f} of the limit", "", ""],
        [f"pure-Python path (the reference, the fallback), {WORKERS} worker processes ({REFERENCE_TXS:,} txs)",
         f"{reference_pooled.wall_rate:,.0f} tx/s wall", f"{reference_pooled.wall_rate / limit:.2f} of the limit", "", ""],
        ["pure-Python path, in process",
         f"{reference.wall_rate:,.0f} tx/s wall ({reference.cpu_rate:,.0f} tx per CPU s)",
         f"{reference.wall_rate / limit:.2f} of the limit", "", ""],
        ["seal a full block (65,536 leaves: root, levels, txs, outbox)", f"{seal_cpu:.2f} s CPU ({seal_wall:.2f} s wall)",
         "", "≤ 1 s", verdict(seal_cpu, 1.0)],
        ["HTTP API end to end, POST /txs (batches of 1,000; in process)", f"{api_rate:,.0f} tx/s wall", "", "", ""],
    ]
    body = table(["measure", "figure", "ratio", "goal / anchor", "verdict"], rows) + (
        f"\n\nThe ratio is the issue's: wall-clock transactions per second over the one-core limit ÷ 2, both "
        f"measured in this run (the limit before and after the validation runs, the better figure kept). The "
        f"pooled figure uses every core of this host ({cores}): the operator's thread decodes and applies "
        f"(SQLite WAL, one transaction per batch, synchronous=NORMAL) while {WORKERS} {pool_kind} recover "
        f"the signatures of the batch as it is decoded; it is not a one-core figure, and only wall time counts, "
        f"so the host's other load lowers it. 1-minute load average {load_before:.2f} before this run, "
        f"{load_after:.2f} after; the run took {duration:.0f} s.\n\n"
        f"Where a 2-input transaction's CPU time goes (µs, measured in this run): in process "
        f"{in_process.process_us:.0f} in all, of which the two recoveries ~{recovery_us:.0f} (the limit's rate) "
        f"and the rest ~{in_process.process_us - recovery_us:.0f}: decode and hashes (plasma_fast), the checks, "
        f"SQLite and Python bookkeeping. Pooled: the operator's thread {pooled.main_us:.0f} (that rest, plus "
        f"queueing the signatures), the recovery threads {pooled.process_us - pooled.main_us:.0f}; with "
        f"{cores} idle cores the wall rate is bounded by max(thread, process ÷ {cores}) = "
        f"{max(pooled.main_us, pooled.process_us / (cores or 1)):.0f} µs a transaction. The pure-Python path "
        f"spends {reference.process_us:.0f} in process. The single-transaction path and the watcher's block "
        "replay recover in process. The API figure runs without the pool."
    )
    write_section("plasma_operator", "Plasma operator", body, "python -m bench.bench_plasma_operator")
    print(body)


if __name__ == "__main__":
    main()
