"""/metrics of the validators and the relayer, started as real processes: a transfer is in
flight while its execution waits in the mempool, then delivered."""

from __future__ import annotations

from typing import Any

import pytest

from tests.token_bridge.conftest import ANKR_WEI, CONFIRMATIONS
from tests.token_bridge.test_restart import services, wait_for  # noqa: F401 (services: the process fixture)


@pytest.mark.anvil
def test_metrics__validator_and_relayer_processes__report_transfers_in_flight_then_delivered(
        services: Any, roles: Any, scrape_metrics: Any, documented_metrics: Any) -> None:  # noqa: F811
    h, processes = services
    for process in processes.values():
        process.launch()
    for process in processes.values():
        process.wait_healthy()
    relayer_url = f"http://127.0.0.1:{processes['relayer'].health_port}/metrics"
    validator_url = f"http://127.0.0.1:{processes['v1'].health_port}/metrics"
    ankr_chain = str(h.ankr_w3.eth.chain_id)
    h.ankr.set_automine(False)  # the relayer's execution waits in the mempool
    try:
        h.lock(roles.alice, roles.dave.address, 9 * ANKR_WEI)
        h.eth.mine(CONFIRMATIONS["ethereum"])
        wait_for(lambda: scrape_metrics(relayer_url).value("dccn_outbox_transactions", chain=ankr_chain,
                                                           status="sent") == 1, "execution broadcast")
        waiting = scrape_metrics(relayer_url)
        assert waiting.value("dccn_bridge_transfers_in_flight", service="token-bridge-relayer",
                             destination="ankr") == 1
        assert waiting.value("dccn_bridge_transfers_in_flight", destination="ethereum") == 0
        assert waiting.value("dccn_bridge_transfers", destination="ankr", status="submitted") == 1
        assert waiting.value("dccn_bridge_oldest_in_flight_age_seconds", destination="ankr") > 0
        assert waiting.value("dccn_outbox_oldest_unfinished_age_seconds", chain=ankr_chain) > 0
    finally:
        h.ankr.set_automine(True)
    h.ankr.mine()
    wait_for(lambda: scrape_metrics(relayer_url).value("dccn_bridge_transfers_in_flight", destination="ankr") == 0,
             "transfer delivered", tick=lambda: h.ankr.mine())
    done = scrape_metrics(relayer_url)
    assert done.value("dccn_bridge_transfers", destination="ankr", status="done") == 1
    assert done.value("dccn_outbox_transactions", chain=ankr_chain, status="mined") == 1
    assert done.value("dccn_outbox_gas_used_total", chain=ankr_chain, signer=roles.relayer.address) > 21_000
    assert done.value("dccn_leader", signer=roles.relayer.address) == 1
    for side in ("ethereum", "ankr"):  # one balance per destination: each chain pays its own gas
        assert done.value("dccn_signing_balance_wei", dependency=f"signing_balance {side}") > 0

    signed = scrape_metrics(validator_url)
    assert signed.value("dccn_bridge_signatures", service="token-bridge-validator",
                        destination_chain_id=ankr_chain) == 1
    assert signed.value("dccn_follower_events_handled_total", follower="validator-ethereum") == 1
    assert signed.value("dccn_follower_lag_blocks", follower="validator-ankr") is not None
    assert signed.value("dccn_leader", signer=h.validator_accounts[0].address) == 1
    bridge = documented_metrics.with_prefix("dccn_bridge_")
    assert documented_metrics.missing(bridge, done) & documented_metrics.missing(bridge, signed) == set()
    assert documented_metrics.undocumented(done) | documented_metrics.undocumented(signed) == set()
