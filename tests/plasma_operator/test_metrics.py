"""/metrics of the operator (on its API) and of a watcher (on its health port), both started
as real processes: the shared figures and the Plasma ones move with a deposit and a transfer."""

from __future__ import annotations

import signal
import sys
from typing import Any

import pytest

from dccn_devtools.ports import free_port
from plasma_client.remote import OperatorClient
from plasma_client.wallet import Coin, build_transfer
from tests.plasma_operator.test_restart import PASSWORD, _spawn, _start

pytestmark = pytest.mark.anvil


def test_metrics__operator_and_watcher_processes__report_block_fill_pending_and_watched_blocks(
        plasma: Any, roles: Any, eventually: Any, scrape_metrics: Any, documented_metrics: Any) -> None:
    port = free_port()
    operator = _start(plasma, plasma.workdir / "operator-metrics.db", port)
    watcher_port = free_port()
    watcher = _spawn([sys.executable, "-m", "plasma_client.watcher", "--rpc-url", plasma.anvil.url,
                      "--manifest", str(plasma.manifest), "--keystore", str(plasma.keystore(roles.challenger)),
                      "--db", str(plasma.workdir / "watcher-metrics.db"), "--operator-url", f"http://127.0.0.1:{port}",
                      "--health-port", str(watcher_port), "--confirmations", "0", "--poll-interval", "0.1",
                      "--log-level", "WARNING"],
                     plasma.workdir / "watcher-metrics.log", f"http://127.0.0.1:{watcher_port}/health",
                     {"PLASMA_WATCHER_PASSWORD": PASSWORD})
    try:
        api = OperatorClient(f"http://127.0.0.1:{port}", timeout=5)
        alice = roles.alice
        blknum = plasma.deposit(alice, 10**18)
        eventually(lambda: api.utxo(blknum, 0, 0), what="deposit credited")
        sent = api.submit(build_transfer([Coin(blknum, 0, 0, 10**18)], alice.address, roles.bob.address, 10**18, 0,
                                         alice.key))
        eventually(lambda: api.tx(sent["blknum"], sent["txindex"])["final"], what="block final")
        url = f"http://127.0.0.1:{port}/metrics"
        scrape = eventually(lambda: (lambda m: m if m.value("dccn_outbox_transactions", status="mined") == 1
                                     and m.value("dccn_follower_events_handled_total") == 2 else None)(
                                         scrape_metrics(url)), what="operator metrics after the block")
        assert scrape.value("dccn_plasma_pending_transactions", service="plasma-operator") == 0
        assert scrape.value("dccn_plasma_last_block_transactions") == 1
        assert scrape.value("dccn_plasma_block_fill_ratio") == 1 / 65_536
        assert scrape.value("dccn_plasma_child_blocks", status="final") == 1
        assert scrape.value("dccn_plasma_last_block_number", status="final") == sent["blknum"]
        assert scrape.value("dccn_follower_events_by_type_total", event="Deposit") == 1
        assert scrape.value("dccn_follower_events_by_type_total", event="BlockSubmitted") == 1
        assert scrape.value("dccn_outbox_gas_used_total", signer=roles.operator.address) > 21_000
        assert scrape.value("dccn_outbox_confirm_latency_seconds_count") == 1
        assert scrape.value("dccn_leader", signer=roles.operator.address) == 1
        assert scrape.value("dccn_signing_balance_wei", signer=roles.operator.address) > 0

        watcher_url = f"http://127.0.0.1:{watcher_port}/metrics"
        seen = eventually(lambda: (lambda m: m if m.value("dccn_plasma_watched_blocks", status="verified") == 1
                                   else None)(scrape_metrics(watcher_url)), what="the watcher verified the block")
        assert seen.value("dccn_plasma_watched_blocks", service="plasma-watcher", status="invalid") == 0
        assert seen.value("dccn_plasma_watcher_alarm") == 0
        assert seen.value("dccn_follower_lag_blocks") is not None
        assert seen.value("dccn_leader", signer=roles.challenger.address) == 1
        assert seen.value("dccn_outbox_transactions", status="pending") == 0
        plasma = documented_metrics.with_prefix("dccn_plasma_")
        assert documented_metrics.missing(plasma, scrape) & documented_metrics.missing(plasma, seen) == set()
        assert documented_metrics.missing(documented_metrics.shared(), scrape) <= {"dccn_metrics_read_errors_total"}
        assert documented_metrics.undocumented(scrape) | documented_metrics.undocumented(seen) == set()
    finally:
        for process in (watcher, operator):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)
