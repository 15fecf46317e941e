"""End to end on anvil: the real RootChain, the operator (API over HTTP), the client CLI
and the watcher, all talking through the same interfaces users and services use."""

from __future__ import annotations

from typing import Any

import pytest

from dccn_common.store import transaction
from plasma_client.remote import OperatorApiError, OperatorClient
from plasma_client.wallet import Coin, build_transfer, deposit_exit_args
from plasma_core import ledger, store, wire

pytestmark = pytest.mark.anvil

ETHER = 10**18
EXIT_BOND = 10**16  # what the plasma fixture deploys with
EXIT_PERIOD = 100


def _final(client: OperatorClient, blknum: int) -> bool:
    block = client.block(blknum)
    return bool(block and block["status"] == "final")


def test_deposit_transfers_exit_finalize_withdraw__balances_on_both_chains(
    plasma: Any, start_operator: Any, cli: Any, eventually: Any, roles: Any
) -> None:
    running = start_operator()
    url = running.url
    api = OperatorClient(url)
    alice, bob, carol = roles.alice, roles.bob, roles.carol

    deposit = cli(alice, url, "deposit", "1ether")
    assert cli(alice, url, "balance")["child_chain"] == str(ETHER)
    to_bob = cli(alice, url, "send", bob.address, "0.4ether")
    to_carol = cli(bob, url, "send", carol.address, "0.1ether")  # spends what alice just sent
    from_alice = cli(alice, url, "send", carol.address, "0.2ether")
    sent = [to_bob, to_carol, from_alice]
    for blknum in {s["blknum"] for s in sent}:
        eventually(lambda b=blknum: _final(api, b), what=f"block {blknum} final")
    assert all(api.tx(s["blknum"], s["txindex"])["hash"] == s["hash"] for s in sent)
    # senders publish confirm signatures so receivers can exit
    for actor, tx in ((alice, to_bob), (bob, to_carol), (alice, from_alice)):
        cli(actor, url, "confirm", str(tx["blknum"]), str(tx["txindex"]))
    data = api.tx(to_bob["blknum"], to_bob["txindex"])
    forged = wire.confirm_sign(bytes.fromhex(data["hash"][2:]), bytes.fromhex(data["root"][2:]), bob.key)
    with pytest.raises(OperatorApiError, match="not by the owner") as caught:
        api.confirm(to_bob["blknum"], to_bob["txindex"], 0, forged)
    assert caught.value.status == 422
    assert "none of the inputs" in cli(carol, url, "confirm", str(to_bob["blknum"]), str(to_bob["txindex"]),
                                       expect_code=2)
    balances = {a.role: int(cli(a, url, "balance")["child_chain"]) for a in (alice, bob, carol)}
    assert balances == {"alice": 4 * ETHER // 10, "bob": 3 * ETHER // 10, "carol": 3 * ETHER // 10}
    assert sum(balances.values()) == int(deposit["amount"])

    carol_before = plasma.w3.eth.get_balance(carol.address)
    blknum, txindex = from_alice["blknum"], from_alice["txindex"]
    started = cli(carol, url, "exit", str(blknum), str(txindex), "0")  # alice's 0.2 to carol
    assert started["exit_id"] == wire.exit_id(blknum, txindex, 0)
    eventually(lambda: any(u["exiting"] for u in api.utxos(carol.address)), what="operator sees the exit")
    assert int(cli(carol, url, "balance")["child_chain"]) == ETHER // 10
    with pytest.raises(OperatorApiError, match="being exited"):  # the exiting output cannot be spent any more
        api.submit(build_transfer([Coin(blknum, txindex, 0, 2 * ETHER // 10)], carol.address, alice.address,
                                  2 * ETHER // 10, 0, carol.key))

    plasma.anvil.warp(2 * EXIT_PERIOD + 1)
    finalized = cli(bob, url, "finalize")["finalized"]  # anyone may finalize
    assert finalized == [{"exit_id": started["exit_id"], "amount": str(2 * ETHER // 10)}]
    assert plasma.rootchain.functions.balances(carol.address).call() == 2 * ETHER // 10 + EXIT_BOND
    cli(carol, url, "withdraw")
    spent_gas = carol_before - plasma.w3.eth.get_balance(carol.address) + 2 * ETHER // 10
    assert 0 < spent_gas < 10**16  # got the output and the bond back; paid only gas
    assert plasma.w3.eth.get_balance(plasma.rootchain.address) == 8 * ETHER // 10 + 10**18  # rest + operator bond
    assert cli(carol, url, "withdraw", expect_code=2).strip() == "error: nothing to withdraw"


def test_double_spend__second_spend_rejected_with_409_and_nothing_changes(
    plasma: Any, start_operator: Any, roles: Any, eventually: Any
) -> None:
    # No block is sealed during the test, so the pending count can only move by the submissions.
    running = start_operator(block_interval=3600)
    api = OperatorClient(running.url)
    blknum = plasma.deposit(roles.alice, ETHER)
    eventually(lambda: api.utxo(blknum, 0, 0), what="deposit credited")
    coin = Coin(blknum, 0, 0, ETHER)
    api.submit(build_transfer([coin], roles.alice.address, roles.bob.address, ETHER, 0, roles.alice.key))
    before = api.status()["pending_transactions"]
    with pytest.raises(OperatorApiError) as caught:
        api.submit(build_transfer([coin], roles.alice.address, roles.carol.address, ETHER, 0, roles.alice.key))
    assert caught.value.status == 409 and caught.value.body["error"] == "double_spend"
    assert api.status()["pending_transactions"] == before
    assert api.utxos(roles.carol.address) == []


def test_exit_of_spent_output__challenged_by_watcher__bond_to_challenger(
    plasma: Any, start_operator: Any, start_watcher: Any, cli: Any, roles: Any, eventually: Any
) -> None:
    running = start_operator()
    api = OperatorClient(running.url)
    start_watcher(roles.challenger, running.url)
    alice = roles.alice
    deposit = cli(alice, running.url, "deposit", "1ether")
    sent = cli(alice, running.url, "send", roles.bob.address, "1ether", "--wait")
    cli(alice, running.url, "confirm", str(sent["blknum"]), str(sent["txindex"]))
    # alice tries to take her deposit back although she spent it
    exit_args = deposit_exit_args(deposit["blknum"], alice.address, ETHER)
    plasma.send(alice, exit_args.call(plasma.rootchain), value=EXIT_BOND)
    challenged = eventually(lambda: plasma.events("ExitChallenged"), what="watcher's challenge")
    assert challenged[0]["args"]["exitId"] == exit_args.exit_id
    assert challenged[0]["args"]["challenger"] == roles.challenger.address
    assert plasma.rootchain.functions.exits(exit_args.exit_id).call()[3] == 3  # challenged
    assert plasma.rootchain.functions.balances(roles.challenger.address).call() == EXIT_BOND
    assert api.utxos(roles.bob.address)[0]["amount"] == str(ETHER)


def test_withheld_block__watcher_warns_and_exits_its_users_outputs(
    plasma: Any, start_operator: Any, start_watcher: Any, cli: Any, roles: Any, eventually: Any
) -> None:
    running = start_operator()
    url = running.url
    alice, bob = roles.alice, roles.bob
    watcher = start_watcher(bob, url)
    cli(alice, url, "deposit", "1ether")
    bob_deposit = cli(bob, url, "deposit", "0.5ether")
    sent = cli(alice, url, "send", bob.address, "0.3ether", "--wait")
    cli(alice, url, "confirm", str(sent["blknum"]), str(sent["txindex"]))
    eventually(lambda: watcher.local_exit_args(wire.utxo_position(sent["blknum"], sent["txindex"], 0)),
               what="watcher holds what bob needs to exit")
    # the operator goes rogue: a root on chain whose block it never serves
    running.stop()
    plasma.send(roles.operator, plasma.rootchain.functions.submitBlock(b"\x42" * 32))
    expected = {wire.exit_id(sent["blknum"], sent["txindex"], 0), wire.exit_id(bob_deposit["blknum"], 0, 0)}
    exits = eventually(lambda: (lambda e: e if len(e) == 2 else None)(plasma.events("ExitStarted")),
                       what="bob's mass exit")
    assert {wire.exit_id(e["args"]["blknum"], e["args"]["txindex"], e["args"]["oindex"]) for e in exits} == expected
    assert all(e["args"]["exitor"] == bob.address for e in exits)
    assert "not served" in watcher.status()["alarm"]


def test_withheld_block__input_of_users_output_has_a_pending_exit__watcher_challenges_first_then_exits(
    plasma: Any, start_operator: Any, start_watcher: Any, cli: Any, roles: Any, eventually: Any
) -> None:
    running = start_operator()
    url = running.url
    alice, bob = roles.alice, roles.bob
    watcher = start_watcher(bob, url, withhold_grace=0.0)
    deposit = cli(alice, url, "deposit", "1ether")
    sent = cli(alice, url, "send", bob.address, "1ether", "--wait")
    cli(alice, url, "confirm", str(sent["blknum"]), str(sent["txindex"]))
    bobs = wire.utxo_position(sent["blknum"], sent["txindex"], 0)
    eventually(lambda: watcher.local_exit_args(bobs), what="watcher holds what bob needs to exit")
    watcher.loop.stop()  # both arrive in one poll: the alarm and alice's exit of the input
    running.stop()
    cheat = deposit_exit_args(deposit["blknum"], alice.address, ETHER)
    plasma.send(alice, cheat.call(plasma.rootchain), value=EXIT_BOND)
    plasma.send(roles.operator, plasma.rootchain.functions.submitBlock(b"\x42" * 32))
    from tests.plasma_fixtures import Looping

    watcher.loop = Looping(watcher.bot.tick, 0.1)
    try:
        started = eventually(lambda: [e for e in plasma.events("ExitStarted") if e["args"]["exitor"] == bob.address],
                             what="bob's exit")
    finally:
        watcher.loop.stop()
    assert [e["args"]["exitId"] for e in plasma.events("ExitChallenged")] == [cheat.exit_id]
    assert [wire.exit_id(e["args"]["blknum"], e["args"]["txindex"], e["args"]["oindex"]) for e in started] == [bobs]
    assert "not served" in watcher.status()["alarm"]


def _mint_into_open_block(running: Any, owner: str, amount: int) -> None:
    """A rogue operator slips an input-less transaction into its open block (not the fee leaf)."""
    op = running.operator
    with op.api_state.lock, transaction(op.api_db):
        blknum, txindex = op.chain.open_block(op.api_db)
        minted = wire.Transaction(newowner1=owner, denom1=amount)
        store.insert_tx(op.api_db, blknum, txindex, "transfer", wire.encode(minted), minted)


def test_invalid_block__input_less_tx_outside_the_fee_leaf__watcher_proves_fraud_and_exits(
    plasma: Any, start_operator: Any, start_watcher: Any, roles: Any, eventually: Any
) -> None:
    running = start_operator(block_interval=3600)
    api = OperatorClient(running.url)
    start_watcher(roles.bob, running.url)
    alice, bob = roles.alice, roles.bob
    blknum = plasma.deposit(alice, ETHER)
    bob_deposit = plasma.deposit(bob, ETHER)
    eventually(lambda: api.utxo(blknum, 0, 0), what="deposit credited")
    api.submit(build_transfer([Coin(blknum, 0, 0, ETHER)], alice.address, bob.address, ETHER // 2, 1000, alice.key))
    _mint_into_open_block(running, roles.operator.address, ETHER)
    with running.operator.api_state.lock:
        running.operator.chain.seal(running.operator.api_db)
    proven = eventually(lambda: plasma.events("InvalidBlockProven"), what="fraud proof")
    assert proven[0]["args"]["kind"] == 3 and proven[0]["args"]["txindex"] == 1
    assert proven[0]["args"]["prover"] == bob.address
    assert plasma.rootchain.functions.frozen().call()
    assert plasma.rootchain.functions.balances(bob.address).call() == 10**18  # the operator bond
    exits = eventually(lambda: plasma.events("ExitStarted"), what="bob's exit")
    assert [wire.exit_id(e["args"]["blknum"], 0, 0) for e in exits] == [wire.exit_id(bob_deposit, 0, 0)]


def test_fee_overclaim__watcher_warns_and_exits__no_fraud_proof_exists(
    plasma: Any, start_operator: Any, start_watcher: Any, roles: Any, eventually: Any,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # The operator's fee transaction claims twice the block's fees: the root chain cannot
    # tell (it exempts the fee leaf), so watchers are what stands between users and the theft.
    monkeypatch.setattr(ledger, "fee_transaction",
                        lambda operator, fees: wire.Transaction(newowner1=operator, denom1=2 * fees))
    running = start_operator()
    api = OperatorClient(running.url)
    watcher = start_watcher(roles.bob, running.url)
    alice, bob = roles.alice, roles.bob
    blknum = plasma.deposit(alice, ETHER)
    bob_deposit = plasma.deposit(bob, ETHER)
    eventually(lambda: api.utxo(blknum, 0, 0), what="deposit credited")
    sent = api.submit(build_transfer([Coin(blknum, 0, 0, ETHER)], alice.address, bob.address, ETHER // 2, 1000,
                                     alice.key))
    eventually(lambda: _final(api, sent["blknum"]), what="the greedy block on chain")
    assert api.tx(sent["blknum"], wire.FEE_TXINDEX)["outputs"][0]["amount"] == "2000"
    exits = eventually(lambda: plasma.events("ExitStarted"), what="bob's exit")
    assert [wire.exit_id(e["args"]["blknum"], 0, 0) for e in exits] == [wire.exit_id(bob_deposit, 0, 0)]
    assert "fee transaction" in watcher.status()["alarm"] and "2000" in watcher.status()["alarm"]
    assert plasma.events("InvalidBlockProven") == [] and not plasma.rootchain.functions.frozen().call()


def test_fees__collected_as_operator_output__operator_exits_finalizes_withdraws(
    plasma: Any, start_operator: Any, start_watcher: Any, cli: Any, roles: Any, eventually: Any
) -> None:
    running = start_operator()
    url = running.url
    api = OperatorClient(url)
    watcher = start_watcher(roles.bob, url)
    alice, bob, operator = roles.alice, roles.bob, roles.operator
    cli(alice, url, "deposit", "1ether")
    first = cli(alice, url, "send", bob.address, "0.4ether", "--fee", "0.001ether", "--wait")
    second = cli(alice, url, "send", bob.address, "0.1ether", "--fee", "0.002ether", "--wait")
    blocks = sorted({first["blknum"], second["blknum"]})
    fee_outputs = api.utxos(operator.address)
    assert [(u["blknum"], u["txindex"], u["oindex"]) for u in fee_outputs] == [(b, wire.FEE_TXINDEX, 0) for b in blocks]
    assert sum(int(u["amount"]) for u in fee_outputs) == 3 * 10**15
    eventually(lambda: watcher.status()["blocks"].get("verified") == len(blocks), what="the watcher verifies")
    assert watcher.status()["alarm"] is None

    assert "caller does not own the output" in cli(bob, url, "exit", str(blocks[0]), str(wire.FEE_TXINDEX), "0",
                                                   expect_code=1)
    started = [cli(operator, url, "exit", str(b), str(wire.FEE_TXINDEX), "0") for b in blocks]
    assert [s["exit_id"] for s in started] == [wire.exit_id(b, wire.FEE_TXINDEX, 0) for b in blocks]
    plasma.anvil.warp(2 * EXIT_PERIOD + 1)
    finalized = cli(bob, url, "finalize")["finalized"]
    assert sum(int(f["amount"]) for f in finalized) == 3 * 10**15
    owed = plasma.rootchain.functions.balances(operator.address).call()
    assert owed == 3 * 10**15 + len(blocks) * EXIT_BOND
    before = plasma.w3.eth.get_balance(operator.address)
    cli(operator, url, "withdraw")
    gained = plasma.w3.eth.get_balance(operator.address) - before
    assert owed - 10**15 < gained <= owed  # the fees and bonds, less gas


@pytest.mark.reorgs
def test_reorg_removing_a_deposit__operator_removes_the_spend(
    plasma: Any, start_operator: Any, roles: Any, eventually: Any
) -> None:
    running = start_operator(block_interval=3600)
    api = OperatorClient(running.url)
    alice, bob = roles.alice, roles.bob
    blknum = plasma.deposit(alice, ETHER)
    deposit_block = plasma.anvil.block_number()
    eventually(lambda: api.utxo(blknum, 0, 0), what="deposit credited")
    api.submit(build_transfer([Coin(blknum, 0, 0, ETHER)], alice.address, bob.address, ETHER, 0, alice.key))
    assert api.status()["pending_transactions"] == 1
    # The deposit's block (and any after it) replaced by empty ones; the blocks of the deployment stay.
    plasma.anvil.reorg(plasma.anvil.block_number() - deposit_block + 1)
    eventually(lambda: api.utxo(blknum, 0, 0) is None, what="deposit removed")
    assert api.status()["pending_transactions"] == 0
    assert api.utxos(bob.address) == []


def test_client_challenge__exit_of_spent_deposit__challenger_gets_the_bond(
    plasma: Any, start_operator: Any, cli: Any, roles: Any
) -> None:
    running = start_operator()
    url = running.url
    alice, carol = roles.alice, roles.carol
    deposit = cli(alice, url, "deposit", "1ether")
    sent = cli(alice, url, "send", roles.bob.address, "1ether", "--wait")
    assert "no spend" in cli(carol, url, "challenge", str(wire.exit_id(sent["blknum"], sent["txindex"], 0)),
                             expect_code=2)
    started = cli(alice, url, "exit", str(deposit["blknum"]), "0", "0")  # her deposit, already spent
    assert "no confirm signature" in cli(carol, url, "challenge", str(started["exit_id"]), expect_code=2)
    cli(alice, url, "confirm", str(sent["blknum"]), str(sent["txindex"]))
    challenged = cli(carol, url, "challenge", str(started["exit_id"]))
    assert challenged["spent_by"] == {"blknum": sent["blknum"], "txindex": sent["txindex"], "slot": 0}
    assert plasma.rootchain.functions.exits(started["exit_id"]).call()[3] == 3
    assert plasma.rootchain.functions.balances(carol.address).call() == EXIT_BOND


def test_client_exit__input_with_a_pending_exit__refused_with_advice_then_exits_after_challenging(
    plasma: Any, start_operator: Any, cli: Any, roles: Any
) -> None:
    running = start_operator()
    url = running.url
    alice, bob = roles.alice, roles.bob
    deposit = cli(alice, url, "deposit", "1ether")
    sent = cli(alice, url, "send", bob.address, "1ether", "--wait")
    cli(alice, url, "confirm", str(sent["blknum"]), str(sent["txindex"]))
    cheat = cli(alice, url, "exit", str(deposit["blknum"]), "0", "0")  # her deposit, already spent to bob
    refused = cli(bob, url, "exit", str(sent["blknum"]), str(sent["txindex"]), "0", expect_code=2)
    assert refused.startswith("error: ") and refused.count("\n") == 1
    assert f"challenge it first (plasma-client challenge {cheat['exit_id']})" in refused
    cli(bob, url, "challenge", str(cheat["exit_id"]))
    exited = cli(bob, url, "exit", str(sent["blknum"]), str(sent["txindex"]), "0")
    assert plasma.rootchain.functions.exits(exited["exit_id"]).call()[:2] == [bob.address, ETHER]
    assert plasma.rootchain.functions.exits(exited["exit_id"]).call()[3] == 1
