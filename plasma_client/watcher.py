"""`plasma-watcher`: guards one user's funds on a child chain.

- Follows `BlockSubmitted`, downloads each block from the operator, checks it against the
  root on chain and replays it with the operator's own validation rules into a local
  UTXO set (its own SQLite database, same schema as the operator's).
- Follows `ExitStarted`: an exit of an output its replay shows spent is challenged with the
  spending transaction and the exitor's confirm signature (from the operator's API, or
  signed locally when the exitor is this user).
- A block whose data is not served within `withhold_grace` seconds (or does not match
  its root) or that breaks a rule raises the alarm: the watcher warns, and exits every
  output of its user from the blocks before it (proveInvalidBlock for a rule-breaking one).

Transactions go through the durable TxSender, keyed by exit id, so a restart never
challenges or exits twice. Every poll re-checks every pending exit (a spend may reach the
root chain after the exit started), and a rewind undoes what removed blocks said: blocks
submitted, exits started, challenged or finalized (the follower runs it in its transaction).
"""

from __future__ import annotations

import functools
import logging
import socket
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
from eth_account.signers.local import LocalAccount

from dccn_common.bot import Bot, claim_instance, claim_signing_key, run_cli
from dccn_common.chain import ChainBinding
from dccn_common.config import load_config
from dccn_common.follower import ChainEvent
from dccn_common.keys import load_account
from dccn_common.listen import bind_tcp
from dccn_common.logs import configure_logging
from dccn_common.sender import TxSender
from dccn_common.store import Connection, Row, get_meta, set_meta
from plasma_client import watcher_store
from plasma_client.config import WatcherConfig
from plasma_client.fraud import build_fraud_proof
from plasma_client.remote import OperatorApiError, OperatorClient
from plasma_client.wallet import ChallengeArgs, ExitArgs, deposit_exit_args
from plasma_core import store, wire
from plasma_core.config import bind_root_chain, load_rootchain
from plasma_core.ledger import ChildChain
from plasma_core.validation import TxRejected

log = logging.getLogger("plasma_watcher")

# Fixed gas for the fraud proof: a racing prover makes estimation revert, and that is fine.
PROVE_GAS = 1_500_000
# A challenge that reverted or could not be sent (a reorg reordered the exit, the spending
# block and the challenge) is sent again under a new outbox key, at most this many times in all.
MAX_CHALLENGE_ATTEMPTS = 8


def _no_submissions(db: Connection, blknum: int, root: bytes) -> None:
    raise RuntimeError("the watcher never seals blocks")


# -- root-chain event handlers (bot.on(rootchain.events.X)), each in its log's transaction -----------


def block_submitted(event: ChainEvent, db: Connection) -> None:
    blknum, root = int(event.args["blknum"]), bytes(event.args["root"])
    watcher_store.record_watched_block(db, blknum, root, event.block_number, time.time())
    replayed = store.get_block(db, blknum)
    if replayed is None or replayed["status"] != "submitted":
        return
    # Replayed before a reorg took its submitBlock away (the rewind made it 'submitted');
    # the root is back on chain, so its spends can challenge exits again.
    if bytes(replayed["root"]) != root:
        log.critical("after a reorg the root chain holds another root for a block replayed here",
                     extra={"blknum": blknum, "chain_root": "0x" + root.hex(),
                            "replayed_root": "0x" + bytes(replayed["root"]).hex()})
        watcher_store.mark_watched_block_invalid(db, blknum, "root on chain differs from the block replayed before a reorg")
        return
    store.mark_block_final(db, blknum, event.block_number)
    watcher_store.set_watched_block_eth_block(db, blknum, event.block_number)


def exit_started(chain: ChildChain, event: ChainEvent, db: Connection) -> None:
    args = event.args
    exit_id = wire.exit_id(int(args["blknum"]), int(args["txindex"]), int(args["oindex"]))
    chain.exit_started_event(event, db)
    watcher_store.record_watched_exit(db, exit_id, args["exitor"], event.block_number)


def exit_closed(chain: ChildChain, status: str, event: ChainEvent, db: Connection) -> None:
    """ExitChallenged (status 'challenged') and ExitFinalized ('finalized')."""
    if status == "challenged":
        chain.exit_challenged_event(event, db)
    else:
        chain.exit_finalized_event(event, db)
    watcher_store.close_watched_exit(db, int(event.args["exitId"]), status, event.block_number)


def rewind(chain: ChildChain, first_removed: int, db: Connection) -> None:
    # A verified block whose submitBlock was removed goes back to 'submitted' in `blocks`
    # (chain.rewind): its spends challenge nothing until BlockSubmitted is seen again.
    chain.rewind(db, first_removed)
    # Then the watched blocks and exits those blocks recorded (see watcher_store.rewind_watched).
    watcher_store.rewind_watched(db, first_removed)


class Watcher:
    def __init__(self, cfg: WatcherConfig, account: LocalAccount, binding: ChainBinding | None = None, *,
                 health_port: int | None = None, health_socket: socket.socket | None = None) -> None:
        self.cfg = cfg
        self.account = account
        self.me = account.address
        binding = binding or bind_root_chain(cfg, "root chain")
        self.rootchain, deploy_block = load_rootchain(binding, cfg)
        self.exit_bond = int(self.rootchain.functions.exitBond().call())
        self.db = store.open_chain_db(cfg.db)
        watcher_store.apply_watcher_schema(self.db)  # on a standby too
        self.operator = OperatorClient(cfg.operator_url, timeout=10)
        self._warned_unexitable: set[int] = set()  # outputs the alarm cannot exit yet, warned once
        self.chain = ChildChain(self.rootchain.functions.operator().call(), _no_submissions)
        self.bot = Bot("plasma-watcher", db=self.db, poll_interval=cfg.poll_interval, health_port=health_port,
                       health_socket=health_socket, status=self.status, lease_seconds=cfg.lease_seconds)
        self.chain.guard = self.bot.fence  # replayed blocks and fetched confirm signatures: the active one only
        # The bot's sender rebroadcasts removed challenges and exits after a reorg, never re-signs them.
        root = self.bot.chain(binding, account=account, follower_name=f"plasma-watcher-{self.me}",
                              confirmations=cfg.confirmations, start_block=deploy_block)
        assert root.sender is not None
        self.sender: TxSender = root.sender
        self.follower = root.follower
        self._declare_handlers()
        self.bot.every(cfg.poll_interval, "verify_blocks")(self.verify_blocks)
        self.bot.every(cfg.poll_interval, "check_exits")(self.check_exits)
        self._declare_metrics()

    def _declare_metrics(self) -> None:
        metrics = self.bot.metrics
        get_meta(self.db, "watcher.alarm")  # creates the meta table the alarm gauge reads
        metrics.sql_gauge("dccn_plasma_watched_blocks", "Child blocks the watcher checked, by status "
                          "(pending, verified, withheld, invalid).", self.db,
                          watcher_store.WATCHED_BLOCKS_BY_STATUS, ["status"],
                          known=("pending", "verified", "withheld", "invalid"))
        metrics.sql_gauge("dccn_plasma_watched_exits", "Exits the watcher follows, by status.", self.db,
                          watcher_store.WATCHED_EXITS_BY_STATUS, ["status"])
        metrics.sql_gauge("dccn_plasma_watcher_alarm", "1 once the watcher raised the alarm (fraud or withholding).",
                          self.db, watcher_store.ALARM_RAISED)

    # -- events ------------------------------------------------------------------------

    def _declare_handlers(self) -> None:
        bot, events, chain = self.bot, self.rootchain.events, self.chain
        bot.on(events.Deposit)(chain.deposit_event)
        bot.on(events.BlockSubmitted)(block_submitted)
        bot.on(events.ExitStarted)(functools.partial(exit_started, chain))
        bot.on(events.ExitChallenged)(functools.partial(exit_closed, chain, "challenged"))
        bot.on(events.ExitFinalized)(functools.partial(exit_closed, chain, "finalized"))
        bot.on_rewind()(functools.partial(rewind, chain))

    # -- blocks ------------------------------------------------------------------------

    def verify_blocks(self) -> None:
        """Check submitted blocks in order; stop at the first one not yet served."""
        pending = watcher_store.pending_watched_blocks(self.db)
        for row in pending:
            blknum, root = int(row["blknum"]), bytes(row["root"])
            try:
                block = self.operator.block(blknum)
            except OperatorApiError as err:
                block = None
                log.warning("operator unreachable", extra={"blknum": blknum, "error": str(err)})
            raws = _block_raws(block) if block and block.get("root") else None
            if raws is None or wire.MerkleTree.of_block(raws).root != root:
                if time.time() - float(row["first_seen"]) >= self.cfg.withhold_grace:
                    reason = "block data not served" if raws is None else "served block does not match its root"
                    self._mark(blknum, "withheld", reason)
                    self.raise_alarm(blknum, reason)
                return
            try:
                self.chain.apply_block(self.db, blknum, int(row["eth_block"]), raws)
            except TxRejected as err:
                self._mark(blknum, "invalid", f"transaction {err.index}: {err.reason}")
                self.prove_invalid(blknum, raws, err)
                self.raise_alarm(blknum, f"invalid transaction {err.index}: {err.reason}")
                return
            self._mark(blknum, "verified", None)
            log.info("block verified", extra={"blknum": blknum, "txs": len(raws)})

    def _mark(self, blknum: int, status: str, reason: str | None) -> None:
        with self.bot.transaction(self.db):
            watcher_store.mark_watched_block(self.db, blknum, status, reason)

    def prove_invalid(self, blknum: int, raws: list[bytes | None], err: TxRejected) -> None:
        """Send proveInvalidBlock when the broken rule is one the root chain can check."""
        try:
            fraud = build_fraud_proof(self.db, blknum, raws, err)
        except Exception as exc:  # never let the proof stop the exits that follow
            log.error("could not build a fraud proof", extra={"blknum": blknum, "error": f"{type(exc).__name__}: {exc}"})
            fraud = None
        if fraud is None:
            log.warning("invalid block, but not provable on chain", extra={"blknum": blknum, "reason": err.reason})
            return
        with self.bot.transaction(self.db):
            if self.sender.enqueue_call(self.db, f"prove:{blknum}", fraud.call(self.rootchain), gas=PROVE_GAS):
                log.warning("proving the block invalid", extra={"blknum": blknum, "txindex": fraud.txindex,
                                                                "kind": fraud.kind})

    def raise_alarm(self, blknum: int, reason: str) -> None:
        """Warn once, and exit every output of this user from before `blknum`."""
        with self.bot.transaction(self.db):
            first = get_meta(self.db, "watcher.alarm") is None
            if first:
                set_meta(self.db, "watcher.alarm", f"block {blknum}: {reason}")
                set_meta(self.db, "watcher.alarm_block", str(blknum))
        if first:
            log.warning("OPERATOR MISBEHAVES: exiting this user's outputs", extra={"blknum": blknum, "reason": reason})
        self.exit_outputs()

    def exit_outputs(self) -> None:
        """After the alarm (again at every check_exits): start the exit of each output of this user
        from before the bad block, once nothing stands in its way. The root chain refuses the exit
        of an output whose transaction has an input with a live exit ("plasma: input has an exit"),
        so such an output waits until check_exits' challenge of that exit is seen."""
        alarm_block = get_meta(self.db, "watcher.alarm_block")
        if not self.cfg.exit_on_fraud or alarm_block is None:
            return
        # Outputs of blocks before the bad one, and deposits (they exit on their own record).
        mine = store.exitable_outputs_of(self.db, self.me, int(alarm_block))
        for pos in mine:
            if self.sender.entry(f"exit:{pos}") is not None or self._input_exit_live(pos):
                continue
            args = self.local_exit_args(pos)
            if args is None:
                continue
            with self.bot.transaction(self.db):
                if self.sender.enqueue_call(self.db, f"exit:{args.exit_id}", args.call(self.rootchain),
                                            value=self.exit_bond):
                    log.warning("exit started", extra={"exit_id": args.exit_id})

    def _input_exit_live(self, pos: int) -> bool:
        """An input of the transaction that created `pos` has an exit not known challenged."""
        stored = store.get_tx(self.db, *wire.decode_position(pos)[:2])
        if stored is None or stored.kind != "transfer":
            return False
        tx = wire.decode(stored.raw)
        inputs = [wire.utxo_position(*tx.input(slot)) for slot in (0, 1) if tx.input_used(slot)]
        return any(watcher_store.exit_not_challenged(self.db, i) for i in inputs)

    def local_exit_args(self, pos: int) -> ExitArgs | None:
        """startExit arguments from the watcher's own replay (no operator needed)."""
        utxo = store.get_utxo(self.db, pos)
        blknum, txindex, oindex = wire.decode_position(pos)
        stored = store.get_tx(self.db, blknum, txindex)
        block = store.get_block(self.db, blknum)
        if utxo is None or stored is None or block is None:
            return None
        if stored.kind == "deposit":
            return deposit_exit_args(blknum, utxo.owner, utxo.amount)
        proof = store.proof_from_blob(bytes(block["tree"]), int(block["leaf_count"]), txindex)
        sigs = self._confirm_sigs(stored)
        if sigs is None:
            if pos not in self._warned_unexitable:  # exit_outputs asks again at every poll
                self._warned_unexitable.add(pos)
                log.warning("cannot exit: input owners' confirm signatures unknown", extra={"pos": pos})
            return None
        return ExitArgs(blknum, txindex, oindex, stored.raw, proof, b"".join(sigs))

    def _confirm_sigs(self, stored: store.StoredTx) -> list[bytes] | None:
        """One confirm signature per used input: signed here when the input was ours, else published ones."""
        tx = wire.decode(stored.raw)
        root = bytes(store.get_block(self.db, stored.blknum)["root"])  # type: ignore[index]
        known = store.confirm_sigs(self.db, stored.id)
        sigs = []
        for slot in (0, 1):
            if not tx.input_used(slot):
                continue
            owner = store.get_utxo(self.db, wire.utxo_position(*tx.input(slot)))
            if owner is not None and owner.owner == self.me:
                sigs.append(wire.confirm_sign(stored.leaf, root, self.account.key))
            elif slot in known:
                sigs.append(known[slot])
            else:
                return None
        return sigs

    # -- exits -------------------------------------------------------------------------

    def check_exits(self) -> None:
        """Challenge every pending exit of an output that a verified block on the root chain spends.

        Every poll looks at every exit not known challenged or finalized, so a spend whose block
        reaches the root chain after the exit started (or comes back after a reorg) is found too.
        A challenge of ours that reverted or could not be sent is sent again under a new key
        while the exit is still pending on chain (at most MAX_CHALLENGE_ATTEMPTS in all)."""
        self._collect_confirm_sigs()
        rows = watcher_store.pending_watched_exits(self.db)
        for row in rows:
            exit_id = int(row["exit_id"])
            attempts = self._challenge_attempts(exit_id)
            if attempts and attempts[-1]["status"] not in ("reverted", "failed"):
                if row["status"] == "open":  # ours is in flight or mined (a rewind re-created the row)
                    with self.bot.transaction(self.db):
                        watcher_store.mark_exit_challenging(self.db, exit_id)
                continue
            utxo = store.get_utxo(self.db, exit_id)
            if utxo is None or utxo.spent_by is None or utxo.spent_slot is None:
                continue  # unspent as far as verified blocks go; checked again next time
            if attempts and (len(attempts) >= MAX_CHALLENGE_ATTEMPTS or not self._exit_pending_on_chain(exit_id)):
                continue
            args = self._challenge_args(exit_id, utxo.spent_by, utxo.spent_slot, row["exitor"])
            if args is None:
                continue
            key = f"challenge:{exit_id}" if not attempts else f"challenge:{exit_id}:{len(attempts)}"
            with self.bot.transaction(self.db):
                self.sender.enqueue_call(self.db, key, args.call(self.rootchain))
                watcher_store.mark_exit_challenging(self.db, exit_id)
            log.warning("challenging the exit of a spent output", extra={
                "exit_id": exit_id, "exitor": row["exitor"], "attempt": len(attempts) + 1,
                "previous": attempts[-1]["error"] or attempts[-1]["status"] if attempts else None})
        self.exit_outputs()  # after the alarm: outputs that waited for a challenge above

    def _challenge_attempts(self, exit_id: int) -> list[Row]:
        """Our outbox rows challenging `exit_id`, oldest first (keys challenge:<id>, challenge:<id>:<n>)."""
        rows = watcher_store.challenge_outbox_rows(self.db, exit_id)
        return sorted(rows, key=lambda r: int(r["key"].split(":")[2]) if r["key"].count(":") == 2 else 0)

    def _exit_pending_on_chain(self, exit_id: int) -> bool:
        try:
            return int(self.rootchain.functions.exits(exit_id).call()[3]) == 1
        except Exception as err:  # an RPC hiccup: look again next poll
            log.warning("could not read the exit", extra={"exit_id": exit_id, "error": str(err)})
            return False

    def _challenge_args(self, exit_id: int, spender_id: int, slot: int, exitor: str) -> ChallengeArgs | None:
        spender = store.get_tx_by_id(self.db, spender_id)
        if spender is None:
            return None
        block = store.get_block(self.db, spender.blknum)
        if block is None or block["status"] != "final":
            return None
        root = bytes(block["root"])
        sig = store.confirm_sigs(self.db, spender_id).get(slot)
        if sig is None and exitor == self.me:
            sig = wire.confirm_sign(spender.leaf, root, self.account.key)
        if sig is None:
            sig = self._fetch_confirm_sig(spender, slot)
        if sig is None:
            log.warning("exit of a spent output, but no confirm signature to challenge with yet",
                        extra={"exit_id": exit_id})
            return None
        proof = store.proof_from_blob(bytes(block["tree"]), int(block["leaf_count"]), spender.txindex)
        return ChallengeArgs(exit_id, spender.blknum, spender.txindex, slot, spender.raw, proof, sig)

    def _fetch_confirm_sig(self, stored: store.StoredTx, slot: int) -> bytes | None:
        try:
            data = self.operator.tx(stored.blknum, stored.txindex)
        except OperatorApiError:
            return None
        text = (data or {}).get("confirm_sigs", {}).get(str(slot))
        if text is None:
            return None
        try:
            self.chain.add_confirm_sig(self.db, stored.blknum, stored.txindex, slot, bytes.fromhex(text[2:]))
        except (TxRejected, LookupError, ValueError) as err:
            log.warning("operator served a bad confirm signature", extra={"error": str(err)})
            return None
        return store.confirm_sigs(self.db, stored.id).get(slot)

    def _collect_confirm_sigs(self) -> None:
        """Keep the confirm signatures this user will need to exit what it received."""
        for ident in store.unspent_transfer_ids_of(self.db, self.me):
            stored = store.get_tx_by_id(self.db, ident)
            if stored is None:
                continue
            tx = wire.decode(stored.raw)
            known = store.confirm_sigs(self.db, stored.id)
            for slot in (0, 1):
                owner = store.get_utxo(self.db, wire.utxo_position(*tx.input(slot))) if tx.input_used(slot) else None
                if owner is not None and owner.owner != self.me and slot not in known:
                    self._fetch_confirm_sig(stored, slot)

    # -- status ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        counts = watcher_store.watched_block_counts(self.db)
        exits = watcher_store.watched_exit_counts(self.db)
        return {"user": self.me, "alarm": get_meta(self.db, "watcher.alarm"), "blocks": counts, "exits": exits}

    def run(self) -> None:
        self.bot.run()


def _block_raws(block: dict[str, Any]) -> list[bytes | None] | None:
    """Transactions by txindex (None for an empty leaf; the list reaches the fee transaction's
    index 65535 when there is one); None if the answer is unusable."""
    try:
        entries = {int(t["txindex"]): bytes.fromhex(str(t["tx"]).removeprefix("0x")) for t in block["transactions"]}
        count = int(block["leaf_count"])
    except (KeyError, TypeError, ValueError):
        return None
    if any(not (0 <= i < count or i == wire.FEE_TXINDEX) for i in entries) or count > wire.MAX_LEAVES:
        return None
    if wire.FEE_TXINDEX in entries:
        count = wire.MAX_LEAVES
    return [entries.get(i) for i in range(count)]


@click.command(help="Watch a Plasma child chain for one user: challenge bad exits, exit when the operator cheats.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="YAML/TOML settings file; PLASMA_WATCHER_<FIELD> environment variables override it.")
@click.option("--rpc-url", default=None, help="Root-chain JSON-RPC URL.")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--keystore", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Encrypted keystore of the user this watcher protects (pays gas, receives bonds).")
@click.option("--password-env", default=None, help="Environment variable holding the keystore password.")
@click.option("--db", default=None, help="SQLite state file, or a postgresql:// URL (watchers of one user "
              "sharing it: one active, the others stand by).")
@click.option("--operator-url", default=None, help="The operator's HTTP API.")
@click.option("--health-port", type=int, default=None)
@click.option("--withhold-grace", type=float, default=None, help="Seconds a submitted block may stay unserved.")
@click.option("--confirmations", type=int, default=None)
@click.option("--poll-interval", type=float, default=None)
@click.option("--lease-seconds", type=float, default=None,
              help="PostgreSQL: a standby takes over this long after the active watcher stops renewing its lease.")
@click.option("--log-level", default="INFO", show_default=True)
def main(config_path: Path | None, log_level: str, **overrides: Any) -> None:
    def body() -> None:
        cfg = load_config(WatcherConfig, config_path, "PLASMA_WATCHER", **overrides)
        configure_logging("plasma-watcher", log_level)
        account = load_account(cfg.keystore, cfg.password_env)
        # Claim the database and bind the health port before anything connects or works.
        with ExitStack() as claims:
            claim_instance(claims, cfg.db, "plasma-watcher")
            health_socket = bind_tcp("127.0.0.1", cfg.health_port, "health_port")
            binding = bind_root_chain(cfg, "root chain")
            claim_signing_key(claims, binding.w3, account.address, "plasma-watcher", cfg.db)
            Watcher(cfg, account, binding, health_socket=health_socket).run()

    run_cli(body)


if __name__ == "__main__":
    main()
