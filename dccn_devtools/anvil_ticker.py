"""`python -m dccn_devtools.anvil_ticker URL SECONDS ANVIL_PID`: mine a block every SECONDS on the
anvil at URL until that process is gone (started by `dccn-anvil --pid-file` in the background).
Light on imports on purpose: it starts while the user waits."""

from __future__ import annotations

import os
import sys
import threading

import httpx


def tick_blocks(url: str, every: float, stop: threading.Event, owner_pid: int | None = None) -> None:
    """Mine an empty block every `every` seconds until `stop` is set, the node stops answering
    or the process `owner_pid` is gone.

    Blocks come from `evm_mine` on an automine node rather than from anvil's own interval
    mining: with `--block-time` anvil reports automine off, and ape then stops waiting for
    receipts (`ape run deploy` fails with "did not create a contract").
    """
    node = httpx.Client(timeout=10)
    try:
        while not stop.wait(every):
            if owner_pid is not None and not _alive(owner_pid):
                return
            try:
                node.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []})
            except httpx.HTTPError:
                return
    finally:
        node.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


if __name__ == "__main__":
    url, every, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    tick_blocks(url, every, threading.Event(), owner_pid=pid)
