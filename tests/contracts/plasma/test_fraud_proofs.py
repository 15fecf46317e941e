"""RootChain: proveInvalidBlock pays the operator bond to the prover and freezes the chain."""

from __future__ import annotations

from typing import Any

import boa
import pytest

from plasma_core import wire
from tests.contracts.plasma.world import EXIT_BOND, EXIT_PERIOD, OPERATOR_BOND, Block, PlasmaWorld

NONEXISTENT, DOUBLE_SPEND, OVERSPEND = 1, 2, 3


def _prove(world: PlasmaWorld, block: Block, txindex: int, kind: int, slot: int = 0, position: int = 0,
           evidence: list[tuple[bytes, bytes]] = ()) -> Any:  # type: ignore[assignment]
    tx = block.txs[txindex]
    return world.root_chain.proveInvalidBlock(
        block.blknum, txindex, wire.encode(tx), block.tree.proof(txindex), kind, slot, position,
        [e[0] for e in evidence], [e[1] for e in evidence], sender=world.users["challenger"].address,
    )


def _entry(block: Block, txindex: int) -> tuple[bytes, bytes]:
    return wire.encode(block.txs[txindex]), block.tree.proof(txindex)


def _assert_slashed_and_frozen(world: PlasmaWorld, block: Block, kind: int) -> None:
    (event,) = [log for log in world.root_chain.get_logs() if type(log).__name__ == "InvalidBlockProven"]
    prover = world.users["challenger"].address
    assert (event.blknum, event.prover, event.kind, event.bond) == (block.blknum, prover, kind, OPERATOR_BOND)
    assert world.root_chain.frozen()
    assert world.root_chain.operatorBond() == 0
    assert world.root_chain.balances(prover) == OPERATOR_BOND


def test_fraud__spend_of_an_output_from_a_later_block__slashes_and_freezes(world: PlasmaWorld) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    fake = wire.sign(wire.Transaction(blknum1=5000, newowner1=bob.address, denom1=10), alice.key, 0)
    block = world.submit([fake])
    _prove(world, block, 0, NONEXISTENT)
    _assert_slashed_and_frozen(world, block, NONEXISTENT)


def test_fraud__spend_of_a_missing_deposit__slashes(world: PlasmaWorld) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    world.submit([])
    fake = wire.sign(wire.Transaction(blknum1=1005, newowner1=bob.address, denom1=10), alice.key, 0)
    block = world.submit([fake])
    _prove(world, block, 0, NONEXISTENT)
    _assert_slashed_and_frozen(world, block, NONEXISTENT)


def test_fraud__spend_of_an_empty_leaf__slashes_with_the_zero_leaf_proof(world: PlasmaWorld) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    first = world.submit([world.transfer([world.deposit(alice, 10)], [(bob.address, 10)])])
    fake = wire.sign(wire.Transaction(blknum1=1000, txindex1=7, newowner1=bob.address, denom1=10), alice.key, 0)
    block = world.submit([fake])
    with boa.reverts("plasma: evidence not in block"):
        _prove(world, block, 0, NONEXISTENT, evidence=[_entry(first, 0)])
    _prove(world, block, 0, NONEXISTENT, evidence=[(b"", first.tree.proof(7))])
    _assert_slashed_and_frozen(world, block, NONEXISTENT)


def test_fraud__spend_of_an_unused_output__slashes(world: PlasmaWorld) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    first = world.submit([world.transfer([world.deposit(alice, 10)], [(bob.address, 10)])])
    fake = wire.sign(wire.Transaction(blknum1=1000, oindex1=1, newowner1=bob.address, denom1=10), alice.key, 0)
    block = world.submit([fake])
    _prove(world, block, 0, NONEXISTENT, evidence=[_entry(first, 0)])
    _assert_slashed_and_frozen(world, block, NONEXISTENT)


def test_fraud__existing_input__is_not_fraud(world: PlasmaWorld) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    first = world.submit([world.transfer([world.deposit(alice, 10)], [(bob.address, 10)])])
    second = world.submit([world.transfer(world.outputs_of(first, 0), [(alice.address, 10)])])
    with boa.reverts("plasma: input exists"):
        _prove(world, second, 0, NONEXISTENT, evidence=[_entry(first, 0)])
    with boa.reverts("plasma: input exists"):
        _prove(world, first, 0, NONEXISTENT)
    assert not world.root_chain.frozen()


def test_fraud__double_spend_across_blocks__later_spend_slashes(world: PlasmaWorld) -> None:
    alice, bob, carol = world.users["alice"], world.users["bob"], world.users["carol"]
    deposit = world.deposit(alice, 10)
    first = world.submit([world.transfer([deposit], [(bob.address, 10)])])
    second = world.submit([world.transfer([deposit], [(carol.address, 10)])])
    earlier = wire.utxo_position(first.blknum, 0, 0)
    with boa.reverts("plasma: evidence must be the earlier spend"):
        _prove(world, first, 0, DOUBLE_SPEND, position=wire.utxo_position(second.blknum, 0, 0),
               evidence=[_entry(second, 0)])
    _prove(world, second, 0, DOUBLE_SPEND, position=earlier, evidence=[_entry(first, 0)])
    _assert_slashed_and_frozen(world, second, DOUBLE_SPEND)


def test_fraud__double_spend_inside_one_block_and_one_transaction__slashes(world: PlasmaWorld) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    deposit = world.deposit(alice, 10)
    twice = world.transfer([deposit, deposit], [(bob.address, 20)])
    block = world.submit([world.transfer([deposit], [(bob.address, 10)]), twice])
    with boa.env.anchor():
        _prove(world, block, 1, DOUBLE_SPEND, slot=1, position=wire.utxo_position(block.blknum, 1, 0))
        _assert_slashed_and_frozen(world, block, DOUBLE_SPEND)
    _prove(world, block, 1, DOUBLE_SPEND, position=wire.utxo_position(block.blknum, 0, 0),
           evidence=[_entry(block, 0)])
    _assert_slashed_and_frozen(world, block, DOUBLE_SPEND)


def test_fraud__different_outputs_spent__is_not_a_double_spend(world: PlasmaWorld) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    d1, d2 = world.deposit(alice, 10), world.deposit(alice, 10)
    block = world.submit([world.transfer([d1], [(bob.address, 10)]), world.transfer([d2], [(bob.address, 10)])])
    with boa.reverts("plasma: not a double spend"):
        _prove(world, block, 1, DOUBLE_SPEND, position=wire.utxo_position(block.blknum, 0, 0),
               evidence=[_entry(block, 0)])
    with boa.reverts("plasma: evidence is the same input"):
        _prove(world, block, 1, DOUBLE_SPEND, position=wire.utxo_position(block.blknum, 1, 0))


@pytest.mark.parametrize("via_operator_block", [False, True])
def test_fraud__outputs_plus_fee_exceed_inputs__slashes(world: PlasmaWorld, via_operator_block: bool) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    deposit = world.deposit(alice, 10)
    evidence: list[tuple[bytes, bytes]] = [(b"", b"")]
    spent = deposit
    if via_operator_block:
        first = world.submit([world.transfer([deposit], [(alice.address, 10)])])
        spent, evidence = world.outputs_of(first, 0)[0], [_entry(first, 0)]
    block = world.submit([world.transfer([spent], [(bob.address, 9)], fee=2)])
    _prove(world, block, 0, OVERSPEND, evidence=evidence)
    _assert_slashed_and_frozen(world, block, OVERSPEND)


def test_fraud__huge_amounts_that_would_overflow_are_still_provable(world: PlasmaWorld) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    deposit = world.deposit(alice, 10)
    fake = world.transfer([deposit], [(bob.address, 2**256 - 1), (alice.address, 2**256 - 1)])
    block = world.submit([fake])
    _prove(world, block, 0, OVERSPEND, evidence=[(b"", b"")])
    _assert_slashed_and_frozen(world, block, OVERSPEND)


def test_fraud__balanced_transaction__is_not_an_overspend(world: PlasmaWorld) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    d1, d2 = world.deposit(alice, 10), world.deposit(bob, 5)
    block = world.submit([world.transfer([d1, d2], [(bob.address, 12)], fee=3)])
    with boa.reverts("plasma: outputs do not exceed inputs"):
        _prove(world, block, 0, OVERSPEND, evidence=[(b"", b""), (b"", b"")])
    with boa.reverts("plasma: one evidence entry per used input"):
        _prove(world, block, 0, OVERSPEND, evidence=[(b"", b"")])


def test_fraud__unknown_kind_and_transaction_outside_the_block_fail(world: PlasmaWorld) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    block = world.submit([world.transfer([world.deposit(alice, 10)], [(bob.address, 10)])])
    with boa.reverts("plasma: unknown fraud kind"):
        _prove(world, block, 0, 9)
    with boa.reverts("plasma: transaction not in block"):
        world.root_chain.proveInvalidBlock(block.blknum, 1, wire.encode(block.txs[0]), block.tree.proof(0),
                                           NONEXISTENT, 0, 0, [], [])


def test_fraud__frozen_chain_refuses_blocks_deposits_and_second_proof_but_exits_still_work(
    world: PlasmaWorld,
) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    deposit = world.deposit(alice, 10)
    honest = world.submit([world.transfer([deposit], [(bob.address, 10)])])
    fake = wire.sign(wire.Transaction(blknum1=9000, newowner1=alice.address, denom1=99), alice.key, 0)
    bad = world.submit([fake])
    _prove(world, bad, 0, NONEXISTENT)
    with boa.reverts("plasma: chain frozen"):
        world.root_chain.submitBlock(b"\x01" * 32, sender=world.operator.address)
    with boa.reverts("plasma: chain frozen"):
        world.root_chain.deposit(value=1, sender=alice.address)
    with boa.reverts("plasma: chain frozen"):
        _prove(world, bad, 0, NONEXISTENT)
    world.start_exit(world.outputs_of(honest, 0)[0])
    world.warp(3 * EXIT_PERIOD)
    assert world.root_chain.finalizeExits(5) == 1
    assert world.root_chain.balances(bob.address) == 10 + EXIT_BOND


@pytest.mark.parametrize("kind", [NONEXISTENT, DOUBLE_SPEND])
@pytest.mark.parametrize("slot", [2, 1])  # out of range; unused by the transaction
def test_fraud__slot_out_of_range_or_unused__is_refused_for_input_kinds(world: PlasmaWorld, kind: int,
                                                                         slot: int) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    block = world.submit([world.transfer([world.deposit(alice, 10)], [(bob.address, 10)])])
    with boa.reverts("plasma: no used input at slot"):
        _prove(world, block, 0, kind, slot=slot)
    assert not world.root_chain.frozen()
