"""The operator's ledger on a real SQLite file: validation, blocks, fees, reorgs, replay."""

from __future__ import annotations

import gc
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plasma_client.wallet import Coin, build_transfer
from plasma_core import ledger as ledger_module
from plasma_core import store, validation, wire
from plasma_core.ledger import ChildChain
from plasma_core.validation import DoubleSpend, FeeMismatch, Malformed, NoInputs, TxRejected, UnknownInput


def test_submit__valid_transfer__spends_input_and_creates_outputs(ledger: Any, roles: Any, pay: Any) -> None:
    coin = ledger.deposit(roles.alice.address, 100)
    [accepted] = ledger.chain.submit(ledger.db, [pay([coin], roles.alice, roles.bob.address, 60, fee=1)])
    assert (accepted.blknum, accepted.txindex) == (1000, 0)
    assert ledger.utxo(coin).spent_by == store.tx_id(1000, 0)
    bob = store.unspent_of(ledger.db, roles.bob.address)
    alice = store.unspent_of(ledger.db, roles.alice.address)
    assert [(u.amount, u.pos) for u in bob] == [(60, wire.utxo_position(1000, 0, 0))]
    assert [(u.amount, u.pos) for u in alice] == [(39, wire.utxo_position(1000, 0, 1))]
    assert ledger.chain.pending_count(ledger.db) == 1


def test_submit__output_of_a_pending_tx__can_be_spent_in_the_same_block(ledger: Any, roles: Any, pay: Any) -> None:
    coin = ledger.deposit(roles.alice.address, 100)
    ledger.chain.submit(ledger.db, [pay([coin], roles.alice, roles.bob.address, 100)])
    [second] = ledger.chain.submit(ledger.db, [pay([Coin(1000, 0, 0, 100)], roles.bob, roles.carol.address, 100)])
    assert (second.blknum, second.txindex) == (1000, 1)


def test_submit__same_tx_twice__is_idempotent(ledger: Any, roles: Any, pay: Any) -> None:
    coin = ledger.deposit(roles.alice.address, 100)
    raw = pay([coin], roles.alice, roles.bob.address, 100)
    first = ledger.chain.submit(ledger.db, [raw])
    assert ledger.chain.submit(ledger.db, [raw]) == first
    assert ledger.chain.pending_count(ledger.db) == 1


def test_submit__double_spend_of_pending_input__rejected_and_nothing_changes(ledger: Any, roles: Any, pay: Any) -> None:
    coin = ledger.deposit(roles.alice.address, 100)
    ledger.chain.submit(ledger.db, [pay([coin], roles.alice, roles.bob.address, 100)])
    before = ledger.snapshot()
    with pytest.raises(DoubleSpend, match="already spent"):
        ledger.chain.submit(ledger.db, [pay([coin], roles.alice, roles.carol.address, 100)])
    assert ledger.snapshot() == before


def _signed(tx: wire.Transaction, *keys: str) -> str:
    for slot, key in enumerate(keys):
        tx = wire.sign(tx, key, slot)
    return "0x" + wire.encode(tx).hex()


@pytest.mark.parametrize(("case", "error", "reason"), [
    ("signed_by_someone_else", TxRejected, "but its owner is"),
    ("outputs_exceed_inputs", TxRejected, "must be equal"),
    ("outputs_below_inputs", TxRejected, "must be equal"),
    ("zero_denomination_output", TxRejected, "zero denomination"),
    ("pays_the_zero_address", TxRejected, "zero address"),
    ("deposit_shaped", TxRejected, "deposits are made only through the root chain"),
    ("unknown_input", UnknownInput, "does not exist"),
    ("same_input_twice", DoubleSpend, "same output"),
    ("unsigned_input", TxRejected, "not signed"),
    ("high_s_signature", TxRejected, "low"),
    ("bad_v", TxRejected, "v must be"),
    ("unused_input_not_zero", Malformed, "not all zero"),
    ("impossible_oindex", Malformed, "impossible output"),
])
def test_submit__invalid_transaction__rejected_with_reason_and_nothing_changes(
    ledger: Any, roles: Any, case: str, error: type, reason: str
) -> None:
    coin = ledger.deposit(roles.alice.address, 100)
    alice, bob = roles.alice, roles.bob
    base = wire.Transaction(blknum1=coin.blknum, newowner1=bob.address, denom1=100)
    signed = wire.sign(base, alice.key, 0)
    raw = {
        "signed_by_someone_else": _signed(base, bob.key),
        "outputs_exceed_inputs": _signed(replace(base, denom1=101), alice.key),
        "outputs_below_inputs": _signed(replace(base, denom1=99), alice.key),
        "zero_denomination_output": _signed(replace(base, denom1=100, newowner2=bob.address), alice.key),
        "pays_the_zero_address": _signed(replace(base, denom1=90, denom2=10), alice.key),
        "deposit_shaped": _signed(wire.Transaction(newowner1=bob.address, denom1=100)),
        "unknown_input": _signed(replace(base, blknum1=999), alice.key),
        "same_input_twice": _signed(replace(base, blknum2=coin.blknum), alice.key, alice.key),
        "unsigned_input": "0x" + wire.encode(base).hex(),
        "high_s_signature": "0x" + wire.encode(replace(signed, sig1=_high_s(signed.sig1))).hex(),
        "bad_v": "0x" + wire.encode(replace(signed, sig1=signed.sig1[:64] + b"\x01")).hex(),
        "unused_input_not_zero": "0x" + wire.encode(replace(signed, txindex2=3)).hex(),
        "impossible_oindex": _signed(replace(base, oindex1=2), alice.key),
    }[case]
    before = ledger.snapshot()
    with pytest.raises(error, match=reason) as caught:
        ledger.chain.submit(ledger.db, [raw])
    assert 400 <= caught.value.status < 500
    assert ledger.snapshot() == before


def _high_s(sig: bytes) -> bytes:
    s = int.from_bytes(sig[32:64], "big")
    return sig[:32] + (wire.SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])


@pytest.mark.parametrize("raw", ["zz", "0x", "0xc0", "0x" + "ff" * 40, 17, "0x" + "00" * 2000])
def test_submit__malformed_bytes__rejected_as_malformed(ledger: Any, raw: Any) -> None:
    with pytest.raises(Malformed):
        ledger.chain.submit(ledger.db, [raw])


def test_submit_batch__one_bad_tx__rejects_the_whole_batch_with_its_index(ledger: Any, roles: Any, pay: Any) -> None:
    coin = ledger.deposit(roles.alice.address, 100)
    other = ledger.deposit(roles.bob.address, 50)
    good = pay([coin], roles.alice, roles.bob.address, 100)
    bad = pay([other], roles.alice, roles.bob.address, 50)  # alice signs bob's coin
    before = ledger.snapshot()
    with pytest.raises(TxRejected) as caught:
        ledger.chain.submit(ledger.db, [good, bad])
    assert caught.value.index == 1
    assert ledger.snapshot() == before


def test_seal__fee_outputs_off__no_fee_tx_and_fees_recorded(ledger: Any, roles: Any, pay: Any) -> None:
    ledger.chain.fee_outputs = False
    coin = ledger.deposit(roles.alice.address, 100)
    ledger.chain.submit(ledger.db, [pay([coin], roles.alice, roles.carol.address, 90, fee=3)])
    ledger.chain.seal(ledger.db)
    assert [t.kind for t in store.block_txs(ledger.db, 1000)] == ["transfer"]
    assert store.get_block(ledger.db, 1000)["fees"] == "3"


def test_seal__default__fee_tx_in_the_last_leaf_to_the_operator__root_handed_to_sender__proofs_verify(
    ledger: Any, roles: Any, pay: Any
) -> None:
    coins = [ledger.deposit(roles.alice.address, 100), ledger.deposit(roles.bob.address, 100)]
    ledger.chain.submit(ledger.db, [pay([coins[0]], roles.alice, roles.carol.address, 90, fee=3),
                                    pay([coins[1]], roles.bob, roles.carol.address, 95, fee=5)])
    assert ledger.chain.seal(ledger.db) == 1000
    [(blknum, root)] = ledger.roots.submitted
    assert blknum == 1000
    txs = store.block_txs(ledger.db, 1000)
    assert [(t.kind, t.txindex) for t in txs] == [("transfer", 0), ("transfer", 1), ("fee", wire.FEE_TXINDEX)]
    fee_tx = wire.decode(txs[-1].raw)
    assert (fee_tx.newowner1, fee_tx.denom1, fee_tx.is_deposit) == (roles.operator.address, 8, True)
    assert ledger.utxo(Coin(1000, wire.FEE_TXINDEX, 0, 8)).owner == roles.operator.address
    leaves = [t.leaf for t in txs[:2]] + [wire.ZERO_HASH] * (wire.MAX_LEAVES - 3) + [txs[2].leaf]
    assert wire.MerkleTree(leaves).root == root  # the dense tree agrees with the stored sparse one
    for t in txs:
        data = ledger.chain.exit_data(ledger.db, 1000, t.txindex)
        assert data["root"] == "0x" + root.hex()
        assert wire.verify_proof(t.leaf, t.txindex, bytes.fromhex(data["proof"][2:]), root)
    assert ledger.chain.exit_data(ledger.db, 1000, wire.FEE_TXINDEX)["exit_confirm_sig"] == "0x"
    assert ledger.chain.open_block(ledger.db) == (2000, 0)
    assert ledger.chain.seal(ledger.db) is None  # nothing pending: no empty block


def test_submit__block_full__seals_and_continues_in_the_next_block(tmp_path: Any, roles: Any, pay: Any) -> None:
    db = store.open_chain_db(tmp_path / "small.db")
    roots: list[int] = []
    chain = ChildChain(roles.operator.address, lambda _db, blknum, _root: roots.append(blknum), block_size=2)
    coins = []
    for blknum in (1, 2, 3):
        chain.on_deposit(db, roles.alice.address, blknum, 10, eth_block=5)
        coins.append(Coin(blknum, 0, 0, 10))
    accepted = chain.submit(db, [pay([c], roles.alice, roles.bob.address, 10) for c in coins])
    assert [(a.blknum, a.txindex) for a in accepted] == [(1000, 0), (1000, 1), (2000, 0)]
    assert roots == [1000]


def test_submit__batch_across_a_full_block__sees_its_own_spends(tmp_path: Any, roles: Any, pay: Any) -> None:
    # The batch reads its inputs once up front; a seal in the middle must not make them stale.
    db = store.open_chain_db(tmp_path / "small.db")
    chain = ChildChain(roles.operator.address, lambda *_: None, block_size=1)
    chain.on_deposit(db, roles.alice.address, 1, 10, eth_block=5)
    coin = Coin(1, 0, 0, 10)
    with pytest.raises(DoubleSpend) as caught:
        chain.submit(db, [pay([coin], roles.alice, roles.bob.address, 10),
                          pay([coin], roles.alice, roles.carol.address, 10)])
    assert caught.value.index == 1 and store.get_utxo(db, wire.utxo_position(1, 0, 0)).spent_by is None
    accepted = chain.submit(db, [pay([coin], roles.alice, roles.bob.address, 9, fee=1),
                                 pay([Coin(1000, 0, 0, 9)], roles.bob, roles.carol.address, 9)])
    assert [(a.blknum, a.txindex) for a in accepted] == [(1000, 0), (2000, 0)]
    assert store.get_utxo(db, wire.utxo_position(1000, wire.FEE_TXINDEX, 0)).amount == 1  # sealed with its fee


def test_rewind__reorg_removes_deposit__removes_what_spent_it(ledger: Any, roles: Any, pay: Any) -> None:
    kept = ledger.deposit(roles.bob.address, 50, eth_block=10)
    doomed = ledger.deposit(roles.alice.address, 100, eth_block=20)
    ledger.chain.submit(ledger.db, [pay([doomed], roles.alice, roles.bob.address, 100)])
    # bob spends the output he got together with his own deposit; carol spends that in turn
    spend = pay([Coin(1000, 0, 0, 100), kept], roles.bob, roles.carol.address, 150)
    ledger.chain.submit(ledger.db, [spend])
    ledger.chain.submit(ledger.db, [pay([Coin(1000, 1, 0, 150)], roles.carol, roles.dave.address, 150)])
    ledger.chain.rewind(ledger.db, 15)
    assert ledger.utxo(doomed) is None
    assert store.get_tx(ledger.db, 1000, 0) is None and store.get_tx(ledger.db, 1000, 2) is None
    assert ledger.utxo(kept).spent_by is None  # bob's own deposit is spendable again
    assert store.unspent_of(ledger.db, roles.dave.address) == []
    assert ledger.chain.pending_count(ledger.db) == 0


def test_exit_started__output_can_no_longer_be_spent(ledger: Any, roles: Any, pay: Any) -> None:
    coin = ledger.deposit(roles.alice.address, 100)
    ledger.chain.on_exit_started(ledger.db, wire.utxo_position(coin.blknum, 0, 0), roles.alice.address, 100, 30)
    with pytest.raises(DoubleSpend, match="being exited"):
        ledger.chain.submit(ledger.db, [pay([coin], roles.alice, roles.bob.address, 100)])
    ledger.chain.rewind(ledger.db, 30)  # the exit was reorged away
    ledger.chain.submit(ledger.db, [pay([coin], roles.alice, roles.bob.address, 100)])


def _positional(raws: list[bytes | None], fee: bytes | None) -> list[bytes | None]:
    return [*raws, *[None] * (wire.FEE_TXINDEX - len(raws)), fee]


def test_apply_block__replays_a_valid_block_with_its_fee_tx(ledger: Any, tmp_path: Any, roles: Any,
                                                            pay: Any) -> None:
    coin = ledger.deposit(roles.alice.address, 100)
    ledger.chain.submit(ledger.db, [pay([coin], roles.alice, roles.bob.address, 90, fee=10)])
    ledger.chain.seal(ledger.db)
    transfer, fee = (t.raw for t in store.block_txs(ledger.db, 1000))
    replica = store.open_chain_db(tmp_path / "watcher.db")
    watcher_chain = ChildChain(roles.operator.address, lambda *_: None)
    watcher_chain.on_deposit(replica, roles.alice.address, 1, 100, 10)
    watcher_chain.apply_block(replica, 1000, 40, _positional([transfer], fee))
    assert bytes(store.get_block(replica, 1000)["root"]) == ledger.roots.submitted[0][1]
    assert store.get_utxo(replica, wire.utxo_position(1000, wire.FEE_TXINDEX, 0)).amount == 10


@pytest.mark.parametrize(("where", "fee_tx", "error"), [
    ("last leaf", lambda op, other: wire.Transaction(newowner1=op, denom1=11), FeeMismatch),  # overclaim
    ("last leaf", lambda op, other: wire.Transaction(newowner1=op, denom1=9), FeeMismatch),  # underclaim
    ("last leaf", lambda op, other: wire.Transaction(newowner1=other, denom1=10), FeeMismatch),  # not the operator
    ("last leaf", lambda op, other: wire.Transaction(newowner1=op, denom1=5, newowner2=op, denom2=5), FeeMismatch),
    ("index 1", lambda op, other: wire.Transaction(newowner1=op, denom1=10), NoInputs),  # not in the fee leaf
])
def test_apply_block__bad_fee_tx__refuses_the_whole_block(ledger: Any, tmp_path: Any, roles: Any, pay: Any,
                                                          where: str, fee_tx: Any, error: type) -> None:
    coin = ledger.deposit(roles.alice.address, 100)
    transfer = bytes.fromhex(pay([coin], roles.alice, roles.bob.address, 90, fee=10)[2:])
    bad = wire.encode(fee_tx(roles.operator.address, roles.carol.address))
    raws = _positional([transfer], bad) if where == "last leaf" else [transfer, bad]
    watcher_chain = ChildChain(roles.operator.address, lambda *_: None)
    with pytest.raises(error) as caught:
        watcher_chain.apply_block(ledger.db, 1000, 40, raws)
    assert caught.value.index == (wire.FEE_TXINDEX if where == "last leaf" else 1)
    assert store.get_block(ledger.db, 1000) is None and ledger.utxo(coin).spent_by is None


def test_apply_block__double_spend__refuses_the_whole_block(ledger: Any, roles: Any, pay: Any) -> None:
    coin = ledger.deposit(roles.alice.address, 100)
    transfer = bytes.fromhex(pay([coin], roles.alice, roles.bob.address, 90, fee=10)[2:])
    with pytest.raises(DoubleSpend):
        ledger.chain.apply_block(ledger.db, 1000, 40, [transfer, transfer])
    assert store.get_block(ledger.db, 1000) is None


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 60), st.integers(0, 3)),
                min_size=1, max_size=15))
def test_property__value_is_conserved_and_no_output_is_spent_twice(tmp_path_factory: Any, roles: Any,
                                                                 moves: list[tuple[int, int, int, int]]) -> None:
    users = [roles.alice, roles.bob, roles.carol, roles.dave]
    db = store.open_chain_db(tmp_path_factory.mktemp("prop") / "ledger.db")
    chain = ChildChain(roles.operator.address, lambda *_: None, block_size=4, fee_outputs=True)
    for i, user in enumerate(users):
        chain.on_deposit(db, user.address, i + 1, 100, eth_block=1)
    for sender, receiver, amount, fee in moves:
        user = users[sender]
        coins = [Coin.from_api(u.as_json()) for u in store.unspent_of(db, user.address)]
        try:
            tx = build_transfer(sorted(coins, key=lambda c: -c.amount)[:2], user.address, users[receiver].address,
                                amount, fee, user.key)
        except ValueError:
            continue
        chain.submit(db, ["0x" + wire.encode(tx).hex()])
    chain.seal(db)
    unspent = db.execute("SELECT SUM(CAST(amount AS INTEGER)) AS s FROM utxos WHERE spent_by IS NULL").fetchone()["s"]
    assert unspent == 400  # fees live on as the operator's fee outputs
    spenders = db.execute("SELECT spent_by, spent_slot, COUNT(*) AS n FROM utxos WHERE spent_by IS NOT NULL "
                          "GROUP BY spent_by, spent_slot").fetchall()
    assert all(r["n"] == 1 for r in spenders)


def test_submit__collector_paused_during_the_batch_and_restored_after_even_on_rejection(
    ledger: Any, roles: Any, pay: Any, monkeypatch: Any
) -> None:
    seen: list[bool] = []
    check = validation.check_transaction

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return check(*args, **kwargs)

    monkeypatch.setattr(ledger_module, "check_transaction", spy)
    coin = ledger.deposit(roles.alice.address, 100)
    assert gc.isenabled()
    ledger.chain.submit(ledger.db, [pay([coin], roles.alice, roles.bob.address, 100)])
    with pytest.raises(DoubleSpend):
        ledger.chain.submit(ledger.db, [pay([coin], roles.alice, roles.carol.address, 100)])
    assert seen == [False, False] and gc.isenabled()
    gc.disable()
    try:  # a process that runs without the collector keeps it off
        ledger.chain.submit(ledger.db, [pay([ledger.deposit(roles.alice.address, 5)], roles.alice, roles.bob.address, 5)])
        assert not gc.isenabled()
    finally:
        gc.enable()
