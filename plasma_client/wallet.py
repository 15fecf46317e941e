"""What a user's side does with the child chain: build and sign transfers, produce
confirm signatures, and assemble the arguments of startExit / challengeExit.

Shared by the client CLI, the watcher, the demo and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from web3 import Web3
from web3.contract import Contract

from plasma_core import wire


class WalletError(ValueError):
    """The wallet cannot do what was asked (not enough funds, bad amount...)."""


def parse_amount(text: str) -> int:
    """'1000' (base units, wei), or '1.5ether' / '2eth' / '3gwei'."""
    raw = text.strip().lower().replace("_", "")
    for unit, name in (("ether", "ether"), ("eth", "ether"), ("gwei", "gwei"), ("wei", "wei")):
        if raw.endswith(unit):
            try:
                return int(Web3.to_wei(Decimal(raw.removesuffix(unit)), name))
            except (InvalidOperation, ValueError):
                break
    try:
        value = int(raw)
    except ValueError:
        raise WalletError(f"{text!r} is not an amount (e.g. 1000, 1.5ether, 3gwei)") from None
    if value < 0:
        raise WalletError("amounts are not negative")
    return value


@dataclass(frozen=True)
class Coin:
    """An unspent output as the operator lists it."""

    blknum: int
    txindex: int
    oindex: int
    amount: int

    @classmethod
    def from_api(cls, entry: dict[str, Any]) -> Coin:
        return cls(int(entry["blknum"]), int(entry["txindex"]), int(entry["oindex"]), int(entry["amount"]))


def choose_coins(coins: list[Coin], need: int) -> list[Coin]:
    """At most two coins (the format has two inputs) covering `need`; the smallest that fit."""
    ordered = sorted(coins, key=lambda c: c.amount)
    for coin in ordered:
        if coin.amount >= need:
            return [coin]
    for i, first in enumerate(ordered):
        for second in ordered[i + 1:]:
            if first.amount + second.amount >= need:
                return [first, second]
    best = sum(c.amount for c in ordered[-2:])
    raise WalletError(f"need {need} in at most two outputs; the two largest hold {best}")


def build_transfer(coins: list[Coin], owner: str, to: str, amount: int, fee: int, key: str | bytes) -> wire.Transaction:
    """Pay `amount` to `to` from `coins`, change back to `owner`, `fee` to the operator; signed."""
    if amount <= 0:
        raise WalletError("the amount must be positive")
    total = sum(c.amount for c in coins)
    change = total - amount - fee
    if change < 0:
        raise WalletError(f"inputs hold {total}, less than amount + fee = {amount + fee}")
    fields: dict[str, Any] = {"newowner1": Web3.to_checksum_address(to), "denom1": amount, "fee": fee}
    if change:
        fields.update(newowner2=Web3.to_checksum_address(owner), denom2=change)
    for slot, coin in enumerate(coins):
        suffix = str(slot + 1)
        fields.update({"blknum" + suffix: coin.blknum, "txindex" + suffix: coin.txindex, "oindex" + suffix: coin.oindex})
    tx = wire.Transaction(**fields)
    for slot in range(len(coins)):
        tx = wire.sign(tx, key, slot)
    return tx


def owned_input_slots(tx: wire.Transaction, input_owners: dict[int, str], owner: str) -> list[int]:
    return [slot for slot in (0, 1) if tx.input_used(slot) and input_owners.get(slot) == owner]


@dataclass(frozen=True)
class ExitArgs:
    blknum: int
    txindex: int
    oindex: int
    tx_bytes: bytes
    proof: bytes
    confirm_sig: bytes

    @property
    def exit_id(self) -> int:
        return wire.exit_id(self.blknum, self.txindex, self.oindex)

    def call(self, rootchain: Contract) -> Any:
        return rootchain.functions.startExit(self.blknum, self.txindex, self.oindex, self.tx_bytes, self.proof,
                                             self.confirm_sig)


def deposit_exit_args(blknum: int, owner: str, amount: int) -> ExitArgs:
    """A deposit exits with data anyone can rebuild: no operator needed."""
    raw = wire.encode(wire.deposit_transaction(owner, amount))
    proof = wire.MerkleTree([wire.keccak(raw)]).proof(0)
    return ExitArgs(blknum, 0, 0, raw, proof, b"")


def exit_args_from_api(data: dict[str, Any], oindex: int) -> ExitArgs:
    """startExit arguments from the operator's GET /tx answer."""
    if data.get("kind") == "deposit":
        tx = wire.decode(bytes.fromhex(data["tx"][2:]))
        return deposit_exit_args(int(data["blknum"]), tx.newowner1, tx.denom1)
    if not data.get("final"):
        raise WalletError(f"block {data['blknum']} is not on the root chain yet")
    if data.get("exit_confirm_sig") is None:
        raise WalletError("the input owners' confirm signatures are not published yet (ask the sender to run `confirm`)")
    return ExitArgs(int(data["blknum"]), int(data["txindex"]), oindex, _hex(data["tx"]), _hex(data["proof"]),
                    _hex(data["exit_confirm_sig"]))


@dataclass(frozen=True)
class ChallengeArgs:
    exit_id: int
    blknum: int
    txindex: int
    slot: int
    tx_bytes: bytes
    proof: bytes
    confirm_sig: bytes

    def call(self, rootchain: Contract) -> Any:
        return rootchain.functions.challengeExit(self.exit_id, self.blknum, self.txindex, self.slot, self.tx_bytes,
                                                 self.proof, self.confirm_sig)


def challenge_args_from_api(exit_id: int, spender: dict[str, Any], slot: int) -> ChallengeArgs:
    """challengeExit arguments: the spending transaction (GET /tx) and the exitor's confirm signature."""
    sig = spender.get("confirm_sigs", {}).get(str(slot))
    if sig is None or spender.get("proof") is None:
        raise WalletError("the spending transaction has no confirm signature from the exitor yet")
    return ChallengeArgs(exit_id, int(spender["blknum"]), int(spender["txindex"]), slot, _hex(spender["tx"]),
                         _hex(spender["proof"]), _hex(sig))


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))
