"""JSON-RPC batches: many calls in one HTTP request, the responses in request order.

The sender (raw transactions, receipts) and the bridge relayer (estimates, state reads)
send hundreds of calls a block; one round trip each was their bound on a loaded host.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from web3 import Web3

BATCH_SIZE = 100  # calls per HTTP request


class RpcBatchRefused(ValueError):
    """The node answered the batch as a whole with an error (or with the wrong number of answers)."""


def rpc_error_text(error: Any) -> str:
    """The message of a JSON-RPC error object."""
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error)


def rpc_batch(w3: Web3, calls: Sequence[tuple[str, list[Any]]], size: int = BATCH_SIZE) -> list[dict[str, Any]]:
    """Each call's JSON-RPC response (`result` or `error`), `size` calls to an HTTP request.

    A provider that cannot batch gets one request per call.
    """
    responses: list[dict[str, Any]] = []
    for start in range(0, len(calls), size):
        chunk = list(calls[start:start + size])
        try:
            answers = w3.provider.make_batch_request(chunk)  # type: ignore[attr-defined]
        except (AttributeError, NotImplementedError):
            responses += [dict(w3.provider.make_request(m, p)) for m, p in chunk]  # type: ignore[arg-type]
            continue
        if not isinstance(answers, list):
            raise RpcBatchRefused(f"batch request refused: {rpc_error_text(dict(answers).get('error'))}")
        if len(answers) != len(chunk):
            raise RpcBatchRefused(f"{chunk[0][0]} batch: {len(chunk)} requests, {len(answers)} responses")
        responses += [dict(answer) for answer in answers]
    return responses
