"""enode-dns: the dynamic-DNS daemon of the enode registry, and its helper commands.

\b
    enode-dns keygen node.keystore            # a node key, encrypted (password from the env)
    enode-dns enode-id node.keystore          # its enode id, registry key and address
    enode-dns run --config enode-dns.yaml     # the daemon (health at /health)
    enode-dns push-update --config ... --host 203.0.113.7
    enode-dns render --config ...             # follow once and rewrite Besu's files
    enode-dns check-host boot1.example.org
"""

from __future__ import annotations

import logging
import socket
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import BaseModel, Field, field_validator, model_validator
from rich.console import Console

from dccn_common.bot import Bot, claim_instance, claim_signing_key, exit_with_error, run_cli
from dccn_common.chain import bind_chain
from dccn_common.config import ConfigError, load_config
from dccn_common.follower import ChainFollower
from dccn_common.keys import load_account, password_from_env, write_keystore
from dccn_common.listen import bind_tcp
from dccn_common.logs import configure_logging
from dccn_common.metrics import OUTBOX_STATUSES
from dccn_common.sender import DEFAULT_LEASE_SECONDS, FINAL_STATUSES, TxSender
from dccn_common.store import open_db, postgres_dsn, redacted
from enode_dns.besu_allowlist import (
    AllowlistStatus,
    AllowlistSync,
    BesuPermissioning,
    BesuPermRpc,
    FileReload,
)
from enode_dns.besu_files import BesuFiles, RenderResult, render
from enode_dns.enode import EnodeId
from enode_dns.hosts import HostKind, classify_host
from enode_dns.pusher import EndpointPusher, PushStatus
from enode_dns.registry import mirrored_nodes, register_handlers
from enode_dns.resolver import Resolver, parse_resolver
from enode_dns.sources import AddressSource, parse_source

log = logging.getLogger("enode_dns")
ENV_PREFIX = "ENODE_DNS"


class DaemonConfig(BaseModel):
    """Settings: a YAML/TOML file, then ENODE_DNS_<FIELD> environment variables, then flags."""

    rpc_url: str = "http://127.0.0.1:8545"
    manifest: Path
    # A SQLite file, or a postgresql:// URL that several instances of this node's daemon may
    # share (one active, the others standing by; lease_seconds decides how soon one takes over).
    db: str = "enode-dns.sqlite"
    node_keystore: Path
    node_password_env: str = "ENODE_DNS_NODE_PASSWORD"
    # The account paying for transactions; the enode key's signature is what authorises them.
    sender_keystore: Path | None = None
    sender_password_env: str = "ENODE_DNS_SENDER_PASSWORD"
    address_source: str | None = None
    p2p_port: int = Field(30303, ge=1, le=65535)
    follow: bool = False
    besu_config: Path | None = None
    static_nodes: Path | None = None
    permissions_config: Path | None = None
    # How Besu learns the list: `contract` (Besu <= 24.x calls connectionAllowed), `files`
    # (nodes-allowlist in permissions_config), `rpc` (perm_* methods at besu_rpc_url).
    besu_permissioning: BesuPermissioning = "contract"
    besu_rpc_url: str | None = None
    resolver: str = "system"
    confirmations: int = Field(2, ge=0)
    poll_interval: float = Field(2.0, gt=0)
    address_interval: float = Field(5.0, gt=0)
    health_port: int | None = Field(None, ge=0, le=65535)
    lease_seconds: float = Field(DEFAULT_LEASE_SECONDS, gt=0)
    log_level: str = "INFO"

    @field_validator("db", mode="before")
    @classmethod
    def _db(cls, value: Any) -> str:
        text = str(value).strip()
        if not text:
            raise ValueError("db: expected a SQLite file path or a postgresql:// URL")
        return postgres_dsn(text) or text  # postgres:// and postgresql:// name the same server

    @field_validator("address_source")
    @classmethod
    def _source(cls, value: str | None) -> str | None:
        if value is not None:
            parse_source(value)
        return value

    @field_validator("resolver")
    @classmethod
    def _resolver(cls, value: str) -> str:
        parse_resolver(value)
        return value

    @field_validator("besu_rpc_url")
    @classmethod
    def _besu_rpc_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"besu_rpc_url {value!r}: expected an http(s):// URL of Besu's JSON-RPC")
        return value

    @model_validator(mode="after")
    def _besu_mode(self) -> DaemonConfig:
        mode = self.besu_permissioning
        if mode != "contract" and not self.follow:
            raise ValueError(f"besu_permissioning {mode} carries the registry to Besu: it needs follow: true")
        if mode == "files" and self.permissions_config is None:
            raise ValueError("besu_permissioning files needs permissions_config (Besu's permissions_config.toml)")
        if mode == "rpc" and self.besu_rpc_url is None:
            raise ValueError("besu_permissioning rpc needs besu_rpc_url (Besu's JSON-RPC with the PERM API)")
        if mode == "rpc" and self.permissions_config is not None:
            raise ValueError("besu_permissioning rpc: leave permissions_config unset, Besu persists perm_* changes "
                             "to that file itself")
        return self


@dataclass
class FileStatus:
    writes: int = 0
    last_render: RenderResult | None = None


class EnodeDnsDaemon:
    """The wired-up parts; `bot.run()` runs it, `bot.tick()` steps it (tests)."""

    NAME = "enode-dns"

    def __init__(self, config: DaemonConfig, *, health_socket: socket.socket | None = None) -> None:
        self.config = config
        self.node_key: LocalAccount = load_account(config.node_keystore, config.node_password_env)
        self.enode = EnodeId.of_account(self.node_key)
        payer = (
            load_account(config.sender_keystore, config.sender_password_env)
            if config.sender_keystore else self.node_key
        )
        binding = bind_chain(config.rpc_url, config.manifest, label="rpc_url")
        self.w3 = binding.w3
        self.ingress = binding.contract("EnodeIngress")
        self.db = open_db(config.db)
        self.bot = Bot(
            self.NAME, db=self.db, poll_interval=config.poll_interval, health_port=config.health_port,
            health_socket=health_socket, status=self.status, lease_seconds=config.lease_seconds,
        )
        self.chain = self.bot.chain(binding, account=payer, follower_name=self.NAME,
                                    confirmations=config.confirmations,
                                    start_block=binding.deployment_block("EnodeIngress"))
        assert self.chain.sender is not None
        self.sender: TxSender = self.chain.sender
        self.follower: ChainFollower | None = None
        if config.follow:
            # A removed self-update is rebroadcast, never re-signed (the bot wires the sender to the follower).
            register_handlers(self.bot, self.ingress, chain=self.chain)
            self.follower = self.chain.follower
        source: AddressSource | None = parse_source(config.address_source) if config.address_source else None
        self.pusher = EndpointPusher(
            db=self.db, sender=self.sender, ingress=self.ingress, rules_abi=binding.manifest.get("EnodeRules").abi,
            node_key=self.node_key, source=source, port=config.p2p_port, write=self.bot.transaction,
        )
        self.resolver: Resolver = parse_resolver(config.resolver)
        self.files = BesuFiles(config.besu_config, config.static_nodes, config.permissions_config)
        self.file_status = FileStatus()
        besu_rpc = BesuPermRpc(config.besu_rpc_url) if config.besu_rpc_url else None
        self.allowlist_sync = (
            AllowlistSync(self.db, besu_rpc, write=self.bot.transaction)
            if besu_rpc and config.besu_permissioning == "rpc" else None
        )
        self.file_reload = FileReload(besu_rpc) if besu_rpc and config.besu_permissioning == "files" else None
        self.bot.every(config.address_interval, "watch_address")(self.pusher.tick)
        if config.follow:
            self.bot.every(config.poll_interval, "rewrite_besu_files")(self.rewrite_files)
        self.bot.on_lead(self.took_lead)
        self._declare_metrics()

    def took_lead(self) -> None:
        """This instance became the active one (its first tick, or a takeover from another
        instance on a shared PostgreSQL database): forget what it knew while standing by."""
        self.pusher.status = PushStatus()
        if self.file_reload is not None:
            self.file_reload.pending = True  # the previous leader may have died between a write and the reload

    def lead_or_refuse(self, claims: ExitStack) -> None:
        """For a one-shot command: become the active instance, or refuse while a running daemon
        is (PostgreSQL; on SQLite the database claim already refused it). The lease is handed
        back when `claims` closes."""
        claims.callback(self.stand_down)
        if not self.bot.lead_once():
            row = self.db.execute("SELECT holder FROM sender_leases WHERE chain_id = ? AND signer = ?",
                                  (self.chain.chain_id, self.sender.address)).fetchone()
            holder = row["holder"] if row else "another instance"
            raise ConfigError(f"database {redacted(self.config.db)} is in use by {holder}, the active "
                              f"{self.NAME} instance; stop it first")

    def stand_down(self) -> None:
        for lease in self.bot.leases:
            lease.release()

    def _declare_metrics(self) -> None:
        metrics = self.bot.metrics
        # Each self-update is one outbox row; its status says whether the registry took it.
        metrics.sql_gauge("dccn_enode_registry_updates", "Endpoint self-updates pushed to the registry, by outbox "
                          "status (mined: in the registry).", self.db,
                          "SELECT COALESCE(o.status, 'pending'), COUNT(*) FROM endpoint_updates u "
                          "LEFT JOIN outbox o ON o.key = u.outbox_key GROUP BY 1", ["status"],
                          known=OUTBOX_STATUSES)
        if self.follower is not None:
            metrics.sql_gauge("dccn_enode_registry_nodes", "Nodes in the local mirror of the registry.", self.db,
                              "SELECT COUNT(*) FROM enode_nodes")
            metrics.counter("dccn_enode_besu_file_writes", "Besu files rewritten since start.",
                            lambda: self.file_status.writes)

    def rewrite_files(self) -> list[Path]:
        """Render from the mirror (re-resolving names) and write what changed."""
        result = render(mirrored_nodes(self.db), self.resolver, self.enode.hex)
        changed = self.files.write(result)
        self.file_status.last_render = result
        self.carry_allowlist(result, self.files.permissions_config in changed)
        if changed:
            self.file_status.writes += len(changed)
            log.info("besu files rewritten", extra={
                "files": [str(p) for p in changed], "bootnodes": len(result.bootnodes),
                "static_nodes": len(result.static_nodes), "unresolved": result.unresolved,
            })
        return changed

    def carry_allowlist(self, result: RenderResult, permissions_changed: bool) -> AllowlistStatus | None:
        """Besu 25.6+ no longer asks the contract: hand it the list the way it still reads one."""
        if self.allowlist_sync is not None:
            unresolved = frozenset(n.enode_hex for n in mirrored_nodes(self.db) if n.host in result.unresolved)
            return self.allowlist_sync.reconcile(result.allowlist, keep_ids=unresolved)
        if self.file_reload is not None:
            return self.file_reload.after_render(permissions_changed, len(result.allowlist))
        return None

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "enode": self.enode.hex,
            "address": asdict(self.pusher.status),
            "file_writes": self.file_status.writes,
            "besu_permissioning": self.config.besu_permissioning,
        }
        carried = self.allowlist_sync or self.file_reload
        if carried is not None:
            body["besu_allowlist"] = asdict(carried.status)
            if carried.status.errors:
                body["ok"] = False  # /health answers 503 while Besu's allowlist is behind
        if self.file_status.last_render is not None:
            body["bootnodes"] = len(self.file_status.last_render.bootnodes)
            body["unresolved"] = self.file_status.last_render.unresolved
        return body


def _load(config_path: Path | None, **overrides: Any) -> DaemonConfig:
    return load_config(DaemonConfig, config_path, ENV_PREFIX, **overrides)


def _claim(claims: ExitStack, config: DaemonConfig) -> None:
    """SQLite: one process per database (a running daemon and a push-update would share its
    outbox). PostgreSQL: instances share it; the lease picks the active one."""
    claim_instance(claims, config.db, EnodeDnsDaemon.NAME)


def _claim_key(claims: ExitStack, config: DaemonConfig, daemon: EnodeDnsDaemon) -> None:
    claim_signing_key(claims, daemon.w3, daemon.sender.address, EnodeDnsDaemon.NAME, config.db)


def _guard(fn: Callable[[ExitStack], Any]) -> Any:
    """User errors (config, keystore, manifest, bad values) -> one line and exit code 2. The
    claims are released when the command ends, also when it runs in-process (tests)."""
    with ExitStack() as claims:
        try:
            return run_cli(lambda: fn(claims))
        except ValueError as err:
            exit_with_error(str(err))


config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    help="YAML/TOML settings file (ENODE_DNS_* environment variables override it).",
)


@click.group(help=__doc__)
def main() -> None:
    pass


@main.command(help="Run the daemon until SIGTERM/SIGINT: push self-updates, rewrite Besu's files.")
@config_option
@click.option("--health-port", type=int, help="Serve GET /health on 127.0.0.1 at this port.")
def run(config_path: Path | None, health_port: int | None) -> None:
    def body(claims: ExitStack) -> None:
        config = _load(config_path, health_port=health_port)
        configure_logging("enode-dns", config.log_level)
        # Claim the database and bind the health port before anything connects or works.
        _claim(claims, config)
        health_socket = bind_tcp("127.0.0.1", config.health_port, "health_port") if config.health_port is not None else None
        daemon = EnodeDnsDaemon(config, health_socket=health_socket)
        _claim_key(claims, config, daemon)
        if daemon.follower is not None:
            # Files match the mirror before the first poll, each time this instance becomes the active one.
            daemon.bot.on_lead(daemon.rewrite_files)
        daemon.bot.run()

    _guard(body)


@main.command(help="Generate a node key into an encrypted keystore; prints its enode id.")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--password-env", default="ENODE_DNS_NODE_PASSWORD", show_default=True,
              help="Environment variable holding the keystore password.")
def keygen(path: Path, password_env: str) -> None:
    def body(claims: ExitStack) -> None:
        if path.exists():
            raise ConfigError(f"{path} exists; refusing to overwrite a node key")
        account = Account.create()
        write_keystore(path, account.key, password_from_env(password_env))
        click.echo(EnodeId.of_account(account).hex)

    _guard(body)


@main.command("enode-id", help="Print a keystore's enode id, high/low halves, registry key and address.")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--password-env", default="ENODE_DNS_NODE_PASSWORD", show_default=True,
              help="Environment variable holding the keystore password.")
def enode_id(path: Path, password_env: str) -> None:
    def body(claims: ExitStack) -> None:
        enode = EnodeId.of_account(load_account(path, password_env))
        click.echo(f"enode id:  {enode.hex}\nhigh:      0x{enode.high.hex()}\nlow:       0x{enode.low.hex()}\n"
                   f"key:       0x{enode.key.hex()}\naddress:   {enode.address}")

    _guard(body)


@main.command("check-host", help="Say how the registry reads a host (IPv4, IPv6, DNS name or invalid).")
@click.argument("host")
def check_host(host: str) -> None:
    kind, packed = classify_host(host)
    if kind == HostKind.INVALID:
        exit_with_error(f"{host!r} is not an IP literal or a valid lower-case DNS name")
    click.echo(f"{kind.name.lower()}" + (f" {packed.hex()}" if kind != HostKind.DNS else ""))


@main.command("push-update", help="Push one signed self-update (host, port) and wait until it is mined.")
@config_option
@click.option("--host", required=True, help="New IP literal or DNS name.")
@click.option("--port", type=click.IntRange(1, 65535), help="New TCP port (default: p2p_port).")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for the transaction.")
def push_update(config_path: Path | None, host: str, port: int | None, timeout: float) -> None:
    def body(claims: ExitStack) -> None:
        if classify_host(host)[0] == HostKind.INVALID:
            raise ConfigError(f"{host!r} is not an IP literal or a valid lower-case DNS name")
        config = _load(config_path)
        _claim(claims, config)
        daemon = EnodeDnsDaemon(config)
        _claim_key(claims, config, daemon)
        daemon.lead_or_refuse(claims)
        key = daemon.pusher.push(host, port or config.p2p_port)
        if key is None:
            click.echo(f"nothing to do: {daemon.pusher.status.state}")
            return
        deadline = time.monotonic() + timeout
        with Console(stderr=True).status(f"waiting for {key} to be mined"):
            while True:
                daemon.sender.process()
                entry = daemon.sender.entry(key)
                if entry is not None and entry.status in FINAL_STATUSES:
                    break
                if time.monotonic() > deadline:
                    exit_with_error(f"{key} not mined within {timeout:.0f}s; `enode-dns run` will keep driving it", 1)
                time.sleep(0.2)
        if entry.status != "mined":
            exit_with_error(f"{key} {entry.status}: {entry.error or ''}", 1)
        click.echo(f"{key} mined in block {entry.block_number} ({entry.tx_hash})")

    _guard(body)


@main.command("render", help="Follow the registry once (to the confirmed head) and rewrite Besu's files.")
@config_option
def render_files(config_path: Path | None) -> None:
    def body(claims: ExitStack) -> None:
        config = _load(config_path, follow=True)
        _claim(claims, config)
        daemon = EnodeDnsDaemon(config)
        daemon.lead_or_refuse(claims)
        assert daemon.follower is not None
        with Console(stderr=True).status("following the registry"):
            daemon.follower.poll_once()
        changed = daemon.rewrite_files()
        click.echo(f"rewrote {len(changed)} file(s): {', '.join(map(str, changed)) or 'none changed'}")

    _guard(body)


if __name__ == "__main__":
    sys.exit(main())
