"""Stateful: ANKR locked on Ethereum == native ANKR outside the home bridge + in flight, at every step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boa
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, multiple, rule

from token_bridge.transfer import Transfer

from .conftest import ANKR, HOLD, Bridges, key_of, make_bridges

amounts = st.integers(min_value=1, max_value=150_000).map(lambda whole: whole * ANKR)
DEPLOYMENTS: list[Path] = []  # the test's manifest folder, for the machine


class SupplyInvariant(RuleBasedStateMachine):
    """Users lock ANKR and bridge native coin back in random order, the relayer executes in
    random order, large transfers are held then released or cancelled, time passes.

    Users start with no native coin: everything they bridge out came through the bridge,
    as on the real Ankr chain where the home bridge holds the whole supply."""

    pending = Bundle("pending")
    held = Bundle("held")

    def __init__(self) -> None:
        super().__init__()
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        self.in_flight = 0  # initiated, not paid: pending, held, or cancelled (frozen on the source)

    def teardown(self) -> None:
        self._anchor.__exit__(None, None, None)

    @initialize()
    def deploy(self) -> None:
        self.b: Bridges = make_bridges(DEPLOYMENTS[0])
        self.users = [boa.env.generate_address(f"user{i}") for i in range(3)]
        for user in self.users:
            with boa.env.prank(self.b.user):
                self.b.token.transfer(user, 2_000_000 * ANKR)

    @rule(target=pending, user=st.integers(0, 2), amount=amounts)
    def lock_on_ethereum(self, user: int, amount: int) -> Transfer:
        sender = self.users[user]
        with boa.env.prank(sender):
            self.b.token.approve(self.b.foreign.address, amount)
            self.b.foreign.relayTokens(sender, amount)
        self.in_flight += amount
        return self.b.transfer_to(self.b.home, sender, amount)

    @rule(target=pending, user=st.integers(0, 2), percent=st.integers(1, 100))
    def bridge_out_from_ankr(self, user: int, percent: int) -> Any:
        sender = self.users[user]
        amount = boa.env.get_balance(sender) * percent // 100
        if amount < ANKR:
            return multiple()
        with boa.env.prank(sender):
            self.b.home.relayNative(sender, value=amount)
        self.in_flight += amount
        return self.b.transfer_to(self.b.foreign, sender, amount)

    @rule(target=held, transfer=consumes(pending))
    def relay(self, transfer: Transfer) -> Any:
        self.b.execute(self._paying_bridge(transfer), transfer)
        if transfer.amount >= HOLD[0]:
            return multiple(transfer)
        self.in_flight -= transfer.amount
        return multiple()

    @rule(transfer=consumes(held))
    def release_after_hold(self, transfer: Transfer) -> None:
        boa.env.time_travel(seconds=HOLD[1])
        self._paying_bridge(transfer).releaseHeld(key_of(transfer))
        self.in_flight -= transfer.amount

    @rule(transfer=consumes(held))
    def guardian_cancels(self, transfer: Transfer) -> None:
        bridge = self._paying_bridge(transfer)
        if bridge.heldTransfers(key_of(transfer))[2] <= boa.env.evm.patch.timestamp:
            bridge.releaseHeld(key_of(transfer))  # too late to cancel: it pays
            self.in_flight -= transfer.amount
            return
        with boa.env.prank(self.b.guardian):
            bridge.cancelHeld(key_of(transfer))

    @rule(seconds=st.integers(1, 2 * 86_400))
    def time_passes(self, seconds: int) -> None:
        boa.env.time_travel(seconds=seconds)

    @invariant()
    def locked_equals_native_outside_plus_in_flight(self) -> None:
        if hasattr(self, "b"):
            locked = self.b.token.balanceOf(self.b.foreign.address)
            assert locked == self.b.native_outside() + self.in_flight

    @invariant()
    def native_outside_is_what_users_hold(self) -> None:
        if hasattr(self, "b"):
            assert self.b.native_outside() == sum(boa.env.get_balance(u) for u in self.users)

    def _paying_bridge(self, transfer: Transfer) -> Any:
        return self.b.home if transfer.src_bridge == str(self.b.foreign.address) else self.b.foreign


def test_supply_invariant(tmp_path: Path) -> None:
    DEPLOYMENTS[:] = [tmp_path]
    SupplyInvariant.TestCase().runTest()


