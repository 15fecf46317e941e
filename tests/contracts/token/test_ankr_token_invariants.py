"""Stateful property test of the token (titanoboa, in-process EVM): random transfers,
approvals and transferFroms never change the supply, and balances match a model."""

from __future__ import annotations

import tempfile
from pathlib import Path

import boa
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from dccn_deploy import run_parts
from dccn_deploy.boa_backend import boa_context

HOLDERS = [boa.env.generate_address(f"holder{i}") for i in range(4)]
SUPPLY = 10_000_000_000 * 10**18
# The token part's manifests (removed at exit; boa's state is rolled back between examples).
DEPLOYMENTS = tempfile.TemporaryDirectory(prefix="token-deployments-")

holder = st.sampled_from(range(len(HOLDERS)))
amount = st.integers(min_value=0, max_value=SUPPLY)


class TokenMachine(RuleBasedStateMachine):
    @initialize()
    def deploy(self) -> None:
        self.token = run_parts(boa_context(HOLDERS[0], deployments=Path(DEPLOYMENTS.name)), ("token",)).at("AnkrToken")
        self.balances = {h: 0 for h in HOLDERS}
        self.balances[HOLDERS[0]] = SUPPLY
        self.allowances: dict[tuple[str, str], int] = {}

    @rule(sender=holder, receiver=holder, value=amount)
    def transfer(self, sender: int, receiver: int, value: int) -> None:
        src, dst = HOLDERS[sender], HOLDERS[receiver]
        if value > self.balances[src]:
            with boa.reverts("erc20: transfer amount exceeds balance"), boa.env.prank(src):
                self.token.transfer(dst, value)
            return
        with boa.env.prank(src):
            self.token.transfer(dst, value)
        self.balances[src] -= value
        self.balances[dst] += value

    @rule(owner=holder, spender=holder, value=amount)
    def approve(self, owner: int, spender: int, value: int) -> None:
        with boa.env.prank(HOLDERS[owner]):
            self.token.approve(HOLDERS[spender], value)
        self.allowances[(HOLDERS[owner], HOLDERS[spender])] = value

    @rule(spender=holder, owner=holder, receiver=holder, value=amount)
    def transfer_from(self, spender: int, owner: int, receiver: int, value: int) -> None:
        src, dst, by = HOLDERS[owner], HOLDERS[receiver], HOLDERS[spender]
        allowed = self.allowances.get((src, by), 0)
        if value > allowed or value > self.balances[src]:
            with boa.reverts(), boa.env.prank(by):
                self.token.transferFrom(src, dst, value)
            return
        with boa.env.prank(by):
            self.token.transferFrom(src, dst, value)
        if allowed != 2**256 - 1:
            self.allowances[(src, by)] = allowed - value
        self.balances[src] -= value
        self.balances[dst] += value

    @invariant()
    def supply_is_conserved_and_balances_match(self) -> None:
        assert self.token.totalSupply() == SUPPLY
        assert sum(self.token.balanceOf(h) for h in HOLDERS) == SUPPLY
        for h in HOLDERS:
            assert self.token.balanceOf(h) == self.balances[h]


TestAnkrToken = TokenMachine.TestCase
