"""A child chain driven by the tests: users with keys, blocks built with the wire library,
and the root chain on titanoboa. Scenario tests and the stateful test share it."""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import boa
from boa.interpret import set_search_paths
from eth_account import Account

from dccn_deploy import DeployContext, run_parts
from dccn_deploy.boa_backend import boa_context
from dccn_devtools.contracts import CONTRACTS_DIR
from plasma_core import wire

EXIT_PERIOD = 1000
EXIT_BOND = 10**15
OPERATOR_BOND = 5 * 10**18
ZERO_ADDRESS = "0x" + "00" * 20
# The deploy parts' manifests (removed at exit; boa's state is rolled back under the tests).
_DEPLOYMENTS = tempfile.TemporaryDirectory(prefix="plasma-deployments-")


@dataclass(frozen=True)
class User:
    name: str
    key: str

    @property
    def address(self) -> str:
        return Account.from_key(self.key).address


@dataclass(frozen=True)
class Output:
    blknum: int
    txindex: int
    oindex: int
    owner: str
    amount: int

    @property
    def position(self) -> int:
        return wire.utxo_position(self.blknum, self.txindex, self.oindex)


@dataclass
class Block:
    blknum: int
    txs: list[wire.Transaction]
    tree: wire.MerkleTree
    last: wire.Transaction | None = None  # the transaction at txindex 65535 (the fee leaf)

    @property
    def root(self) -> bytes:
        return self.tree.root

    def tx(self, txindex: int) -> wire.Transaction:
        if txindex == wire.FEE_TXINDEX and self.last is not None:
            return self.last
        return self.txs[txindex]


@cache
def deployers() -> dict[str, Any]:
    set_search_paths([str(CONTRACTS_DIR), str(CONTRACTS_DIR.parent),
                      *[p for p in sys.path if p and os.path.isdir(p)]])
    return {
        "PriorityQueueHarness": boa.load_partial(str(CONTRACTS_DIR / "testing" / "PriorityQueueHarness.vy")),
        "PlasmaCodecHarness": boa.load_partial(str(CONTRACTS_DIR / "testing" / "PlasmaCodecHarness.vy")),
    }


def plasma_context(deployer: str, **params: Any) -> DeployContext:
    """A boa deploy context from `deployer` with the plasma part's parameters (a new manifest each time)."""
    return boa_context(deployer, deployments=Path(_DEPLOYMENTS.name), params={"plasma": params})


@dataclass
class PlasmaWorld:
    """The root chain plus the operator's view of the child chain (every block's transactions)."""

    root_chain: Any
    operator: User
    users: dict[str, User]
    token: Any = None
    blocks: dict[int, Block] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    deposits: dict[int, Output] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for user in [self.operator, *self.users.values()]:
            self.keys[user.address] = user.key
            boa.env.set_balance(user.address, 2**100)

    @classmethod
    def create(cls, users: dict[str, User], operator: User, with_token: bool = False,
               exit_period: int = EXIT_PERIOD, exit_bond: int = EXIT_BOND) -> PlasmaWorld:
        boa.env.set_balance(operator.address, 10**24)
        # The token and plasma parts, from the operator: AnkrToken, then a root chain for the native coin
        # ("RootChain") and one for ANKR ("RootChainAnkr"); the world drives one of them.
        ctx = run_parts(plasma_context(operator.address, operator=operator.address, exit_bond=exit_bond,
                                       exit_period=exit_period, operator_bond=OPERATOR_BOND), ("token", "plasma"))
        token = ctx.at("AnkrToken") if with_token else None
        root_chain = ctx.at("RootChainAnkr" if with_token else "RootChain")
        world = cls(root_chain, operator, users, token)
        if token is not None:
            for user in users.values():
                token.transfer(user.address, 10**24, sender=operator.address)
                token.approve(root_chain.address, 2**256 - 1, sender=user.address)
        return world

    # -- child chain -----------------------------------------------------------------------------

    def deposit(self, user: User, amount: int) -> Output:
        blknum = self.root_chain.currentChildBlock() - 1000 + self.root_chain.currentDepositBlock()
        if self.token is None:
            self.root_chain.deposit(value=amount, sender=user.address)
        else:
            self.root_chain.depositToken(amount, sender=user.address)
        self.deposits[blknum] = Output(blknum, 0, 0, user.address, amount)
        return self.deposits[blknum]

    def transfer(self, inputs: list[Output], outputs: list[tuple[str, int]], fee: int = 0,
                 signers: list[str] | None = None) -> wire.Transaction:
        """A transaction spending `inputs` (1 or 2), signed by their owners (or `signers`' keys)."""
        fields: dict[str, Any] = {"fee": fee}
        for slot, spent in enumerate(inputs):
            fields[f"blknum{slot + 1}"] = spent.blknum
            fields[f"txindex{slot + 1}"] = spent.txindex
            fields[f"oindex{slot + 1}"] = spent.oindex
        for index, (owner, amount) in enumerate(outputs):
            fields[f"newowner{index + 1}"] = owner
            fields[f"denom{index + 1}"] = amount
        tx = wire.Transaction(**fields)
        for slot, spent in enumerate(inputs):
            key = self.keys[signers[slot] if signers else spent.owner]
            tx = wire.sign(tx, key, slot)
        return tx

    def submit(self, txs: list[wire.Transaction], last: wire.Transaction | None = None) -> Block:
        """Submit a block of `txs` (txindex 0, 1, ...) and, as `last`, a transaction at txindex 65535."""
        blknum = self.root_chain.currentChildBlock()
        tree = wire.MerkleTree([wire.leaf(tx) for tx in txs], last=None if last is None else wire.leaf(last))
        self.root_chain.submitBlock(tree.root, sender=self.operator.address)
        block = Block(blknum, list(txs), tree, last)
        self.blocks[blknum] = block
        return block

    def outputs_of(self, block: Block, txindex: int) -> list[Output]:
        tx = block.tx(txindex)
        return [Output(block.blknum, txindex, o, *tx.output(o)) for o in (0, 1) if tx.output(o)[1] > 0]

    def owner_of_input(self, tx: wire.Transaction, slot: int) -> str:
        blknum, txindex, oindex = tx.input(slot)
        if blknum % 1000:
            return self.deposits[blknum].owner
        return self.blocks[blknum].tx(txindex).output(oindex)[0]

    def confirm_sigs(self, block: Block, txindex: int) -> bytes:
        tx = block.tx(txindex)
        leaf = wire.leaf(tx)
        return b"".join(
            wire.confirm_sign(leaf, block.root, self.keys[self.owner_of_input(tx, slot)])
            for slot in (0, 1) if tx.input_used(slot)
        )

    # -- exit game -------------------------------------------------------------------------------

    def exit_args(self, output: Output) -> tuple[Any, ...]:
        if output.blknum % 1000:
            return (output.blknum, 0, 0, wire.encode(wire.deposit_transaction(output.owner, output.amount)), b"", b"")
        block = self.blocks[output.blknum]
        return (output.blknum, output.txindex, output.oindex, wire.encode(block.tx(output.txindex)),
                block.tree.proof(output.txindex), self.confirm_sigs(block, output.txindex))

    def start_exit(self, output: Output, sender: str | None = None, value: int = EXIT_BOND) -> int:
        self.root_chain.startExit(*self.exit_args(output), value=value, sender=sender or output.owner)
        return output.position

    def challenge_args(self, exited: Output, block: Block, txindex: int, slot: int,
                       confirm_key: str | None = None) -> tuple[Any, ...]:
        tx = block.txs[txindex]
        key = confirm_key or self.keys[exited.owner]
        confirm = wire.confirm_sign(wire.leaf(tx), block.root, key)
        return (exited.position, block.blknum, txindex, slot, wire.encode(tx), block.tree.proof(txindex), confirm)

    def challenge(self, exited: Output, block: Block, txindex: int, slot: int, challenger: str) -> None:
        self.root_chain.challengeExit(*self.challenge_args(exited, block, txindex, slot), sender=challenger)

    def warp(self, seconds: int) -> None:
        boa.env.time_travel(seconds=seconds)

    def balance_of_contract(self) -> int:
        return boa.env.get_balance(self.root_chain.address)

