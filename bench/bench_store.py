"""State on PostgreSQL next to SQLite (issue 15): follower and sender throughput in one run
on one anvil, and sender failover time over 10 trials (leader SIGKILLed mid-stream).

    python -m bench.bench_store
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account

from bench.bench_foundation import TRANSFERS, raw_transfers_per_second
from bench.report import table, verdict, write_section
from dccn_common import PROJECT_ROOT
from dccn_common.follower import ChainFollower
from dccn_common.sender import DEFAULT_LEASE_SECONDS, FINAL_STATUSES, Lease, TxSender
from dccn_common.store import open_db, transaction
from dccn_deploy import run_parts
from dccn_deploy.web3_backend import web3_context
from dccn_devtools.anvil import Anvil, dev_private_keys
from dccn_devtools.postgres import PostgresServer

TRIALS = 10
# The default lease: the goal is takeover <= 15 s with it (BENCH_STORE_LEASE to try another).
LEASE_SECONDS = float(os.environ.get("BENCH_STORE_LEASE", DEFAULT_LEASE_SECONDS))
TAKEOVER_GOAL = 15.0
ROUNDS = 3  # throughput: the median of this many rounds per backend (a shared machine is noisy)
STREAM_RATE = 20.0  # outbox rows enqueued per second while a trial runs
SEEN = "CREATE TABLE IF NOT EXISTS seen (n INTEGER)"


def _transfer_data(token: Any, to: str, amount: int) -> bytes:
    return bytes.fromhex(token.functions.transfer(to, amount)._encode_transaction_data()[2:])


# -- throughput ------------------------------------------------------------------------


def follow_rate(w3: Any, target: str, token: Any, start: int, end: int) -> float:
    """Events handled exactly once per second: handler write, consumed mark, cursor in one commit each."""
    # Blocks start..end hold the workload; later rounds' sends come after and stay unconfirmed here.
    confirmations = w3.eth.block_number - end
    follower = ChainFollower(w3, open_db(target, SEEN), "bench", start_block=start, confirmations=confirmations)
    follower.subscribe(token.address, token.abi, "Transfer", lambda event, tx: tx.execute("INSERT INTO seen VALUES (1)"))
    started = time.perf_counter()
    handled = follower.poll_once()
    elapsed = time.perf_counter() - started
    assert handled == TRANSFERS, f"follower handled {handled} of {TRANSFERS} events"
    return handled / elapsed


def send_rate(w3: Any, target: str, token: Any, account: Any, to: str, *, leased: bool = False) -> float:
    """Outbox transactions signed, persisted, sent and confirmed per second, one process."""
    db = open_db(target)
    lease = Lease(db, int(w3.eth.chain_id), account.address, holder="bench") if leased else None
    sender = TxSender(w3, db, account, lease=lease)
    sender.process()  # takes the lease, if any
    data = _transfer_data(token, to, 1)
    with transaction(db):
        for i in range(TRANSFERS):
            sender.enqueue(db, f"t{i}", token.address, data, gas=60_000)
    started = time.perf_counter()
    while sender.pending_count():
        sender.process()
    elapsed = time.perf_counter() - started
    mined = db.execute("SELECT COUNT(*) AS n FROM outbox WHERE status = 'mined'").fetchone()["n"]
    assert mined == TRANSFERS, f"{mined} of {TRANSFERS} outbox rows mined"
    return TRANSFERS / elapsed


# -- failover --------------------------------------------------------------------------


class Failover:
    """Sender processes sharing one key on one PostgreSQL database; the bench enqueues a stream."""

    def __init__(self, anvil: Anvil, dsn: str, token: Any, key: str, recipient: str, tmp: Path) -> None:
        self.anvil, self.dsn, self.token, self.key, self.tmp = anvil, dsn, token, key, tmp
        self.w3 = anvil.web3(mined_on_return=False)
        self.account = Account.from_key(key)
        self.recipient = recipient
        self.queue = TxSender(self.w3, open_db(dsn), self.account)  # enqueues only, never processes
        self.db = self.queue.db
        Lease(self.db, int(self.w3.eth.chain_id), self.account.address)  # the lease table, for leader(); never renewed
        self.start_nonce = self.w3.eth.get_transaction_count(self.account.address)
        self.start_balance = token.functions.balanceOf(recipient).call()
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.enqueued = 0
        self.amounts = 0
        self._spawned = 0
        self._next_row_at: float | None = None  # None: not streaming

    def spawn(self) -> str:
        self._spawned += 1
        holder = f"w{self._spawned}"
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "SENDER_KEY": self.key}
        self.workers[holder] = subprocess.Popen(
            [sys.executable, "-m", "dccn_devtools.sender_worker", self.anvil.url, self.dsn, holder,
             str(LEASE_SECONDS), "--ready", str(self.tmp / f"{holder}.ready")], env=env, cwd=PROJECT_ROOT)
        return holder

    def ready(self, holder: str) -> bool:
        if self.workers[holder].poll() is not None:
            raise RuntimeError(f"sender process {holder} exited ({self.workers[holder].returncode})")
        return (self.tmp / f"{holder}.ready").exists()

    def leader(self) -> str | None:
        row = self.db.execute("SELECT holder, expires_at FROM sender_leases WHERE signer = ?",
                              (self.account.address,)).fetchone()
        return None if row is None or float(row["expires_at"]) < time.time() else str(row["holder"])

    def pump(self, streaming: bool) -> None:
        """Enqueue the rows due by now at STREAM_RATE (each transfers a distinct amount)."""
        now = time.monotonic()
        if not streaming or self._next_row_at is None:
            self._next_row_at = now if streaming else None
            return
        if self._next_row_at > now:
            return
        with transaction(self.db):
            while self._next_row_at <= now:
                self.enqueued += 1
                self.amounts += self.enqueued
                self.queue.enqueue(self.db, f"row-{self.enqueued}", self.token.address,
                                   _transfer_data(self.token, self.recipient, self.enqueued), gas=60_000)
                self._next_row_at += 1 / STREAM_RATE

    def wait(self, condition: Callable[[], bool], timeout: float, what: str, *, streaming: bool) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}: {self.state()}")
            self.pump(streaming)
            time.sleep(0.01)

    def signed_since(self, moment: float) -> float | None:
        """When the first row signed (and broadcast right after) since `moment` was signed."""
        row = self.db.execute("SELECT MIN(sent_at) AS t FROM outbox WHERE sender = ? AND sent_at > ?",
                              (self.account.address, moment)).fetchone()
        return None if row["t"] is None else float(row["t"])

    def check_exactly_once(self) -> str | None:
        """Every row mined once, nonces contiguous and unique, as many txs on chain as rows; else what broke."""
        rows = self.db.execute("SELECT key, nonce, status FROM outbox WHERE sender = ?",
                               (self.account.address,)).fetchall()
        nonces = sorted(int(r["nonce"]) for r in rows if r["nonce"] is not None)
        on_chain = self.w3.eth.get_transaction_count(self.account.address) - self.start_nonce
        balance = self.token.functions.balanceOf(self.recipient).call() - self.start_balance
        problems = []
        if len(rows) != self.enqueued or any(r["status"] != "mined" for r in rows):
            problems.append(f"{sum(r['status'] == 'mined' for r in rows)} of {self.enqueued} rows mined")
        if len(set(nonces)) != len(nonces):
            problems.append(f"nonce used twice: {sorted(n for n in set(nonces) if nonces.count(n) > 1)}")
        if nonces != list(range(self.start_nonce, self.start_nonce + len(rows))):
            problems.append(f"nonces not contiguous from {self.start_nonce}")
        if on_chain != len(rows):
            problems.append(f"{on_chain} transactions on chain for {len(rows)} rows")
        if balance != self.amounts:
            problems.append(f"recipient got {balance}, expected {self.amounts}")
        return "; ".join(problems) or None

    def trial(self) -> float:
        """Kill the leader mid-stream; seconds from the kill to the new leader's first broadcast."""
        signed_before = self.db.execute("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NOT NULL").fetchone()["n"]
        self.wait(lambda: self.leader() is not None
                  and all(self.ready(h) for h in self.workers)
                  and self.db.execute("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NOT NULL")
                  .fetchone()["n"] >= signed_before + 10,
                  60, "a leader sending, and a ready standby", streaming=True)
        deadline = time.monotonic() + random.uniform(0, 0.5)  # anywhere in the leader's 50 ms loop
        self.wait(lambda: time.monotonic() >= deadline, 1, "", streaming=True)
        leader = self.leader()
        assert leader is not None
        self.workers[leader].kill()
        killed_at = time.time()
        self.workers.pop(leader).wait()
        self.spawn()  # the next trial's standby, starting while this one's takes over
        self.wait(lambda: self.signed_since(killed_at) is not None, LEASE_SECONDS + 30,
                  "the new leader's first transaction", streaming=True)
        takeover = self.signed_since(killed_at) - killed_at  # type: ignore[operator]
        # Drain: everything enqueued so far must be mined before the check.
        self.wait(lambda: all(r["status"] in FINAL_STATUSES for r in self.db.execute(
            "SELECT status FROM outbox WHERE sender = ?", (self.account.address,)).fetchall()),
            60, "the outbox to drain", streaming=False)
        if problem := self.check_exactly_once():
            raise AssertionError(f"failover trial broke exactly once: {problem}")
        return takeover

    def state(self) -> str:
        statuses = self.db.execute("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status").fetchall()
        lease = self.db.execute("SELECT holder, epoch, expires_at FROM sender_leases").fetchall()
        return (f"workers {[(h, p.poll(), (self.tmp / f'{h}.ready').exists()) for h, p in self.workers.items()]}, "
                f"outbox {[tuple(r) for r in statuses]}, lease {[tuple(r) for r in lease]} at {time.time():.1f}")

    def stop(self) -> None:
        for process in self.workers.values():
            process.send_signal(signal.SIGKILL)
            process.wait()


def main() -> None:
    started = time.monotonic()
    keys = dev_private_keys(6)
    owner = Account.from_key(keys[0])
    senders = {name: Account.from_key(keys[i]) for i, name in enumerate(("sqlite", "postgresql", "leased"), 2)}
    failover_key, recipient = keys[5], Account.from_key(keys[1]).address
    with Anvil() as anvil, PostgresServer() as pg, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        w3 = anvil.web3(mined_on_return=False)
        token = run_parts(web3_context(w3, owner, deployments=tmp / "deployments"), ("token",)).at("AnkrToken")
        for account in [*senders.values(), Account.from_key(failover_key)]:
            token.functions.transfer(account.address, 10**24).transact({"from": owner.address})
        start = w3.eth.block_number + 1
        raw_transfers_per_second(anvil, token, owner, TRANSFERS)  # the events both followers read
        end = w3.eth.block_number

        # ROUNDS rounds, the backends' order alternating, a fresh database each time: the median of each.
        runs: dict[str, list[float]] = {k: [] for k in ("follow sqlite", "follow postgresql", "send sqlite",
                                                          "send postgresql", "send leased")}
        for n in range(ROUNDS):
            targets = {"sqlite": str(tmp / f"follow{n}.db"), "postgresql": pg.create_database("follow")}
            for name in sorted(targets, reverse=n % 2 == 1):
                runs[f"follow {name}"].append(follow_rate(w3, targets[name], token, start, end))
            sends = {"sqlite": str(tmp / f"send{n}.db"), "postgresql": pg.create_database("send"),
                     "leased": pg.create_database("leased")}
            for name in sorted(sends, reverse=n % 2 == 1):
                runs[f"send {name}"].append(send_rate(w3, sends[name], token, senders[name], recipient,
                                                      leased=name == "leased"))
        follow = {name: statistics.median(runs[f"follow {name}"]) for name in ("sqlite", "postgresql")}
        send = {name: statistics.median(runs[f"send {name}"]) for name in ("sqlite", "postgresql", "leased")}
        throughput_seconds = time.monotonic() - started

        failover = Failover(anvil, pg.create_database("failover"), token, failover_key, recipient, tmp)
        takeovers: list[float] = []
        try:
            failover.spawn()
            failover.spawn()
            for _ in range(TRIALS):
                takeovers.append(failover.trial())
        finally:
            failover.stop()
        rows_sent, transactions = failover.enqueued, w3.eth.get_transaction_count(failover.account.address) \
            - failover.start_nonce
        epoch = int(failover.db.execute("SELECT epoch FROM sender_leases").fetchone()["epoch"])
    elapsed = time.monotonic() - started

    def ratio(pg_rate: float) -> str:
        return f"{pg_rate / send['sqlite']:.2f}"

    rows = [
        ["follower: events handled exactly once per second", f"{follow['sqlite']:,.0f}/s",
         f"{follow['postgresql']:,.0f}/s", f"{follow['postgresql'] / follow['sqlite']:.2f}"],
        ["sender: outbox transactions signed, persisted, sent, confirmed per second", f"{send['sqlite']:,.0f}/s",
         f"{send['postgresql']:,.0f}/s", ratio(send["postgresql"])],
        ["sender with a lease (every write and broadcast fenced by the epoch)", "— (one instance)",
         f"{send['leased']:,.0f}/s", ratio(send["leased"])],
    ]
    median, worst = statistics.median(takeovers), max(takeovers)
    failover_rows = [
        ["trials", TRIALS],
        ["lease", f"{LEASE_SECONDS:g} s " + ("(the default, `DEFAULT_LEASE_SECONDS`)" if LEASE_SECONDS ==
                  DEFAULT_LEASE_SECONDS else f"(shortened; the default is {DEFAULT_LEASE_SECONDS:g} s)")],
        ["takeover, median", f"{median:.2f} s"],
        ["takeover, worst", f"{worst:.2f} s ({verdict(worst, TAKEOVER_GOAL)}: <= {TAKEOVER_GOAL:g} s)"],
        ["takeover, each trial", ", ".join(f"{t:.2f}" for t in takeovers) + " s"],
        ["outbox rows / transactions from the signer on chain", f"{rows_sent:,} / {transactions:,} "
         "(every row mined once, nonces contiguous, none twice: checked after each trial)"],
        ["lease epoch at the end", f"{epoch} (1 + one takeover per kill)"],
    ]
    body = (
        f"Throughput: {TRANSFERS} ANKR transfers on one anvil (automine), the median of {ROUNDS} rounds per backend"
        " in the same run (order alternating, a fresh database each), one process each. PostgreSQL is the"
        " throwaway loopback server of `dccn_devtools/postgres.py` (fsync and synchronous_commit off);"
        " SQLite is a WAL file with synchronous=NORMAL.\n\n"
        + table(["what", "SQLite", "PostgreSQL", "ratio (PostgreSQL / SQLite)"], rows)
        + "\n\nFailover: two sender processes (`dccn_devtools/sender_worker.py`, one `process()` every 50 ms) share one"
        f" key on one PostgreSQL database while the bench enqueues {STREAM_RATE:g} transfers per second; the"
        " leader is SIGKILLed mid-stream (10 or more of the trial's rows sent), and the takeover is the time from"
        " the kill to the first row the new leader signs and broadcasts (its `sent_at`; automine mines it at once)."
        " A replacement standby starts at each kill.\n\n"
        + table(["failover", "figure"], failover_rows)
        + f"\n\nThe takeover is the lease running out unrenewed plus one standby pass: it moves with the lease"
        f" (`Lease(..., seconds=...)`). Whole benchmark: {elapsed:.0f} s ({throughput_seconds:.0f} s throughput)."
    )
    write_section("store", "State on PostgreSQL next to SQLite; sender failover", body, "python -m bench.bench_store")
    print(body)


if __name__ == "__main__":
    main()
