"""`token-bridge`: run a validator or the relayer, or show the state of both bridges."""

from __future__ import annotations

import decimal
import functools
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import click
from rich.console import Console
from rich.table import Table

from dccn_common.bot import Bot, claim_instance, claim_signing_key, run_cli
from dccn_common.config import ConfigError, load_config
from dccn_common.keys import load_account
from dccn_common.listen import bind_tcp
from dccn_common.logs import configure_logging
from dccn_common.metrics import ServiceMetrics
from dccn_common.store import open_db, postgres_dsn
from token_bridge.chains import ANKR, ETHEREUM, Side, open_side
from token_bridge.config import ENV_PREFIX, BridgeConfig
from token_bridge.relayer import SERVICE_NAME as RELAYER
from token_bridge.relayer import DestinationRelay, open_relay_db
from token_bridge.validator import SCHEMA as VALIDATOR_SCHEMA
from token_bridge.validator import SERVICE_NAME as VALIDATOR
from token_bridge.validator import SignatureServer, Validator

# Health dependency names of the relayer's two nodes (the Ankr node has always been "rpc").
RELAYER_RPC_DEPENDENCY = {ETHEREUM: "rpc ethereum", ANKR: "rpc"}

_common = [
    click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="YAML/TOML settings (fields of token_bridge.config.BridgeConfig); "
                      "TOKEN_BRIDGE_<FIELD> environment variables override it."),
    click.option("--db", "db_path", default=None,
                 help="SQLite state file or a postgresql:// URL (overrides db_path)."),
    click.option("--health-port", type=int, default=None, help="Serve GET /health here (overrides health_port)."),
]


def common_options(fn: Any) -> Any:
    for option in reversed(_common):
        fn = option(fn)
    return fn


def open_sides(config: BridgeConfig) -> dict[str, Side]:
    return {
        ETHEREUM: open_side(ETHEREUM, config.ethereum_rpc_url, config.ethereum_manifest, config.ethereum_confirmations,
                            config.ethereum_header_rpc_url),
        ANKR: open_side(ANKR, config.ankr_rpc_url, config.ankr_manifest, config.ankr_confirmations,
                        config.ankr_header_rpc_url),
    }


def _load(config_path: Path | None, **overrides: Any) -> BridgeConfig:
    return load_config(BridgeConfig, config_path, ENV_PREFIX, **overrides)


def _account(config: BridgeConfig) -> Any:
    if config.keystore is None:
        raise ConfigError("keystore is required (the validator's or relayer's encrypted key)")
    return load_account(config.keystore, config.password_env)


@click.group(help="ANKR bridge between Ethereum (ERC20) and the Ankr chain (native coin).")
def main() -> None:
    pass


@main.command(help="Run a validator: follow both bridges, prove and sign transfers, serve signatures.")
@common_options
@click.option("--signatures-port", type=int, default=None, help="Serve GET /signatures here (loopback).")
def validator(config_path: Path | None, db_path: str | None, health_port: int | None,
              signatures_port: int | None) -> None:
    def body() -> None:
        config = _load(config_path, db_path=db_path, health_port=health_port, signatures_port=signatures_port)
        logger = configure_logging(VALIDATOR)
        account = _account(config)
        # Claim the database and bind both ports before anything connects or works.
        with ExitStack() as claims:
            claim_instance(claims, config.db_path, VALIDATOR)
            signatures_socket = bind_tcp(config.signatures_host, config.signatures_port, "signatures_port")
            health_socket = _health_socket(config)
            sides = open_sides(config)
            _claim_signing_key(claims, sides, account.address, VALIDATOR, config.db_path)
            db = open_db(config.db_path, VALIDATOR_SCHEMA)
            bot = Bot(VALIDATOR, db=db, poll_interval=config.poll_interval, health_socket=health_socket,
                      status=lambda: {**node.status(), "signatures_url": server.url},
                      lease_seconds=config.lease_seconds)
            node = Validator(sides, config.db_path, account, bot=bot, db=db)  # declares the followers' handlers
            server = SignatureServer(node, sock=signatures_socket).start()
            _validator_metrics(bot.metrics, node)
            logger.info("validator up", extra={"validator": account.address, "signatures_url": server.url})
            try:
                bot.run()
            finally:
                server.stop()

    run_cli(body)


@main.command(help="Run the relayer: collect signatures from validators, execute transfers on each side.")
@common_options
@click.option("--validator-url", "validator_urls", multiple=True, help="A validator's signature URL (repeatable).")
def relayer(config_path: Path | None, db_path: str | None, health_port: int | None,
            validator_urls: tuple[str, ...]) -> None:
    def body() -> None:
        config = _load(config_path, db_path=db_path, health_port=health_port,
                       validator_urls=list(validator_urls) or None)
        logger = configure_logging(RELAYER)
        if not config.validator_urls:
            raise ConfigError("validator_urls is empty: the relayer needs the validators' signature URLs")
        account = _account(config)
        stores = {name: relay_db_path(config.db_path, name) for name in (ETHEREUM, ANKR)}
        # Claim both stores and bind the health port before anything connects or works.
        with ExitStack() as claims:
            for store in stores.values():
                claim_instance(claims, store, RELAYER)
            health_socket = _health_socket(config)
            sides = open_sides(config)
            _claim_signing_key(claims, sides, account.address, RELAYER, config.db_path)
            dbs = {name: open_relay_db(store) for name, store in stores.items()}
            bot = Bot(RELAYER, db=dbs[ANKR], poll_interval=config.poll_interval, health_socket=health_socket,
                      status=lambda: {"relayer": account.address,
                                      "transfers": {r.side.name: r.counts() for r in relays},
                                      "unreachable_validators": sorted(
                                          {u for r in relays for u in r.last_fetch_errors})},
                      lease_seconds=config.lease_seconds)
            # One chain per destination, in this order (the leases are taken in it), each with its
            # own store; each destination's sender pays its own gas: both balances must cover the
            # next transaction.
            relays = [DestinationRelay(side, stores[name], account, config.validator_urls, bot=bot, db=dbs[name],
                                       rpc_dependency=RELAYER_RPC_DEPENDENCY[name],
                                       balance_dependency=f"signing_balance {name}")
                      for name, side in sides.items()]
            _relayer_metrics(bot.metrics, relays)

            @bot.every(config.poll_interval, "relay")
            def relay() -> None:
                for item in relays:
                    item.tick()

            logger.info("relayer up", extra={"relayer": account.address, "validators": len(config.validator_urls)})
            bot.run()

    run_cli(body)


def _validator_metrics(metrics: ServiceMetrics, node: Validator) -> None:
    # The bot watches the followers and reports the signing key (it signs transfers, not transactions).
    metrics.sql_gauge("dccn_bridge_signatures", "Transfers this validator signed, by destination chain.", node.db,
                      "SELECT destination_chain_id, COUNT(*) FROM signatures GROUP BY destination_chain_id",
                      ["destination_chain_id"])
    metrics.sql_gauge("dccn_bridge_rejected_logs", "Transfer logs refused (proof or content check failed).",
                      node.db, "SELECT source, COUNT(*) FROM rejected_logs GROUP BY source", ["source"])


def _relayer_metrics(metrics: ServiceMetrics, relays: list[DestinationRelay]) -> None:
    for relay in relays:  # the bot watches each destination's outbox (each in its own store)
        side = relay.side.name
        metrics.sql_gauge("dccn_bridge_transfers", "Transfers by destination and status (relayer's view).",
                          relay.db, "SELECT ?, status, COUNT(*) FROM relay_transfers GROUP BY status",
                          ["destination", "status"], params=(side,))
        metrics.sql_gauge("dccn_bridge_transfers_in_flight",
                          "Transfers seen but not delivered yet (not done or cancelled).", relay.db,
                          "SELECT ?, COUNT(*) FROM relay_transfers WHERE status NOT IN ('done', 'cancelled')",
                          ["destination"], params=(side,))
        metrics.sql_gauge("dccn_bridge_oldest_in_flight_age_seconds",
                          "Age of the oldest transfer in flight (0 when none).", relay.db,
                          "SELECT ?, COALESCE(? - MIN(first_seen), 0) FROM relay_transfers "
                          "WHERE status NOT IN ('done', 'cancelled')", ["destination"],
                          params=functools.partial(_side_and_now, side))


def _side_and_now(side: str) -> tuple[str, float]:
    return side, time.time()


def _health_socket(config: BridgeConfig) -> Any:
    return bind_tcp("127.0.0.1", config.health_port, "health_port") if config.health_port is not None else None


def _claim_signing_key(claims: ExitStack, sides: dict[str, Side], address: str, service: str,
                       store: Path | str) -> None:
    for side in sides.values():
        claim_signing_key(claims, side.w3, address, service, store)


def relay_db_path(db_path: Path | str, side: str) -> Path | str:
    """One store per destination: relay state and that chain's outbox commit together.

    SQLite: the file `<stem>-<side><suffix>` beside `db_path`. PostgreSQL: the same database
    with the schema `relay_<side>` first in the search_path (the DSN's `options`), created on
    first use; the sender's tables are told apart by signer only and the relayer signs with one
    key on both chains, so the two outboxes must not share a table."""
    dsn = postgres_dsn(db_path)
    if dsn is not None:
        return with_search_path(dsn, f"relay_{side}")
    path = Path(db_path)
    return path.with_name(f"{path.stem}-{side}{path.suffix or '.db'}")


def with_search_path(dsn: str, schema: str) -> str:
    """`dsn` with `schema` first in its search_path (libpq's `options=-c search_path=...`)."""
    parts = urlsplit(dsn)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = " ".join(value for key, value in query if key == "options")
    query = [(key, value) for key, value in query if key != "options"]
    query.append(("options", f"{options} -c search_path={schema}".strip()))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@main.command(help="Show both bridges: locked ANKR, native coin held, limits, validators.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Same settings file as the services.")
@click.option("--native-supply", type=click.FLOAT, callback=lambda _c, _p, v: _whole_ankr(v), default=None,
              help="Native ANKR the home bridge was funded with (whole ANKR), to print the invariant.")
def status(config_path: Path | None, native_supply: int | None) -> None:
    def body() -> None:
        config = _load(config_path)
        sides = open_sides(config)
        console = Console(highlight=False, soft_wrap=True)
        table = Table(title="ANKR bridge")
        table.add_column("")
        for name in sides:
            table.add_column(f"{name} (chain {sides[name].chain_id})")
        rows: dict[str, list[str]] = {}
        for side in sides.values():
            bridge = side.bridge.functions
            values = {
                "bridge": side.bridge.address,
                "paused": str(bridge.paused().call()),
                "validators / threshold": f"{bridge.validatorCount().call()} / {bridge.threshold().call()}",
                "min / max / daily (ANKR)": " / ".join(f"{v / 10**18:,.2f}" for v in
                                                      (bridge.minPerTx().call(), bridge.maxPerTx().call(),
                                                       bridge.dailyLimit().call())),
                "held (ANKR)": f"{bridge.totalHeld().call() / 10**18:,.4f}",
            }
            values["value held by bridge (ANKR)"] = f"{bridge_holdings(side) / 10**18:,.4f}"
            for key, value in values.items():
                rows.setdefault(key, []).append(value)
        for key, cells in rows.items():
            table.add_row(key, *cells)
        console.print(table)
        if native_supply is not None:
            locked = bridge_holdings(sides[ETHEREUM])
            outside = native_supply - bridge_holdings(sides[ANKR])
            console.print(f"invariant: locked on Ethereum {locked / 10**18:,.4f} ANKR; native outside the home bridge "
                          f"{outside / 10**18:,.4f} ANKR; in flight {(locked - outside) / 10**18:,.4f} ANKR")

    run_cli(body)


def _whole_ankr(value: float | None) -> int | None:
    """Whole ANKR (as typed) to wei, exactly: via the decimal text, not float arithmetic."""
    return None if value is None else int(decimal.Decimal(repr(value)) * 10**18)


def bridge_holdings(side: Side) -> int:
    """ERC20 locked in the foreign bridge, or native coin held by the home bridge."""
    if side.name == ETHEREUM:
        return int(side.bridge.functions.lockedBalance().call())
    return int(side.w3.eth.get_balance(side.bridge.address))


if __name__ == "__main__":
    sys.exit(main())
