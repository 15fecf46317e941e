"""Both directions between two anvils, through in-process validators and the relayer."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from dccn_common.contracts import transact
from token_bridge.chains import ETHEREUM
from token_bridge.jsonhttp import JsonServer
from token_bridge.transfer import (
    Destination,
    Signature,
    Transfer,
    recover_signer,
    sign_transfer,
    sorted_for_contract,
)
from token_bridge.validator import read_signatures

from .conftest import ANKR_WEI, CONFIRMATIONS, BridgeHarness


@pytest.mark.anvil
@pytest.mark.parametrize(("validators", "threshold"), [(4, 3), (7, 5)], ids=["3-of-4", "5-of-7"])
def test_bridge__both_directions__paid_once_and_supply_invariant_holds(
    make_bridge: Any, roles: Any, validators: int, threshold: int
) -> None:
    h: BridgeHarness = make_bridge(validators, threshold)
    network = h.network()
    alice, bob, carol = roles.alice, roles.bob, roles.carol
    bob_before = h.ankr_w3.eth.get_balance(bob.address)

    # Ethereum -> Ankr: 1,000 ANKR locked, paid as native coin.
    h.lock(alice, bob.address, 1_000 * ANKR_WEI)
    assert h.locked() - h.native_outside() == 1_000 * ANKR_WEI  # in flight
    h.pump_until(network, lambda: h.ankr_w3.eth.get_balance(bob.address) > bob_before)
    assert h.ankr_w3.eth.get_balance(bob.address) - bob_before == 1_000 * ANKR_WEI
    assert h.locked() == h.native_outside() == 1_000 * ANKR_WEI

    # Ankr -> Ethereum: 400 native back, paid as ERC20 to carol.
    h.bridge_out(bob, carol.address, 400 * ANKR_WEI)
    assert h.locked() - h.native_outside() == 400 * ANKR_WEI  # in flight
    token = h.bridge.token.functions
    h.pump_until(network, lambda: token.balanceOf(carol.address).call() > 0)
    assert token.balanceOf(carol.address).call() == 400 * ANKR_WEI
    assert h.locked() == h.native_outside() == 600 * ANKR_WEI

    # More rounds change nothing: each transfer executed once, by exactly `threshold` signatures.
    for _ in range(3):
        h.mine_both()
        network.pump()
    assert h.locked() == h.native_outside() == 600 * ANKR_WEI
    for relay in network.relays.values():
        assert relay.counts() == {"done": 1}
        assert relay.sender.pending_count() == 0
    for validator in network.validators:
        assert validator.status()["signed"] == 2


@pytest.mark.anvil
def test_bridge__one_validator_down__threshold_still_pays(make_bridge: Any, roles: Any) -> None:
    h: BridgeHarness = make_bridge(4, 3)
    network = h.network()
    network.servers[0].stop()  # its signatures are unreachable; 3 of 4 remain
    network.servers.pop(0)
    h.lock(roles.alice, roles.dave.address, 10 * ANKR_WEI)
    before = h.ankr_w3.eth.get_balance(roles.dave.address)
    h.pump_until(network, lambda: h.ankr_w3.eth.get_balance(roles.dave.address) > before)
    assert h.locked() == h.native_outside()


@pytest.mark.anvil
def test_bridge__large_transfer__held_then_released_by_relayer(make_bridge: Any, roles: Any) -> None:
    h: BridgeHarness = make_bridge(4, 3, hold_threshold=100 * ANKR_WEI, hold_period=600)
    network = h.network()
    before = h.ankr_w3.eth.get_balance(roles.dave.address)
    h.lock(roles.alice, roles.dave.address, 150 * ANKR_WEI)
    relay = network.relays["ankr"]
    h.pump_until(network, lambda: relay.counts().get("held") == 1)
    assert h.ankr_w3.eth.get_balance(roles.dave.address) == before
    h.ankr.warp(601)
    h.pump_until(network, lambda: relay.counts().get("done") == 1)
    assert h.ankr_w3.eth.get_balance(roles.dave.address) - before == 150 * ANKR_WEI


@pytest.mark.anvil
def test_relayer__faulty_signature_source__ignored_and_transfer_still_paid(make_bridge: Any, roles: Any) -> None:
    h: BridgeHarness = make_bridge(4, 3)
    network = h.network()
    outsider = Account.create()
    garbage: list[Any] = [
        {"seq": 1, "transfer": {"src_chain_id": "x"}, "v": 27, "r": "0x1", "s": "0x1"},
        {"seq": 2, "transfer": None, "v": 99, "r": "zz", "s": "0x1"},
        "not an object",
    ]

    def app(_method: str, _path: str, _query: str, _body: bytes) -> tuple[int, Any]:
        forged = _forged_entry(h, outsider)
        return 200, {"validator": outsider.address, "signatures": [*garbage, forged] if forged else garbage}

    faulty = JsonServer(app).start()
    network.servers.append(faulty)
    for relay in network.relays.values():
        relay.validator_urls.append(faulty.url)
    before = h.ankr_w3.eth.get_balance(roles.dave.address)
    h.lock(roles.alice, roles.dave.address, 11 * ANKR_WEI)
    h.pump_until(network, lambda: h.ankr_w3.eth.get_balance(roles.dave.address) > before)
    assert h.ankr_w3.eth.get_balance(roles.dave.address) - before == 11 * ANKR_WEI
    signers = {row["signer"] for row in network.relays["ankr"].db.execute("SELECT signer FROM relay_signatures")}
    assert outsider.address not in signers and len(signers) == 4


def _forged_entry(h: BridgeHarness, outsider: Any) -> dict[str, Any] | None:
    """The outsider signs whatever the first validator signed, pretending to be a validator."""
    entries = read_signatures(h.networks[0].validators[0].db_path, h.ankr.chain_id, 0)
    if not entries:
        return None
    transfer = Transfer.from_json(entries[0]["transfer"])
    signature = sign_transfer(outsider, transfer, Destination(h.ankr.chain_id, h.bridge.home.address))
    return {"seq": 3, "transfer": entries[0]["transfer"], "v": signature.v, "r": hex(signature.r), "s": hex(signature.s)}


@pytest.mark.anvil
def test_relayer__transfer_executed_by_someone_else__marked_done_nothing_sent(make_bridge: Any, roles: Any) -> None:
    h: BridgeHarness = make_bridge(4, 3)
    network = h.network()
    before = h.ankr_w3.eth.get_balance(roles.dave.address)
    h.lock(roles.alice, roles.dave.address, 12 * ANKR_WEI)
    h.eth.mine(CONFIRMATIONS["ethereum"] + 1)
    for validator in network.validators:
        validator.poll()
    # Another relayer (here: carol by hand) executes with the validators' signatures first.
    destination = Destination(h.ankr.chain_id, h.bridge.home.address)
    signatures = {}
    for validator in network.validators:
        entry = read_signatures(validator.db_path, h.ankr.chain_id, 0)[0]
        signatures[validator.account.address] = Signature(entry["v"], int(entry["r"], 16), int(entry["s"], 16))
    transfer = Transfer.from_json(entry["transfer"])
    transact(h.ankr_w3, h.bridge.home.functions.executeSignatures(
        transfer.as_tuple(), sorted_for_contract(signatures, 3)), sender=roles.carol.address)
    assert recover_signer(transfer, destination, signatures[network.validators[0].account.address]) \
        == network.validators[0].account.address

    for _ in range(3):
        h.mine_both()
        network.pump()
    relay = network.relays["ankr"]
    assert relay.counts() == {"done": 1}
    assert relay.db.execute("SELECT COUNT(*) AS n FROM outbox").fetchone()["n"] == 0  # its estimate reverted: not sent
    assert h.ankr_w3.eth.get_balance(roles.dave.address) - before == 12 * ANKR_WEI  # paid once


@pytest.mark.anvil
def test_bridge__relay_collects_while_its_own_sender_sends__paid_once(make_bridge: Any, roles: Any) -> None:
    # The benchmark's relayer: tick(send=False) collects and settles, own_sender() sends from
    # another connection (SQLite).
    h: BridgeHarness = make_bridge(4, 3)
    network = h.network()
    relay = network.relays["ankr"]
    sender = relay.own_sender()
    assert sender is not relay.sender and sender.address == relay.sender.address
    before = h.ankr_w3.eth.get_balance(roles.dave.address)
    h.lock(roles.alice, roles.dave.address, 3 * ANKR_WEI)
    for _ in range(30):
        if relay.counts() == {"done": 1}:
            break
        h.mine_both()
        for validator in network.validators:
            validator.poll()
        relay.tick(send=False)
        sender.process()
    assert relay.counts() == {"done": 1}
    assert h.ankr_w3.eth.get_balance(roles.dave.address) - before == 3 * ANKR_WEI


@pytest.mark.anvil
def test_relayer__executions_the_foreign_bridge_cannot_fund_together__later_one_waits_for_locks_none_reverts(
        make_bridge: Any, roles: Any) -> None:
    # The foreign bridge pays ERC20 from what was locked. Each execution's estimate sees the bridge
    # before the executions ahead of it (this pass's, and those in flight): two that fit alone but
    # not together once both went out, and the second reverted (the failover test's "refused
    # second execution", one run in ten: both outs signed in one relayer pass).
    h: BridgeHarness = make_bridge(4, 3)
    network = h.network()
    relay = network.relays[ETHEREUM]
    dave_before = h.ankr_w3.eth.get_balance(roles.dave.address)
    h.lock(roles.alice, roles.dave.address, 6 * ANKR_WEI)
    h.pump_until(network, lambda: h.ankr_w3.eth.get_balance(roles.dave.address) > dave_before)
    token = h.bridge.token.functions
    assert token.balanceOf(h.bridge.foreign.address).call() == 6 * ANKR_WEI
    first_nonce = h.eth_w3.eth.get_transaction_count(roles.relayer.address)

    h.eth.set_automine(False)  # the executions stay in flight while the relayer passes again
    try:
        h.bridge_out(roles.bob, roles.carol.address, 4 * ANKR_WEI)
        h.bridge_out(roles.bob, roles.carol.address, 5 * ANKR_WEI)
        for _ in range(4):  # the signatures of both arrive; further passes see the first in flight
            h.ankr.mine(1)
            network.pump()
        assert relay.counts() == {"submitted": 1, "collecting": 1}
        assert relay.sender.pending_count() == 1
        h.eth.mine(1)
        for _ in range(2):  # the first is paid; 2 ANKR are left, the second still waits
            network.pump()
        assert relay.counts() == {"done": 1, "collecting": 1}
        assert token.balanceOf(roles.carol.address).call() == 4 * ANKR_WEI
    finally:
        h.eth.set_automine(True)

    h.lock(roles.alice, roles.dave.address, 10 * ANKR_WEI)  # funds the second
    h.pump_until(network, lambda: token.balanceOf(roles.carol.address).call() == 9 * ANKR_WEI)
    last_nonce = h.eth_w3.eth.get_transaction_count(roles.relayer.address)
    statuses = [h.eth_w3.eth.get_transaction_receipt(row["tx_hash"])["status"]
                for row in relay.db.execute("SELECT tx_hash FROM outbox WHERE nonce >= ? ORDER BY nonce",
                                            (first_nonce,)).fetchall()]
    assert statuses == [1, 1] and last_nonce == first_nonce + 2  # two executions, neither reverted
    assert len(h.bridge.foreign.events.TransferExecuted().get_logs(from_block=0)) == 2
