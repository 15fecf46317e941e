"""NosOracle on anvil: requests, deliveries, every failure case the issue lists,
gas sustainability and the enclave registry."""

from __future__ import annotations

from typing import Any

import pytest
from coincurve import PrivateKey
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak
from web3.logs import DISCARD

from dccn_common.contracts import transact
from nos_enclave.crypto import sign_digest
from nos_enclave.protocol import encryption_key_digest
from tests.contracts.oracle.conftest import (
    CALLBACK_GAS,
    DELIVERY_GAS,
    DELIVERY_OVERHEAD,
    ENCLAVE_KEY,
    MAX_GAS_PRICE,
    MEASUREMENT,
    OTHER_KEY,
    PARAMS,
    PRICE_DATA,
    REQUEST_TTL,
    STATUS,
    revert_reason,
)

ZERO = "0x0000000000000000000000000000000000000000"


def delivered_event(oracle: Any, receipt: Any) -> Any:
    return oracle.events.Delivered().process_receipt(receipt)[0]["args"]


# -- request -------------------------------------------------------------------------


def test_request__id_is_keccak_of_chain_oracle_requester_nonce(w3, live_oracle, make_request, roles):
    first = make_request()
    second = make_request()
    for nonce, request in enumerate((first, second)):
        expected = keccak(encode(["uint256", "address", "address", "uint256"],
                                 [w3.eth.chain_id, live_oracle.address, roles.alice.address, nonce]))
        assert request.request_id == expected
    assert live_oracle.functions.nonces(roles.alice.address).call() == 2
    assert live_oracle.functions.statusOf(first.request_id).call() == STATUS["pending"]


def test_request__same_params_twice__gets_two_distinct_ids(make_request):
    assert make_request().request_id != make_request().request_id


def test_request__event_carries_what_the_relay_needs(w3, live_oracle, make_request, roles):
    request = make_request()
    event = live_oracle.events.Request().process_receipt(request.receipt)[0]["args"]
    block = w3.eth.get_block(request.receipt["blockNumber"])
    assert event["params"] == PARAMS
    assert event["paramsHash"] == keccak(PARAMS)
    assert event["fee"] == request.fee == (DELIVERY_OVERHEAD + CALLBACK_GAS) * MAX_GAS_PRICE
    assert event["maxGasPrice"] == MAX_GAS_PRICE
    assert event["expiresAt"] == block["timestamp"] + REQUEST_TTL
    assert event["callback"] == roles.alice.address and event["callbackGasLimit"] == CALLBACK_GAS


def test_request__callback_into_the_oracle__reverts(live_oracle, roles):
    call = live_oracle.functions.request(PARAMS, live_oracle.address, CALLBACK_GAS)
    assert "nos: callback into the oracle" in revert_reason(call, {"from": roles.alice.address, "value": 10**18})


def test_request__fee_below_delivery_cost__reverts(live_oracle, roles):
    call = live_oracle.functions.request(PARAMS, roles.alice.address, CALLBACK_GAS)
    tx = {"from": roles.alice.address, "value": DELIVERY_OVERHEAD + CALLBACK_GAS - 1}
    assert "nos: fee does not cover delivery" in revert_reason(call, tx)


def test_request__callback_gas_limit_above_maximum__reverts(live_oracle, roles):
    call = live_oracle.functions.request(PARAMS, roles.alice.address, 5_000_001)
    assert "nos: callback gas limit too high" in revert_reason(call, {"from": roles.alice.address, "value": 10**17})


# -- deliver -------------------------------------------------------------------------


def test_deliver__signed_price__consumer_stores_it(w3, live_oracle, consumer, roles, sign):
    fee = live_oracle.functions.requestFee(60_000, MAX_GAS_PRICE).call()
    receipt = transact(w3, consumer.functions.requestPrice(PARAMS), sender=roles.tenant.address, value=fee)
    event = live_oracle.events.Request().process_receipt(receipt, errors=DISCARD)[0]["args"]
    request_id, params_hash = bytes(event["requestId"]), bytes(event["paramsHash"])
    signature = sign(type("R", (), {"request_id": request_id, "params_hash": params_hash})(), PRICE_DATA)
    call = live_oracle.functions.deliver(request_id, params_hash, PRICE_DATA, signature)
    receipt = transact(w3, call, sender=roles.operator.address, gas=DELIVERY_GAS)
    assert delivered_event(live_oracle, receipt)["callbackSucceeded"]
    assert consumer.functions.price().call() == 12345
    assert live_oracle.functions.statusOf(request_id).call() == STATUS["delivered"]


def test_deliver__unknown_id__reverts(live_oracle, make_request, sign, roles):
    request = make_request()
    unknown = keccak(b"never requested")
    call = live_oracle.functions.deliver(unknown, request.params_hash, PRICE_DATA, sign(request))
    assert "nos: unknown request" in revert_reason(call, {"from": roles.operator.address, "gas": DELIVERY_GAS})


def test_deliver__twice__second_reverts(live_oracle, make_request, deliver, sign, roles):
    request = make_request()
    deliver(request)
    call = live_oracle.functions.deliver(request.request_id, request.params_hash, PRICE_DATA, sign(request))
    assert "nos: request not pending" in revert_reason(call, {"from": roles.operator.address, "gas": DELIVERY_GAS})


def test_deliver__signer_not_registered__reverts(live_oracle, make_request, sign, roles):
    request = make_request()
    call = live_oracle.functions.deliver(request.request_id, request.params_hash, PRICE_DATA,
                                         sign(request, key=OTHER_KEY))
    reason = revert_reason(call, {"from": roles.operator.address, "gas": DELIVERY_GAS})
    assert "nos: signer is not a registered enclave" in reason


def test_deliver__revoked_key__reverts(w3, live_oracle, make_request, sign, roles, enclave_address):
    request = make_request()
    transact(w3, live_oracle.functions.revokeEnclave(enclave_address), sender=roles.deployer.address)
    call = live_oracle.functions.deliver(request.request_id, request.params_hash, PRICE_DATA, sign(request))
    reason = revert_reason(call, {"from": roles.operator.address, "gas": DELIVERY_GAS})
    assert "nos: signer is not a registered enclave" in reason


def test_rotate__new_key_accepted_old_key_refused(w3, live_oracle, make_request, sign, roles, enclave_address):
    new_address = Account.from_key(OTHER_KEY).address
    transact(w3, live_oracle.functions.rotateEnclave(enclave_address, new_address, MEASUREMENT),
             sender=roles.deployer.address)
    request = make_request(callback=ZERO)
    old = live_oracle.functions.deliver(request.request_id, request.params_hash, PRICE_DATA, sign(request))
    assert "not a registered enclave" in revert_reason(old, {"from": roles.operator.address, "gas": DELIVERY_GAS})
    new = live_oracle.functions.deliver(request.request_id, request.params_hash, PRICE_DATA,
                                        sign(request, key=OTHER_KEY))
    transact(w3, new, sender=roles.operator.address, gas=DELIVERY_GAS)
    assert live_oracle.functions.statusOf(request.request_id).call() == STATUS["delivered"]


def test_deliver__tampered_data__reverts(live_oracle, make_request, sign, roles):
    request = make_request()
    forged = (99_999).to_bytes(32, "big")
    call = live_oracle.functions.deliver(request.request_id, request.params_hash, forged, sign(request))
    reason = revert_reason(call, {"from": roles.operator.address, "gas": DELIVERY_GAS})
    assert "nos: signer is not a registered enclave" in reason or "ecdsa" in reason


def test_deliver__tampered_params_hash__reverts(live_oracle, make_request, sign, roles):
    request = make_request()
    other_hash = keccak(b"other params")
    call = live_oracle.functions.deliver(request.request_id, other_hash, PRICE_DATA,
                                         sign(request, params_hash=other_hash))
    assert "nos: params hash mismatch" in revert_reason(call, {"from": roles.operator.address, "gas": DELIVERY_GAS})


def test_deliver__after_expiry__reverts(chain, live_oracle, make_request, sign, roles):
    request = make_request()
    chain.warp(REQUEST_TTL + 1)
    call = live_oracle.functions.deliver(request.request_id, request.params_hash, PRICE_DATA, sign(request))
    assert "nos: request expired" in revert_reason(call, {"from": roles.operator.address, "gas": DELIVERY_GAS})


@pytest.mark.parametrize("kind", ["reverter", "burner"])
def test_deliver__callback_fails__request_failed_operator_still_paid(live_oracle, make_request, deliver,
                                                                      create_callback, kind, roles):
    callback = create_callback(kind)
    request = make_request(callback=callback.address)
    event = delivered_event(live_oracle, deliver(request))
    assert not event["callbackSucceeded"]
    assert event["payment"] > 0 and event["data"] == PRICE_DATA  # result kept in the log
    assert live_oracle.functions.statusOf(request.request_id).call() == STATUS["failed"]
    assert live_oracle.functions.credits(roles.operator.address).call() == event["payment"]


def test_deliver__callback_without_code__request_failed(live_oracle, make_request, deliver, roles):
    request = make_request(callback=roles.bob.address)
    assert not delivered_event(live_oracle, deliver(request))["callbackSucceeded"]
    assert live_oracle.functions.statusOf(request.request_id).call() == STATUS["failed"]


def test_deliver__zero_callback__data_only_in_event(live_oracle, make_request, deliver):
    request = make_request(callback=ZERO)
    event = delivered_event(live_oracle, deliver(request))
    assert event["callbackSucceeded"] and event["data"] == PRICE_DATA


def test_deliver__callback_gets_exactly_its_gas_limit(live_oracle, make_request, deliver, create_callback):
    recorder = create_callback("recorder")
    request = make_request(callback=recorder.address, gas_limit=80_000)
    deliver(request, gas=3_000_000)  # far more than needed: the callback still gets only its limit
    gas_at_entry = recorder.functions.gas_at_entry().call()
    assert 80_000 - 200 <= gas_at_entry <= 80_000
    assert recorder.functions.last_data().call() == PRICE_DATA


def test_deliver__starved_callback__reverts_instead_of_failing_the_request(live_oracle, make_request, sign,
                                                                           create_callback, roles):
    recorder = create_callback("recorder")
    request = make_request(callback=recorder.address, gas_limit=200_000)
    call = live_oracle.functions.deliver(request.request_id, request.params_hash, PRICE_DATA, sign(request))
    reason = revert_reason(call, {"from": roles.operator.address, "gas": 150_000})
    assert "nos: not enough gas for the callback" in reason


def test_deliver__reentrant_callback__cannot_deliver_again(live_oracle, make_request, deliver, create_callback):
    reentrant = create_callback("reentrant", live_oracle.address)
    request = make_request(callback=reentrant.address)
    assert not delivered_event(live_oracle, deliver(request))["callbackSucceeded"]
    assert live_oracle.functions.statusOf(request.request_id).call() == STATUS["failed"]


# -- gas sustainability -----------------------------------------------------------------


def test_fee__operator_paid_what_it_spent_rest_credited_to_requester(w3, live_oracle, make_request, deliver,
                                                                     create_callback, roles):
    recorder = create_callback("recorder")
    request = make_request(callback=recorder.address)
    deliver(make_request(callback=recorder.address))  # first delivery creates the operator's credit slot
    credit_before = live_oracle.functions.credits(roles.alice.address).call()
    receipt = deliver(request)
    event = delivered_event(live_oracle, receipt)
    spent = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert event["payment"] + event["refund"] == request.fee
    assert event["payment"] >= spent  # an honest operator never delivers at a loss
    assert event["payment"] - spent <= 3_000 * receipt["effectiveGasPrice"]  # ... and is paid what it spent
    assert live_oracle.functions.credits(roles.alice.address).call() - credit_before == event["refund"]


def test_fee__gas_price_above_requester_max__operator_paid_at_most_max(w3, live_oracle, make_request, sign, roles):
    request = make_request(max_gas_price=2 * 10**9)
    call = live_oracle.functions.deliver(request.request_id, request.params_hash, PRICE_DATA, sign(request))
    tx = call.build_transaction({"from": roles.operator.address, "gas": DELIVERY_GAS,
                                 "maxFeePerGas": 50 * 10**9, "maxPriorityFeePerGas": 20 * 10**9})
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(tx))
    event = delivered_event(live_oracle, receipt)
    assert receipt["effectiveGasPrice"] > 2 * 10**9
    assert event["payment"] <= request.fee
    assert event["payment"] <= (receipt["gasUsed"] + 3_000) * 2 * 10**9


def test_requester_rejecting_eth__delivery_succeeds_refund_withdrawn_elsewhere(w3, live_oracle, consumer, roles,
                                                                               sign):
    fee = live_oracle.functions.requestFee(60_000, MAX_GAS_PRICE).call()
    receipt = transact(w3, consumer.functions.requestPrice(PARAMS), sender=roles.tenant.address, value=fee)
    event = live_oracle.events.Request().process_receipt(receipt, errors=DISCARD)[0]["args"]
    request = type("R", (), {"request_id": bytes(event["requestId"]), "params_hash": bytes(event["paramsHash"])})()
    call = live_oracle.functions.deliver(request.request_id, request.params_hash, PRICE_DATA, sign(request))
    refund = delivered_event(live_oracle, transact(w3, call, sender=roles.operator.address, gas=DELIVERY_GAS))["refund"]
    assert live_oracle.functions.credits(consumer.address).call() == refund > 0
    # The consumer has no payable default: paying it fails, but only its own withdrawal.
    assert revert_reason(consumer.functions.withdrawRefunds(consumer.address), {"from": roles.tenant.address})
    before = w3.eth.get_balance(roles.carol.address)
    transact(w3, consumer.functions.withdrawRefunds(roles.carol.address), sender=roles.tenant.address)
    assert w3.eth.get_balance(roles.carol.address) - before == refund


def test_withdraw__operator_receives_payments(w3, live_oracle, make_request, deliver, roles):
    payment = delivered_event(live_oracle, deliver(make_request()))["payment"]
    before = w3.eth.get_balance(roles.dave.address)
    transact(w3, live_oracle.functions.withdraw(roles.dave.address), sender=roles.operator.address)
    assert w3.eth.get_balance(roles.dave.address) - before == payment
    assert "nos: nothing to withdraw" in revert_reason(live_oracle.functions.withdraw(roles.dave.address),
                                                        {"from": roles.operator.address})


# -- cancel ------------------------------------------------------------------------------


def test_cancel__before_expiry__reverts(live_oracle, make_request, roles):
    request = make_request()
    call = live_oracle.functions.cancel(request.request_id)
    assert "nos: request not expired" in revert_reason(call, {"from": roles.alice.address})


def test_cancel__after_expiry__refunds_whole_fee(w3, chain, live_oracle, make_request, roles):
    request = make_request()
    chain.warp(REQUEST_TTL + 1)
    transact(w3, live_oracle.functions.cancel(request.request_id), sender=roles.alice.address)
    assert live_oracle.functions.credits(roles.alice.address).call() == request.fee
    assert live_oracle.functions.statusOf(request.request_id).call() == STATUS["cancelled"]
    before = w3.eth.get_balance(live_oracle.address)
    transact(w3, live_oracle.functions.withdraw(roles.carol.address), sender=roles.alice.address)
    assert before - w3.eth.get_balance(live_oracle.address) == request.fee


def test_credit_above_64_bits__spills_over_and_is_withdrawn_whole(w3, chain, live_oracle, make_request, roles):
    # An account word holds 64 bits of credit (18.4 ETH); two cancelled 10 ETH fees exceed it.
    price = 10 * 10**18 // (DELIVERY_OVERHEAD + CALLBACK_GAS)
    requests = [make_request(max_gas_price=price) for _ in range(2)]
    chain.warp(REQUEST_TTL + 1)
    for request in requests:
        transact(w3, live_oracle.functions.cancel(request.request_id), sender=roles.alice.address)
    owed = sum(r.fee for r in requests)
    assert owed > 2**64 and live_oracle.functions.credits(roles.alice.address).call() == owed
    assert live_oracle.functions.nonces(roles.alice.address).call() == 2  # the spill left the nonce alone
    before = w3.eth.get_balance(roles.carol.address)
    transact(w3, live_oracle.functions.withdraw(roles.carol.address), sender=roles.alice.address)
    assert w3.eth.get_balance(roles.carol.address) - before == owed
    assert live_oracle.functions.credits(roles.alice.address).call() == 0


def test_request__second_different_callback__each_request_keeps_its_own(live_oracle, make_request, deliver,
                                                                       create_callback, roles):
    first, second = create_callback("recorder"), create_callback("recorder")
    # The recorder writes three new slots: 150,000 gas lets it finish.
    to_first = make_request(callback=first.address, gas_limit=150_000)  # alice's default callback (her account word)
    to_second = make_request(callback=second.address, gas_limit=150_000)  # a word of its own
    again_first = make_request(callback=first.address, gas_limit=150_000)
    records = [live_oracle.functions.requests(r.request_id).call() for r in (to_first, to_second, again_first)]
    assert [r[1] for r in records] == [first.address, second.address, first.address]
    deliver(to_second, gas=2_000_000)
    assert second.functions.last_data().call() == PRICE_DATA and first.functions.last_data().call() == b""
    deliver(to_first, gas=2_000_000)
    assert first.functions.last_data().call() == PRICE_DATA


def test_cancel__by_stranger__reverts(chain, live_oracle, make_request, roles):
    request = make_request()
    chain.warp(REQUEST_TTL + 1)
    call = live_oracle.functions.cancel(request.request_id)
    assert "nos: only the requester can cancel" in revert_reason(call, {"from": roles.bob.address})


def test_cancel__after_delivery__reverts(chain, live_oracle, make_request, deliver, roles):
    request = make_request()
    deliver(request)
    chain.warp(REQUEST_TTL + 1)
    call = live_oracle.functions.cancel(request.request_id)
    assert "nos: request not pending" in revert_reason(call, {"from": roles.alice.address})


# -- batches -----------------------------------------------------------------------------


def batch_of(requests: list[Any], sign: Any) -> list[tuple[bytes, bytes, bytes, bytes]]:
    return [(r.request_id, r.params_hash, PRICE_DATA, sign(r)) for r in requests]


def test_deliver_batch__delivers_all_cheaper_per_response(w3, live_oracle, make_request, deliver, sign, roles):
    deliver(make_request())  # warm the operator's credit slot, as in steady state
    single = deliver(make_request(callback=ZERO))["gasUsed"]
    requests = [make_request(callback=ZERO) for _ in range(5)]
    receipt = transact(w3, live_oracle.functions.deliverBatch(batch_of(requests, sign)),
                       sender=roles.operator.address, gas=3_000_000)
    assert len(live_oracle.events.Delivered().process_receipt(receipt)) == 5
    assert receipt["gasUsed"] / 5 < single


def test_deliver_batch__skips_settled_ids_instead_of_reverting(w3, chain, live_oracle, make_request, deliver, sign,
                                                               roles):
    delivered, cancelled, fresh = (make_request(callback=ZERO) for _ in range(3))
    deliver(delivered)
    chain.warp(REQUEST_TTL + 1)
    transact(w3, live_oracle.functions.cancel(cancelled.request_id), sender=roles.alice.address)
    fresh_late = make_request(callback=ZERO)
    receipt = transact(w3, live_oracle.functions.deliverBatch(batch_of([delivered, cancelled, fresh, fresh_late], sign)),
                       sender=roles.operator.address, gas=3_000_000)
    skipped = {bytes(e["args"]["requestId"]) for e in live_oracle.events.DeliverySkipped().process_receipt(receipt)}
    assert skipped == {delivered.request_id, cancelled.request_id, fresh.request_id}  # fresh has expired
    assert live_oracle.functions.statusOf(fresh_late.request_id).call() == STATUS["delivered"]


def test_deliver_batch__bad_signature__reverts_whole_batch(live_oracle, make_request, sign, roles):
    good, bad = make_request(), make_request()
    responses = [*batch_of([good], sign), (bad.request_id, bad.params_hash, PRICE_DATA, sign(bad, key=OTHER_KEY))]
    call = live_oracle.functions.deliverBatch(responses)
    assert "nos: signer is not a registered enclave" in revert_reason(call, {"from": roles.operator.address,
                                                                            "gas": 3_000_000})


# -- registry ----------------------------------------------------------------------------


def test_register__by_stranger__reverts(live_oracle, roles):
    call = live_oracle.functions.registerEnclave(roles.bob.address, MEASUREMENT)
    assert "ownable: caller is not the owner" in revert_reason(call, {"from": roles.bob.address})


def test_register__records_measurement_and_revoke_clears_it(w3, live_oracle, roles, enclave_address):
    assert bytes(live_oracle.functions.enclave_measurement(enclave_address).call()) == MEASUREMENT
    receipt = transact(w3, live_oracle.functions.revokeEnclave(enclave_address), sender=roles.deployer.address)
    assert live_oracle.events.EnclaveRevoked().process_receipt(receipt)[0]["args"]["measurement"] == MEASUREMENT
    assert bytes(live_oracle.functions.enclave_measurement(enclave_address).call()) == bytes(32)
    call = live_oracle.functions.revokeEnclave(enclave_address)
    assert "nos: enclave not registered" in revert_reason(call, {"from": roles.deployer.address})


# -- racing relays: settled ids in a batch ---------------------------------------------------

# What a skipped entry may cost its submitter: its own calldata (~350 bytes), one cold
# status read and the DeliverySkipped event.
SKIPPED_ENTRY_GAS = 8_000


def operator_loss(live_oracle: Any, receipt: Any) -> int:
    """Gas the submitter spent beyond what the delivered responses paid it (negative: paid more)."""
    paid = sum(e["args"]["payment"] for e in live_oracle.events.Delivered().process_receipt(receipt))
    return (receipt["gasUsed"] * receipt["effectiveGasPrice"] - paid) // receipt["effectiveGasPrice"]


def send_batch(w3: Any, live_oracle: Any, responses: list[Any], sender: str) -> Any:
    return transact(w3, live_oracle.functions.deliverBatch(responses), sender=sender, gas=3_000_000)


def test_deliver_batch__all_pending__operator_paid_what_it_spent(w3, live_oracle, make_request, deliver, sign, roles):
    deliver(make_request(callback=ZERO))  # warm the operator's credit slot, as in steady state
    requests = [make_request(callback=ZERO) for _ in range(4)]
    loss = operator_loss(live_oracle, send_batch(w3, live_oracle, batch_of(requests, sign), roles.operator.address))
    assert -3_000 * 4 <= loss <= 0


def test_deliver_batch__settled_id__submitter_loses_only_the_skipped_entry(w3, live_oracle, make_request, deliver,
                                                                            sign, roles):
    deliver(make_request(callback=ZERO))
    settled, *fresh = (make_request(callback=ZERO) for _ in range(3))
    send_batch(w3, live_oracle, batch_of([settled], sign), roles.relayer.address)  # the other relay was first
    receipt = send_batch(w3, live_oracle, batch_of([settled, *fresh], sign), roles.operator.address)
    assert len(live_oracle.events.Delivered().process_receipt(receipt)) == 2
    assert operator_loss(live_oracle, receipt) <= SKIPPED_ENTRY_GAS


def test_deliver_batch__unknown_id__skipped_not_reverted(w3, live_oracle, make_request, deliver, sign, roles):
    deliver(make_request(callback=ZERO))
    fresh = make_request(callback=ZERO)
    unknown = (keccak(b"reorged out"), fresh.params_hash, PRICE_DATA, sign(fresh))
    receipt = send_batch(w3, live_oracle, [unknown, *batch_of([fresh], sign)], roles.operator.address)
    skipped = live_oracle.events.DeliverySkipped().process_receipt(receipt)
    assert [(bytes(e["args"]["requestId"]), e["args"]["status"]) for e in skipped] == [(unknown[0], STATUS["none"])]
    assert live_oracle.functions.statusOf(fresh.request_id).call() == STATUS["delivered"]
    assert operator_loss(live_oracle, receipt) <= SKIPPED_ENTRY_GAS


def test_deliver_batch__repeated_id__delivered_and_paid_once(w3, live_oracle, make_request, deliver, sign, roles):
    deliver(make_request(callback=ZERO))
    first, second = make_request(callback=ZERO), make_request(callback=ZERO)
    receipt = send_batch(w3, live_oracle, batch_of([first, first, second], sign), roles.operator.address)
    delivered = [bytes(e["args"]["requestId"]) for e in live_oracle.events.Delivered().process_receipt(receipt)]
    assert delivered == [first.request_id, second.request_id]
    assert all(e["args"]["payment"] + e["args"]["refund"] == first.fee
               for e in live_oracle.events.Delivered().process_receipt(receipt))
    assert operator_loss(live_oracle, receipt) <= SKIPPED_ENTRY_GAS


def test_deliver_batch__every_id_settled__no_revert_nothing_paid(w3, live_oracle, make_request, sign, roles):
    requests = [make_request(callback=ZERO) for _ in range(2)]
    send_batch(w3, live_oracle, batch_of(requests, sign), roles.relayer.address)
    credit = live_oracle.functions.credits(roles.operator.address).call()
    receipt = send_batch(w3, live_oracle, batch_of(requests, sign), roles.operator.address)
    assert len(live_oracle.events.DeliverySkipped().process_receipt(receipt)) == 2
    assert live_oracle.functions.credits(roles.operator.address).call() == credit


def test_statuses_of__many_ids_in_one_call(w3, chain, live_oracle, make_request, deliver, roles):
    delivered, cancelled, pending = (make_request(callback=ZERO) for _ in range(3))
    deliver(delivered)
    chain.warp(REQUEST_TTL + 1)
    transact(w3, live_oracle.functions.cancel(cancelled.request_id), sender=roles.alice.address)
    ids = [delivered.request_id, cancelled.request_id, pending.request_id, keccak(b"unknown")]
    assert live_oracle.functions.statusesOf(ids).call() == [STATUS["delivered"], STATUS["cancelled"],
                                                            STATUS["pending"], STATUS["none"]]


# -- publishing the enclave's encryption key -------------------------------------------------


def test_publish_encryption_key__signed_by_registered_enclave__stored_with_event(w3, live_oracle, roles,
                                                                                 enclave_address):
    encryption_key = PrivateKey().public_key.format()
    signature = sign_digest(ENCLAVE_KEY, encryption_key_digest(encryption_key))
    receipt = transact(w3, live_oracle.functions.publishEncryptionKey(encryption_key, signature),
                       sender=roles.dave.address)  # anyone (here dave) may carry the enclave's signature
    event = live_oracle.events.EncryptionKeyPublished().process_receipt(receipt)[0]["args"]
    assert (event["enclave"], bytes(event["old_key"]), bytes(event["new_key"])) == (enclave_address, b"",
                                                                                   encryption_key)
    assert bytes(live_oracle.functions.enclaveEncryptionKey(enclave_address).call()) == encryption_key


@pytest.mark.parametrize(("case", "message"), [
    ("impostor", "nos: signer is not a registered enclave"),
    ("truncated", "nos: encryption key must be 33 bytes"),
    ("not a point prefix", "nos: encryption key must be a compressed point"),
])
def test_publish_encryption_key__bad_key_or_signer__reverts(live_oracle, roles, case, message):
    encryption_key = PrivateKey().public_key.format()
    if case == "truncated":
        encryption_key = encryption_key[:32]
    if case == "not a point prefix":
        encryption_key = b"\x04" + encryption_key[1:]
    signer = OTHER_KEY if case == "impostor" else ENCLAVE_KEY
    call = live_oracle.functions.publishEncryptionKey(encryption_key,
                                                      sign_digest(signer, encryption_key_digest(encryption_key)))
    assert message in revert_reason(call, {"from": roles.dave.address})
