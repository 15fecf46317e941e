"""RootChain: the operator's fee transaction (no inputs, txindex 65535, first output to the
operator, second unused) is not fraud and only the operator exits it; any other input-less
transaction stays fraud (kind 3). Also: the deployed code fits EIP-170."""

from __future__ import annotations

import boa
import pytest

from plasma_core import wire
from tests.contracts.plasma.world import EXIT_BOND, EXIT_PERIOD, OPERATOR_BOND, Block, PlasmaWorld

OVERSPEND = 3
EIP_170_LIMIT = 24_576
FEE = 7


def _fee_block(world: PlasmaWorld, fee_tx: wire.Transaction, at_last_leaf: bool = True) -> Block:
    alice, bob = world.users["alice"], world.users["bob"]
    transfer = world.transfer([world.deposit(alice, 100)], [(bob.address, 100 - FEE)], fee=FEE)
    if at_last_leaf:
        return world.submit([transfer], last=fee_tx)
    return world.submit([transfer, fee_tx])


def _prove_overspend(world: PlasmaWorld, block: Block, txindex: int, tx: wire.Transaction) -> None:
    world.root_chain.proveInvalidBlock(block.blknum, txindex, wire.encode(tx), block.tree.proof(txindex), OVERSPEND,
                                       0, 0, [], [], sender=world.users["challenger"].address)


def _start_exit(world: PlasmaWorld, block: Block, sender: str, confirm: bytes = b"") -> None:
    assert block.last is not None
    world.root_chain.startExit(block.blknum, wire.FEE_TXINDEX, 0, wire.encode(block.last),
                               block.tree.proof(wire.FEE_TXINDEX), confirm, value=EXIT_BOND, sender=sender)


def test_code_size__deployed_root_chain__fits_eip_170(world: PlasmaWorld) -> None:
    assert len(boa.env.get_code(world.root_chain.address)) <= EIP_170_LIMIT


def test_fee_tx__last_leaf_operator_owned__is_not_fraud(world: PlasmaWorld) -> None:
    fee_tx = wire.Transaction(newowner1=world.operator.address, denom1=FEE)
    block = _fee_block(world, fee_tx)
    with boa.reverts("plasma: outputs do not exceed inputs"):
        _prove_overspend(world, block, wire.FEE_TXINDEX, fee_tx)
    assert not world.root_chain.frozen()


@pytest.mark.parametrize("case", ["not in the last leaf", "owned by a user", "second output used"])
def test_fee_tx__any_other_input_less_tx__is_fraud(world: PlasmaWorld, case: str) -> None:
    operator, bob = world.operator.address, world.users["bob"].address
    fee_tx = {
        "not in the last leaf": wire.Transaction(newowner1=operator, denom1=FEE),
        "owned by a user": wire.Transaction(newowner1=bob, denom1=FEE),
        "second output used": wire.Transaction(newowner1=operator, denom1=FEE, newowner2=bob, denom2=1),
    }[case]
    at_last_leaf = case != "not in the last leaf"
    block = _fee_block(world, fee_tx, at_last_leaf)
    _prove_overspend(world, block, wire.FEE_TXINDEX if at_last_leaf else 1, fee_tx)
    assert world.root_chain.frozen()
    assert world.root_chain.balances(world.users["challenger"].address) == OPERATOR_BOND


def test_fee_exit__operator__exits_finalizes_and_withdraws_its_fees(world: PlasmaWorld) -> None:
    operator = world.operator.address
    block = _fee_block(world, wire.Transaction(newowner1=operator, denom1=FEE))
    _start_exit(world, block, operator)
    exit_id = wire.exit_id(block.blknum, wire.FEE_TXINDEX, 0)
    assert world.root_chain.exits(exit_id)[:2] == (operator, FEE)
    world.warp(2 * EXIT_PERIOD + 1)
    assert world.root_chain.finalizeExits(10) == 1
    assert world.root_chain.balances(operator) == FEE + EXIT_BOND
    before = boa.env.get_balance(operator)
    world.root_chain.withdraw(sender=operator)
    assert boa.env.get_balance(operator) - before == FEE + EXIT_BOND


def test_fee_exit__with_a_confirm_signature__is_refused(world: PlasmaWorld) -> None:
    block = _fee_block(world, wire.Transaction(newowner1=world.operator.address, denom1=FEE))
    with boa.reverts("plasma: wrong number of confirm signatures"):
        _start_exit(world, block, world.operator.address, confirm=b"\x01" * 65)


def test_fee_exit__non_operator__is_refused(world: PlasmaWorld) -> None:
    block = _fee_block(world, wire.Transaction(newowner1=world.operator.address, denom1=FEE))
    with boa.reverts("plasma: caller does not own the output"):
        _start_exit(world, block, world.users["bob"].address)


def test_fee_exit__input_less_tx_of_a_user_in_the_last_leaf__is_refused(world: PlasmaWorld) -> None:
    bob = world.users["bob"].address
    block = _fee_block(world, wire.Transaction(newowner1=bob, denom1=FEE))
    with boa.reverts("plasma: transaction spends nothing"):
        _start_exit(world, block, bob)


def test_fee_output__spent_by_the_operator_later__is_an_existing_input(world: PlasmaWorld) -> None:
    operator, bob = world.operator.address, world.users["bob"]
    fee_tx = wire.Transaction(newowner1=operator, denom1=FEE)
    block = _fee_block(world, fee_tx)
    spend = wire.sign(wire.Transaction(blknum1=block.blknum, txindex1=wire.FEE_TXINDEX, newowner1=bob.address,
                                       denom1=FEE), world.operator.key, 0)
    later = world.submit([spend])
    evidence = [wire.encode(fee_tx)], [block.tree.proof(wire.FEE_TXINDEX)]
    with boa.reverts("plasma: input exists"):
        world.root_chain.proveInvalidBlock(later.blknum, 0, wire.encode(spend), later.tree.proof(0), 1, 0, 0,
                                           *evidence, sender=bob.address)
    with boa.reverts("plasma: outputs do not exceed inputs"):
        world.root_chain.proveInvalidBlock(later.blknum, 0, wire.encode(spend), later.tree.proof(0), OVERSPEND, 0, 0,
                                           *evidence, sender=bob.address)
