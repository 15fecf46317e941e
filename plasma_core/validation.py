"""The rules a child-chain transaction must satisfy, independent of where the UTXO set lives.

The operator applies them before accepting a transaction; the watcher applies the same
rules to every block it downloads, so an invalid block is noticed by the same code that
would have refused it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from plasma_core import wire
from plasma_core.store import Utxo
from plasma_core.wire import Parsed


class TxRejected(Exception):
    """A transaction was refused; `status` is the HTTP status the API answers with."""

    status = 422
    code = "invalid"

    def __init__(self, reason: str, *, index: int | None = None, slot: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.index = index
        self.slot = slot  # the input slot concerned, when there is one

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.code, "reason": self.reason}
        if self.index is not None:
            body["index"] = self.index
        return body


class Malformed(TxRejected):
    status = 400
    code = "malformed"


class UnknownInput(TxRejected):
    status = 422
    code = "unknown_input"


class DoubleSpend(TxRejected):
    status = 409
    code = "double_spend"


class NoInputs(TxRejected):
    code = "no_inputs"


class ValueMismatch(TxRejected):
    code = "value_mismatch"

    def __init__(self, reason: str, *, created: int, spent: int) -> None:
        super().__init__(reason)
        self.created = created
        self.spent = spent


Lookup = Callable[[int], Utxo | None]


class CheckedTx(NamedTuple):
    """A transaction that passed every rule, with the outputs it spends (by slot)."""

    parsed: Parsed
    inputs: tuple[Utxo, ...]
    slots: tuple[int, ...]

    @property
    def tx(self) -> wire.Transaction:
        return self.parsed.tx

    @property
    def raw(self) -> bytes:
        return self.parsed.raw


def parse(raw_hex: object) -> Parsed:
    """Hex text -> the decoded transaction with its hashes, or Malformed with the reason."""
    if not isinstance(raw_hex, str):
        raise Malformed("a transaction is a hex string of its RLP encoding")
    text = raw_hex.removeprefix("0x")
    if len(text) > 2 * 1024:
        raise Malformed("transaction longer than 1024 bytes (the root chain's limit)")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise Malformed("transaction is not valid hex") from None
    return parse_bytes(raw)


def parse_bytes(raw: bytes) -> Parsed:
    try:
        return wire.parse(raw)
    except wire.WireError as err:
        raise Malformed(str(err)) from None


def check_shape(tx: wire.Transaction) -> tuple[int, ...]:
    """Structural rules that need no state; returns the used input slots."""
    if tx.blknum1 == 0 and tx.blknum2 == 0:
        raise NoInputs("a transaction without inputs is a deposit: deposits are made only through the root chain contract")
    slots = []
    # Fields read directly (not through tx.input/tx.sig): this runs for every transaction.
    for slot, blknum, txindex, oindex, sig in ((0, tx.blknum1, tx.txindex1, tx.oindex1, tx.sig1),
                                               (1, tx.blknum2, tx.txindex2, tx.oindex2, tx.sig2)):
        if blknum == 0:
            if txindex or oindex or sig != wire.ZERO_SIG:
                raise Malformed(f"input {slot} is unused (blknum 0) but not all zero")
            continue
        if oindex not in (0, 1) or txindex >= wire.MAX_LEAVES or blknum > wire.MAX_BLKNUM:
            raise Malformed(f"input {slot} points at an impossible output ({blknum}, {txindex}, {oindex})")
        if sig == wire.ZERO_SIG:
            raise TxRejected(f"input {slot} is not signed")
        slots.append(slot)
    if len(slots) == 2 and tx.blknum1 == tx.blknum2 and tx.txindex1 == tx.txindex2 and tx.oindex1 == tx.oindex2:
        raise DoubleSpend("both inputs spend the same output", slot=1)
    for oindex, owner, amount in ((0, tx.newowner1, tx.denom1), (1, tx.newowner2, tx.denom2)):
        unused_owner = owner == wire.ZERO_ADDRESS
        if oindex == 0 and (unused_owner or amount == 0):
            raise TxRejected("output 0 must pay a positive amount to a non-zero owner")
        if unused_owner and amount:
            raise TxRejected(f"output {oindex} pays {amount} to the zero address")
        if not unused_owner and amount == 0:
            raise TxRejected(f"output {oindex} names an owner but has zero denomination")
    return tuple(slots)


def check_transaction(parsed: Parsed, lookup: Lookup,
                      recovered: tuple[bytes | None, bytes | None] = (None, None)) -> CheckedTx:
    """Every rule against the UTXO set that `lookup(pos)` reads; raises TxRejected.

    `recovered` may hold each slot's signer already recovered elsewhere (recovery.SignerPool);
    a slot without one is recovered here, so failures carry the same reasons."""
    tx = parsed.tx
    slots = check_shape(tx)
    inputs = []
    for slot in slots:
        utxo = lookup(wire.utxo_position(*tx.input(slot)))
        if utxo is None:
            raise UnknownInput(f"input {slot} {tx.input(slot)} does not exist", slot=slot)
        if utxo.spent_by is not None:
            raise DoubleSpend(f"input {slot} {tx.input(slot)} is already spent (by transaction {utxo.spent_by})",
                              slot=slot)
        if utxo.exiting:
            raise DoubleSpend(f"input {slot} {tx.input(slot)} is being exited on the root chain")
        signer = recovered[slot]
        if signer is None:
            try:
                signer = wire.recover(parsed.signing_hash, tx.sig(slot))
            except wire.WireError as err:
                raise TxRejected(f"input {slot}: {err}") from None
        if signer != bytes.fromhex(utxo.owner[2:]):
            raise TxRejected(f"input {slot} is signed by {wire.checksum(signer)}, but its owner is {utxo.owner}")
        inputs.append(utxo)
    spent = sum(u.amount for u in inputs)
    created = tx.denom1 + tx.denom2 + tx.fee
    if created != spent:
        raise ValueMismatch(f"outputs + fee = {created} but inputs = {spent}; they must be equal",
                            created=created, spent=spent)
    return CheckedTx(parsed, tuple(inputs), slots)


class FeeMismatch(TxRejected):
    code = "bad_fee_transaction"


def fee_transaction(operator: str, fees: int) -> wire.Transaction:
    """The transaction at wire.FEE_TXINDEX: no inputs, the block's fees as one output to the operator."""
    return wire.Transaction(newowner1=operator, denom1=fees)


def check_fee_transaction(tx: wire.Transaction, operator: str, others: Sequence[wire.Transaction]) -> None:
    expected = sum(t.fee for t in others)
    if tx != fee_transaction(operator, expected):
        raise FeeMismatch(f"the fee transaction must pay exactly the block's fees ({expected}) to the operator "
                          f"{operator}; it pays {tx.denom1} to {tx.newowner1} (+{tx.denom2} to {tx.newowner2}, "
                          f"fee {tx.fee}, inputs used: {tx.input_used(0) or tx.input_used(1)})")
