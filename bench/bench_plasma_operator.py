"""Plasma operator throughput: validation of 2-input transactions applied durably to the
UTXO set against the secp256k1 limit of this machine, sealing a full block, and the HTTP
API end to end with batch submission.

    python -m bench.bench_plasma_operator
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import coincurve
import httpx
import uvicorn

from bench.report import table, verdict, write_section
from dccn_common.anvil import free_port
from plasma_operator import store, wire
from plasma_operator.api import ApiState, create_app
from plasma_operator.ledger import ChildChain
from plasma_operator.wallet import Coin, build_transfer

OPERATOR = "0x" + "0f" * 20
VALIDATION_TXS = 20_000
BATCH = 2_000
ELIXIR_OMG_TPS = "3,000-4,000 tx/s (synthetic)"


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


def validation_throughput(workdir: Path) -> tuple[float, float]:
    """(tx per CPU second, tx per wall second) validating + applying 2-input txs durably in batches."""
    chain, db, raws = _funded_ledger(workdir / "validation.db", VALIDATION_TXS)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(0, len(raws), BATCH):
        chain.submit(db, raws[i:i + BATCH])  # type: ignore[arg-type]
    return len(raws) / (time.process_time() - cpu), len(raws) / (time.perf_counter() - wall)


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
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        recoveries = recoveries_per_second()
        validated_cpu, validated_wall = validation_throughput(workdir)
        recoveries = max(recoveries, recoveries_per_second())  # the limit: best of before and after
        seal_cpu, seal_wall = seal_full_block(workdir)
        api_rate = api_throughput(workdir)
    limit = recoveries / 2
    ratio = validated_cpu / limit
    rows = [
        ["secp256k1 recoveries per CPU second, one core (coincurve)", f"{recoveries:,.0f}", "", "", ""],
        ["physical limit for 2-input txs (recoveries / 2)", f"{limit:,.0f} tx/s", "", "", ""],
        [f"validate + apply 2-input txs durably ({VALIDATION_TXS:,} txs, batches of {BATCH:,})",
         f"{validated_cpu:,.0f} tx per CPU s ({validated_wall:,.0f} tx/s wall)", f"{ratio:.2f} of the limit",
         f"≥ 0.75 of the limit; anchor elixir-omg {ELIXIR_OMG_TPS}", verdict(ratio, 0.75, lower_is_better=False)],
        ["seal a full block (65,536 leaves: root, levels, txs, outbox)", f"{seal_cpu:.2f} s CPU ({seal_wall:.2f} s wall)",
         "", "≤ 1 s", verdict(seal_cpu, 1.0)],
        ["HTTP API end to end, POST /txs (batches of 1,000)", f"{api_rate:,.0f} tx/s wall", "", "", ""],
    ]
    body = table(["measure", "figure", "ratio", "goal / anchor", "verdict"], rows) + (
        "\n\nOne process, one core (SQLite WAL, one transaction per batch, synchronous=NORMAL). The limit is "
        "measured in the same run, before and after the validation run (the better figure is kept). Ratios use CPU "
        "time of this process, because the machine's 2 cores are shared with other work and wall time then "
        "measures the neighbours; wall figures are given beside them. The API figure is wall time and includes "
        "JSON, HTTP on loopback and the client in the same process.\n\n"
        "Where a transaction's CPU time goes (measured, µs per 2-input tx on this host): the two recoveries "
        "~100 (called straight through coincurve's libsecp256k1 binding, within a few % of the limit's own "
        "figure), decoding and hashing ~20 (fastpath), the rest ~85: SQLite (the batch's inputs read in one "
        "query per 500, three executemany writes, the commit) and Python bookkeeping. The limit leaves ~35 µs "
        "beside the recoveries at 0.75, below what the decode alone costs in Python: reaching it on one core "
        "needs the decode and bookkeeping in native code, or recoveries spread over more cores (not done: "
        "this host has 2 shared cores)."
    )
    write_section("plasma_operator", "Plasma operator", body, "python -m bench.bench_plasma_operator")
    print(body)


if __name__ == "__main__":
    main()
