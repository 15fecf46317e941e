"""The operator's child chain: accept transactions into the open block, seal blocks,
and apply what the root chain says (deposits, exits, submitted roots, reorgs).

Every method takes the connection it works on, so the API thread and the service loop
each use their own connection to the same database (a SQLite file in WAL mode, or PostgreSQL).

A transaction is placed at its final position (open block, next index) the moment it
is accepted: its inputs are marked spent and its outputs exist at once, so a pending
transaction's outputs can already be spent in the same block, and a restart finds
exactly what was acknowledged. Sealing puts the fee transaction in the last leaf
(wire.FEE_TXINDEX), builds the Merkle tree and enqueues `submitBlock` in one database transaction.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from dccn_common.follower import ChainEvent
from dccn_common.store import Connection, get_meta, set_meta, transaction
from plasma_core import store, wire
from plasma_core.recovery import CHUNK_TXS, Batch, Pool
from plasma_core.validation import (
    CheckedTx,
    TxRejected,
    check_fee_transaction,
    check_transaction,
    fee_transaction,
    parse,
    parse_bytes,
)
from plasma_core.wire import Parsed, keccak, merkle_levels, merkle_root_of

log = logging.getLogger(__name__)

# The fee transaction takes the last leaf (txindex 65535), so users get one fewer.
USER_TXS_PER_BLOCK = wire.FEE_TXINDEX

SubmitRoot = Callable[[Connection, int, bytes], None]


@dataclass(frozen=True)
class Accepted:
    blknum: int
    txindex: int
    leaf: bytes

    def as_json(self) -> dict[str, object]:
        return {"blknum": self.blknum, "txindex": self.txindex, "hash": "0x" + self.leaf.hex()}


class ChildChain:
    def __init__(self, operator: str, submit_root: SubmitRoot, *, block_size: int = USER_TXS_PER_BLOCK,
                 fee_outputs: bool = True, recovery: Pool | None = None) -> None:
        self.operator = wire.to_checksum_address(operator)
        self.submit_root = submit_root
        self.block_size = min(block_size, USER_TXS_PER_BLOCK)
        # Collect each block's fees as an output to the operator (the RootChain exempts the
        # input-less fee transaction at txindex 65535 from fraud proofs and lets the operator exit it).
        self.fee_outputs = fee_outputs
        # Batches recover their signers on these worker processes while this one applies
        # them; None: in process. A single transaction is always recovered in process.
        self.recovery = recovery
        # Called inside each write transaction this class opens (the operator's lease fence:
        # raises dccn_common.sender.LeaseLost while another instance is active).
        self.guard: Callable[[Connection], None] | None = None

    @contextmanager
    def _writing(self, db: Connection) -> Iterator[Connection]:
        with transaction(db):
            if self.guard is not None:
                self.guard(db)
            yield db

    # -- the open block ----------------------------------------------------------------

    def open_block(self, db: Connection) -> tuple[int, int]:
        """(blknum, next txindex) of the block being filled; created on first use."""
        blknum = store.open_block_number(db)
        if blknum is None:
            last = store.newest_block(db)
            floor = int(get_meta(db, "plasma.first_child_block", str(wire.CHILD_BLOCK_INTERVAL)) or 0)
            blknum = max(floor, (last + wire.CHILD_BLOCK_INTERVAL) if last is not None else floor)
            store.insert_open_block(db, blknum)
            return blknum, 0
        return blknum, store.next_txindex(db, blknum)

    def set_first_child_block(self, db: Connection, blknum: int) -> None:
        """Align numbering with the contract's currentChildBlock when this database is new."""
        with self._writing(db):
            set_meta(db, "plasma.first_child_block", str(blknum))

    def submit(self, db: Connection, raw_hexes: Sequence[object]) -> list[Accepted]:
        """Validate and apply a batch atomically: all accepted, or TxRejected and nothing changes."""
        with _collection_paused():
            return self._submit(db, raw_hexes)

    def _submit(self, db: Connection, raw_hexes: Sequence[object]) -> list[Accepted]:
        if self.recovery is None or len(raw_hexes) < 2:
            return self._apply(db, _parse_all(raw_hexes), None)
        with self.recovery.recover_batch() as recovered:
            # Workers recover each chunk while the rest is decoded and the batch applied.
            parsed: list[Parsed] = []
            for start in range(0, len(raw_hexes), CHUNK_TXS):
                chunk = _parse_all(raw_hexes[start:start + CHUNK_TXS], start)
                recovered.add(chunk)
                parsed += chunk
            return self._apply(db, parsed, recovered)

    def _apply(self, db: Connection, parsed: Sequence[Parsed], recovered: Batch | None) -> list[Accepted]:
        accepted: list[Accepted] = []
        with self._writing(db):
            writes = _BatchWrites(db, parsed)
            blknum, txindex = self.open_block(db)
            for index, item in enumerate(parsed):
                duplicate = writes.position_of(item.leaf)
                if duplicate is not None:
                    # Idempotent for a client that retries after a timeout.
                    accepted.append(Accepted(*duplicate, item.leaf))
                    continue
                try:
                    checked = check_transaction(item, writes.lookup,
                                                (None, None) if recovered is None else recovered.signers(index))
                except TxRejected as err:
                    err.index = index
                    raise
                if txindex >= self.block_size:
                    writes.flush()
                    self.seal(db)
                    blknum, txindex = self.open_block(db)
                writes.record(blknum, txindex, checked)
                accepted.append(Accepted(blknum, txindex, item.leaf))
                txindex += 1
            writes.flush()
        return accepted

    def pending_count(self, db: Connection) -> int:
        return store.open_block_tx_count(db)

    def summary(self, db: Connection) -> dict[str, object]:
        """Block numbers by status and the pending count, without creating anything."""
        def newest(status: str) -> int | None:
            return store.newest_block(db, status)

        return {"open_block": newest("open"), "last_sealed_block": newest("sealed"),
                "last_submitted_block": newest("submitted"), "last_final_block": newest("final"),
                "pending_transactions": self.pending_count(db), "operator": self.operator}

    # -- sealing -----------------------------------------------------------------------

    def seal(self, db: Connection) -> int | None:
        """Close the open block if it holds transactions; returns its number."""
        with self._writing(db):
            blknum = store.open_block_number(db)
            if blknum is None:
                return None
            rows = store.block_leaves(db, blknum)
            if not rows:
                return None
            leaves = [wire.ZERO_HASH] * (rows[-1][0] + 1)  # a reorg may have left holes
            for txindex, leaf, _ in rows:
                leaves[txindex] = leaf
            fees = sum(fee for _, _, fee in rows)
            fee_leaf = None
            if fees and self.fee_outputs:
                fee_tx = fee_transaction(self.operator, fees)
                raw = wire.encode(fee_tx)
                store.insert_tx(db, blknum, wire.FEE_TXINDEX, "fee", raw, fee_tx)
                fee_leaf = keccak(raw)
            levels = merkle_levels(leaves, fee_leaf)
            root = merkle_root_of(levels)
            store.seal_block(db, blknum, root, len(leaves), store.tree_blob(levels), fees, time.time())
            self.submit_root(db, blknum, root)
        log.info("block sealed", extra={"blknum": blknum, "txs": len(leaves), "fees": str(fees), "root": "0x" + root.hex()})
        return blknum

    def apply_block(self, db: Connection, blknum: int, eth_block: int, raws: Sequence[bytes | None]) -> None:
        """Replay a downloaded block (the watcher): every rule; all or nothing.

        `raws` is indexed by txindex (None for an empty leaf). Only at wire.FEE_TXINDEX may a
        transaction have no inputs, and then it must pay exactly the block's fees to the
        operator (the fee rule; an overclaim is not provable on chain). Raises TxRejected with `index`.
        """
        rest, fee_raw = wire.split_block(raws)
        levels = merkle_levels([wire.ZERO_HASH if raw is None else keccak(raw) for raw in rest],
                               None if fee_raw is None else keccak(fee_raw))
        with transaction(db):
            store.insert_final_block(db, blknum, "child", merkle_root_of(levels), len(rest), store.tree_blob(levels),
                                     eth_block)
            transfers: list[wire.Transaction] = []
            index = 0
            lookup = partial(_ignoring_exits, db)
            try:
                for index, raw in enumerate(rest):
                    if raw is not None:
                        item = parse_bytes(raw)
                        _record(db, blknum, index, check_transaction(item, lookup))
                        transfers.append(item.tx)
                if fee_raw is not None:
                    index = wire.FEE_TXINDEX
                    item = parse_bytes(fee_raw)
                    if not item.tx.is_deposit:  # a transfer in the last leaf: ordinary rules
                        _record(db, blknum, index, check_transaction(item, lookup))
                    else:
                        check_fee_transaction(item.tx, self.operator, transfers)
                        store.insert_tx(db, blknum, index, "fee", fee_raw, item.tx)
            except TxRejected as err:
                err.index = index
                raise

    def mark_submitted(self, db: Connection, blknum: int) -> None:
        store.mark_block_submitted(db, blknum)

    # -- root-chain events ---------------------------------------------------------------

    # One handler per RootChain event, `handler(event, db)` (bot.on(rootchain.events.X); the
    # operator and the watcher share them).

    def deposit_event(self, event: ChainEvent, db: Connection) -> None:
        args = event.args
        self.on_deposit(db, args["depositor"], int(args["blknum"]), int(args["amount"]), event.block_number)

    def block_submitted_event(self, event: ChainEvent, db: Connection) -> None:
        self.on_block_submitted(db, int(event.args["blknum"]), bytes(event.args["root"]), event.block_number)

    def exit_started_event(self, event: ChainEvent, db: Connection) -> None:
        args = event.args
        exit_id = wire.exit_id(int(args["blknum"]), int(args["txindex"]), int(args["oindex"]))
        self.on_exit_started(db, exit_id, args["exitor"], int(args["amount"]), event.block_number)

    def exit_finalized_event(self, event: ChainEvent, db: Connection) -> None:
        self.on_exit_closed(db, int(event.args["exitId"]), "finalized", event.block_number)

    def exit_challenged_event(self, event: ChainEvent, db: Connection) -> None:
        self.on_exit_closed(db, int(event.args["exitId"]), "challenged", event.block_number)

    def rewind_event(self, first_removed: int, db: Connection) -> None:
        """The follower's rewind handler (`bot.on_rewind()`): see rewind."""
        self.rewind(db, first_removed)

    def on_deposit(self, db: Connection, depositor: str, blknum: int, amount: int, eth_block: int) -> None:
        tx = wire.deposit_transaction(depositor, amount)
        raw = wire.encode(tx)
        levels = merkle_levels([keccak(raw)])
        store.insert_final_block(db, blknum, "deposit", merkle_root_of(levels), 1, store.tree_blob(levels), eth_block)
        store.insert_tx(db, blknum, 0, "deposit", raw, tx)
        store.set_deposit_eth_block(db, store.tx_id(blknum, 0), eth_block)

    def on_block_submitted(self, db: Connection, blknum: int, root: bytes, eth_block: int) -> None:
        row = store.get_block(db, blknum)
        if row is None or row["root"] is None:
            log.error("root chain holds a block this operator never sealed", extra={"blknum": blknum})
            return
        if bytes(row["root"]) != bytes(root):
            log.critical("root on chain differs from the sealed block", extra={
                "blknum": blknum, "chain_root": "0x" + bytes(root).hex(), "our_root": "0x" + bytes(row["root"]).hex()})
            return
        store.mark_block_final(db, blknum, eth_block)

    def on_exit_started(self, db: Connection, exit_id: int, exitor: str, amount: int, eth_block: int) -> None:
        store.put_exit(db, exit_id, exitor, amount, eth_block)
        # An output being exited can no longer be spent here; if it already was, the watcher challenges.
        store.set_exiting(db, exit_id, True)

    def on_exit_closed(self, db: Connection, exit_id: int, status: str, eth_block: int) -> None:
        store.close_exit(db, exit_id, status, eth_block)

    def rewind(self, db: Connection, first_removed: int) -> None:
        """Undo what root-chain blocks >= first_removed did (a reorg removed them)."""
        for blknum in store.rewind_chain_events(db, first_removed):
            log.warning("reorg removed a deposit; removing what spent it", extra={"blknum": blknum})
            self._remove_tx(db, store.tx_id(blknum, 0))
            store.delete_block(db, blknum)

    def _remove_tx(self, db: Connection, ident: int) -> None:
        """Remove a transaction, everything that spent its outputs, and unspend its inputs."""
        for spent in store.spenders_of(db, ident):
            assert spent.spent_by is not None
            self._remove_tx(db, spent.spent_by)
        stored = store.get_tx_by_id(db, ident)
        if stored is None:
            return
        block = store.get_block(db, stored.blknum)
        if stored.kind == "transfer" and block is not None and block["status"] != "open":
            # Too late to take it out of a sealed root: only the confirmation depth prevents this.
            log.critical("a sealed block spends an output a reorg removed", extra={"blknum": stored.blknum,
                                                                                   "txindex": stored.txindex})
        store.remove_tx_rows(db, ident)

    # -- reads -------------------------------------------------------------------------

    def exit_data(self, db: Connection, blknum: int, txindex: int) -> dict[str, object] | None:
        """Everything a client needs to exit an output of, or challenge with, one transaction."""
        stored = store.get_tx(db, blknum, txindex)
        block = store.get_block(db, blknum)
        if stored is None or block is None:
            return None
        tx = wire.decode(stored.raw)
        body: dict[str, object] = {
            "blknum": blknum, "txindex": txindex, "kind": stored.kind, "tx": "0x" + stored.raw.hex(),
            "hash": "0x" + stored.leaf.hex(), "fee": str(stored.fee), "block_status": block["status"],
            "final": block["status"] == "final",
            "inputs": [{"slot": s, "blknum": tx.input(s)[0], "txindex": tx.input(s)[1], "oindex": tx.input(s)[2]}
                       for s in (0, 1) if tx.input_used(s)],
            "outputs": [{"oindex": o, "owner": tx.output(o)[0], "amount": str(tx.output(o)[1])}
                        for o in (0, 1) if tx.output(o)[1]],
            "root": None, "proof": None,
        }
        if block["root"] is not None:
            body["root"] = "0x" + bytes(block["root"]).hex()
            body["proof"] = "0x" + store.proof_from_blob(bytes(block["tree"]), int(block["leaf_count"]), txindex).hex()
        sigs = store.confirm_sigs(db, stored.id)
        body["confirm_sigs"] = {str(slot): "0x" + sig.hex() for slot, sig in sorted(sigs.items())}
        # What startExit takes: one confirm signature per used input, concatenated (empty for a deposit).
        used = [s for s in (0, 1) if tx.input_used(s)]
        body["exit_confirm_sig"] = ("0x" + b"".join(sigs[s] for s in used).hex()) if all(s in sigs for s in used) else None
        return body

    def add_confirm_sig(self, db: Connection, blknum: int, txindex: int, slot: int, sig: bytes) -> None:
        """Store an input owner's confirm signature after checking who signed it."""
        stored = store.get_tx(db, blknum, txindex)
        if stored is None or stored.kind != "transfer":
            raise LookupError(f"no transfer at ({blknum}, {txindex})")
        block = store.get_block(db, blknum)
        if block is None or block["root"] is None:
            raise TxRejected(f"block {blknum} is not sealed yet: there is no root to confirm")
        tx = wire.decode(stored.raw)
        if slot not in (0, 1) or not tx.input_used(slot):
            raise TxRejected(f"input slot {slot} is not used by this transaction")
        owner = store.get_utxo(db, wire.utxo_position(*tx.input(slot)))
        try:
            signer = wire.recover_hash_signer(wire.confirm_hash(stored.leaf, bytes(block["root"])), sig)
        except wire.WireError as err:
            raise TxRejected(f"confirm signature: {err}") from None
        if owner is None or signer != owner.owner:
            raise TxRejected(f"confirm signature is by {signer}, not by the owner of input {slot}")
        with self._writing(db):
            store.put_confirm_sig(db, stored.id, slot, sig)


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextmanager
def _collection_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a batch is applied. A batch allocates a few
    objects per transaction that live until it ends, which set off full collections over
    every object of the process: ~12 µs a transaction measured (the operator bench, bench/).
    What a batch leaves is acyclic, freed by reference counting; anything cyclic is
    collected once the last concurrent batch (API and service threads) re-enables it."""
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def _record(db: Connection, blknum: int, txindex: int, checked: CheckedTx) -> None:
    """Store a checked transfer at its position and mark its inputs spent."""
    ident = store.insert_tx(db, blknum, txindex, "transfer", checked.raw, checked.tx, checked.parsed.leaf)
    store.mark_spent(db, [(ident, slot, utxo.pos) for utxo, slot in zip(checked.inputs, checked.slots, strict=True)])


def _parse_all(raw_hexes: Sequence[object], first_index: int = 0) -> list[Parsed]:
    parsed = []
    for index, raw_hex in enumerate(raw_hexes, first_index):
        try:
            parsed.append(parse(raw_hex))
        except TxRejected as err:
            err.index = index
            raise
    return parsed


def _ignoring_exits(db: Connection, pos: int) -> store.Utxo | None:
    # The operator may include a spend before it sees the exit: that is the exitor's problem
    # (the exit gets challenged), not an invalid block.
    utxo = store.get_utxo(db, pos)
    return utxo._replace(exiting=False) if utxo else None


class _BatchWrites:
    """A batch's changes kept in memory (later transactions of the batch see them) and
    written with one executemany per table: the same rows `_record` writes, fewer calls.
    The batch's inputs are read up front in a few queries (the transaction's snapshot)."""

    def __init__(self, db: Connection, parsed: Sequence[Parsed]) -> None:
        self.db = db
        # Transfers of this batch already accepted earlier (a client's retry), found in one query per chunk.
        self.leaves = store.transfers_with_leaves(db, [item.leaf for item in parsed])
        positions = {wire.utxo_position(*where) for item in parsed
                     for where in (item.tx.input(0), item.tx.input(1)) if where[0] and _positional(where)}
        # Read before any write of this batch, and refreshed from `changed` at every flush.
        self.known = store.get_utxos(db, sorted(positions))
        self.changed: dict[int, store.Utxo] = {}
        self.txs: list[tuple[object, ...]] = []
        self.outputs: list[tuple[object, ...]] = []
        self.spends: list[tuple[int, int, int]] = []

    def lookup(self, pos: int) -> store.Utxo | None:
        utxo = self.changed.get(pos) or self.known.get(pos)
        return utxo if utxo is not None else store.get_utxo(self.db, pos)

    def position_of(self, leaf: bytes) -> tuple[int, int] | None:
        return self.leaves.get(leaf)

    def record(self, blknum: int, txindex: int, checked: CheckedTx) -> None:
        ident = store.tx_id(blknum, txindex)
        parsed = checked.parsed
        tx, leaf, changed = parsed.tx, parsed.leaf, self.changed
        self.txs.append((ident, blknum, txindex, "transfer", parsed.raw, leaf, str(tx.fee)))
        self.leaves[leaf] = (blknum, txindex)
        # Unrolled over the two outputs and the used inputs: this runs for every transaction.
        if tx.denom1:
            changed[ident] = store.Utxo(ident, blknum, tx.newowner1, tx.denom1, None, None, False)
            self.outputs.append((ident, blknum, tx.newowner1, str(tx.denom1)))
        if tx.denom2:
            changed[ident + 1] = store.Utxo(ident + 1, blknum, tx.newowner2, tx.denom2, None, None, False)
            self.outputs.append((ident + 1, blknum, tx.newowner2, str(tx.denom2)))
        for utxo, slot in zip(checked.inputs, checked.slots, strict=True):
            changed[utxo.pos] = store.Utxo(utxo.pos, utxo.blknum, utxo.owner, utxo.amount, ident, slot, utxo.exiting)
            self.spends.append((ident, slot, utxo.pos))

    def flush(self) -> None:
        store.insert_transfers(self.db, self.txs, self.outputs, self.spends)
        self.txs, self.outputs, self.spends = [], [], []
        self.known.update(self.changed)
        self.changed.clear()


def _positional(position: tuple[int, int, int]) -> bool:
    # Only what utxo_position accepts; anything else is rejected by check_shape before lookup.
    blknum, txindex, oindex = position
    return 0 <= blknum <= wire.MAX_BLKNUM and 0 <= txindex < wire.MAX_LEAVES and oindex in (0, 1)
