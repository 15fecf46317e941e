"""The sender's JSON-RPC batches (issue 16): one request for the receipts of every row in
flight, one for the signed transactions of every row ready to go, each item's error
handled as the single call handles it; the bytes are still committed before they are sent."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from dccn_common.sender import FINAL_STATUSES, RPC_BATCH_SIZE, TxSender
from dccn_common.store import transaction
from dccn_devtools.pytest_fixtures import BACKENDS
from tests.dccn_common.conftest import transfer_data

# Every test here runs on SQLite and on a real PostgreSQL server (dccn_devtools.postgres).
pytestmark = pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)


class RpcCounter:
    """Counts the JSON-RPC requests the sender's provider makes, batched and single."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, provider: Any) -> None:
        self.batches: list[tuple[str, int]] = []
        self.singles: list[str] = []
        batch, single = provider.make_batch_request, provider.make_request

        def make_batch_request(requests: list[tuple[str, Any]]) -> Any:
            self.batches.append((requests[0][0], len(requests)))
            return batch(requests)

        def make_request(method: str, params: Any) -> Any:
            self.singles.append(method)
            return single(method, params)

        monkeypatch.setattr(provider, "make_batch_request", make_batch_request)
        monkeypatch.setattr(provider, "make_request", make_request)

    def batched(self, method: str) -> list[int]:
        return [n for m, n in self.batches if m == method]


def _drive(sender: TxSender, keys: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while any(sender.entry(k).status not in FINAL_STATUSES for k in keys):
        assert time.monotonic() < deadline, "rows not final in time"
        sender.process()


def test_many_rows__one_batch_of_sends_and_batched_receipts__all_mined_once(
    w3, make_sender, funded_token, roles, monkeypatch
) -> None:
    sender = make_sender()
    count = 2 * RPC_BATCH_SIZE + 30
    keys = [f"pay-{i}" for i in range(count)]
    with transaction(sender.db):
        for key in keys:
            sender.enqueue(sender.db, key, funded_token.address, transfer_data(funded_token, roles.bob.address, 1),
                           gas=60_000)
    start_nonce = w3.eth.get_transaction_count(roles.relayer.address)
    rpc = RpcCounter(monkeypatch, w3.provider)
    sender.process()  # signs, commits and sends every row
    assert rpc.batched("eth_sendRawTransaction") == [RPC_BATCH_SIZE, RPC_BATCH_SIZE, 30]
    assert "eth_sendRawTransaction" not in rpc.singles
    deadline = time.monotonic() + 30  # anvil mines a batch's transactions one after another
    while w3.eth.get_transaction_count(roles.relayer.address) < start_nonce + count:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sender.process()  # every row's receipt, in batches
    assert rpc.batched("eth_getTransactionReceipt") == [RPC_BATCH_SIZE, RPC_BATCH_SIZE, 30]
    assert "eth_getTransactionReceipt" not in rpc.singles
    entries = [sender.entry(k) for k in keys]
    assert all(e.status == "mined" and e.block_number and e.gas_used and e.block_hash for e in entries)
    for e in entries[:3] + entries[-3:]:
        receipt = w3.eth.get_transaction_receipt(e.tx_hash)
        assert (e.block_number, e.block_hash, e.gas_used) == (
            receipt["blockNumber"], receipt["blockHash"].to_0x_hex(), receipt["gasUsed"])
    assert [w3.eth.get_transaction(entries[i].tx_hash)["nonce"] for i in (0, count - 1)] == [
        start_nonce, start_nonce + count - 1]
    assert funded_token.functions.balanceOf(roles.bob.address).call() == count
    assert sender.pending_count() == 0


def test_batch_with_one_failing_item__others_land__failing_row_stays_sent_and_retried(
    w3, make_sender, funded_token, roles, caplog
) -> None:
    sender = make_sender()
    with transaction(sender.db):
        for i in range(3):
            sender.enqueue(sender.db, f"ok-{i}", funded_token.address,
                           transfer_data(funded_token, roles.bob.address, i + 1), gas=60_000)
        # Signed last (highest nonce), with a value the account cannot pay: the node refuses it.
        sender.enqueue(sender.db, "broke", roles.bob.address, b"", value=10**30, gas=21_000)
    with caplog.at_level(logging.WARNING, logger="dccn_common.sender"):
        sender.process()
    failures = [r for r in caplog.records if r.getMessage() == "broadcast failed; will retry"]
    assert len(failures) == 1 and "insufficient funds" in failures[0].error.lower()
    # anvil mines the batch's transactions one after another: under load a pass may come too early.
    _drive(sender, [f"ok-{i}" for i in range(3)])
    assert [sender.entry(f"ok-{i}").status for i in range(3)] == ["mined"] * 3
    broke = sender.entry("broke")
    assert broke.status == "sent" and broke.error is None and sender.tx_hashes("broke") == [broke.tx_hash]
    assert funded_token.functions.balanceOf(roles.bob.address).call() == 6


def _raw(account: Any, w3: Any, nonce: int, fee: int, to: str) -> bytes:
    tx = {"to": to, "value": 1, "gas": 21_000, "nonce": nonce, "chainId": w3.eth.chain_id,
          "maxFeePerGas": fee, "maxPriorityFeePerGas": fee}
    return bytes(account.sign_transaction(tx).raw_transaction)


def test_each_item_error__handled_as_the_single_call_handles_it(
    chain, w3, make_sender, roles, caplog
) -> None:
    """already imported/known and nonce too low pass silently, underpriced is retried; in a batch and one by one."""
    sender = make_sender()
    account = sender.account
    outcomes = {}
    for mode in ("single", "batch"):
        nonce = w3.eth.get_transaction_count(account.address)
        mined = _raw(account, w3, nonce, 10**10, roles.bob.address)
        w3.eth.send_raw_transaction(mined)  # automine: nonce `nonce` is now used
        chain.set_automine(False)
        try:
            pooled = _raw(account, w3, nonce + 1, 10**10, roles.bob.address)
            w3.eth.send_raw_transaction(pooled)
            raws = [
                mined,  # nonce too low
                pooled,  # already in the pool
                _raw(account, w3, nonce + 1, 10**10 - 1, roles.carol.address),  # same nonce, lower fees: underpriced
                _raw(account, w3, nonce + 2, 10**10, roles.bob.address),  # fine
            ]
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="dccn_common.sender"):
                if mode == "single":
                    for raw in raws:
                        sender._send_raw([raw])
                else:
                    sender._send_raw(raws)
            outcomes[mode] = [(r.getMessage(), "underpriced" in r.error) for r in caplog.records]
            assert w3.eth.get_transaction_count(account.address, "pending") == nonce + 3
        finally:
            chain.set_automine(True)
        chain.mine()
        assert w3.eth.get_transaction_count(account.address) == nonce + 3
    assert outcomes["single"] == outcomes["batch"] == [("broadcast failed; will retry", True)]


def test_batched_broadcast__lease_checked_before_it(make_sender, funded_token, roles, monkeypatch) -> None:
    """The fencing check runs once before the batched request, never after it."""
    sender = make_sender()
    order: list[str] = []
    monkeypatch.setattr(sender, "_rpc_batch", lambda method, params: order.append(method) or [{"result": "0x"}] * len(params))

    class Lease:
        is_leader = True

        def renew(self) -> bool:
            return True

        def check(self, db: Any) -> None:
            order.append("check")

    sender.lease = Lease()  # type: ignore[assignment]
    with transaction(sender.db):
        for i in range(3):
            sender.enqueue(sender.db, f"k{i}", funded_token.address, transfer_data(funded_token, roles.bob.address, 1),
                           gas=60_000)
    order.clear()
    sender.process()
    assert order[-2:] == ["check", "eth_sendRawTransaction"]
