"""Shared core: how fast the chain follower and the durable sender go, next to the
physical limits measured in the same run on the same anvil.

    python -m bench.bench_foundation
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from eth_account import Account
from eth_utils import event_abi_to_log_topic

from bench.report import table, write_section
from dccn_common.follower import ChainFollower, FlatEventLayout
from dccn_common.sender import TxSender
from dccn_common.store import open_db, transaction
from dccn_deploy import run_parts
from dccn_deploy.web3_backend import web3_context
from dccn_devtools.anvil import Anvil, dev_private_keys

TRANSFERS = 600


def raw_transfers_per_second(anvil: Anvil, token, sender: Account, count: int) -> float:
    """The limit: signed token transfers sent back to back by one Python client, automine."""
    w3 = anvil.web3(mined_on_return=False)
    nonce = w3.eth.get_transaction_count(sender.address)
    chain_id = w3.eth.chain_id
    started = time.perf_counter()
    for i in range(count):
        tx = token.functions.transfer(sender.address, 1).build_transaction(
            {"from": sender.address, "nonce": nonce + i, "gas": 60_000, "chainId": chain_id,
             "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1}
        )
        w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    w3.eth.wait_for_transaction_receipt(w3.keccak(sender.sign_transaction(tx).raw_transaction))
    return count / (time.perf_counter() - started)


def raw_batched_transfers_per_second(anvil: Anvil, token, sender: Account, count: int, batch: int = 100) -> float:
    """The same transfers signed (from ready calldata, as the sender signs) and sent in JSON-RPC
    batches of `batch`, as the sender sends them; done when the node has mined them all."""
    w3 = anvil.web3(mined_on_return=False)
    nonce = w3.eth.get_transaction_count(sender.address)
    chain_id = w3.eth.chain_id
    data = bytes.fromhex(token.functions.transfer(sender.address, 1)._encode_transaction_data()[2:])
    started = time.perf_counter()
    raws = [
        sender.sign_transaction({"to": token.address, "data": data, "value": 0, "nonce": nonce + i, "gas": 60_000,
                                 "chainId": chain_id, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1}).raw_transaction
        for i in range(count)
    ]
    for start in range(0, count, batch):
        w3.provider.make_batch_request([("eth_sendRawTransaction", ["0x" + bytes(r).hex()]) for r in raws[start:start + batch]])
    while w3.eth.get_transaction_count(sender.address) < nonce + count:
        time.sleep(0.001)
    return count / (time.perf_counter() - started)


def raw_get_logs_per_second(token, start: int) -> float:
    """eth_getLogs and the follower's own decoding of each log: what following costs before any handling."""
    abi = next(item for item in token.abi if item.get("type") == "event" and item["name"] == "Transfer")
    layout = FlatEventLayout.of(abi)
    assert layout is not None
    started = time.perf_counter()
    logs = token.w3.eth.get_logs({"address": token.address, "fromBlock": start,
                                  "topics": [event_abi_to_log_topic(abi)]})
    decoded = [layout.decode(entry) for entry in logs]
    return len(decoded) / (time.perf_counter() - started)


def main() -> None:
    keys = dev_private_keys(3)
    owner, relayer = Account.from_key(keys[0]), Account.from_key(keys[2])
    with Anvil() as anvil, tempfile.TemporaryDirectory() as tmp:
        w3 = anvil.web3(mined_on_return=False)
        # AnkrToken from the token part, its supply minted to `owner`.
        token = run_parts(web3_context(w3, owner, deployments=Path(tmp) / "deployments"), ("token",)).at("AnkrToken")
        token.functions.transfer(relayer.address, 10**24).transact({"from": owner.address})
        start = w3.eth.block_number + 1
        raw_tx_rate = raw_transfers_per_second(anvil, token, owner, TRANSFERS)
        raw_batched_rate = raw_batched_transfers_per_second(anvil, token, owner, TRANSFERS)

        db = open_db(Path(tmp) / "bench.db", "CREATE TABLE IF NOT EXISTS seen (n INTEGER)")
        follower = ChainFollower(w3, db, "bench", start_block=start)
        follower.subscribe(token.address, token.abi, "Transfer", lambda event, tx: tx.execute("INSERT INTO seen VALUES (1)"))
        raw_log_rate = raw_get_logs_per_second(token, start)
        started = time.perf_counter()
        handled = follower.poll_once()
        follow_rate = handled / (time.perf_counter() - started)

        sender = TxSender(w3, open_db(Path(tmp) / "sender.db"), relayer)
        data = bytes.fromhex(token.functions.transfer(owner.address, 1)._encode_transaction_data()[2:])
        with transaction(sender.db):
            for i in range(TRANSFERS):
                sender.enqueue(sender.db, f"t{i}", token.address, data, gas=60_000)
        started = time.perf_counter()
        while sender.pending_count():
            sender.process()
        send_rate = TRANSFERS / (time.perf_counter() - started)

    rows = [
        ["follower: events handled exactly once (SQLite commit each)", f"{follow_rate:,.0f}/s",
         f"{raw_log_rate:,.0f}/s (eth_getLogs + the follower's decoding, no handling)", f"{follow_rate / raw_log_rate:.2f}"],
        ["sender: outbox transactions signed, persisted, sent, confirmed", f"{send_rate:,.0f}/s",
         f"{raw_batched_rate:,.0f}/s (signed transfers, fire and forget, JSON-RPC batches of 100)",
         f"{send_rate / raw_batched_rate:.2f}"],
        ["(reference) signed transfers, fire and forget, one request each", f"{raw_tx_rate:,.0f}/s", "-", "-"],
    ]
    body = (
        f"{TRANSFERS} ANKR transfers on one anvil (automine).\n\n"
        + table(["what", "rate", "physical limit in the same run", "ratio"], rows)
        + "\n\nThe sender commits the signed bytes to SQLite before broadcasting them and fetches a receipt"
        " before marking a row mined; it sends the transactions and reads the receipts of a pass in JSON-RPC"
        " batches of 100. The limits do neither commit nor receipt read."
    )
    write_section("foundation", "Shared core: chain follower and transaction sender", body,
                  "python -m bench.bench_foundation")
    print(body)


if __name__ == "__main__":
    main()
