"""Every way to get paid without a proper transfer is refused, on both sides."""

from __future__ import annotations

import dataclasses

import boa
import pytest
from eth_account import Account

from token_bridge.transfer import SECP256K1_N, Destination

from .conftest import ANKR, HOLD, LIMITS, Bridges, key_of, lock

SIDES = ["foreign", "home"]


def _fund_foreign(b: Bridges, amount: int) -> None:
    lock(b, amount)  # locked ANKR is what the foreign bridge can release


def _balance(b: Bridges, side: str, who: str) -> int:
    return b.token.balanceOf(who) if side == "foreign" else boa.env.get_balance(who)


@pytest.fixture(params=SIDES)
def side(request: pytest.FixtureRequest, bridges: Bridges) -> str:
    if request.param == "foreign":
        _fund_foreign(bridges, 10_000 * ANKR)
    return str(request.param)


def test_execute__threshold_of_validators__pays_recipient_once(bridges: Bridges, side: str) -> None:
    bridge = getattr(bridges, side)
    recipient = boa.env.generate_address()
    transfer = bridges.transfer_to(bridge, recipient, 7 * ANKR)
    bridges.execute(bridge, transfer)
    assert _balance(bridges, side, recipient) == 7 * ANKR
    assert bridge.transferState(key_of(transfer)) == 1
    assert bridge.transferKey(transfer.as_tuple()) == key_of(transfer)


def test_execute__replayed_transfer__refused(bridges: Bridges, side: str) -> None:
    bridge = getattr(bridges, side)
    transfer = bridges.transfer_to(bridge, boa.env.generate_address(), 5 * ANKR)
    signatures = bridges.sign(bridge, transfer)
    bridges.execute(bridge, transfer, signatures)
    with boa.reverts("bridge: transfer already processed"):
        bridges.execute(bridge, transfer, signatures)
    # Same source log with another recipient or amount is the same replay key.
    other = dataclasses.replace(transfer, recipient=str(boa.env.generate_address()), amount=1 * ANKR)
    with boa.reverts("bridge: transfer already processed"):
        bridges.execute(bridge, other)


def test_execute__non_validator_signatures__refused(bridges: Bridges, side: str) -> None:
    bridge = getattr(bridges, side)
    transfer = bridges.transfer_to(bridge, boa.env.generate_address(), 5 * ANKR)
    mixed = bridges.validators[:2] + bridges.outsiders[:1]
    with boa.reverts("bridge: signer is not a validator"):
        bridges.execute(bridge, transfer, bridges.sign(bridge, transfer, mixed))


def test_execute__duplicated_signer__refused(bridges: Bridges, side: str) -> None:
    bridge = getattr(bridges, side)
    transfer = bridges.transfer_to(bridge, boa.env.generate_address(), 5 * ANKR)
    two = bridges.sign(bridge, transfer, bridges.validators[:2])
    with boa.reverts("bridge: signers not strictly increasing"):
        bridges.execute(bridge, transfer, [two[0], two[0], two[1]])
    with boa.reverts("bridge: signers not strictly increasing"):
        bridges.execute(bridge, transfer, [two[0], two[1], two[1]])


def test_execute__unsorted_signers__refused(bridges: Bridges, side: str) -> None:
    bridge = getattr(bridges, side)
    transfer = bridges.transfer_to(bridge, boa.env.generate_address(), 5 * ANKR)
    signatures = bridges.sign(bridge, transfer)
    with boa.reverts("bridge: signers not strictly increasing"):
        bridges.execute(bridge, transfer, list(reversed(signatures)))


def test_execute__below_threshold__refused(bridges: Bridges, side: str) -> None:
    bridge = getattr(bridges, side)
    transfer = bridges.transfer_to(bridge, boa.env.generate_address(), 5 * ANKR)
    with boa.reverts("bridge: below threshold"):
        bridges.execute(bridge, transfer, bridges.sign(bridge, transfer, bridges.validators[:2]))


def test_execute__high_s_signature__refused(bridges: Bridges, side: str) -> None:
    bridge = getattr(bridges, side)
    transfer = bridges.transfer_to(bridge, boa.env.generate_address(), 5 * ANKR)
    signatures = bridges.sign(bridge, transfer)
    v, r, s = signatures[0]
    malleated = (55 - v, r, SECP256K1_N - s)  # the same signer, the other s
    with boa.reverts("ecdsa: invalid signature `s` value"):
        bridges.execute(bridge, transfer, [malleated, *signatures[1:]])


def test_execute__signed_for_another_bridge_or_chain__refused(bridges: Bridges, side: str) -> None:
    bridge = getattr(bridges, side)
    transfer = bridges.transfer_to(bridge, boa.env.generate_address(), 5 * ANKR)
    elsewhere = [
        Destination(bridges.chain_id, str(bridges.source_of(bridge).address)),  # the other bridge's domain
        Destination(bridges.chain_id + 1, str(bridge.address)),  # this bridge's address on another chain
    ]
    for destination in elsewhere:
        signatures = bridges.sign(bridge, transfer, destination=destination)
        with boa.reverts("bridge: signer is not a validator"):
            bridges.execute(bridge, transfer, signatures)


def test_execute__source_not_the_peer__refused(bridges: Bridges, side: str) -> None:
    bridge = getattr(bridges, side)
    good = bridges.transfer_to(bridge, boa.env.generate_address(), 5 * ANKR)
    for src_chain_id, src_bridge in ((good.src_chain_id + 1, good.src_bridge), (good.src_chain_id, str(bridge.address))):
        forged = dataclasses.replace(good, src_chain_id=src_chain_id, src_bridge=src_bridge)
        with boa.reverts("bridge: not from the peer bridge"):
            bridges.execute(bridge, forged)


def test_execute__same_tx_two_logs__each_paid_once(bridges: Bridges, bridge_sources: dict) -> None:
    helper = bridge_sources["two_locks"].deploy()
    recipient = boa.env.generate_address()
    with boa.env.prank(bridges.user):
        bridges.token.approve(helper.address, 5 * ANKR)
        helper.lock_twice(bridges.token.address, bridges.foreign.address, recipient, 2 * ANKR, 3 * ANKR)
    # Decoded with the bridge's ABI: the helper's call emitted two TransferInitiated logs.
    logs = [e for e in helper.get_logs(strict=False) if getattr(e, "amount", None) is not None]
    assert [e.amount for e in logs] == [2 * ANKR, 3 * ANKR]
    tx_hash = "0x" + "ab" * 32
    first = bridges.transfer_to(bridges.home, recipient, 2 * ANKR, tx_hash=tx_hash, log_index=0)
    second = bridges.transfer_to(bridges.home, recipient, 3 * ANKR, tx_hash=tx_hash, log_index=1)
    first_signatures = bridges.sign(bridges.home, first)
    # The first log's signatures do not authorise the second log.
    with boa.reverts("bridge: signer is not a validator"):
        bridges.execute(bridges.home, second, first_signatures)
    bridges.execute(bridges.home, first, first_signatures)
    bridges.execute(bridges.home, second)
    assert boa.env.get_balance(recipient) == 5 * ANKR
    for transfer in (first, second):
        with boa.reverts("bridge: transfer already processed"):
            bridges.execute(bridges.home, transfer)


def test_relay__outside_limits__refused(bridges: Bridges) -> None:
    minimum, maximum, daily = LIMITS
    with boa.env.prank(bridges.user):
        bridges.token.approve(bridges.foreign.address, 10 * daily)
        with boa.reverts("bridge: below minimum per transfer"):
            bridges.foreign.relayTokens(bridges.user, minimum - 1)
        with boa.reverts("bridge: above maximum per transfer"):
            bridges.foreign.relayTokens(bridges.user, maximum + 1)
        for _ in range(daily // maximum):
            bridges.foreign.relayTokens(bridges.user, maximum)
        with boa.reverts("bridge: daily limit exceeded"):
            bridges.foreign.relayTokens(bridges.user, minimum)
        boa.env.time_travel(seconds=86_400)
        bridges.foreign.relayTokens(bridges.user, minimum)  # a new day
    boa.env.set_balance(bridges.user, 2 * maximum)
    with boa.env.prank(bridges.user), boa.reverts("bridge: above maximum per transfer"):
        bridges.home.relayNative(bridges.user, value=maximum + 1)


def test_pause__pauser_stops_both_directions__owner_cannot(bridges: Bridges, side: str) -> None:
    bridge = getattr(bridges, side)
    with boa.env.prank(bridges.admin), boa.reverts("access_control: account is missing role"):
        bridge.pause()
    with boa.env.prank(bridges.pauser):
        bridge.pause()
    transfer = bridges.transfer_to(bridge, boa.env.generate_address(), 5 * ANKR)
    with boa.reverts("pausable: contract is paused"):
        bridges.execute(bridge, transfer)
    boa.env.set_balance(bridges.user, 10 * ANKR)
    with boa.env.prank(bridges.user), boa.reverts("pausable: contract is paused"):
        if side == "home":
            bridge.relayNative(bridges.user, value=5 * ANKR)
        else:
            bridges.token.approve(bridge.address, 5 * ANKR)
            bridge.relayTokens(bridges.user, 5 * ANKR)
    with boa.env.prank(bridges.pauser):
        bridge.unpause()
    bridges.execute(bridge, transfer)


def test_hold__large_transfer_cancelled_by_guardian__never_pays(bridges: Bridges) -> None:
    bridge = bridges.home
    recipient = boa.env.generate_address()
    transfer = bridges.transfer_to(bridge, recipient, HOLD[0])
    bridges.execute(bridge, transfer)
    key = key_of(transfer)
    assert bridge.transferState(key) == 2 and bridge.totalHeld() == HOLD[0]
    assert boa.env.get_balance(recipient) == 0
    with boa.reverts("bridge: still on hold"):
        bridge.releaseHeld(key)
    with boa.env.prank(bridges.user), boa.reverts("access_control: account is missing role"):
        bridge.cancelHeld(key)
    with boa.env.prank(bridges.guardian):
        bridge.cancelHeld(key)
    boa.env.time_travel(seconds=HOLD[1] + 1)
    with boa.reverts("bridge: transfer not held"):
        bridge.releaseHeld(key)
    with boa.reverts("bridge: transfer already processed"):
        bridges.execute(bridge, transfer)
    assert boa.env.get_balance(recipient) == 0 and bridge.totalHeld() == 0


def test_hold__period_over__anyone_releases_and_guardian_is_too_late(bridges: Bridges) -> None:
    lock(bridges, HOLD[0])
    bridge = bridges.foreign
    recipient = boa.env.generate_address()
    transfer = bridges.transfer_to(bridge, recipient, HOLD[0])
    bridges.execute(bridge, transfer)
    key = key_of(transfer)
    boa.env.time_travel(seconds=HOLD[1])
    with boa.env.prank(bridges.guardian), boa.reverts("bridge: hold period over"):
        bridge.cancelHeld(key)
    bridge.releaseHeld(key)
    assert bridges.token.balanceOf(recipient) == HOLD[0]
    with boa.reverts("bridge: transfer not held"):
        bridge.releaseHeld(key)


def test_validators__owner_changes_set__two_thirds_enforced(bridges: Bridges) -> None:
    bridge = bridges.home
    newcomer = Account.create()
    with boa.env.prank(bridges.user), boa.reverts("access_control: account is missing role"):
        bridge.addValidator(newcomer.address, 4)
    with boa.env.prank(bridges.admin):
        with boa.reverts("bridge: threshold below two thirds"):
            bridge.addValidator(newcomer.address, 3)  # 3 of 5 < 2/3
        bridge.addValidator(newcomer.address, 4)
        assert bridge.validatorCount() == 5 and bridge.threshold() == 4
        with boa.reverts("bridge: already a validator"):
            bridge.addValidator(newcomer.address, 4)
        removed = bridges.validators[0]
        bridge.removeValidator(removed.address, 3)
    assert not bridge.isValidator(removed.address)
    transfer = bridges.transfer_to(bridge, boa.env.generate_address(), 5 * ANKR)
    with boa.reverts("bridge: signer is not a validator"):
        bridges.execute(bridge, transfer, bridges.sign(bridge, transfer, [removed, *bridges.validators[1:3]]))
    bridges.execute(bridge, transfer, bridges.sign(bridge, transfer, [newcomer, *bridges.validators[1:3]]))


def test_execute__5_of_7__needs_five(bridges_5_of_7: Bridges) -> None:
    b = bridges_5_of_7
    transfer = b.transfer_to(b.home, boa.env.generate_address(), 5 * ANKR)
    with boa.reverts("bridge: below threshold"):
        b.execute(b.home, transfer, b.sign(b.home, transfer, b.validators[:4]))
    b.execute(b.home, transfer, b.sign(b.home, transfer, b.validators[2:7]))
    assert boa.env.get_balance(transfer.recipient) == 5 * ANKR


def test_home_payment__recipient_refuses__kept_for_withdrawal(bridges: Bridges, bridge_sources: dict) -> None:
    refusing = bridge_sources["two_locks"].deploy()  # no payable entry point: a plain send reverts
    transfer = bridges.transfer_to(bridges.home, str(refusing.address), 5 * ANKR)
    bridges.execute(bridges.home, transfer)
    assert bridges.home.owed(refusing.address) == 5 * ANKR and bridges.home.totalOwed() == 5 * ANKR
    with boa.env.prank(bridges.user), boa.reverts("bridge: nothing owed"):
        bridges.home.withdraw()
