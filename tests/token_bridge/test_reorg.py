"""A lock removed by a reorg before it has its confirmations is never signed or paid."""

from __future__ import annotations

from typing import Any

import pytest

from dccn_devtools.pytest_fixtures import BACKENDS
from token_bridge.chains import ANKR

from .conftest import ANKR_WEI, CONFIRMATIONS, BridgeHarness

pytestmark = pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)


@pytest.mark.anvil
@pytest.mark.reorgs
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
@pytest.mark.reorgs
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


def _executions(relay: Any) -> list[Any]:
    return relay.db.execute("SELECT key, status, tx_hash, nonce, block_number FROM outbox WHERE key LIKE 'execute:%' "
                            "ORDER BY nonce").fetchall()


@pytest.mark.anvil
@pytest.mark.reorgs
def test_reorg__destination_removes_confirmed_execution__same_tx_mined_again_later_transfer_paid(
    make_bridge: Any, roles: Any
) -> None:
    h: BridgeHarness = make_bridge(4, 3)
    network = h.network()
    relay = network.relays[ANKR]
    dave_before = h.ankr_w3.eth.get_balance(roles.dave.address)
    h.lock(roles.alice, roles.dave.address, 7 * ANKR_WEI)
    h.pump_until(network, lambda: relay.counts() == {"done": 1})
    execution = _executions(relay)[0]
    h.ankr.mine(CONFIRMATIONS[ANKR] + 2)
    # Deeper than the destination's confirmations: the execution and every block after it.
    h.ankr.reorg(h.ankr.block_number() - execution["block_number"] + 1)
    assert h.ankr_w3.eth.get_balance(roles.dave.address) == dave_before
    h.ankr.set_automine(False)
    try:
        network.pump()  # the sender finds the execution gone and rebroadcasts it into the pool
        assert relay.counts() == {"submitted": 1}  # not 'done' while nothing on chain pays dave
    finally:
        h.ankr.set_automine(True)

    h.lock(roles.alice, roles.dave.address, 5 * ANKR_WEI)
    h.pump_until(network, lambda: relay.counts() == {"done": 2})
    for _ in range(3):
        h.mine_both()
        network.pump()
    assert h.ankr_w3.eth.get_balance(roles.dave.address) - dave_before == 12 * ANKR_WEI
    assert h.locked() == h.native_outside() == 12 * ANKR_WEI
    rows = _executions(relay)
    assert rows[0]["tx_hash"] == execution["tx_hash"]  # the stored bytes again, not a second execution
    assert [r["nonce"] for r in rows] == [execution["nonce"], execution["nonce"] + 1]
    assert all(r["status"] == "mined" for r in rows)
