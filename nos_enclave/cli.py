"""`nos-enclave`: the NOS enclave as a separate process that alone holds the signing key.

It keeps its keys sealed at rest, publishes its public keys and measurement (the hash of
every file of this package, nos_enclave/measurement.py), binds its sockets first, then
denies itself the network (sandbox.deny_network) and serves the relay over a Unix socket,
with /health and /metrics on a loopback port when asked.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import NoReturn

import click

from nos_enclave import sandbox
from nos_enclave.config import ConfigError, load_config
from nos_enclave.enclave import Enclave, serve
from nos_enclave.health import SERVICE, EnclaveMetrics, HealthServer
from nos_enclave.keys import EnclaveKeys, create_keys, load_keys, secret_from_env
from nos_enclave.listen import BindError, bind_tcp, bind_unix
from nos_enclave.logs import configure_logging
from nos_enclave.measurement import measurement

log = logging.getLogger("nos.enclave")
DEFAULT_SECRET_ENV = "NOS_ENCLAVE_SECRET"


def _fail(err: Exception) -> NoReturn:
    click.echo(f"error: {err}", err=True)
    sys.exit(2)


@click.group(help="The NOS enclave: holds the oracle signing key, fetches over TLS, signs responses.")
def main() -> None:
    pass


_config_option = click.option("--config", type=click.Path(dir_okay=False, path_type=Path), default=None,
                              help="YAML/TOML config file (env NOS_ENCLAVE_<FIELD> overrides it).")
_sealed_option = click.option("--sealed-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
                              help="The sealed key file (made by `nos-enclave init`).")
_secret_option = click.option("--secret-env", default=None, help="Env var holding the sealing secret.")


def _print_identity(keys: EnclaveKeys) -> None:
    click.echo(json.dumps({
        "address": keys.address,
        "encryption_public_key": keys.encryption_public_key.hex(),
        "measurement": "0x" + measurement().hex(),
    }))


@main.command("init", help="Create the enclave's identity: a new key pair, sealed into --sealed-key (JSON out).")
@_sealed_option
@_secret_option
def init(sealed_key: Path | None, secret_env: str | None) -> None:
    if sealed_key is None:
        _fail(ConfigError("--sealed-key is required"))
    try:
        keys = create_keys(sealed_key, secret_from_env(secret_env or DEFAULT_SECRET_ENV))
    except ConfigError as err:
        _fail(err)
    _print_identity(keys)


@main.command("info", help="Print the enclave's address, encryption key and measurement (JSON).")
@_sealed_option
@_secret_option
def info(sealed_key: Path | None, secret_env: str | None) -> None:
    if sealed_key is None:
        _fail(ConfigError("--sealed-key is required"))
    try:
        keys = load_keys(sealed_key, secret_from_env(secret_env or DEFAULT_SECRET_ENV))
    except ConfigError as err:
        _fail(err)
    _print_identity(keys)


@main.command("run", help="Serve the relay on a Unix socket until SIGTERM.")
@_config_option
@click.option("--socket", "socket_path", default=None, help="Unix socket path to listen on.")
@_sealed_option
@click.option("--ca-bundle", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PEM CA certificates the enclave trusts for sources.")
@_secret_option
@click.option("--health-port", type=int, default=None, help="Loopback port of GET /health.")
def run(config: Path | None, socket_path: str | None, sealed_key: Path | None, ca_bundle: Path | None,
        secret_env: str | None, health_port: int | None) -> None:
    try:
        settings = load_config(config, socket_path=socket_path, sealed_key=sealed_key, ca_bundle=ca_bundle,
                               secret_env=secret_env, health_port=health_port)
        if not settings.ca_bundle.is_file():
            raise ConfigError(f"CA bundle not found: {settings.ca_bundle}")
        keys = load_keys(settings.sealed_key, secret_from_env(settings.secret_env))
        # Every socket is bound before the enclave serves anything.
        health_socket = (bind_tcp("127.0.0.1", settings.health_port, "health_port")
                         if settings.health_port is not None else None)
        relay_socket = bind_unix(settings.socket_path, "enclave socket")
    except (ConfigError, BindError) as err:
        _fail(err)
    configure_logging(settings.log_level)
    enclave = Enclave(keys, str(settings.ca_bundle))
    started = time.time()
    health = None
    if health_socket is not None:
        health = HealthServer(lambda: {"service": SERVICE, "ok": True, "uptime": time.time() - started,
                                       **enclave.info(), **enclave.stats_now()},
                              EnclaveMetrics(enclave.stats_now, started), health_socket)
        health.start()
    server = serve(enclave, settings.socket_path, sock=relay_socket)
    sandbox.deny_network()  # after binding: from here on nothing in this process connects out
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="enclave")
    thread.start()
    log.info("enclave up", extra={"socket": settings.socket_path, "address": keys.address,
                                  "measurement": "0x" + enclave.measurement.hex()})
    stop.wait()
    server.shutdown()
    server.server_close()
    if health:
        health.stop()
    log.info("enclave stopped")
