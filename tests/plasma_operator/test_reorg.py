"""The operator across a reorg deeper than its confirmation depth that removes a
submitBlock it already saw final (issue 12): the same transaction is mined again
under the same number, and the next block is still submitted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dccn_common.store import open_db
from plasma_operator.remote import OperatorClient
from plasma_operator.wallet import Coin, build_transfer

pytestmark = pytest.mark.anvil

ETHER = 10**18


def _mining_until(plasma: Any, eventually: Any, check: Callable[[], Any], what: str) -> Any:
    """Confirmations need blocks, and automine makes them only for transactions."""
    return eventually(lambda: check() or plasma.anvil.mine(), what=what)


def _submissions(plasma: Any) -> list[Any]:
    db = open_db(plasma.workdir / "operator.db")
    try:
        return db.execute("SELECT key, status, tx_hash, nonce, block_number FROM outbox "
                          "WHERE key LIKE 'submitBlock:%' ORDER BY nonce").fetchall()
    finally:
        db.close()


def _final(api: OperatorClient, blknum: int) -> bool:
    block = api.block(blknum)
    return bool(block and block["status"] == "final")


def test_reorg_removing_a_final_submit_block__same_tx_mined_again__next_block_submitted(
    plasma: Any, start_operator: Any, roles: Any, eventually: Any
) -> None:
    running = start_operator(confirmations=1, block_interval=0.2)
    api = OperatorClient(running.url)
    alice, bob = roles.alice, roles.bob
    deposit = plasma.deposit(alice, ETHER)
    _mining_until(plasma, eventually, lambda: api.utxo(deposit, 0, 0), "deposit credited")
    first = api.submit(build_transfer([Coin(deposit, 0, 0, ETHER)], alice.address, bob.address, ETHER, 0, alice.key))
    _mining_until(plasma, eventually, lambda: _final(api, first["blknum"]), "first block final")
    submission = _submissions(plasma)[0]
    root = bytes(plasma.rootchain.functions.getChildChain(first["blknum"]).call()[0])

    plasma.anvil.mine(2)
    # Deeper than the confirmations: the submitBlock and every block after it (the deposit stays).
    plasma.anvil.reorg(plasma.anvil.block_number() - submission["block_number"] + 1)

    coin = Coin(first["blknum"], first["txindex"], 0, ETHER)
    second = api.submit(build_transfer([coin], bob.address, alice.address, ETHER, 0, bob.key))
    _mining_until(plasma, eventually, lambda: _final(api, second["blknum"]), "second block final")

    assert bytes(plasma.rootchain.functions.getChildChain(first["blknum"]).call()[0]) == root
    assert [int(e["args"]["blknum"]) for e in plasma.events("BlockSubmitted")] == [first["blknum"], second["blknum"]]
    rows = _submissions(plasma)
    assert [r["key"] for r in rows] == [f"submitBlock:{first['blknum']}", f"submitBlock:{second['blknum']}"]
    assert rows[0]["tx_hash"] == submission["tx_hash"]  # the stored bytes again, not a second submission
    assert [r["nonce"] for r in rows] == [submission["nonce"], submission["nonce"] + 1]
    assert running.loop.errors == []
