"""`plasma-client` waits say what they wait for (block X of Y, N confirmations) and time out
with advice instead of hanging silently on an idle chain."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dccn_devtools.anvil import Anvil

pytestmark = pytest.mark.anvil

PROGRESS = re.compile(r"waiting for block (\d+) of (\d+) \(2 confirmations\)")


@pytest.fixture
def miner(chain: Anvil) -> Iterator[None]:
    """Mines a block every 0.3 s while the test runs (the chain fixture is automine only)."""
    node, stop = Anvil(port=chain.port, chain_id=chain.chain_id), threading.Event()

    def run() -> None:
        while not stop.wait(0.3):
            node.mine()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def test_deposit__idle_chain__shows_the_block_it_waits_for_and_times_out_with_mining_advice(
    start_operator: Any, roles: Any, client_run: Any
) -> None:
    operator = start_operator(confirmations=2, block_interval=3600)
    result = client_run(roles.alice, operator.url, "deposit", "1ether", "--timeout", "2")
    assert result.exit_code == 1, result.stdout + result.stderr
    assert PROGRESS.search(result.stderr), result.stderr
    assert "timed out after 2s" in result.stderr
    assert "the root chain made no block" in result.stderr and "dccn-anvil --block-time 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_deposit__mining_chain__counts_up_the_confirmations_then_credits(
    start_operator: Any, roles: Any, client_run: Any, miner: None
) -> None:
    operator = start_operator(confirmations=2, block_interval=3600)
    result = client_run(roles.alice, operator.url, "deposit", "1ether", "--timeout", "30")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["amount"] == str(10**18)
    seen = [(int(m[1]), int(m[2])) for m in PROGRESS.finditer(result.stderr)]
    assert seen, result.stderr
    assert all(block <= target for block, target in seen)
