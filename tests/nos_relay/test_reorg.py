"""The relay across a reorg deeper than its confirmation depth that removes a
delivery it already saw confirmed (issue 12): the same transaction is mined again,
no second delivery is signed, and later requests are still delivered."""

from __future__ import annotations

from typing import Any

import pytest
from hexbytes import HexBytes

from dccn_devtools.pytest_fixtures import BACKENDS
from tests.nos_relay.conftest import drive, price_params, request_price

pytestmark = pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)

DELIVERED = 2


def _delivery_rows(relay: Any) -> list[Any]:
    return relay.db.execute("SELECT key, status, tx_hash, nonce FROM outbox WHERE key LIKE 'nos:%' "
                            "ORDER BY nonce").fetchall()


def _delivered_ids(oracle: Any) -> list[str]:
    return [HexBytes(log["args"]["requestId"]).to_0x_hex() for log in oracle.events.Delivered().get_logs(from_block=0)]


@pytest.mark.reorgs
def test_relay__deep_reorg_removes_confirmed_delivery__same_tx_mined_again_later_requests_delivered(
    w3, chain, deployment, roles, enclave_socket, price_source, make_relay
) -> None:
    oracle = deployment["oracle"]
    first = request_price(w3, deployment, roles, price_params(price_source))
    request_block = w3.eth.block_number
    relay = make_relay([enclave_socket], confirmations=1)

    def confirmed(count: int) -> bool:
        chain.mine()  # automine makes blocks only for transactions; confirmations need more
        rows = _delivery_rows(relay)
        return (relay.counts() == {"done": count} and len(rows) == count
                and all(r["status"] == "mined" for r in rows)
                and relay.follower.cursor()[0] >= w3.eth.get_transaction_receipt(rows[-1]["tx_hash"])["blockNumber"])

    drive([relay], lambda: confirmed(1))
    delivery = _delivery_rows(relay)[0]
    chain.reorg(w3.eth.block_number - request_block)  # everything after the request: the delivery is gone
    assert oracle.functions.statusOf(first).call() != DELIVERED

    second = request_price(w3, deployment, roles, price_params(price_source))
    drive([relay], lambda: confirmed(2))

    assert [oracle.functions.statusOf(i).call() for i in (first, second)] == [DELIVERED, DELIVERED]
    assert sorted(_delivered_ids(oracle)) == sorted(HexBytes(i).to_0x_hex() for i in (first, second))
    rows = _delivery_rows(relay)
    assert rows[0]["tx_hash"] == delivery["tx_hash"]  # the stored bytes again, not a second delivery
    assert [r["nonce"] for r in rows] == [delivery["nonce"], delivery["nonce"] + 1]
    # The first request rode only its own delivery: no second transaction ever carried it.
    job = relay.db.execute("SELECT batch_key, submit_attempts FROM jobs WHERE request_id = ?",
                           (HexBytes(first).to_0x_hex(),)).fetchone()
    assert (job["batch_key"], job["submit_attempts"]) == (delivery["key"], 1)


@pytest.mark.reorgs
def test_relay__reorg_within_confirmations_removes_delivery__job_submitted_again_until_mined_again(
    w3, chain, deployment, roles, enclave_socket, price_source, make_relay
) -> None:
    oracle = deployment["oracle"]
    request = request_price(w3, deployment, roles, price_params(price_source))
    relay = make_relay([enclave_socket], confirmations=3)
    chain.mine(3)  # the request is confirmed; the delivery will not be
    # Settled by its own delivery's receipt; the follower is still short of that block.
    drive([relay], lambda: relay.counts() == {"done": 1} and _delivery_rows(relay)[0]["status"] == "mined")
    delivery = _delivery_rows(relay)[0]
    chain.set_automine(False)
    try:
        chain.reorg(1)  # the delivery's block; the outbox rebroadcasts it into the pool
        drive([relay], lambda: relay.counts() == {"submitted": 1}, timeout=10)
        assert oracle.functions.statusOf(request).call() != DELIVERED
    finally:
        chain.set_automine(True)

    def settled() -> bool:
        chain.mine()
        return relay.counts() == {"done": 1} and relay.follower.cursor()[0] >= w3.eth.get_transaction_receipt(
            delivery["tx_hash"])["blockNumber"]

    drive([relay], settled)
    assert oracle.functions.statusOf(request).call() == DELIVERED
    assert _delivered_ids(oracle) == [HexBytes(request).to_0x_hex()]
    assert [r["tx_hash"] for r in _delivery_rows(relay)] == [delivery["tx_hash"]]
