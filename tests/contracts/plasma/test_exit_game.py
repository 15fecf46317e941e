"""RootChain: challenges, finalization in priority order, and pull payments."""

from __future__ import annotations

from collections.abc import Callable

import boa
import pytest

from dccn_devtools.contracts import CONTRACTS_DIR
from plasma_core import wire
from tests.contracts.plasma.world import EXIT_BOND, EXIT_PERIOD, Block, Output, PlasmaWorld


def _spent_deposit(world: PlasmaWorld) -> tuple[Output, Block]:
    """Alice deposits 100 and sends it to Bob in block 1000; returns (her deposit, the block)."""
    alice, bob = world.users["alice"], world.users["bob"]
    deposit = world.deposit(alice, 100)
    block = world.submit([world.transfer([deposit], [(bob.address, 100)])])
    return deposit, block


# -- challenges ------------------------------------------------------------------------------------

def test_challenge__spent_output__removes_exit_from_the_middle_and_pays_bond_to_challenger(
    world: PlasmaWorld,
) -> None:
    alice, carol, challenger = world.users["alice"], world.users["carol"], world.users["challenger"].address
    before = world.deposit(carol, 5)
    deposit, block = _spent_deposit(world)
    after = world.deposit(carol, 7)
    for out in (before, deposit, after):
        world.start_exit(out)
    world.challenge(deposit, block, 0, 0, challenger)
    (event,) = [log for log in world.root_chain.get_logs() if type(log).__name__ == "ExitChallenged"]
    assert (event.exitId, event.challenger, event.blknum, event.bond) == (deposit.position, challenger, 1000, EXIT_BOND)
    assert world.root_chain.exitQueueSize() == 2
    assert world.root_chain.exits(deposit.position) == (alice.address, 100, 0, 3)
    assert world.root_chain.balances(challenger) == EXIT_BOND
    world.warp(3 * EXIT_PERIOD)
    assert world.root_chain.finalizeExits(10) == 2
    assert world.root_chain.balances(alice.address) == 0


def test_challenge__exit_that_does_not_exist_fails(world: PlasmaWorld) -> None:
    deposit, block = _spent_deposit(world)
    with boa.reverts("plasma: no such pending exit"):
        world.challenge(deposit, block, 0, 0, world.users["challenger"].address)


def test_challenge__already_challenged_exit_fails(world: PlasmaWorld) -> None:
    deposit, block = _spent_deposit(world)
    world.start_exit(deposit)
    world.challenge(deposit, block, 0, 0, world.users["challenger"].address)
    with boa.reverts("plasma: no such pending exit"):
        world.challenge(deposit, block, 0, 0, world.users["challenger"].address)


@pytest.mark.parametrize(("signature", "reason"), [
    (b"\x00" * 65, "ecdsa: invalid signature"),
    (b"\x13" * 64 + b"\x1b", "ecdsa: invalid signature"),
    (b"\x01" * 64, "plasma: confirm signature must be 65 bytes"),
])
def test_challenge__garbage_or_zero_recovering_signature_fails(world: PlasmaWorld, signature: bytes,
                                                               reason: str) -> None:
    deposit, block = _spent_deposit(world)
    world.start_exit(deposit)
    args = (*world.challenge_args(deposit, block, 0, 0)[:-1], signature)
    with boa.reverts(reason):
        world.root_chain.challengeExit(*args, sender=world.users["challenger"].address)
    assert world.root_chain.exitQueueSize() == 1


def test_challenge__confirm_signature_by_someone_else_fails(world: PlasmaWorld) -> None:
    deposit, block = _spent_deposit(world)
    world.start_exit(deposit)
    args = world.challenge_args(deposit, block, 0, 0, confirm_key=world.users["bob"].key)
    with boa.reverts("plasma: bad confirm signature"):
        world.root_chain.challengeExit(*args, sender=world.users["challenger"].address)


def test_challenge__unrelated_spend_fails(world: PlasmaWorld) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    exiting = world.deposit(alice, 50)
    other = world.deposit(alice, 100)
    block = world.submit([world.transfer([other], [(bob.address, 100)])])
    world.start_exit(exiting)
    with boa.reverts("plasma: transaction does not spend the exiting output"):
        world.challenge(exiting, block, 0, 0, world.users["challenger"].address)
    with boa.reverts("plasma: transaction does not spend the exiting output"):  # the unused slot
        world.challenge(exiting, block, 0, 1, world.users["challenger"].address)


def test_challenge__spend_in_a_block_never_submitted_fails(world: PlasmaWorld) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    deposit = world.deposit(alice, 100)
    spend = world.transfer([deposit], [(bob.address, 100)])
    withheld = Block(1000, [spend], wire.MerkleTree([wire.leaf(spend)]))
    world.start_exit(deposit)
    with boa.reverts("plasma: unknown block"):
        world.challenge(deposit, withheld, 0, 0, world.users["challenger"].address)


def test_challenge__spend_with_a_wrong_proof_fails(world: PlasmaWorld) -> None:
    deposit, block = _spent_deposit(world)
    world.start_exit(deposit)
    args = list(world.challenge_args(deposit, block, 0, 0))
    args[5] = bytes(32) + args[5][32:64][::-1] + args[5][64:]
    with boa.reverts("plasma: transaction not in block"):
        world.root_chain.challengeExit(*args, sender=world.users["challenger"].address)


# -- finalization ----------------------------------------------------------------------------------

def test_finalize__pays_matured_exits_in_priority_order_and_stops_at_an_immature_one(world: PlasmaWorld) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    old = world.deposit(alice, 10)
    world.warp(10 * EXIT_PERIOD)
    young = world.deposit(bob, 20)
    world.start_exit(young)  # exitable at created + 2 periods
    world.start_exit(old)    # older output, exitable at now + 1 period, yet first in priority
    assert world.root_chain.getNextExit()[0] == old.position
    world.warp(EXIT_PERIOD)
    assert world.root_chain.finalizeExits(10) == 1
    (event,) = [log for log in world.root_chain.get_logs() if type(log).__name__ == "ExitFinalized"]
    assert (event.exitId, event.exitor, event.amount) == (old.position, alice.address, 10)
    assert world.root_chain.balances(alice.address) == 10 + EXIT_BOND
    assert world.root_chain.finalizeExits(10) == 0
    world.warp(EXIT_PERIOD)
    assert world.root_chain.finalizeExits(10) == 1
    assert world.root_chain.balances(bob.address) == 20 + EXIT_BOND
    with boa.reverts("plasma: no exits"):
        world.root_chain.getNextExit()


def test_finalize__old_output_is_not_delayed_behind_a_newer_exit_started_earlier(world: PlasmaWorld) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    old = world.deposit(alice, 10)
    world.warp(2 * EXIT_PERIOD)
    new = world.deposit(bob, 10)
    world.start_exit(new)
    world.warp(EXIT_PERIOD // 2)
    world.start_exit(old)
    world.warp(EXIT_PERIOD)
    world.root_chain.finalizeExits(1)
    assert world.root_chain.exits(old.position)[3] == 2
    assert world.root_chain.exits(new.position)[3] == 1


def test_finalize__bounded_by_max_exits_and_keeps_progress(world: PlasmaWorld) -> None:
    outputs = [world.deposit(world.users["alice"], 1 + i) for i in range(5)]
    for out in outputs:
        world.start_exit(out)
    world.warp(3 * EXIT_PERIOD)
    assert world.root_chain.finalizeExits(2) == 2
    assert world.root_chain.exitQueueSize() == 3
    assert world.root_chain.getNextExit()[0] == outputs[2].position
    assert world.root_chain.finalizeExits(0) == 0
    assert world.root_chain.finalizeExits(2**256 - 1) == 3
    assert world.root_chain.balances(world.users["alice"].address) == 15 + 5 * EXIT_BOND
    assert world.root_chain.depositPool() == 0


def _spent_deposits(world: PlasmaWorld, count: int) -> tuple[list[Output], Block]:
    """Alice makes `count` deposits and sends each to Bob in one block; returns (deposits, block)."""
    alice, bob = world.users["alice"], world.users["bob"]
    deposits = [world.deposit(alice, 10 + i) for i in range(count)]
    block = world.submit([world.transfer([d], [(bob.address, d.amount)]) for d in deposits])
    return deposits, block


def test_challenge__is_lazy__the_dead_key_stays_until_finalize_drops_it(world: PlasmaWorld) -> None:
    challenger = world.users["challenger"].address
    (first, second), block = _spent_deposits(world, 2)
    honest = world.deposit(world.users["carol"], 7)
    for out in (first, second, honest):
        world.start_exit(out)
    world.challenge(first, block, 0, 0, challenger)
    world.challenge(second, block, 1, 0, challenger)
    # Both challenged exits' keys still sit at the top of the heap; no view shows them.
    assert world.root_chain.exitQueueSize() == 1
    assert world.root_chain.getNextExit()[0] == honest.position
    world.warp(3 * EXIT_PERIOD)
    # Dropping the two dead keys does not use up maxExits = 1.
    assert world.root_chain.finalizeExits(1) == 1
    assert world.root_chain.exits(honest.position)[3] == 2
    assert [world.root_chain.exits(out.position)[2:] for out in (first, second)] == [(0, 3), (0, 3)]
    with boa.reverts("plasma: no exits"):
        world.root_chain.getNextExit()


def test_finalize__drops_an_immature_dead_key_and_stops_at_the_immature_live_exit(world: PlasmaWorld) -> None:
    (spent,), block = _spent_deposits(world, 1)
    later = world.deposit(world.users["carol"], 7)
    world.start_exit(spent)
    world.start_exit(later)
    world.challenge(spent, block, 0, 0, world.users["challenger"].address)
    assert world.root_chain.finalizeExits(5) == 0
    # The dead key on top is no reason to stop or to count: the live exit simply waits for its time.
    assert world.root_chain.exitQueueSize() == 1
    assert world.root_chain.getNextExit() == (later.position, world.root_chain.exits(later.position)[2])


def test_challenge__a_challenged_output_cannot_exit_again(world: PlasmaWorld) -> None:
    deposit, block = _spent_deposit(world)
    world.start_exit(deposit)
    world.challenge(deposit, block, 0, 0, world.users["challenger"].address)
    world.warp(3 * EXIT_PERIOD)
    world.root_chain.finalizeExits(10)
    with boa.reverts("plasma: output already exited"):
        world.start_exit(deposit)


def test_finalize__bounded_by_gas_left_instead_of_running_out(world: PlasmaWorld) -> None:
    outputs = [world.deposit(world.users[name], 1) for name in ("alice", "bob", "carol", "dave") * 5]
    for out in outputs:
        world.start_exit(out)
    world.warp(3 * EXIT_PERIOD)
    done = world.root_chain.finalizeExits(100, gas=200_000)
    assert 0 < done < 20
    assert world.root_chain.exitQueueSize() == 20 - done


def test_finalize__a_payee_that_reverts_never_blocks_the_queue(world: PlasmaWorld) -> None:
    rejecting = boa.load(str(CONTRACTS_DIR / "testing" / "RejectingExitor.vy"))
    boa.env.set_balance(rejecting.address, 10**18)
    rejecting.deposit(world.root_chain.address, 100)
    rejecting.startExit(world.root_chain.address, 1, EXIT_BOND)
    honest = world.deposit(world.users["bob"], 50)
    world.start_exit(honest)
    world.warp(3 * EXIT_PERIOD)
    assert world.root_chain.finalizeExits(10) == 2
    with boa.reverts():
        rejecting.withdraw(world.root_chain.address)
    assert world.root_chain.balances(rejecting.address) == 100 + EXIT_BOND
    bob = world.users["bob"].address
    before = boa.env.get_balance(bob)
    world.root_chain.withdraw(sender=bob)
    assert boa.env.get_balance(bob) == before + 50 + EXIT_BOND


# -- withdrawals -----------------------------------------------------------------------------------

def test_withdraw__pays_ledger_once_and_refuses_an_empty_balance(world: PlasmaWorld) -> None:
    alice = world.users["alice"].address
    world.start_exit(world.deposit(world.users["alice"], 70))
    world.warp(3 * EXIT_PERIOD)
    world.root_chain.finalizeExits(1)
    before = boa.env.get_balance(alice)
    world.root_chain.withdraw(sender=alice)
    (event,) = [log for log in world.root_chain.get_logs() if type(log).__name__ == "Withdrawal"]
    assert (event.account, event.amount, event.bondAmount) == (alice, 70 + EXIT_BOND, 0)
    assert boa.env.get_balance(alice) == before + 70 + EXIT_BOND
    with boa.reverts("plasma: nothing to withdraw"):
        world.root_chain.withdraw(sender=alice)


def test_token_chain__deposit_exit_and_withdraw_pay_tokens_and_native_bonds(
    make_world: Callable[..., PlasmaWorld],
) -> None:
    world = make_world(with_token=True)
    alice, bob = world.users["alice"], world.users["bob"]
    token, rc = world.token, world.root_chain
    deposit = world.deposit(alice, 1000)
    assert token.balanceOf(rc.address) == 1000
    block = world.submit([world.transfer([deposit], [(bob.address, 900)], fee=100)])
    world.start_exit(deposit)  # Alice cheats: exits her spent deposit
    world.challenge(deposit, block, 0, 0, world.users["challenger"].address)
    world.start_exit(world.outputs_of(block, 0)[0])  # the challenge lifted the refusal of Bob's exit
    assert rc.bondBalances(world.users["challenger"].address) == EXIT_BOND
    world.warp(3 * EXIT_PERIOD)
    assert rc.finalizeExits(5) == 1
    assert (rc.balances(bob.address), rc.bondBalances(bob.address)) == (900, EXIT_BOND)
    tokens, coins = token.balanceOf(bob.address), boa.env.get_balance(bob.address)
    rc.withdraw(sender=bob.address)
    assert token.balanceOf(bob.address) == tokens + 900
    assert boa.env.get_balance(bob.address) == coins + EXIT_BOND
    assert token.balanceOf(rc.address) == 100


# -- one value exits once: an output and a transaction spending it never both have live exits ------

INPUT_HAS_AN_EXIT = "plasma: input has an exit"
SPENT_BY_AN_EXITING_TX = "plasma: output spent by an exiting tx"


def _mature_and_finalize(world: PlasmaWorld) -> None:
    world.warp(3 * EXIT_PERIOD)
    world.root_chain.finalizeExits(10)


def test_start_exit__spend_of_an_output_with_a_pending_exit__is_refused_until_it_is_challenged(
    world: PlasmaWorld,
) -> None:
    deposit, block = _spent_deposit(world)
    (bobs,) = world.outputs_of(block, 0)
    world.start_exit(deposit)  # Alice exits the deposit she spent to Bob
    with boa.reverts(INPUT_HAS_AN_EXIT):
        world.start_exit(bobs)
    assert world.root_chain.exits(bobs.position)[3] == 0
    world.challenge(deposit, block, 0, 0, world.users["bob"].address)
    world.start_exit(bobs)
    assert world.root_chain.exits(bobs.position)[3] == 1


def test_start_exit__output_spent_by_a_tx_with_a_pending_exit__is_refused(world: PlasmaWorld) -> None:
    deposit, block = _spent_deposit(world)
    world.start_exit(world.outputs_of(block, 0)[0])  # Bob exits first
    with boa.reverts(SPENT_BY_AN_EXITING_TX):
        world.start_exit(deposit)
    assert world.root_chain.exits(deposit.position)[3] == 0
    assert world.root_chain.exitQueueSize() == 1


@pytest.mark.parametrize("first", ["owner", "spender"])
def test_start_exit__after_either_exit_finalized__the_other_side_is_refused_forever(
    world: PlasmaWorld, first: str,
) -> None:
    deposit, block = _spent_deposit(world)
    (bobs,) = world.outputs_of(block, 0)
    winner, loser, reason = (deposit, bobs, INPUT_HAS_AN_EXIT) if first == "owner" else \
        (bobs, deposit, SPENT_BY_AN_EXITING_TX)
    world.start_exit(winner)  # nobody challenges
    _mature_and_finalize(world)
    assert world.root_chain.exits(winner.position)[3] == 2
    world.warp(10 * EXIT_PERIOD)
    with boa.reverts(reason):
        world.start_exit(loser)
    _mature_and_finalize(world)
    assert world.root_chain.depositPool() == 0
    assert world.balance_of_contract() == world.root_chain.operatorBond() + world.root_chain.balances(winner.owner)


def test_start_exit__challenged_spender_exit__lifts_the_refusal_of_its_input(world: PlasmaWorld) -> None:
    alice, carol = world.users["alice"], world.users["carol"]
    deposit, block = _spent_deposit(world)
    (bobs,) = world.outputs_of(block, 0)
    world.start_exit(bobs)
    later = world.submit([world.transfer([bobs], [(carol.address, 100)])])  # Bob spent it after all
    world.challenge(bobs, later, 0, 0, world.users["challenger"].address)
    world.start_exit(deposit)  # no longer refused; the challenge game decides again
    assert world.root_chain.exits(deposit.position)[:2] == (alice.address, 100)
    world.challenge(deposit, block, 0, 0, world.users["challenger"].address)
    world.start_exit(world.outputs_of(later, 0)[0])


@pytest.mark.parametrize("exiting_input", [0, 1])
def test_start_exit__two_input_spend__is_refused_by_an_exit_of_either_input(world: PlasmaWorld,
                                                                          exiting_input: int) -> None:
    alice, bob, carol = world.users["alice"], world.users["bob"], world.users["carol"]
    inputs = [world.deposit(alice, 30), world.deposit(carol, 70)]
    block = world.submit([world.transfer(inputs, [(bob.address, 100)])])
    world.start_exit(inputs[exiting_input])
    with boa.reverts(INPUT_HAS_AN_EXIT):
        world.start_exit(world.outputs_of(block, 0)[0])


def test_start_exit__two_input_spend_exiting__refuses_both_inputs(world: PlasmaWorld) -> None:
    alice, bob, carol = world.users["alice"], world.users["bob"], world.users["carol"]
    inputs = [world.deposit(alice, 30), world.deposit(carol, 70)]
    block = world.submit([world.transfer(inputs, [(bob.address, 100)])])
    world.start_exit(world.outputs_of(block, 0)[0])
    for spent in inputs:
        with boa.reverts(SPENT_BY_AN_EXITING_TX):
            world.start_exit(spent)


def test_start_exit__both_outputs_of_a_spend__exit_and_keep_its_input_refused(world: PlasmaWorld) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    deposit = world.deposit(alice, 100)
    block = world.submit([world.transfer([deposit], [(bob.address, 60), (alice.address, 40)])])
    payment, change = world.outputs_of(block, 0)
    world.start_exit(payment)
    world.start_exit(change)
    world.challenge(payment, world.submit([world.transfer([payment], [(alice.address, 60)])]), 0, 0,
                    world.users["challenger"].address)
    with boa.reverts(SPENT_BY_AN_EXITING_TX):  # the change's exit is still live
        world.start_exit(deposit)


@pytest.mark.parametrize("first", ["owner", "spender"])
def test_start_exit__fee_output_and_its_spend__exit_at_most_once(world: PlasmaWorld, first: str) -> None:
    operator, alice, bob = world.operator, world.users["alice"], world.users["bob"]
    fee_tx = wire.Transaction(newowner1=operator.address, denom1=5)
    fees = world.submit([world.transfer([world.deposit(alice, 100)], [(bob.address, 95)], fee=5)], last=fee_tx)
    (fee_output,) = world.outputs_of(fees, wire.FEE_TXINDEX)
    spend = world.submit([world.transfer([fee_output], [(bob.address, 5)])])
    (bobs,) = world.outputs_of(spend, 0)
    if first == "owner":
        world.start_exit(fee_output)
        with boa.reverts(INPUT_HAS_AN_EXIT):
            world.start_exit(bobs)
    else:
        world.start_exit(bobs)
        with boa.reverts(SPENT_BY_AN_EXITING_TX):
            world.start_exit(fee_output)


def test_start_exit__spend_not_signed_by_the_owner__does_not_refuse_the_owner(world: PlasmaWorld) -> None:
    alice, thief = world.users["alice"], world.users["dave"]
    deposit = world.deposit(alice, 100)
    # An invalid block: the thief signs the spend of Alice's deposit and confirms it himself.
    forged = world.transfer([deposit], [(thief.address, 100)], signers=[thief.address])
    block = world.submit([forged])
    leaf = wire.leaf(forged)
    world.root_chain.startExit(block.blknum, 0, 0, wire.encode(forged), block.tree.proof(0),
                               wire.confirm_sign(leaf, block.root, thief.key), value=EXIT_BOND, sender=thief.address)
    world.start_exit(deposit)  # Alice's older output still exits, first in priority
    assert world.root_chain.getNextExit()[0] == deposit.position


def test_start_exit__frozen_chain_with_a_double_spend__still_exits_the_value_once(world: PlasmaWorld) -> None:
    alice, carol = world.users["alice"], world.users["carol"]
    deposit, block = _spent_deposit(world)
    double = world.submit([world.transfer([deposit], [(carol.address, 100)])])
    world.root_chain.proveInvalidBlock(double.blknum, 0, wire.encode(double.txs[0]), double.tree.proof(0), 2, 0,
                                       block.blknum * 10**9, [wire.encode(block.txs[0])], [block.tree.proof(0)],
                                       sender=world.users["challenger"].address)
    assert world.root_chain.frozen()
    world.start_exit(deposit)
    for spend in (block, double):
        with boa.reverts(INPUT_HAS_AN_EXIT):
            world.start_exit(world.outputs_of(spend, 0)[0])
    assert world.root_chain.exits(deposit.position)[:2] == (alice.address, 100)
