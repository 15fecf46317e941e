"""The relay end to end on anvil: follows requests, has the enclave answer over
real TLS, delivers (batched), skips what is settled, shares work with peers."""

from __future__ import annotations

import time
from typing import Any

import pytest
from coincurve import PrivateKey

from dccn_common.contracts import transact
from nos_enclave.crypto import ecies_decrypt
from nos_enclave.framing import EnclaveClient
from nos_enclave.protocol import Params, encrypt_params
from tests.nos_relay.conftest import MAX_GAS_PRICE, REQUEST_TTL, drive, price_params, request_price

DELIVERED, CANCELLED = 2, 4


def statuses(oracle: Any, ids: list[bytes]) -> list[int]:
    return [oracle.functions.statusOf(i).call() for i in ids]


def delivered_logs(oracle: Any) -> list[Any]:
    return list(oracle.events.Delivered().get_logs(from_block=0))


def test_relay__consumer_request__price_delivered_and_stored(w3, deployment, roles, enclave_socket, price_source,
                                                            make_relay):
    request_id = request_price(w3, deployment, roles, price_params(price_source))
    relay = make_relay([enclave_socket])
    drive([relay], lambda: relay.counts() == {"done": 1})
    assert deployment["consumer"].functions.price().call() == 234567
    assert statuses(deployment["oracle"], [request_id]) == [DELIVERED]


def test_relay__many_pending__one_deliver_batch(w3, deployment, roles, enclave_socket, price_source, make_relay):
    ids = [request_price(w3, deployment, roles, price_params(price_source)) for _ in range(5)]
    relay = make_relay([enclave_socket])
    drive([relay], lambda: relay.counts() == {"done": 5})
    assert statuses(deployment["oracle"], ids) == [DELIVERED] * 5
    transactions = {entry["transactionHash"] for entry in delivered_logs(deployment["oracle"])}
    assert len(transactions) < 5  # batched: fewer transactions than responses


def test_relay__expired_requests__skipped(w3, chain, deployment, roles, enclave_socket, price_source, make_relay):
    request_id = request_price(w3, deployment, roles, price_params(price_source))
    chain.warp(REQUEST_TTL + 1)
    relay = make_relay([enclave_socket])
    drive([relay], lambda: relay.counts().get("expired") == 1)
    assert statuses(deployment["oracle"], [request_id]) == [1]
    assert relay.sender.pending_count() == 0 and not delivered_logs(deployment["oracle"])


def test_relay__cancelled_requests__skipped(w3, chain, deployment, roles, enclave_socket, price_source, make_relay):
    request_id = request_price(w3, deployment, roles, price_params(price_source))
    chain.warp(REQUEST_TTL + 1)
    transact(w3, deployment["consumer"].functions.cancelRequest(request_id), sender=roles.tenant.address)
    relay = make_relay([enclave_socket])
    drive([relay], lambda: relay.counts().get("cancelled") == 1)
    assert not delivered_logs(deployment["oracle"])


def test_relay__untrusted_source__request_left_to_expire(w3, deployment, roles, enclave_socket, rogue_source,
                                                        make_relay):
    request_price(w3, deployment, roles, price_params(rogue_source))
    relay = make_relay([enclave_socket])
    drive([relay], lambda: relay.counts().get("failed") == 1)
    row = relay.db.execute("SELECT error FROM jobs").fetchone()
    assert "not trusted" in row["error"] and not delivered_logs(deployment["oracle"])


def test_relay__private_request__chain_sees_ciphertext_requester_reads_result(w3, deployment, roles, enclave_keys,
                                                                             enclave_socket, price_source, make_relay):
    oracle, requester = deployment["oracle"], roles.alice.address
    reply_key = PrivateKey()
    request_id = bytes(oracle.functions.nextRequestId(requester).call())
    params = Params(price_source.url(), "json:data.price", "uint256", 2, reply_key.public_key.format())
    sealed = encrypt_params(enclave_keys.encryption_public_key, params, requester, request_id)
    fee = oracle.functions.requestFee(0, MAX_GAS_PRICE).call()
    transact(w3, oracle.functions.request(sealed, "0x" + "00" * 20, 0), sender=requester, value=fee, gas=500_000)
    relay = make_relay([enclave_socket])
    drive([relay], lambda: statuses(oracle, [request_id]) == [DELIVERED])
    data = bytes(delivered_logs(oracle)[0]["args"]["data"])
    assert (234567).to_bytes(32, "big") not in data
    assert int.from_bytes(ecies_decrypt(reply_key.secret, data, request_id), "big") == 234567


def test_relay__two_hosts_side_by_side__each_request_delivered_once_nothing_reverted(
        w3, deployment, roles, enclave_keys, start_enclave, price_source, make_relay):
    first_socket, _ = start_enclave(enclave_keys, "first")
    second_socket, _ = start_enclave(enclave_keys, "second")
    ids = [request_price(w3, deployment, roles, price_params(price_source)) for _ in range(6)]
    # Both believe they own every request: the worst case for double delivery.
    relays = [make_relay([first_socket], role="relayer", name="a"), make_relay([second_socket], role="operator",
                                                                                  name="b")]
    drive(relays, lambda: statuses(deployment["oracle"], ids) == [DELIVERED] * 6
          and all(r.sender.pending_count() == 0 for r in relays))
    delivered = [bytes(entry["args"]["requestId"]) for entry in delivered_logs(deployment["oracle"])]
    assert sorted(delivered) == sorted(ids)  # exactly once each
    for relay in relays:
        outcomes = {row["status"] for row in relay.db.execute("SELECT status FROM outbox")}
        assert "reverted" not in outcomes  # losing a race costs no one a reverted delivery


def test_relay__shares_work_by_request_id(w3, deployment, roles, enclave_keys, start_enclave, price_source,
                                          make_relay):
    socket_path, _ = start_enclave(enclave_keys, "shared")
    ids = [request_price(w3, deployment, roles, price_params(price_source)) for _ in range(6)]
    relays = [make_relay([socket_path], role="relayer", name="a", relay_index=0, relay_count=2, backup_delay=600),
              make_relay([socket_path], role="operator", name="b", relay_index=1, relay_count=2, backup_delay=600)]
    drive(relays, lambda: statuses(deployment["oracle"], ids) == [DELIVERED] * 6)
    submitters = {entry["args"]["submitter"] for entry in delivered_logs(deployment["oracle"])}
    expected = {roles.relayer.address if int.from_bytes(i, "big") % 2 == 0 else roles.operator.address for i in ids}
    assert submitters == expected


@pytest.mark.reorgs
def test_relay__request_reorged_out__job_forgotten(w3, chain, deployment, roles, enclave_socket, price_source,
                                                   make_relay):
    relay = make_relay([enclave_socket])
    relay.follower.poll_once()  # the relay has been following the chain before the request
    request_price(w3, deployment, roles, price_params(price_source))
    relay.follower.poll_once()
    assert relay.counts() == {"new": 1}
    chain.reorg(1)  # the block holding the request is replaced by an empty one
    relay.follower.poll_once()
    assert relay.counts() == {}


# -- requests no enclave can answer -------------------------------------------------------------


def request_raw(w3: Any, deployment: dict[str, Any], requester: str, params: bytes) -> bytes:
    """A requester asks with params exactly as given (no callback); returns the request id."""
    oracle = deployment["oracle"]
    request_id = bytes(oracle.functions.nextRequestId(requester).call())
    fee = oracle.functions.requestFee(0, MAX_GAS_PRICE).call()
    transact(w3, oracle.functions.request(params, "0x" + "00" * 20, 0), sender=requester, value=fee, gas=500_000)
    return request_id


def _refused_job(relay: Any) -> Any:
    """Drive `relay` until its one job is unanswerable, then a while longer (nothing may be
    retried); that job's row."""
    drive([relay], lambda: relay.counts() == {"unanswerable": 1})
    for _ in range(20):
        relay.dispatch_fetches()
        time.sleep(0.01)
    return relay.db.execute("SELECT fetch_attempts, error FROM jobs").fetchone()


@pytest.mark.parametrize(("params", "message"), [
    (b'{"url":"http://127.0.0.1:1/price.json","path":"json:data.price"}', "https"),
    (b'{"path":"json:data.price"}', "https"),
    (b'{"url":"https://127.0.0.1:1/p","path":"json:p","decimals":99}', "decimals"),
    (b"\x01" + b"\x02" * 20, "private envelope"),
])
def test_relay__unanswerable_params__never_fetched_left_pending_for_the_requester(
        w3, deployment, roles, start_enclave, enclave_keys, make_relay, params, message):
    socket_path, enclave = start_enclave(enclave_keys)
    request_id = request_raw(w3, deployment, roles.alice.address, params)
    relay = make_relay([socket_path])
    row = _refused_job(relay)
    assert row["fetch_attempts"] == 0 and message in row["error"]
    assert enclave.stats == {"signed": 0, "failed": 0}  # the enclave was never asked
    assert statuses(deployment["oracle"], [request_id]) == [1]  # pending: the requester cancels after expiry


def test_relay__private_request_with_bad_params_inside__refused_once_not_retried(
        w3, deployment, roles, start_enclave, enclave_keys, make_relay):
    socket_path, enclave = start_enclave(enclave_keys)
    requester = roles.alice.address
    request_id = bytes(deployment["oracle"].functions.nextRequestId(requester).call())
    # Only the enclave can see that the sealed URL is not https: it refuses once, permanently.
    params = Params("http://127.0.0.1:1/price.json", "json:data.price", "uint256", 2, PrivateKey().public_key.format())
    sealed = encrypt_params(enclave_keys.encryption_public_key, params, requester, request_id)
    request_raw(w3, deployment, requester, sealed)
    relay = make_relay([socket_path])
    row = _refused_job(relay)
    assert row["fetch_attempts"] == 1 and "https" in row["error"]
    assert enclave.stats["failed"] == 1


# -- racing relays ---------------------------------------------------------------------------


def test_relay__id_settled_by_another_relay__dropped_before_sending(w3, deployment, roles, enclave_socket,
                                                                   price_source, make_relay):
    oracle = deployment["oracle"]
    ids = [request_price(w3, deployment, roles, price_params(price_source)) for _ in range(2)]
    relay = make_relay([enclave_socket])
    relay.follower.poll_once()
    with EnclaveClient(enclave_socket) as client:  # what a fetch worker does, then the main loop's store
        for job in relay.db.execute("SELECT * FROM jobs WHERE status = 'new'").fetchall():
            relay._results.put((dict(job), relay._fetch_one(client, dict(job))))
    relay.store_fetched()
    rows = relay.db.execute("SELECT * FROM jobs WHERE status = 'signed' ORDER BY block_number").fetchall()
    assert len(rows) == 2
    # Another relay delivers the first one with the same enclave answer before this relay sends.
    first = rows[0]
    transact(w3, oracle.functions.deliver(first["request_id"], first["params_hash"], bytes(first["data"]),
                                          bytes(first["signature"])), sender=roles.operator.address, gas=1_000_000)
    relay.submit_signed()  # the follower has not seen that Delivered yet
    assert relay.db.execute("SELECT status FROM jobs WHERE request_id = ?", (first["request_id"],)
                            ).fetchone()["status"] == "done"
    sent = relay.db.execute("SELECT COUNT(*) AS n FROM jobs WHERE status = 'submitted'").fetchone()["n"]
    assert sent == 1  # only the id still pending goes out
    drive([relay], lambda: statuses(oracle, ids) == [DELIVERED] * 2 and relay.sender.pending_count() == 0)
    outcomes = {row["status"] for row in relay.db.execute("SELECT status FROM outbox")}
    assert "reverted" not in outcomes
