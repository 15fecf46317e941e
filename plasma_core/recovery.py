"""Signer recovery of a batch on other cores, while the calling process decodes and applies.

`signer_pool(n)` picks the pool: with the compiled wire path (plasma_fast) a
`ThreadSignerPool`, whose threads recover whole chunks in C without the GIL (no pickling,
no pipes, no extra processes); without it a `SignerPool` of worker processes.

A `SignerPool` holds a few persistent worker processes (`python -m plasma_core.recovery`,
started fresh, so a worker inherits no descriptor but its own two pipes: when the operator
dies, even by SIGKILL, the worker reads EOF and exits; nothing is left that a restart could
trip on, and nothing in them touches the database).
Workers only run `wire.recover`; a result is used only when the recovery succeeded,
otherwise the caller recovers in process and gets the very error it always got, so the
accept/reject decisions are exactly the in-process ones.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Protocol

from plasma_core import wire
from plasma_core.wire import Parsed, recover

log = logging.getLogger(__name__)

# Signatures per job: small enough that the first result arrives early, large enough that
# pickling and pipe round trips stay a few % of the recoveries.
CHUNK_TXS = 128
# Jobs queued per worker: enough to keep it busy while the batch is decoded; few enough that
# the unread replies (~6 kB a job) always fit the reply pipe (64 kB), so a worker never
# blocks writing while this process blocks sending to it.
IN_FLIGHT = 8
STARTUP_TIMEOUT = 30.0

Signers = tuple[bytes | None, bytes | None]


def _recover_or_none(message_hash: bytes, signature: bytes | None) -> bytes | None:
    if signature is None:
        return None
    try:
        return recover(message_hash, signature)
    except wire.WireError:
        return None  # the caller recovers again in process for the exact reason


def _serve(requests: Connection, replies: Connection) -> None:
    replies.send("ready")
    while True:
        try:
            job = requests.recv()
        except (EOFError, OSError):
            return  # the operator closed the pool or died
        replies.send([(_recover_or_none(h, s1), _recover_or_none(h, s2)) for h, s1, s2 in job])


class _Worker:
    """`python -m plasma_core.recovery IN OUT`: only the two pipe ends are inherited."""

    def __init__(self) -> None:
        job_read, job_write = os.pipe()
        reply_read, reply_write = os.pipe()
        package_root = str(Path(__file__).resolve().parents[1])  # importable from any working directory
        # Workers only recover signatures: they get no secrets (keystore passwords live in the environment).
        env = {k: v for k, v in os.environ.items() if not any(w in k.upper() for w in ("PASSWORD", "SECRET", "KEY"))}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        self.process = subprocess.Popen([sys.executable, "-m", "plasma_core.recovery", str(job_read),
                                         str(reply_write)], pass_fds=(job_read, reply_write), env=env)
        os.close(job_read)
        os.close(reply_write)
        self.requests = Connection(job_write, readable=False)
        self.replies = Connection(reply_read, writable=False)

    def stop(self) -> None:
        self.requests.close()  # EOF: the worker returns
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.replies.close()


def _job(items: Sequence[Parsed]) -> list[tuple[bytes, bytes | None, bytes | None]]:
    def sig(item: Parsed, slot: int) -> bytes | None:
        signature = item.tx.sig(slot)
        return None if signature == wire.ZERO_SIG else signature
    return [(item.signing_hash, sig(item, 0), sig(item, 1)) for item in items]


class SignerPool:
    """`workers` persistent recovery processes; `close()` (or the context manager) stops them."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("a SignerPool needs at least one worker")
        self._lock = threading.Lock()  # one batch at a time: replies are read in send order
        self._workers = [_Worker() for _ in range(workers)]
        self.broken = False
        for worker in self._workers:  # the first batch should not wait for the imports
            if not worker.replies.poll(STARTUP_TIMEOUT) or worker.replies.recv() != "ready":
                self.close()
                raise RuntimeError("a signer recovery worker did not start")

    @property
    def workers(self) -> int:
        return len(self._workers)

    def recover_batch(self) -> RecoveredBatch:
        """A batch to `add` parsed transactions to as they are decoded; `signers(i)` waits for
        transaction i's result."""
        return RecoveredBatch(self)

    def close(self) -> None:
        for worker in self._workers:
            worker.stop()
        self._workers = []
        self.broken = True

    def __enter__(self) -> SignerPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class RecoveredBatch:
    """A batch's outstanding jobs; use as a context manager so an early rejection still
    reads every reply (the pipes stay in step for the next batch)."""

    def __init__(self, pool: SignerPool) -> None:
        self.pool = pool
        self.results: list[Signers] = []
        self.chunks: list[Sequence[Parsed]] = []
        self.next_chunk = 0
        self.sent: list[tuple[_Worker, int]] = []  # (worker, transactions in the job), in send order

    def add(self, parsed: Sequence[Parsed]) -> None:
        """Queue the next transactions of the batch (in order; any length)."""
        self.chunks += [parsed[start:start + CHUNK_TXS] for start in range(0, len(parsed), CHUNK_TXS)]
        self._send_next()

    def _send_next(self) -> None:
        while (not self.pool.broken and self.next_chunk < len(self.chunks)
               and len(self.sent) < IN_FLIGHT * self.pool.workers):
            self._send_one()

    def _send_one(self) -> None:
        worker = self.pool._workers[self.next_chunk % self.pool.workers]
        chunk = self.chunks[self.next_chunk]
        try:
            worker.requests.send(_job(chunk))
        except (OSError, ValueError):
            self._give_up()
            return
        self.next_chunk += 1
        self.sent.append((worker, len(chunk)))

    def signers(self, index: int) -> Signers:
        """The recovered signers of transaction `index` (None where the caller must recover itself)."""
        while len(self.results) <= index and self.sent:
            worker, count = self.sent.pop(0)
            try:
                self.results.extend(worker.replies.recv())
            except (EOFError, OSError):
                self._give_up()
                self.results.extend([(None, None)] * count)
            self._send_next()
        return self.results[index] if index < len(self.results) else (None, None)

    def _give_up(self) -> None:
        if not self.pool.broken:
            log.error("a recovery worker stopped; recovering in process from now on")
        self.pool.broken = True
        self.sent = []

    def __enter__(self) -> RecoveredBatch:
        self.pool._lock.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        try:
            while self.sent:
                self.signers(len(self.results))
        finally:
            self.pool._lock.release()


class Batch(Protocol):
    """What ChildChain.submit uses of a pool's batch (RecoveredBatch, ThreadBatch)."""

    def add(self, parsed: Sequence[Parsed]) -> None: ...
    def signers(self, index: int) -> Signers: ...
    def __enter__(self) -> Batch: ...
    def __exit__(self, *_: object) -> None: ...


class Pool(Protocol):
    broken: bool

    @property
    def workers(self) -> int: ...
    def recover_batch(self) -> Batch: ...
    def close(self) -> None: ...


class ThreadSignerPool:
    """Recovery on `workers` C threads per batch (wire.RecoveryThreads: plasma_fast's, which
    never take the GIL, so they run on other cores while the caller decodes and applies)."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("a ThreadSignerPool needs at least one worker")
        if not wire.NATIVE:
            raise RuntimeError("a ThreadSignerPool needs the compiled path (plasma_fast): use SignerPool")
        self._workers = workers
        self._lock = threading.Lock()
        self.broken = False

    @property
    def workers(self) -> int:
        return self._workers

    def recover_batch(self) -> ThreadBatch:
        return ThreadBatch(self)

    def close(self) -> None:
        self.broken = True

    def __enter__(self) -> ThreadSignerPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class ThreadBatch:
    """A batch's signatures queued on C threads (started on entry, stopped on exit)."""

    def __init__(self, pool: ThreadSignerPool) -> None:
        self.pool = pool
        self.threads: wire.RecoveryThreads | None = None
        self.queued = 0

    def add(self, parsed: Sequence[Parsed]) -> None:
        if self.threads is None:
            return  # the pool is closed: every signer is recovered in process
        # Two signatures a transaction; an unused input's zero signature recovers to None.
        self.threads.add(b"".join([item.signing_hash * 2 for item in parsed]),
                         b"".join([item.tx.sig1 + item.tx.sig2 for item in parsed]))
        self.queued += len(parsed)

    def signers(self, index: int) -> Signers:
        if self.threads is None or index >= self.queued:
            return (None, None)
        return (self.threads.signer(2 * index), self.threads.signer(2 * index + 1))

    def __enter__(self) -> ThreadBatch:
        self.pool._lock.acquire()
        if not self.pool.broken:
            self.threads = wire.recovery_threads(self.pool.workers)
        return self

    def __exit__(self, *_: object) -> None:
        try:
            if self.threads is not None:
                self.threads.close()  # an early rejection: what is not recovered yet never will be
        finally:
            self.pool._lock.release()


def signer_pool(workers: int) -> Pool:
    """The recovery pool for `workers` (> 0): threads on the compiled path, processes otherwise."""
    return ThreadSignerPool(workers) if wire.NATIVE else SignerPool(workers)


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
