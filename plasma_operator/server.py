"""`plasma-operator`: the child-chain operator service.

One process: a Bot (dccn_common.bot: the RootChain events, the block builder, the durable
outbox for `submitBlock`) and the HTTP API in a thread, each on its own connection to the
database: a SQLite file (WAL), or a PostgreSQL URL that several operators may share. Then
the one holding the lease is active; a standby serves reads and refuses transactions (503)
until it takes over, continuing from the shared child chain.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
import uvicorn
from eth_account.signers.local import LocalAccount

from dccn_common.bot import Bot, claim_instance, claim_signing_key, run_cli
from dccn_common.chain import ChainBinding
from dccn_common.config import ConfigError, load_config
from dccn_common.keys import load_account
from dccn_common.listen import bind_tcp
from dccn_common.logs import configure_logging
from dccn_common.metrics import ServiceMetrics
from dccn_common.sender import OutboxEntry, TxSender
from dccn_common.store import Connection, apply_schema
from plasma_core import store
from plasma_core.config import bind_root_chain, load_rootchain
from plasma_core.ledger import ChildChain
from plasma_core.recovery import signer_pool
from plasma_core.store import open_chain_db
from plasma_core.wire import MAX_LEAVES
from plasma_operator.api import ApiState, create_app
from plasma_operator.config import OperatorConfig

log = logging.getLogger("plasma_operator")

MAX_SUBMIT_RETRIES = 5

# Each block's submitBlock attempts live in block_submissions (store.SUBMISSIONS_SCHEMA), kept
# from the outbox's final outcomes (bot.on_settled) and its rewinds.


def submit_key(blknum: int, attempt: int = 0) -> str:
    return f"submitBlock:{blknum}" + (f":retry{attempt}" if attempt else "")


def parse_submit_key(key: str) -> tuple[int, int]:
    """(blknum, attempt) of a submitBlock outbox key."""
    parts = key.split(":")
    return int(parts[1]), int(parts[2].removeprefix("retry")) if len(parts) > 2 else 0


def _submissions_v1(db: Connection) -> None:
    store.create_submissions_table(db)
    # A database of an earlier version: its submitBlock rows, latest attempt per block.
    latest: dict[int, tuple[int, Any]] = {}
    for row in store.outbox_submit_rows(db):
        blknum, attempt = parse_submit_key(row["key"])
        if blknum not in latest or attempt >= latest[blknum][0]:
            latest[blknum] = (attempt, row)
    for blknum, (attempt, row) in latest.items():
        final = row["status"] in ("mined", "reverted", "failed")
        store.insert_submission(db, blknum, attempt + 1, row["status"] if final else "pending", row["error"],
                                row["block_number"] if final else None)


def submission_settled(entry: OutboxEntry, db: Connection) -> None:
    """on_settled("submitBlock"): the final outcome of a block's latest submitBlock attempt."""
    blknum, attempt = parse_submit_key(entry.key)
    store.settle_submission(db, blknum, attempt + 1, entry.status, entry.error, entry.block_number)


def submissions_rewound(first_removed: int, db: Connection) -> None:
    """A reorg put submitBlock rows mined in removed blocks back in flight (the sender's rewind)."""
    store.rewind_submissions(db, first_removed)


class Operator:
    def __init__(self, cfg: OperatorConfig, account: LocalAccount, binding: ChainBinding | None = None) -> None:
        self.cfg = cfg
        binding = binding or bind_root_chain(cfg, "root chain")
        self.w3 = binding.w3
        self.rootchain, deploy_block = load_rootchain(binding, cfg)
        on_chain_operator = self.rootchain.functions.operator().call()
        if on_chain_operator != account.address:
            raise ConfigError(f"keystore account {account.address} is not the RootChain operator ({on_chain_operator})")
        self.db = open_chain_db(cfg.db)
        self.api_db = open_chain_db(cfg.db)
        self.chain = ChildChain(account.address, self._enqueue_root, block_size=cfg.block_size,
                                fee_outputs=cfg.fee_outputs)
        self.chain.guard = self.fence  # the API's writes too: a standby commits no transaction
        self.bot = Bot("plasma-operator", db=self.db, poll_interval=cfg.poll_interval,
                       lease_seconds=cfg.lease_seconds)
        # The operator drives its outbox from its own task: a mined submitBlock is seen in the same pass.
        root = self.bot.chain(binding, account=account, follower_name="plasma-operator",
                              confirmations=cfg.confirmations, start_block=deploy_block, drive_sender=False)
        assert root.sender is not None
        self.sender: TxSender = root.sender
        self.follower = root.follower
        apply_schema(self.db, "plasma_submissions", 1, _submissions_v1)
        self._declare_handlers()
        declare_metrics(self.bot.metrics, self.db)
        self.api_state = ApiState(self.chain, self.api_db, self.health, self.status, max_batch=cfg.max_batch,
                                  metrics=self.bot.metrics.exposition)
        self.app = create_app(self.api_state)
        self._api_server: uvicorn.Server | None = None

    # -- declaration -------------------------------------------------------------------

    def _declare_handlers(self) -> None:
        bot, events, chain = self.bot, self.rootchain.events, self.chain
        bot.on(events.Deposit)(chain.deposit_event)
        bot.on(events.BlockSubmitted)(chain.block_submitted_event)
        bot.on(events.ExitStarted)(chain.exit_started_event)
        bot.on(events.ExitFinalized)(chain.exit_finalized_event)
        bot.on(events.ExitChallenged)(chain.exit_challenged_event)
        bot.on_rewind()(chain.rewind_event)
        bot.on_rewind()(submissions_rewound)
        bot.on_settled("submitBlock")(submission_settled)
        bot.on_lead(self.on_lead)
        bot.every(self.cfg.block_interval, "build_block")(self.build_block)
        bot.every(self.cfg.poll_interval, "submit_roots")(self.drive_submissions)

    def on_lead(self) -> None:
        """This instance became the active one (also at its first tick).

        The child chain lives in the shared database: the open block, its next index, the sealed
        blocks and their submissions are read from it at every step, so a standby taking over
        seals the next block under the right number and never applies a transaction twice.
        What is left is the numbering of a new database, aligned with the contract here (only
        the active instance writes)."""
        with self.bot.transaction(self.db):
            if not store.has_child_block(self.db):
                self.chain.set_first_child_block(self.db, int(self.rootchain.functions.currentChildBlock().call()))
        log.info("active: child chain state read from the database", extra=self.chain.summary(self.db))

    def fence(self, db: Connection) -> None:
        """Inside a write transaction on either connection (the bot's or the API's): raise
        LeaseLost unless this instance is the active one (the API answers 503)."""
        self.bot.fence(db)
        for lease in self.bot.leases:
            if lease.db is not db:  # the bot checks the lease on its own connection
                lease.check(db)

    # -- blocks ------------------------------------------------------------------------

    def _enqueue_root(self, db: Connection, blknum: int, root: bytes, attempt: int = 0) -> None:
        if self.sender.enqueue_call(db, submit_key(blknum, attempt), self.rootchain.functions.submitBlock(root)):
            store.record_submission_attempt(db, blknum, attempt + 1)

    def build_block(self) -> None:
        with self.bot.transaction(self.db):
            self.chain.seal(self.db)

    def drive_submissions(self) -> None:
        """Send queued roots; a block is 'submitted' once its submitBlock is mined."""
        self.sender.process()
        # 'submitted' too: a rewind puts a final block back there, and its submitBlock re-included
        # on the new chain may revert; then it is retried under its number like a failed one.
        sealed = store.unconfirmed_blocks(self.db)
        for row in sealed:
            blknum, root = int(row["blknum"]), bytes(row["root"])
            on_chain_root = bytes(self.rootchain.functions.getChildChain(blknum).call()[0])
            if on_chain_root == root:
                if row["status"] == "sealed":
                    with self.bot.transaction(self.db):
                        self.chain.mark_submitted(self.db, blknum)
                continue
            self._retry_if_failed(blknum, root)
            break  # later blocks wait for this one: the contract numbers blocks in order

    def _retry_if_failed(self, blknum: int, root: bytes) -> None:
        latest = store.latest_submission(self.db, blknum)
        if latest is None or latest["status"] not in ("failed", "reverted"):
            return
        attempts = int(latest["attempts"])
        expected = int(self.rootchain.functions.currentChildBlock().call())
        later = store.later_pending_submissions(self.db, blknum)
        if later:
            # A later block's submitBlock is in flight: it would take this number first.
            log.critical("submitBlock of a block reverted while a later one is in flight; not resubmitting",
                         extra={"blknum": blknum, "in_flight": [submit_key(n) for n in later],
                                "error": latest["error"]})
            return
        if expected != blknum:
            log.critical("cannot submit block: the contract expects another number",
                         extra={"blknum": blknum, "current_child_block": expected})
            return
        if attempts > MAX_SUBMIT_RETRIES:
            log.critical("submitBlock keeps failing; giving up", extra={"blknum": blknum, "error": latest["error"]})
            return
        log.warning("submitBlock failed; retrying", extra={"blknum": blknum, "error": latest["error"]})
        with self.bot.transaction(self.db):
            self._enqueue_root(self.db, blknum, root, attempt=attempts)

    # -- status ------------------------------------------------------------------------

    def status(self, db: Connection) -> dict[str, Any]:
        body = self.chain.summary(db)
        body.update({
            "contract": self.rootchain.address,
            "chain_head_seen": self.follower.status.head,
            "follower_cursor": self.follower.status.cursor,
            "confirmations": self.cfg.confirmations,
            "outbox_pending": store.outbox_in_flight_count(db),
        })
        return body

    def health(self) -> dict[str, Any]:
        body = self.bot.status()
        # Healthy while the follower keeps polling the root chain and the last tick succeeded
        # (a standby polls nothing: healthy while its ticks, which renew its claim, succeed).
        since_poll = time.time() - self.follower.status.last_poll
        fresh = since_poll < max(30.0, 10 * self.cfg.poll_interval)
        standing_by = bool(self.bot.leases) and not self.bot.is_leader and body["last_tick"] > 0
        body["ok"] = body["last_error"] is None and not body["reasons"] and (fresh or standing_by)
        body["seconds_since_poll"] = round(since_poll, 3)
        with self.api_state.lock:
            body.update(self.status(self.api_db))
        return body

    # -- running -----------------------------------------------------------------------

    def start_api(self, sock: socket.socket | None = None) -> None:
        """Serve the API on `sock` (bound by the CLI before any work), or bind api_host:api_port now."""
        sock = sock or bind_tcp(self.cfg.api_host, self.cfg.api_port, "api_port")
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._api_server = uvicorn.Server(config)
        threading.Thread(target=self._api_server.run, kwargs={"sockets": [sock]}, name="api", daemon=True).start()
        log.info("api listening", extra={"host": self.cfg.api_host, "port": sock.getsockname()[1]})

    def run(self, api_socket: socket.socket | None = None) -> None:
        if self.cfg.recovery_workers:
            self.chain.recovery = signer_pool(self.cfg.recovery_workers)
        try:
            self.start_api(api_socket)
            self.bot.run()
        finally:
            if self._api_server is not None:
                self._api_server.should_exit = True
            if self.chain.recovery is not None:
                self.chain.recovery.close()


def declare_metrics(metrics: ServiceMetrics, db: Connection) -> None:
    """The operator's own figures (served by the API at /metrics)."""
    metrics.sql_gauge("dccn_plasma_pending_transactions", "Transactions in the open block, not yet sealed.", db,
                      store.PENDING_TX_COUNT)
    metrics.sql_gauge("dccn_plasma_last_block_transactions", "User transactions in the last sealed child block.",
                      db, store.LAST_BLOCK_TRANSFER_COUNT)
    metrics.sql_gauge("dccn_plasma_block_fill_ratio", f"Last sealed block's user transactions / {MAX_LEAVES:,}.",
                      db, store.LAST_BLOCK_FILL_RATIO)
    metrics.sql_gauge("dccn_plasma_child_blocks", "Child blocks by status (open, sealed, submitted, final).", db,
                      store.CHILD_BLOCKS_BY_STATUS, ["status"], known=store.BLOCK_STATUSES)
    metrics.sql_gauge("dccn_plasma_last_block_number", "Newest child block by status.", db,
                      store.NEWEST_CHILD_BLOCK_BY_STATUS, ["status"])


@click.command(help="Run the Plasma child-chain operator (follower, block builder, HTTP API).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="YAML/TOML settings file; PLASMA_OPERATOR_<FIELD> environment variables override it.")
@click.option("--rpc-url", default=None, help="Root-chain JSON-RPC URL.")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Deployment manifest holding RootChain.")
@click.option("--keystore", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Encrypted keystore of the operator account.")
@click.option("--password-env", default=None, help="Environment variable holding the keystore password.")
@click.option("--db", default=None,
              help="SQLite state file, or a postgresql:// URL (operators sharing it: one active, the others stand by).")
@click.option("--api-host", default=None)
@click.option("--api-port", type=int, default=None)
@click.option("--block-interval", type=float, default=None, help="Seconds between blocks.")
@click.option("--block-size", type=int, default=None, help="User transactions per block (max 65,535).")
@click.option("--recovery-workers", type=int, default=None,
              help="Processes recovering batch signatures in parallel (0: in process).")
@click.option("--confirmations", type=int, default=None, help="Root-chain confirmations before acting on events.")
@click.option("--poll-interval", type=float, default=None)
@click.option("--lease-seconds", type=float, default=None,
              help="PostgreSQL: a standby takes over this long after the active operator stops renewing its lease.")
@click.option("--log-level", default="INFO", show_default=True)
def main(config_path: Path | None, log_level: str, **overrides: Any) -> None:
    def body() -> None:
        cfg = load_config(OperatorConfig, config_path, "PLASMA_OPERATOR", **overrides)
        configure_logging("plasma-operator", log_level)
        account = load_account(cfg.keystore, cfg.password_env)
        # Claim the database and bind the API before anything connects or works.
        with ExitStack() as claims:
            claim_instance(claims, cfg.db, "plasma-operator")
            api_socket = bind_tcp(cfg.api_host, cfg.api_port, "api_port")
            binding = bind_root_chain(cfg, "root chain")
            claim_signing_key(claims, binding.w3, account.address, "plasma-operator", cfg.db)
            Operator(cfg, account, binding).run(api_socket)

    run_cli(body)


if __name__ == "__main__":
    main()
