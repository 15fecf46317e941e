"""The operator's HTTP JSON API (FastAPI; the OpenAPI schema is at /openapi.json).

Every rejection is a 4xx JSON body `{"error": <code>, "reason": <text>}` (plus `index`
for the failing transaction of a batch) and changes nothing.

Operators sharing one PostgreSQL database: only the active one accepts writes (POST /tx,
/txs, /confirm: the ledger's write transactions are fenced by the lease); a standby answers
them 503 `{"error": "standby", ...}` having committed nothing, and serves every read from
the shared database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from web3 import Web3

from dccn_common.sender import LeaseLost
from dccn_common.store import Connection
from plasma_core import store, wire
from plasma_core.ledger import ChildChain
from plasma_core.validation import Malformed, TxRejected

# Every number in a path or body is range-checked here, so no value reaches the store
# (SQLite: signed 64 bits) that it cannot take.
MAX_BLKNUM = wire.MAX_BLKNUM
BlockNumber = Annotated[int, Path(ge=1, le=MAX_BLKNUM, description="child-chain block number")]
TxIndex = Annotated[int, Path(ge=0, lt=wire.MAX_LEAVES)]
OIndex = Annotated[int, Path(ge=0, le=1)]


class TxIn(BaseModel):
    tx: str = Field(description="0x-hex RLP of a signed transaction", max_length=2 + 2 * 1024)


class BatchIn(BaseModel):
    txs: list[str] = Field(description="0x-hex RLP of signed transactions, applied in order, all or nothing")


class ConfirmIn(BaseModel):
    blknum: int = Field(ge=1, le=MAX_BLKNUM)
    txindex: int = Field(ge=0, lt=wire.MAX_LEAVES)
    slot: int = Field(ge=0, le=1, description="input slot (0/1) whose owner signed")
    sig: str = Field(description="0x-hex 65-byte confirm signature of keccak256(leaf || root)")


@dataclass
class ApiState:
    chain: ChildChain
    db: Connection
    health: Callable[[], dict[str, Any]]
    extra_status: Callable[[Connection], dict[str, Any]]
    max_batch: int = 10_000
    lock: threading.Lock = field(default_factory=threading.Lock)
    metrics: Callable[[], tuple[bytes, str]] | None = None  # the Prometheus exposition


def _reject(err: TxRejected) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status)


def _standby(err: LeaseLost) -> JSONResponse:
    return JSONResponse({"error": "standby", "reason": "this operator instance is a standby (another instance "
                         f"is active); send transactions to the active one: {err}"}, status_code=503)


def _not_found(reason: str) -> JSONResponse:
    return JSONResponse({"error": "not_found", "reason": reason}, status_code=404)


def create_app(state: ApiState) -> FastAPI:
    app = FastAPI(title="Plasma operator", version="1.0",
                  description="Child-chain operator: submit transactions, read blocks, proofs and UTXOs.")

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        return JSONResponse({"error": "malformed", "reason": problems}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": "http", "reason": str(err.detail)}, status_code=err.status_code)

    @app.get("/health", summary="Service health (200 when the follower and block builder run)")
    def health() -> JSONResponse:
        body = state.health()
        return JSONResponse(body, status_code=200 if body.get("ok") else 503)

    @app.get("/metrics", summary="Prometheus metrics (text exposition format)", response_class=Response)
    def metrics() -> Response:
        if state.metrics is None:
            return _not_found("no metrics here")
        body, content_type = state.metrics()
        return Response(body, media_type=content_type)

    @app.get("/status", summary="Current block, pending transactions, root-chain head seen")
    def status() -> dict[str, Any]:
        with state.lock:
            return state.extra_status(state.db)

    @app.post("/tx", summary="Submit one signed transaction")
    def submit_tx(body: TxIn) -> Any:
        return _submit(state, [body.tx])

    @app.post("/txs", summary="Submit a batch of signed transactions (all or nothing)")
    def submit_batch(body: BatchIn) -> Any:
        if not body.txs:
            return _reject(Malformed("empty batch"))
        if len(body.txs) > state.max_batch:
            return _reject(Malformed(f"batch of {len(body.txs)} transactions; the limit is {state.max_batch}"))
        return _submit(state, body.txs, batch=True)

    @app.get("/block/{blknum}", summary="A block: status, root and every transaction")
    def get_block(blknum: BlockNumber) -> Any:
        with state.lock:
            row = store.get_block(state.db, blknum)
            if row is None:
                return _not_found(f"no block {blknum}")
            txs = store.block_txs(state.db, blknum)
        return {
            "blknum": blknum, "kind": row["kind"], "status": row["status"],
            "root": "0x" + bytes(row["root"]).hex() if row["root"] is not None else None,
            "leaf_count": row["leaf_count"], "eth_block": row["eth_block"],
            "transactions": [{"txindex": t.txindex, "kind": t.kind, "tx": "0x" + t.raw.hex()} for t in txs],
        }

    @app.get("/tx/{blknum}/{txindex}", summary="A transaction with its Merkle proof and exit data")
    def get_tx(blknum: BlockNumber, txindex: TxIndex) -> Any:
        with state.lock:
            data = state.chain.exit_data(state.db, blknum, txindex)
        return data if data is not None else _not_found(f"no transaction at ({blknum}, {txindex})")

    @app.get("/utxo/{blknum}/{txindex}/{oindex}", summary="One output: owner, amount, and what spent it")
    def get_utxo(blknum: BlockNumber, txindex: TxIndex, oindex: OIndex) -> Any:
        with state.lock:
            utxo = store.get_utxo(state.db, wire.utxo_position(blknum, txindex, oindex))
        if utxo is None:
            return _not_found(f"no output at ({blknum}, {txindex}, {oindex})")
        body = utxo.as_json()
        if utxo.spent_by is not None:
            spent_blk, spent_idx, _ = wire.decode_position(utxo.spent_by)
            body["spent_by"] = {"blknum": spent_blk, "txindex": spent_idx, "slot": utxo.spent_slot}
        return body

    @app.get("/utxos/{owner}", summary="Unspent outputs of an owner")
    def list_utxos(owner: str) -> Any:
        if not Web3.is_address(owner):
            return _reject(Malformed(f"{owner!r} is not an address"))
        with state.lock:
            utxos = store.unspent_of(state.db, Web3.to_checksum_address(owner))
        return {"owner": Web3.to_checksum_address(owner), "utxos": [u.as_json() for u in utxos],
                "balance": str(sum(u.amount for u in utxos if not u.exiting))}

    @app.post("/confirm", summary="Publish an input owner's confirm signature of a transaction")
    def confirm(body: ConfirmIn) -> Any:
        try:
            sig = bytes.fromhex(body.sig.removeprefix("0x"))
        except ValueError:
            return _reject(Malformed("sig is not valid hex"))
        if len(sig) != wire.SIG_LENGTH:
            return _reject(Malformed(f"a confirm signature is {wire.SIG_LENGTH} bytes, got {len(sig)}"))
        try:
            with state.lock:
                state.chain.add_confirm_sig(state.db, body.blknum, body.txindex, body.slot, sig)
        except LeaseLost as err:
            return _standby(err)
        except LookupError as err:
            return _not_found(str(err))
        except TxRejected as err:
            return _reject(err)
        return {"stored": True, "blknum": body.blknum, "txindex": body.txindex, "slot": body.slot}

    return app


def _submit(state: ApiState, raws: list[str], *, batch: bool = False) -> Any:
    try:
        with state.lock:
            accepted = state.chain.submit(state.db, raws)
    except LeaseLost as err:
        return _standby(err)
    except TxRejected as err:
        if not batch:
            err.index = None
        return _reject(err)
    if batch:
        return {"accepted": [a.as_json() for a in accepted]}
    return accepted[0].as_json()
