"""Hypothesis stateful test of the root chain: random deposits, transfers (fees collected by the
operator's fee transaction), blocks, exits (honest and of spent outputs, the operator's fee outputs
too), challenges, time warps, finalizations and withdrawals against a model of the child chain."""

from __future__ import annotations

import boa
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from plasma_operator import wire
from tests.contracts.plasma.world import EXIT_BOND, EXIT_PERIOD, Block, Output, PlasmaWorld, User

HOLDERS = ("alice", "bob", "carol", "dave")


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
        self.pending: dict[int, tuple[Output, bool]] = {}     # exit id -> (output, honest)
        self.finalized: set[int] = set()
        self.owed: dict[str, int] = {}
        self.paid_out = 0

    def teardown(self) -> None:
        self._anchor.__exit__(None, None, None)

    def _credit(self, address: str, amount: int) -> None:
        self.owed[address] = self.owed.get(address, 0) + amount

    # -- child chain -------------------------------------------------------------------------------

    @rule(holder=st.sampled_from(HOLDERS), amount=st.integers(min_value=1, max_value=10**6))
    def deposit(self, holder: str, amount: int) -> None:
        out = self.world.deposit(self.users[holder], amount)
        self.unspent[out.position] = out

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
        for out in self.world.outputs_of(block, 0) + (self.world.outputs_of(block, wire.FEE_TXINDEX) if fee else []):
            self.unspent[out.position] = out

    # -- exit game ---------------------------------------------------------------------------------

    @precondition(lambda self: self.unspent)
    @rule(data=st.data())
    def honest_exit(self, data: st.DataObject) -> None:
        out = self.unspent.pop(data.draw(st.sampled_from(sorted(self.unspent))))
        self.world.start_exit(out)
        self.pending[out.position] = (out, True)

    @precondition(lambda self: any(p not in self.pending and p not in self.finalized for p in self.spent))
    @rule(data=st.data())
    def exit_of_a_spent_output(self, data: st.DataObject) -> None:
        candidates = sorted(p for p in self.spent if p not in self.pending and p not in self.finalized
                            and self.rc.exits(p)[3] == 0)
        if not candidates:
            return
        out = self.spent[data.draw(st.sampled_from(candidates))][0]
        self.world.start_exit(out)
        self.pending[out.position] = (out, False)

    def _challenge(self, position: int) -> None:
        out, block, slot = self.spent[position]
        challenger = self.users["challenger"].address
        self.world.challenge(out, block, 0, slot, challenger)
        del self.pending[position]
        self._credit(challenger, EXIT_BOND)

    @precondition(lambda self: any(not honest for _, honest in self.pending.values()))
    @rule(data=st.data())
    def challenge(self, data: st.DataObject) -> None:
        self._challenge(data.draw(st.sampled_from(sorted(p for p, (_, h) in self.pending.items() if not h))))

    @precondition(lambda self: any(honest for _, honest in self.pending.values()))
    @rule(data=st.data())
    def challenge_of_an_honest_exit_fails(self, data: st.DataObject) -> None:
        position = data.draw(st.sampled_from(sorted(p for p, (_, h) in self.pending.items() if h)))
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
        # A watcher challenges every exit of a spent output within its period.
        for position in [p for p, (_, honest) in self.pending.items() if not honest]:
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
    def heap_size_and_head_match_the_pending_exits(self) -> None:
        assert self.rc.exitQueueSize() == len(self.pending)
        if self.pending:
            assert self.rc.getNextExit()[0] == min(self.pending)

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

