"""Hypothesis stateful test of the root chain: random deposits, transfers (fees collected by the
operator's fee transaction), blocks, exits (honest and of spent outputs, the operator's fee outputs
too), challenges, time warps, finalizations and withdrawals against a model of the child chain.

Exits of spent outputs come in two kinds: cheats, which a watcher challenges before anything
matures, and lazy ones, which nobody ever challenges: an output and the transaction spending it
both exit, in either order. The root chain must refuse the second of them, so whatever is
challenged or not, no value is paid twice: total paid out <= total deposited, after every step."""

from __future__ import annotations

import boa
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from plasma_core import wire
from tests.contracts.plasma.world import EXIT_BOND, EXIT_PERIOD, Block, Output, PlasmaWorld, User

HOLDERS = ("alice", "bob", "carol", "dave")
INPUT_HAS_AN_EXIT = "plasma: input has an exit"
SPENT_BY_AN_EXITING_TX = "plasma: output spent by an exiting tx"
ALREADY_EXITED = "plasma: output already exited"
HONEST, CHEAT, LAZY = "honest", "cheat", "lazy"  # kinds of exit; cheats are challenged, lazy ones never


class RootChainMachine(RuleBasedStateMachine):
    users: dict[str, User]
    operator: User

    def __init__(self) -> None:
        super().__init__()
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        self.world = PlasmaWorld.create(self.users, self.operator)
        self.rc = self.world.root_chain
        self.unspent: dict[int, Output] = {}          # spendable on the child chain
        self.spent: dict[int, tuple[Output, Block, int]] = {}  # position -> (output, spending block, slot)
        self.outputs: dict[int, Output] = {}          # every output ever created
        self.inputs_of: dict[int, list[int]] = {}     # output -> inputs of the transaction that created it
        self.pending: dict[int, tuple[Output, str]] = {}      # exit id -> (output, kind of exit)
        self.finalized: set[int] = set()
        self.challenged: set[int] = set()
        self.owed: dict[str, int] = {}
        self.paid_out = 0
        self.deposited = 0
        self.exited_value = 0                         # amounts of finalized exits (bonds apart)

    def teardown(self) -> None:
        self._anchor.__exit__(None, None, None)

    def _credit(self, address: str, amount: int) -> None:
        self.owed[address] = self.owed.get(address, 0) + amount

    def _created(self, out: Output, inputs: list[int]) -> None:
        self.unspent[out.position] = out
        self.outputs[out.position] = out
        self.inputs_of[out.position] = inputs

    def _live(self, position: int) -> bool:
        return position in self.pending or position in self.finalized

    def _refusal(self, position: int) -> str | None:
        """Why the root chain refuses the owner's exit of `position`, in its order of checks; None if it accepts."""
        if self._live(position) or position in self.challenged:
            return ALREADY_EXITED
        if any(self._live(i) for i in self.inputs_of[position]):
            return INPUT_HAS_AN_EXIT
        if position in self.spent:
            spender = self.spent[position][1].blknum * 10**9  # every spend sits at txindex 0
            if self._live(spender) or self._live(spender + 1):
                return SPENT_BY_AN_EXITING_TX
        return None

    def _start_exit(self, out: Output, kind: str) -> None:
        assert self._refusal(out.position) is None
        self.world.start_exit(out)
        self.pending[out.position] = (out, kind)

    def _refused(self, out: Output) -> None:
        reason = self._refusal(out.position)
        assert reason is not None
        with boa.reverts(reason):
            self.world.start_exit(out)

    # -- child chain -------------------------------------------------------------------------------

    @rule(holder=st.sampled_from(HOLDERS), amount=st.integers(min_value=1, max_value=10**6))
    def deposit(self, holder: str, amount: int) -> None:
        out = self.world.deposit(self.users[holder], amount)
        self._created(out, [])
        self.deposited += amount

    @precondition(lambda self: self.unspent)
    @rule(data=st.data())
    def transfer_in_a_new_block(self, data: st.DataObject) -> None:
        positions = data.draw(st.lists(st.sampled_from(sorted(self.unspent)), min_size=1, max_size=2, unique=True))
        inputs = [self.unspent.pop(p) for p in positions]
        total = sum(i.amount for i in inputs)
        fee = data.draw(st.integers(min_value=0, max_value=min(3, total)))
        first = data.draw(st.integers(min_value=0, max_value=total - fee))
        recipients = [self.users[data.draw(st.sampled_from(HOLDERS))].address for _ in range(2)]
        outputs = [(owner, amount) for owner, amount in zip(recipients, (first, total - fee - first), strict=True)
                   if amount]
        # The operator collects the fee as an output of its fee transaction in the last leaf.
        fee_tx = wire.Transaction(newowner1=self.operator.address, denom1=fee) if fee else None
        block = self.world.submit([self.world.transfer(inputs, outputs, fee=fee)], last=fee_tx)
        for slot, spent in enumerate(inputs):
            self.spent[spent.position] = (spent, block, slot)
        for out in self.world.outputs_of(block, 0):
            self._created(out, positions)
        for out in self.world.outputs_of(block, wire.FEE_TXINDEX) if fee else []:
            self._created(out, [])

    # -- exit game ---------------------------------------------------------------------------------

    @precondition(lambda self: self.unspent)
    @rule(data=st.data())
    def honest_exit(self, data: st.DataObject) -> None:
        out = self.unspent.pop(data.draw(st.sampled_from(sorted(self.unspent))))
        if self._refusal(out.position) == INPUT_HAS_AN_EXIT:
            # A cheat exits an input of this output's transaction: refused, so the owner challenges first.
            self._refused(out)
            for position in self.inputs_of[out.position]:
                if self._live(position):
                    assert self.pending[position][1] == CHEAT, "only a cheat's exit can block an honest output"
                    self._challenge(position, out.owner)
        self._start_exit(out, HONEST)

    @precondition(lambda self: any(p not in self.pending and p not in self.finalized for p in self.spent))
    @rule(data=st.data())
    def exit_of_a_spent_output(self, data: st.DataObject) -> None:
        candidates = sorted(p for p in self.spent if p not in self.pending and p not in self.finalized
                            and self.rc.exits(p)[3] == 0)
        if not candidates:
            return
        out = self.spent[data.draw(st.sampled_from(candidates))][0]
        if self._refusal(out.position) is not None:
            self._refused(out)
            return
        self._start_exit(out, CHEAT)

    def _spend_value(self, block: Block) -> list[Output]:
        """What a spend made: its outputs and the fee output of its block (each block holds one spend)."""
        fee = self.world.outputs_of(block, wire.FEE_TXINDEX) if block.last is not None else []
        return self.world.outputs_of(block, 0) + fee

    def _lazy_candidates(self) -> list[int]:
        # A spent output with no exit yet, whose spend's value is all still unspent (so no deeper spend).
        return sorted(p for p, (_, block, _) in self.spent.items()
                      if p not in self.challenged and self._refusal(p) is None
                      and all(o.position in self.unspent for o in self._spend_value(block)))

    @precondition(lambda self: self.spent)
    @rule(data=st.data(), first=st.sampled_from(("owner", "spender")))
    def exits_of_a_spent_output_and_its_spend_never_challenged(self, data: st.DataObject, first: str) -> None:
        candidates = self._lazy_candidates()
        if not candidates:
            return
        spent, block, _ = self.spent[data.draw(st.sampled_from(candidates))]
        outputs = self.world.outputs_of(block, 0)
        if first == "owner" or not outputs:
            self._start_exit(spent, LAZY)
            for out in outputs:
                self._refused(out)
            # The spend's value left with its input's exit: nobody spends or exits it. The root chain
            # refuses exits of the spend's outputs; the fee output names no inputs, so it cannot refuse
            # that one, and the operator leaves it (docs/plasma.md, "One value exits once").
            for out in self._spend_value(block):
                self.unspent.pop(out.position)
            return
        spenders = outputs[data.draw(st.integers(min_value=0, max_value=len(outputs) - 1))]
        if self._refusal(spenders.position) is not None:
            self._refused(spenders)  # another input of the spend has a cheat's exit
            return
        self.unspent.pop(spenders.position)
        self._start_exit(spenders, HONEST)
        self._refused(spent)

    @precondition(lambda self: any(self._refusal(p) in (INPUT_HAS_AN_EXIT, SPENT_BY_AN_EXITING_TX)
                                   for p in self.outputs))
    @rule(data=st.data())
    def exit_that_would_pay_a_value_twice_is_refused(self, data: st.DataObject) -> None:
        """Also long after the other exit finalized."""
        blocked = sorted(p for p in self.outputs if self._refusal(p) in (INPUT_HAS_AN_EXIT, SPENT_BY_AN_EXITING_TX))
        self._refused(self.outputs[data.draw(st.sampled_from(blocked))])

    def _challenge(self, position: int, challenger: str | None = None) -> None:
        out, block, slot = self.spent[position]
        challenger = challenger or self.users["challenger"].address
        self.world.challenge(out, block, 0, slot, challenger)
        del self.pending[position]
        self.challenged.add(position)
        self._credit(challenger, EXIT_BOND)

    @precondition(lambda self: any(kind == CHEAT for _, kind in self.pending.values()))
    @rule(data=st.data())
    def challenge(self, data: st.DataObject) -> None:
        self._challenge(data.draw(st.sampled_from(sorted(p for p, (_, k) in self.pending.items() if k == CHEAT))))

    @precondition(lambda self: any(kind == HONEST for _, kind in self.pending.values()))
    @rule(data=st.data())
    def challenge_of_an_honest_exit_fails(self, data: st.DataObject) -> None:
        position = data.draw(st.sampled_from(sorted(p for p, (_, k) in self.pending.items() if k == HONEST)))
        out = self.pending[position][0]
        if not self.world.blocks:
            return
        block = self.world.blocks[max(self.world.blocks)]
        with boa.reverts():
            self.rc.challengeExit(*self.world.challenge_args(out, block, 0, 0), sender=self.users["challenger"].address)

    @rule(seconds=st.integers(min_value=1, max_value=3 * EXIT_PERIOD))
    def warp(self, seconds: int) -> None:
        self.world.warp(seconds)

    @rule(max_exits=st.integers(min_value=0, max_value=6))
    def finalize(self, max_exits: int) -> None:
        # A watcher challenges every cheat's exit within its period; lazy exits stay.
        for position in [p for p, (_, kind) in self.pending.items() if kind == CHEAT]:
            self._challenge(position)
        now = boa.env.evm.patch.timestamp
        # Priority order, stopping at the first exit not yet exitable.
        due: list[int] = []
        for position in sorted(self.pending)[:max_exits]:
            if self.rc.exits(position)[2] > now:
                break
            due.append(position)
        assert self.rc.finalizeExits(max_exits) == len(due)
        for position in due:
            out, _ = self.pending.pop(position)
            assert position not in self.finalized, "an output was paid twice"
            self.finalized.add(position)
            self.exited_value += out.amount
            self._credit(out.owner, out.amount + EXIT_BOND)

    @rule(holder=st.sampled_from((*HOLDERS, "challenger", "operator")))
    def withdraw(self, holder: str) -> None:
        address = (self.operator if holder == "operator" else self.users[holder]).address
        if not self.owed.get(address):
            with boa.reverts("plasma: nothing to withdraw"):
                self.rc.withdraw(sender=address)
            return
        before = boa.env.get_balance(address)
        self.rc.withdraw(sender=address)
        assert boa.env.get_balance(address) == before + self.owed[address]
        self.paid_out += self.owed.pop(address)

    # -- invariants --------------------------------------------------------------------------------

    @invariant()
    def balance_covers_exactly_what_is_owed(self) -> None:
        ledger = sum(self.owed.values())
        assert all(self.rc.balances(a) == v for a, v in self.owed.items())
        owed = ledger + len(self.pending) * EXIT_BOND + self.rc.operatorBond() + self.rc.depositPool()
        assert self.world.balance_of_contract() == owed

    @invariant()
    def paid_out_never_exceeds_deposits_and_every_exit_is_paid_in_full(self) -> None:
        # Cheats' exits are challenged before anything matures; every other exit will be paid.
        to_pay = sum(out.amount for out, kind in self.pending.values() if kind != CHEAT)
        assert self.exited_value + to_pay <= self.deposited
        # Full payouts (the pool cap never cut one): the pool fell by exactly what was paid.
        assert self.rc.depositPool() == self.deposited - self.exited_value

    @invariant()
    def value_is_conserved_along_spends_and_exits(self) -> None:
        # Sharper than the total: a double payment shows even while other deposits cover it.
        unspent = sum(out.amount for out in self.unspent.values())
        to_pay = sum(out.amount for out, kind in self.pending.values() if kind != CHEAT)
        assert self.exited_value + to_pay + unspent <= self.deposited

    @invariant()
    def heap_size_and_head_match_the_pending_exits(self) -> None:
        assert self.rc.exitQueueSize() == len(self.pending)
        if self.pending:
            assert self.rc.getNextExit()[0] == min(self.pending)

    @invariant()
    def challenged_exits_left_the_queue_for_good(self) -> None:
        # Lazy deletion: a challenged exit's key may still sit in the heap, but no view shows it
        # pending, and finalizeExits dropping it later changes nothing about it.
        for position in self.challenged:
            assert self.rc.exits(position)[2:] == (0, 3)
            assert position not in self.pending

    @invariant()
    def finalized_exits_were_paid_in_full_once(self) -> None:
        for position in self.finalized:
            assert self.rc.exits(position)[3] == 2


@pytest.fixture
def machine_actors(plasma_users: dict[str, User], plasma_operator_user: User) -> None:
    RootChainMachine.users = plasma_users
    RootChainMachine.operator = plasma_operator_user


def test_root_chain_state_machine(isolated: None, machine_actors: None) -> None:
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(RootChainMachine)

