"""A lock removed by a reorg before it has its confirmations is never signed or paid."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import ANKR_WEI, CONFIRMATIONS, BridgeHarness


@pytest.mark.anvil
def test_reorg__lock_removed_before_confirmations__never_paid(make_bridge: Any, roles: Any) -> None:
    h: BridgeHarness = make_bridge(4, 3)
    network = h.network()
    alice_tokens = h.bridge.token.functions.balanceOf(roles.alice.address).call()
    dave_before = h.ankr_w3.eth.get_balance(roles.dave.address)
    h.lock(roles.alice, roles.dave.address, 50 * ANKR_WEI)
    h.eth.mine(CONFIRMATIONS["ethereum"] - 1)  # one block short of confirmed
    network.pump()
    assert all(v.status()["signed"] == 0 for v in network.validators)

    # The lock's block and the one after it are replaced by empty blocks.
    h.eth.reorg(CONFIRMATIONS["ethereum"])
    for _ in range(6):
        h.mine_both()
        network.pump()
    assert h.bridge.token.functions.balanceOf(roles.alice.address).call() == alice_tokens
    assert h.locked() == 0 == h.native_outside()
    assert h.ankr_w3.eth.get_balance(roles.dave.address) == dave_before
    assert all(v.status()["signed"] == 0 for v in network.validators)
    assert all(relay.counts() == {} for relay in network.relays.values())

    # The bridge still works after the reorg.
    h.lock(roles.alice, roles.dave.address, 5 * ANKR_WEI)
    h.pump_until(network, lambda: h.ankr_w3.eth.get_balance(roles.dave.address) > dave_before)
    assert h.ankr_w3.eth.get_balance(roles.dave.address) - dave_before == 5 * ANKR_WEI


@pytest.mark.anvil
def test_reorg__lock_moved_to_another_block__paid_once(make_bridge: Any, roles: Any) -> None:
    h: BridgeHarness = make_bridge(4, 3)
    network = h.network()
    dave_before = h.ankr_w3.eth.get_balance(roles.dave.address)
    token, foreign = h.bridge.token, h.bridge.foreign
    approve = token.functions.approve(foreign.address, 7 * ANKR_WEI).build_transaction({"from": roles.alice.address, "gas": 200_000})
    h.lock(roles.alice, roles.dave.address, 7 * ANKR_WEI)
    network.pump()
    # The reorged chain holds the same lock again, one block later (a new tx hash and block).
    relock = foreign.functions.relayTokens(roles.dave.address, 7 * ANKR_WEI).build_transaction(
        {"from": roles.alice.address, "gas": 200_000})
    h.eth.reorg(2, [(_plain(approve), 0), (_plain(relock), 1)])
    h.pump_until(network, lambda: h.ankr_w3.eth.get_balance(roles.dave.address) > dave_before)
    for _ in range(4):
        h.mine_both()
        network.pump()
    assert h.ankr_w3.eth.get_balance(roles.dave.address) - dave_before == 7 * ANKR_WEI
    assert h.locked() == h.native_outside() == 7 * ANKR_WEI


def _plain(tx: dict[str, Any]) -> dict[str, Any]:
    """A transaction request anvil_reorg accepts (it fills nonce and fees itself)."""
    return {"from": tx["from"], "to": tx["to"], "data": tx["data"], "gas": hex(200_000)}
