"""The operator across a reorg deeper than its confirmation depth that removes a
submitBlock it already saw final (issue 12): the same transaction is mined again
under the same number, and the next block is still submitted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from dccn_common.store import open_db
from dccn_devtools.pytest_fixtures import BACKENDS
from plasma_client.remote import OperatorClient
from plasma_client.wallet import Coin, build_transfer, deposit_exit_args

pytestmark = [pytest.mark.anvil, pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)]

ETHER = 10**18
EXIT_BOND = 10**16  # what the plasma fixture deploys with


def _mining_until(plasma: Any, eventually: Any, check: Callable[[], Any], what: str) -> Any:
    """Confirmations need blocks, and automine makes them only for transactions."""
    return eventually(lambda: check() or plasma.anvil.mine(), what=what)


def _submissions(plasma: Any) -> list[Any]:
    db = open_db(plasma.store("operator.db"))
    try:
        return db.execute("SELECT key, status, tx_hash, nonce, block_number FROM outbox "
                          "WHERE key LIKE 'submitBlock:%' ORDER BY nonce").fetchall()
    finally:
        db.close()


def _final(api: OperatorClient, blknum: int) -> bool:
    block = api.block(blknum)
    return bool(block and block["status"] == "final")


@dataclass(frozen=True)
class FinalBlock:
    """An operator whose first child block (alice -> bob) is final, with its mined submitBlock row."""

    running: Any
    api: OperatorClient
    first: dict[str, Any]
    submission: Any
    root: bytes


def _first_block_final(plasma: Any, start_operator: Any, roles: Any, eventually: Any) -> FinalBlock:
    running = start_operator(confirmations=1, block_interval=0.2)
    api = OperatorClient(running.url)
    alice, bob = roles.alice, roles.bob
    deposit = plasma.deposit(alice, ETHER)
    _mining_until(plasma, eventually, lambda: api.utxo(deposit, 0, 0), "deposit credited")
    first = api.submit(build_transfer([Coin(deposit, 0, 0, ETHER)], alice.address, bob.address, ETHER, 0, alice.key))
    _mining_until(plasma, eventually, lambda: _final(api, first["blknum"]), "first block final")
    # The follower may see the block final a moment before the outbox records the receipt.
    submission = eventually(lambda: [r for r in _submissions(plasma) if r["status"] == "mined"],
                            what="submitBlock recorded mined")[0]
    root = bytes(plasma.rootchain.functions.getChildChain(first["blknum"]).call()[0])
    return FinalBlock(running, api, first, submission, root)


@pytest.mark.reorgs
def test_reorg_removing_a_final_submit_block__same_tx_mined_again__next_block_submitted(
    plasma: Any, start_operator: Any, roles: Any, eventually: Any
) -> None:
    alice, bob = roles.alice, roles.bob
    ready = _first_block_final(plasma, start_operator, roles, eventually)
    running, api, first, submission, root = ready.running, ready.api, ready.first, ready.submission, ready.root

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


def _watcher_rows(plasma: Any, actor: Any, sql: str) -> list[Any]:
    db = open_db(plasma.store(f"watcher-{actor.role}.db"))
    try:
        return [tuple(row) for row in db.execute(sql).fetchall()]
    finally:
        db.close()


@pytest.mark.reorgs
def test_reorg_removing_the_watchers_challenge__challenging_again__same_challenge_mined_once(
    plasma: Any, start_operator: Any, start_watcher: Any, cli: Any, roles: Any, eventually: Any
) -> None:
    running = start_operator()
    start_watcher(roles.challenger, running.url)
    alice = roles.alice
    deposit = cli(alice, running.url, "deposit", "1ether")
    sent = cli(alice, running.url, "send", roles.bob.address, "1ether", "--wait")
    cli(alice, running.url, "confirm", str(sent["blknum"]), str(sent["txindex"]))
    exit_args = deposit_exit_args(deposit["blknum"], alice.address, ETHER)  # her deposit, already spent
    plasma.send(alice, exit_args.call(plasma.rootchain), value=EXIT_BOND)
    status_sql = f"SELECT status FROM watched_exits WHERE exit_id = {exit_args.exit_id}"
    eventually(lambda: _watcher_rows(plasma, roles.challenger, status_sql) == [("challenged",)],
               what="watcher saw its challenge mined")
    challenge_sql = "SELECT tx_hash, block_number FROM outbox WHERE key LIKE 'challenge:%' AND status = 'mined'"
    challenge_hash, challenge_block = eventually(lambda: _watcher_rows(plasma, roles.challenger, challenge_sql),
                                                 what="challenge recorded mined")[0]

    plasma.anvil.set_automine(False)
    try:
        # The challenge and everything after it are replaced; the exit itself stays.
        plasma.anvil.reorg(plasma.anvil.block_number() - challenge_block + 1)
        eventually(lambda: _watcher_rows(plasma, roles.challenger, status_sql) == [("challenging",)],
                   what="exit challenging again while the challenge is off chain")
    finally:
        plasma.anvil.set_automine(True)
    plasma.anvil.mine()
    eventually(lambda: _watcher_rows(plasma, roles.challenger, status_sql) == [("challenged",)],
               what="the same challenge mined again")

    events = plasma.events("ExitChallenged")
    assert [e["args"]["exitId"] for e in events] == [exit_args.exit_id]
    assert events[0]["transactionHash"].to_0x_hex() == challenge_hash  # rebroadcast, not re-signed
    # The follower may see ExitChallenged a moment before the outbox records the receipt.
    eventually(lambda: [r[0] for r in _watcher_rows(plasma, roles.challenger, challenge_sql)] == [challenge_hash],
               what="the challenge recorded mined once")
    assert plasma.rootchain.functions.balances(roles.challenger.address).call() == EXIT_BOND


def _cheat_after_a_spend(plasma: Any, cli: Any, url: str, roles: Any) -> tuple[Any, Any, Any]:
    """alice deposits, sends it all to bob, confirms, then starts the exit of her spent deposit."""
    alice = roles.alice
    deposit = cli(alice, url, "deposit", "1ether")
    sent = cli(alice, url, "send", roles.bob.address, "1ether", "--wait")
    cli(alice, url, "confirm", str(sent["blknum"]), str(sent["txindex"]))
    exit_args = deposit_exit_args(deposit["blknum"], alice.address, ETHER)
    receipt = plasma.send(alice, exit_args.call(plasma.rootchain), value=EXIT_BOND)
    return exit_args, receipt, sent


def _outbox(plasma: Any, actor: Any, exit_id: int) -> list[Any]:
    return _watcher_rows(plasma, actor, f"SELECT key, status FROM outbox WHERE key LIKE 'challenge:{exit_id}%' "
                                        "ORDER BY rowid")


@pytest.mark.reorgs
def test_watcher__spend_submitted_after_exit_started__exit_challenged(
    plasma: Any, start_operator: Any, start_watcher: Any, cli: Any, roles: Any, eventually: Any
) -> None:
    # A deep reorg drops the operator's submitBlock and the watcher's challenge; alice's wallet
    # re-sends her exit, mined first; the watcher's rebroadcast challenge reverts (no block yet);
    # the operator's submitBlock lands after the exit started: the watcher must challenge again.
    running = start_operator()
    start_watcher(roles.challenger, running.url)
    exit_args, exit_receipt, _ = _cheat_after_a_spend(plasma, cli, running.url, roles)
    status_sql = f"SELECT status FROM watched_exits WHERE exit_id = {exit_args.exit_id}"
    eventually(lambda: _watcher_rows(plasma, roles.challenger, status_sql) == [("challenged",)],
               what="watcher challenged the exit")
    submit_block = int(plasma.events("BlockSubmitted")[0]["blockNumber"])
    exit_raw = plasma.anvil.rpc("eth_getRawTransactionByHash", exit_receipt["transactionHash"].to_0x_hex())

    running.pause()  # the operator rebroadcasts its submitBlock only once the exit is back
    plasma.anvil.set_automine(False)
    try:
        plasma.anvil.reorg(plasma.anvil.block_number() - submit_block + 1)
        plasma.anvil.rpc("anvil_dropAllTransactions")
        resent = plasma.anvil.rpc("eth_sendRawTransaction", exit_raw)
        plasma.anvil.mine()
        # Seen once: no ExitStarted here. Say whether the re-sent exit was mined, and how.
        receipt = plasma.anvil.rpc("eth_getTransactionReceipt", resent)
        assert receipt is not None and int(receipt["status"], 16) == 1, (
            f"re-sent exit {resent} not mined or reverted: {receipt}; pool {plasma.anvil.rpc('txpool_content')}")
        assert [int(e["args"]["blknum"]) for e in plasma.events("ExitStarted")] == [exit_args.blknum]
        assert plasma.events("BlockSubmitted") == []
        # The watcher's stored challenge comes back and reverts (the spending block is not on chain),
        # or, if the reorg raced the sender's checks, is given up: either way it does not land.
        _mining_until(plasma, eventually, lambda: [status for key, status in _outbox(
            plasma, roles.challenger, exit_args.exit_id) if key == f"challenge:{exit_args.exit_id}"]
            in (["reverted"], ["failed"]), "the old challenge did not land")
    finally:
        plasma.anvil.set_automine(True)
    running.resume()
    _mining_until(plasma, eventually, lambda: plasma.events("ExitChallenged"), "exit challenged on the new chain")
    _mining_until(plasma, eventually,
                  lambda: _watcher_rows(plasma, roles.challenger, status_sql) == [("challenged",)],
                  "watcher saw its new challenge")

    events = plasma.events("ExitChallenged")
    assert [(e["args"]["exitId"], e["args"]["challenger"]) for e in events] == [
        (exit_args.exit_id, roles.challenger.address)]
    assert plasma.rootchain.functions.exits(exit_args.exit_id).call()[3] == 3  # challenged
    statuses = eventually(lambda: (lambda rows: rows if rows and rows[-1] == "mined" else None)(
        [status for _, status in _outbox(plasma, roles.challenger, exit_args.exit_id)]),
        what="a new challenge recorded mined")
    assert statuses.count("mined") == 1 and set(statuses[:-1]) <= {"reverted", "failed"}


@pytest.mark.reorgs
def test_watcher__someone_elses_challenge_removed_by_reorg__watcher_challenges_itself(
    plasma: Any, start_operator: Any, start_watcher: Any, cli: Any, roles: Any, eventually: Any
) -> None:
    running = start_operator()
    exit_args, _, sent = _cheat_after_a_spend(plasma, cli, running.url, roles)
    spend = OperatorClient(running.url).tx(sent["blknum"], sent["txindex"])
    # bob challenges with alice's published confirm signature, before any watcher runs.
    from plasma_client.wallet import challenge_args_from_api

    receipt = plasma.send(roles.bob, challenge_args_from_api(exit_args.exit_id, spend, 0).call(plasma.rootchain))
    start_watcher(roles.challenger, running.url)
    status_sql = f"SELECT status FROM watched_exits WHERE exit_id = {exit_args.exit_id}"
    eventually(lambda: _watcher_rows(plasma, roles.challenger, status_sql) == [("challenged",)],
               what="watcher saw bob's challenge")
    assert _outbox(plasma, roles.challenger, exit_args.exit_id) == []

    plasma.anvil.set_automine(False)
    try:
        # bob's challenge is removed and nobody re-sends it; the exit stays.
        plasma.anvil.reorg(plasma.anvil.block_number() - int(receipt["blockNumber"]) + 1)
        plasma.anvil.rpc("anvil_dropAllTransactions")
        _mining_until(plasma, eventually, lambda: _outbox(plasma, roles.challenger, exit_args.exit_id),
                      "watcher challenging the exit again pending")
    finally:
        plasma.anvil.set_automine(True)
    _mining_until(plasma, eventually, lambda: plasma.events("ExitChallenged"), "exit challenged on the new chain")
    _mining_until(plasma, eventually,
                  lambda: _watcher_rows(plasma, roles.challenger, status_sql) == [("challenged",)],
                  "watcher saw its own challenge")

    events = plasma.events("ExitChallenged")
    assert [(e["args"]["exitId"], e["args"]["challenger"]) for e in events] == [
        (exit_args.exit_id, roles.challenger.address)]
    assert plasma.rootchain.functions.balances(roles.challenger.address).call() == EXIT_BOND


def _state_slot(plasma: Any) -> int:
    """The storage word holding currentChildBlock | currentDepositBlock << 64 | ... | frozen << 255."""
    rc = plasma.rootchain.functions
    child, deposit = int(rc.currentChildBlock().call()), int(rc.currentDepositBlock().call())
    for slot in range(64):
        word = int(plasma.anvil.rpc("eth_getStorageAt", plasma.rootchain.address, hex(slot), "latest"), 16)
        if word and word & (2**64 - 1) == child and (word >> 64) & 0xFFFF == deposit:
            return slot
    raise AssertionError("RootChain state word not found")


def _set_frozen(plasma: Any, slot: int, frozen: bool) -> None:
    address = plasma.rootchain.address
    word = int(plasma.anvil.rpc("eth_getStorageAt", address, hex(slot), "latest"), 16)
    word = word | (1 << 255) if frozen else word & ~(1 << 255)
    plasma.anvil.rpc("anvil_setStorageAt", address, hex(slot), "0x" + word.to_bytes(32, "big").hex())
    assert plasma.rootchain.functions.frozen().call() is frozen


@pytest.mark.reorgs
def test_operator__submit_block_reincluded_reverts_after_reorg__resubmitted_under_its_number(
    plasma: Any, start_operator: Any, roles: Any, eventually: Any
) -> None:
    ready = _first_block_final(plasma, start_operator, roles, eventually)
    running, api, first, submission, root = ready.running, ready.api, ready.first, ready.submission, ready.root
    slot = _state_slot(plasma)

    running.pause()
    plasma.anvil.mine(2)
    plasma.anvil.reorg(plasma.anvil.block_number() - submission["block_number"] + 1)
    plasma.anvil.rpc("anvil_dropAllTransactions")
    _set_frozen(plasma, slot, True)  # on the new chain the same submitBlock bytes revert
    running.resume()
    _mining_until(plasma, eventually, lambda: [r for r in _submissions(plasma) if r["status"] == "reverted"],
                  "the re-included submitBlock reverted")
    _set_frozen(plasma, slot, False)
    # The block turns final (follower) before the sender's next pass marks the retry mined.
    _mining_until(plasma, eventually,
                  lambda: _final(api, first["blknum"]) and [r["status"] for r in _submissions(plasma)][-1:] == ["mined"],
                  "first block final again and its retry marked mined")

    assert bytes(plasma.rootchain.functions.getChildChain(first["blknum"]).call()[0]) == root
    assert [int(e["args"]["blknum"]) for e in plasma.events("BlockSubmitted")] == [first["blknum"]]
    rows = _submissions(plasma)
    assert [(r["key"], r["status"]) for r in rows] == [(f"submitBlock:{first['blknum']}", "reverted"),
                                                       (f"submitBlock:{first['blknum']}:retry1", "mined")]
    assert rows[0]["tx_hash"] == submission["tx_hash"]
