"""A web3 middleware for tests on an automining anvil: a send returns once its block is mined.

Measured on the pinned anvil: `eth_sendTransaction` returns before the automined block is in,
so a read straight after it saw the old head about one send in three (1,033 of 3,000), and the
receipt missing one in four. A test that sends and then reads (a follower poll, a balance, the
next reorg's depth) then sees a block layout its transactions do not explain. Services never
rely on this: their sender polls for receipts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from web3.middleware import Web3Middleware

SEND_METHODS = frozenset({"eth_sendTransaction", "eth_sendRawTransaction"})
MINING_TIMEOUT = 30.0  # seconds; far above anvil's mining time, even on a loaded 2-core host
POOL_CHECK_AFTER = 0.02  # seconds of polling before asking the pool whether the tx waits there

MakeRequest = Callable[[Any, Any], Any]


class MinedOnReturn(Web3Middleware):
    """After a successful send on an automining node, wait until the transaction has a receipt.

    It returns early when the node does not automine (a test holding blocks back), and when
    the transaction is queued behind a nonce gap (it is not minable yet)."""

    def wrap_make_request(self, make_request: MakeRequest) -> MakeRequest:  # type: ignore[override]
        def middleware(method: Any, params: Any) -> Any:
            response = make_request(method, params)
            if method in SEND_METHODS and isinstance(response, dict) and response.get("result"):
                wait_until_mined(make_request, str(response["result"]))
            return response

        return middleware


def wait_until_mined(make_request: MakeRequest, tx_hash: str) -> None:
    if not make_request("anvil_getAutomine", []).get("result"):
        return
    start = time.monotonic()
    pool_checked = False
    while time.monotonic() - start < MINING_TIMEOUT:
        if make_request("eth_getTransactionReceipt", [tx_hash]).get("result"):
            return
        if not pool_checked and time.monotonic() - start > POOL_CHECK_AFTER:
            pool_checked = True
            if _queued(make_request, tx_hash):
                return
        time.sleep(0.002)


def _queued(make_request: MakeRequest, tx_hash: str) -> bool:
    queued = (make_request("txpool_content", []).get("result") or {}).get("queued") or {}
    return any(tx.get("hash", "").lower() == tx_hash.lower()
               for by_nonce in queued.values() for tx in by_nonce.values())
