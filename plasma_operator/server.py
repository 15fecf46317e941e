"""`plasma-operator`: the child-chain operator service.

One process: a service loop (ChainFollower over the RootChain events, the block
builder, the durable TxSender for `submitBlock`) and the HTTP API in a thread. Both
work on the same WAL database through their own connections.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import click
import uvicorn
from eth_account.signers.local import LocalAccount
from web3 import Web3

from dccn_common.config import ConfigError, load_config
from dccn_common.follower import ChainFollower
from dccn_common.health import balance_check
from dccn_common.keys import claim_signer, load_account
from dccn_common.listen import bind_tcp
from dccn_common.logs import configure_logging
from dccn_common.metrics import ServiceMetrics
from dccn_common.sender import TxSender
from dccn_common.service import Service, run_cli
from dccn_common.store import open_store, transaction
from plasma_operator.api import ApiState, create_app
from plasma_operator.config import OperatorConfig, connect_checked, load_rootchain
from plasma_operator.ledger import ChildChain
from plasma_operator.recovery import signer_pool
from plasma_operator.store import BLOCK_STATUSES, open_chain_db
from plasma_operator.wire import MAX_LEAVES

log = logging.getLogger("plasma_operator")

MAX_SUBMIT_RETRIES = 5


class Operator:
    def __init__(self, cfg: OperatorConfig, account: LocalAccount, w3: Web3) -> None:
        self.cfg = cfg
        self.w3 = w3
        self.rootchain, deploy_block = load_rootchain(w3, cfg)
        on_chain_operator = self.rootchain.functions.operator().call()
        if on_chain_operator != account.address:
            raise ConfigError(f"keystore account {account.address} is not the RootChain operator ({on_chain_operator})")
        self.db = open_chain_db(cfg.db)
        self.api_db = open_chain_db(cfg.db)
        self.follower = ChainFollower(w3, self.db, "plasma-operator", confirmations=cfg.confirmations,
                                      start_block=deploy_block)
        self.sender = TxSender(w3, self.db, account)
        self.sender.watch_rewinds(self.follower)  # a removed submitBlock is rebroadcast, never signed anew
        self.chain = ChildChain(account.address, self._enqueue_root, block_size=cfg.block_size,
                                fee_outputs=cfg.fee_outputs)
        if self.db.execute("SELECT 1 FROM blocks WHERE kind = 'child' LIMIT 1").fetchone() is None:
            self.chain.set_first_child_block(self.db, int(self.rootchain.functions.currentChildBlock().call()))
        self._declare_handlers()
        self.service = Service("plasma-operator", w3=w3, db=self.db, follower=self.follower,
                               poll_interval=cfg.poll_interval,
                               dependencies={"signing_balance": balance_check(w3, account.address, self.db)})
        self.service.every(cfg.block_interval, "build_block")(self.build_block)
        self.service.every(cfg.poll_interval, "submit_roots")(self.drive_submissions)
        self.service.metrics.watch_sender(self.sender)  # it submits roots from a task, not the service's outbox pass
        declare_metrics(self.service.metrics, self.db)
        self.api_state = ApiState(self.chain, self.api_db, self.health, self.status, max_batch=cfg.max_batch,
                                  metrics=self.service.metrics.exposition)
        self.app = create_app(self.api_state)
        self._api_server: uvicorn.Server | None = None

    # -- root-chain events -------------------------------------------------------------

    def _declare_handlers(self) -> None:
        for name in ("Deposit", "BlockSubmitted", "ExitStarted", "ExitFinalized", "ExitChallenged"):
            self.follower.on(self.rootchain, name)(self.chain.on_event)
        self.follower.on_rewind(lambda first_removed, db: self.chain.rewind(db, first_removed))

    # -- blocks ------------------------------------------------------------------------

    def _enqueue_root(self, db: sqlite3.Connection, blknum: int, root: bytes, attempt: int = 0) -> None:
        key = f"submitBlock:{blknum}" + (f":retry{attempt}" if attempt else "")
        self.sender.enqueue_call(db, key, self.rootchain.functions.submitBlock(root))

    def build_block(self) -> None:
        self.chain.seal(self.db)

    def drive_submissions(self) -> None:
        """Send queued roots; a block is 'submitted' once its submitBlock is mined."""
        self.sender.process()
        # 'submitted' too: a rewind puts a final block back there, and its submitBlock re-included
        # on the new chain may revert; then it is retried under its number like a failed one.
        sealed = self.db.execute("SELECT blknum, root, status FROM blocks WHERE status IN ('sealed', 'submitted') "
                                 "ORDER BY blknum").fetchall()
        for row in sealed:
            blknum, root = int(row["blknum"]), bytes(row["root"])
            on_chain_root = bytes(self.rootchain.functions.getChildChain(blknum).call()[0])
            if on_chain_root == root:
                if row["status"] == "sealed":
                    with transaction(self.db):
                        self.chain.mark_submitted(self.db, blknum)
                continue
            self._retry_if_failed(blknum, root)
            break  # later blocks wait for this one: the contract numbers blocks in order

    def _retry_if_failed(self, blknum: int, root: bytes) -> None:
        attempts = self.db.execute("SELECT key, status, error FROM outbox WHERE key LIKE ? ORDER BY created_at",
                                   (f"submitBlock:{blknum}%",)).fetchall()
        if not attempts or attempts[-1]["status"] not in ("failed", "reverted"):
            return
        expected = int(self.rootchain.functions.currentChildBlock().call())
        later = self.db.execute("SELECT key FROM outbox WHERE key LIKE 'submitBlock:%' AND status IN ('pending', 'sent') "
                                "AND CAST(substr(key, 13) AS INTEGER) > ?", (blknum,)).fetchall()
        if later:
            # A later block's submitBlock is in flight: it would take this number first.
            log.critical("submitBlock of a block reverted while a later one is in flight; not resubmitting",
                         extra={"blknum": blknum, "in_flight": [r["key"] for r in later],
                                "error": attempts[-1]["error"]})
            return
        if expected != blknum:
            log.critical("cannot submit block: the contract expects another number",
                         extra={"blknum": blknum, "current_child_block": expected})
            return
        if len(attempts) > MAX_SUBMIT_RETRIES:
            log.critical("submitBlock keeps failing; giving up", extra={"blknum": blknum, "error": attempts[-1]["error"]})
            return
        log.warning("submitBlock failed; retrying", extra={"blknum": blknum, "error": attempts[-1]["error"]})
        with transaction(self.db):
            self._enqueue_root(self.db, blknum, root, attempt=len(attempts))

    # -- status ------------------------------------------------------------------------

    def status(self, db: sqlite3.Connection) -> dict[str, Any]:
        body = self.chain.summary(db)
        outbox = db.execute("SELECT COUNT(*) AS n FROM outbox WHERE status IN ('pending', 'sent')").fetchone()
        body.update({
            "contract": self.rootchain.address,
            "chain_head_seen": self.follower.status.head,
            "follower_cursor": self.follower.status.cursor,
            "confirmations": self.cfg.confirmations,
            "outbox_pending": int(outbox["n"]),
        })
        return body

    def health(self) -> dict[str, Any]:
        body = self.service.status()
        # Healthy while the follower keeps polling the root chain and the last tick succeeded.
        since_poll = time.time() - self.follower.status.last_poll
        body["ok"] = (body["last_error"] is None and not body["reasons"]
                      and since_poll < max(30.0, 10 * self.cfg.poll_interval))
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
            self.service.run()
        finally:
            if self._api_server is not None:
                self._api_server.should_exit = True
            if self.chain.recovery is not None:
                self.chain.recovery.close()


def declare_metrics(metrics: ServiceMetrics, db: sqlite3.Connection) -> None:
    """The operator's own figures (served by the API at /metrics)."""
    metrics.sql_gauge("dccn_plasma_pending_transactions", "Transactions in the open block, not yet sealed.", db,
                      "SELECT COUNT(*) FROM txs JOIN blocks USING (blknum) WHERE blocks.status = 'open'")
    last = "(SELECT MAX(blknum) FROM blocks WHERE kind = 'child' AND status != 'open')"
    metrics.sql_gauge("dccn_plasma_last_block_transactions", "User transactions in the last sealed child block.",
                      db, f"SELECT COUNT(*) FROM txs WHERE blknum = {last} AND kind = 'transfer'")
    metrics.sql_gauge("dccn_plasma_block_fill_ratio", f"Last sealed block's user transactions / {MAX_LEAVES:,}.",
                      db, f"SELECT COUNT(*) * 1.0 / {MAX_LEAVES} FROM txs WHERE blknum = {last} AND kind = 'transfer'")
    metrics.sql_gauge("dccn_plasma_child_blocks", "Child blocks by status (open, sealed, submitted, final).", db,
                      "SELECT status, COUNT(*) FROM blocks WHERE kind = 'child' GROUP BY status", ["status"],
                      known=BLOCK_STATUSES)
    metrics.sql_gauge("dccn_plasma_last_block_number", "Newest child block by status.", db,
                      "SELECT status, MAX(blknum) FROM blocks WHERE kind = 'child' GROUP BY status", ["status"])


@click.command(help="Run the Plasma child-chain operator (follower, block builder, HTTP API).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="YAML/TOML settings file; PLASMA_OPERATOR_<FIELD> environment variables override it.")
@click.option("--rpc-url", default=None, help="Root-chain JSON-RPC URL.")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Deployment manifest holding RootChain.")
@click.option("--keystore", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Encrypted keystore of the operator account.")
@click.option("--password-env", default=None, help="Environment variable holding the keystore password.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None, help="SQLite state file.")
@click.option("--api-host", default=None)
@click.option("--api-port", type=int, default=None)
@click.option("--block-interval", type=float, default=None, help="Seconds between blocks.")
@click.option("--block-size", type=int, default=None, help="User transactions per block (max 65,535).")
@click.option("--recovery-workers", type=int, default=None,
              help="Processes recovering batch signatures in parallel (0: in process).")
@click.option("--confirmations", type=int, default=None, help="Root-chain confirmations before acting on events.")
@click.option("--poll-interval", type=float, default=None)
@click.option("--log-level", default="INFO", show_default=True)
def main(config_path: Path | None, log_level: str, **overrides: Any) -> None:
    def body() -> None:
        cfg = load_config(OperatorConfig, config_path, "PLASMA_OPERATOR", **overrides)
        configure_logging("plasma-operator", log_level)
        account = load_account(cfg.keystore, cfg.password_env)
        # Claim the database and bind the API before anything connects or works.
        with open_store(cfg.db, "plasma-operator"):
            api_socket = bind_tcp(cfg.api_host, cfg.api_port, "api_port")
            w3 = connect_checked(cfg.rpc_url)
            with claim_signer(w3, account.address, "plasma-operator"):
                Operator(cfg, account, w3).run(api_socket)

    run_cli(body)


if __name__ == "__main__":
    main()
