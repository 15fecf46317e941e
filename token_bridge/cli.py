"""`token-bridge`: run a validator or the relayer, or show the state of both bridges."""

from __future__ import annotations

import decimal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from dccn_common.config import load_config
from dccn_common.health import balance_check, rpc_check
from dccn_common.keys import claim_signer, load_account
from dccn_common.listen import bind_tcp
from dccn_common.logs import configure_logging
from dccn_common.metrics import ServiceMetrics
from dccn_common.service import Service, run_cli
from dccn_common.store import open_store
from token_bridge.chains import ANKR, ETHEREUM, Side, open_side
from token_bridge.config import ENV_PREFIX, BridgeConfig
from token_bridge.relayer import DestinationRelay
from token_bridge.validator import SignatureServer, Validator

_common = [
    click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="YAML/TOML settings (fields of token_bridge.config.BridgeConfig); "
                      "TOKEN_BRIDGE_<FIELD> environment variables override it."),
    click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="SQLite state file (overrides db_path)."),
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
    from dccn_common.config import ConfigError

    if config.keystore is None:
        raise ConfigError("keystore is required (the validator's or relayer's encrypted key)")
    return load_account(config.keystore, config.password_env)


@click.group(help="ANKR bridge between Ethereum (ERC20) and the Ankr chain (native coin).")
def main() -> None:
    pass


@main.command(help="Run a validator: follow both bridges, prove and sign transfers, serve signatures.")
@common_options
@click.option("--signatures-port", type=int, default=None, help="Serve GET /signatures here (loopback).")
def validator(config_path: Path | None, db_path: Path | None, health_port: int | None,
              signatures_port: int | None) -> None:
    def body() -> None:
        config = _load(config_path, db_path=db_path, health_port=health_port, signatures_port=signatures_port)
        logger = configure_logging("token-bridge-validator")
        account = _account(config)
        # Claim the database and bind both ports before anything connects or works.
        with ExitStack() as claims:
            claims.enter_context(open_store(config.db_path, "token-bridge-validator"))
            signatures_socket = bind_tcp(config.signatures_host, config.signatures_port, "signatures_port")
            health_socket = _health_socket(config)
            sides = open_sides(config)
            _claim_signer(claims, sides, account.address, "token-bridge-validator")
            node = Validator(sides, config.db_path, account)
            server = SignatureServer(node, sock=signatures_socket).start()
            service = Service("token-bridge-validator", w3=sides[ETHEREUM].w3, db=node.db,
                              poll_interval=config.poll_interval, health_socket=health_socket,
                              dependencies={"rpc ankr": rpc_check(sides[ANKR].w3, sides[ANKR].chain_id)},
                              status=lambda: {**node.status(), "signatures_url": server.url})
            service.every(config.poll_interval, "follow")(node.poll)
            _validator_metrics(service.metrics, node)
            logger.info("validator up", extra={"validator": account.address, "signatures_url": server.url})
            try:
                service.run()
            finally:
                server.stop()

    run_cli(body)


@main.command(help="Run the relayer: collect signatures from validators, execute transfers on each side.")
@common_options
@click.option("--validator-url", "validator_urls", multiple=True, help="A validator's signature URL (repeatable).")
def relayer(config_path: Path | None, db_path: Path | None, health_port: int | None,
            validator_urls: tuple[str, ...]) -> None:
    def body() -> None:
        config = _load(config_path, db_path=db_path, health_port=health_port,
                       validator_urls=list(validator_urls) or None)
        logger = configure_logging("token-bridge-relayer")
        from dccn_common.config import ConfigError

        if not config.validator_urls:
            raise ConfigError("validator_urls is empty: the relayer needs the validators' signature URLs")
        account = _account(config)
        # Claim both databases and bind the health port before anything connects or works.
        with ExitStack() as claims:
            for name in (ETHEREUM, ANKR):
                claims.enter_context(open_store(relay_db_path(config.db_path, name), "token-bridge-relayer"))
            health_socket = _health_socket(config)
            sides = open_sides(config)
            _claim_signer(claims, sides, account.address, "token-bridge-relayer")
            relays = [DestinationRelay(side, relay_db_path(config.db_path, name), account, config.validator_urls)
                      for name, side in sides.items()]
            # Each destination's sender pays its own gas: both balances must cover the next transaction.
            balances = {f"signing_balance {r.side.name}": balance_check(r.side.w3, account.address, r.db)
                        for r in relays}
            balances["rpc ethereum"] = rpc_check(sides[ETHEREUM].w3, sides[ETHEREUM].chain_id)  # "rpc": Ankr side
            service = Service("token-bridge-relayer", w3=sides[ANKR].w3, db=relays[0].db,
                              poll_interval=config.poll_interval, health_socket=health_socket, dependencies=balances,
                              status=lambda: {"relayer": account.address,
                                              "transfers": {r.side.name: r.counts() for r in relays},
                                              "unreachable_validators": sorted(
                                                  {u for r in relays for u in r.last_fetch_errors})})

            _relayer_metrics(service.metrics, relays)

            @service.every(config.poll_interval)
            def relay() -> None:
                for item in relays:
                    item.tick()

            logger.info("relayer up", extra={"relayer": account.address, "validators": len(config.validator_urls)})
            service.run()

    run_cli(body)


def _validator_metrics(metrics: ServiceMetrics, node: Validator) -> None:
    for follower in node.followers:  # one per source side; the node polls them itself
        metrics.watch_follower(follower)
    metrics.add_signer(node.account.address)  # it signs transfers, not transactions
    metrics.sql_gauge("dccn_bridge_signatures", "Transfers this validator signed, by destination chain.", node.db,
                      "SELECT destination_chain_id, COUNT(*) FROM signatures GROUP BY destination_chain_id",
                      ["destination_chain_id"])
    metrics.sql_gauge("dccn_bridge_rejected_logs", "Transfer logs refused (proof or content check failed).",
                      node.db, "SELECT source, COUNT(*) FROM rejected_logs GROUP BY source", ["source"])


def _relayer_metrics(metrics: ServiceMetrics, relays: list[DestinationRelay]) -> None:
    for relay in relays:
        metrics.watch_sender(relay.sender)  # each destination has its own outbox (and database)
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
                          params=lambda side=side: (side, time.time()))


def _health_socket(config: BridgeConfig) -> Any:
    return bind_tcp("127.0.0.1", config.health_port, "health_port") if config.health_port is not None else None


def _claim_signer(claims: ExitStack, sides: dict[str, Side], address: str, service: str) -> None:
    for side in sides.values():
        claims.enter_context(claim_signer(side.w3, address, service))


def relay_db_path(db_path: Path, side: str) -> Path:
    """One SQLite file per destination: relay state and that chain's outbox commit together."""
    return db_path.with_name(f"{db_path.stem}-{side}{db_path.suffix or '.db'}")


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
        for key, values in rows.items():
            table.add_row(key, *values)
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
