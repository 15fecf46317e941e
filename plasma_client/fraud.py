"""Turn a rule a replayed block broke into `proveInvalidBlock` arguments, where the root
chain can check it (docs/plasma.md): kind 1 an input that names no output, kind 2 an
output spent twice, kind 3 outputs + fee above the inputs (or no inputs at all).
A bad signature, a burn (outputs below inputs) or a fee transaction (txindex 65535) that
claims more than the block's fees is not provable on chain: the watcher then only warns and exits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from web3.contract import Contract

from dccn_common.store import Connection
from plasma_core import store, wire
from plasma_core.validation import DoubleSpend, NoInputs, TxRejected, UnknownInput, ValueMismatch

FRAUD_NONEXISTENT_INPUT = 1
FRAUD_DOUBLE_SPEND = 2
FRAUD_OUTPUTS_EXCEED_INPUTS = 3



@dataclass(frozen=True)
class Evidence:
    """A supporting transaction (empty bytes for an empty leaf or a deposit) and its proof."""

    blknum: int
    txindex: int
    slot: int
    tx_bytes: bytes
    proof: bytes

    @property
    def position(self) -> int:
        return self.blknum * 1_000_000_000 + self.txindex * 10_000 + self.slot


@dataclass(frozen=True)
class FraudProof:
    blknum: int
    txindex: int
    tx_bytes: bytes
    proof: bytes
    kind: int
    slot: int
    evidence: list[Evidence]

    def call(self, rootchain: Contract) -> Any:
        # evidencePosition names the earlier spend for kind 2 (blknum * 10**9 + txindex * 10**4 + slot).
        position = self.evidence[0].position if self.kind == FRAUD_DOUBLE_SPEND else 0
        txs = [] if self.kind == FRAUD_DOUBLE_SPEND and self.evidence[0].blknum == self.blknum and \
            self.evidence[0].txindex == self.txindex else [e.tx_bytes for e in self.evidence]
        proofs = [e.proof for e in self.evidence][:len(txs)]
        return rootchain.functions.proveInvalidBlock(self.blknum, self.txindex, self.tx_bytes, self.proof, self.kind,
                                                     self.slot, position, txs, proofs)


def build_fraud_proof(db: Connection, blknum: int, raws: Sequence[bytes | None],
                      err: TxRejected) -> FraudProof | None:
    """Arguments proving that transaction `err.index` of block `blknum` (`raws`) is invalid."""
    if err.index is None or err.index == wire.FEE_TXINDEX or raws[err.index] is None:
        return None  # the root chain exempts the fee transaction: its amount is the watchers' to check
    index = err.index
    raw = raws[index]
    assert raw is not None
    tree = wire.MerkleTree.of_block(raws)
    tx = wire.decode(raw)

    def proof(kind: int, slot: int, evidence: list[Evidence]) -> FraudProof:
        return FraudProof(blknum, index, raw, tree.proof(index), kind, slot, evidence)

    if isinstance(err, NoInputs):
        return proof(FRAUD_OUTPUTS_EXCEED_INPUTS, 0, [])
    if isinstance(err, ValueMismatch):
        if err.created <= err.spent:
            return None  # a burn breaks our rule but not the contract's
        evidence = [_entry_at(db, tx.input(slot)) for slot in (0, 1) if tx.input_used(slot)]
        return proof(FRAUD_OUTPUTS_EXCEED_INPUTS, 0, evidence)
    if isinstance(err, UnknownInput) and err.slot is not None:
        in_blknum, in_txindex, in_oindex = tx.input(err.slot)
        if in_blknum >= blknum or in_blknum % wire.CHILD_BLOCK_INTERVAL or in_txindex >= wire.MAX_LEAVES or in_oindex > 1:
            return proof(FRAUD_NONEXISTENT_INPUT, err.slot, [])
        return proof(FRAUD_NONEXISTENT_INPUT, err.slot, [_entry_at(db, (in_blknum, in_txindex, in_oindex))])
    if isinstance(err, DoubleSpend) and err.slot is not None:
        earlier = _earlier_spend(db, blknum, raws, index, tx, err.slot, tree)
        return proof(FRAUD_DOUBLE_SPEND, err.slot, [earlier]) if earlier else None
    return None


def _entry_at(db: Connection, position: tuple[int, int, int]) -> Evidence:
    """The transaction (or empty leaf) at an input's position, with its proof, from verified blocks."""
    blknum, txindex, _ = position
    if blknum % wire.CHILD_BLOCK_INTERVAL:
        return Evidence(blknum, txindex, 0, b"", b"")  # deposit inputs: the contract reads its own record
    block = store.get_block(db, blknum)
    if block is None or block["tree"] is None:
        return Evidence(blknum, txindex, 0, b"", b"")
    stored = store.get_tx(db, blknum, txindex)
    proof = store.proof_from_blob(bytes(block["tree"]), int(block["leaf_count"]), txindex)
    return Evidence(blknum, txindex, 0, stored.raw if stored else b"", proof)


def _earlier_spend(db: Connection, blknum: int, raws: Sequence[bytes | None], index: int,
                   tx: wire.Transaction, slot: int, tree: wire.MerkleTree) -> Evidence | None:
    position = tx.input(slot)
    other_slot = 1 - slot
    if tx.input_used(other_slot) and tx.input(other_slot) == position:
        return Evidence(blknum, index, other_slot, b"", b"")
    utxo = store.get_utxo(db, wire.utxo_position(*position))
    if utxo is not None and utxo.spent_by is not None and utxo.spent_slot is not None:
        spender = store.get_tx_by_id(db, utxo.spent_by)
        block = store.get_block(db, spender.blknum) if spender else None
        if spender is not None and block is not None and block["tree"] is not None:
            proof = store.proof_from_blob(bytes(block["tree"]), int(block["leaf_count"]), spender.txindex)
            return Evidence(spender.blknum, spender.txindex, utxo.spent_slot, spender.raw, proof)
    for earlier_index in range(index):  # spent earlier in this same block
        earlier = raws[earlier_index]
        if earlier is None:
            continue
        other = wire.decode(earlier)
        for earlier_slot in (0, 1):
            if other.input_used(earlier_slot) and other.input(earlier_slot) == position:
                return Evidence(blknum, earlier_index, earlier_slot, earlier, tree.proof(earlier_index))
    return None
