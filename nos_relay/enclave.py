"""The NOS enclave: a separate process that alone holds the signing key.

It keeps its keys sealed at rest (AES-256-GCM, key derived from a secret in the
environment), publishes its public keys and measurement (the hash of its own
code), has no network access of its own (sandbox.deny_network), and serves the
relay over a Unix socket. For each request it runs the TLS client in memory,
asks the relay to carry the ciphertext to the source, verifies the source's
certificate against its CA bundle, selects the value the params ask for,
encrypts it for private requests, and signs the EIP-712 response.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click
from coincurve import PrivateKey
from eth_account import Account
from eth_utils import keccak
from pydantic import BaseModel

from dccn_common.config import ConfigError, load_config
from dccn_common.health import HealthServer
from dccn_common.listen import BindError, adopt, bind_tcp, bind_unix
from dccn_common.logs import configure_logging
from dccn_common.metrics import ServiceMetrics
from nos_relay import sandbox
from nos_relay.crypto import (
    DecryptionError,
    ecies_decrypt,
    ecies_encrypt,
    public_key_of,
    seal,
    sign_digest,
    unseal,
)
from nos_relay.protocol import (
    PRIVATE_MARKER,
    ParamsError,
    encode_result,
    encryption_key_digest,
    parse_params,
    private_associated_data,
    response_digest,
)
from nos_relay.selectors import select
from nos_relay.tls import FetchError, TlsFetch, client_context
from nos_relay.wire import WireError, b64, read_message, unb64, write_message

log = logging.getLogger("nos.enclave")

# The enclave program: what the measurement covers.
CODE_FILES = ("enclave.py", "tls.py", "crypto.py", "protocol.py", "selectors.py", "sandbox.py", "wire.py")


def measurement() -> bytes:
    """sha256 over the enclave's own source files, in a fixed order."""
    digest = hashlib.sha256()
    root = Path(__file__).parent
    for name in CODE_FILES:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes())
    return digest.digest()


class EnclaveConfig(BaseModel):
    socket_path: str
    sealed_key: Path
    ca_bundle: Path
    secret_env: str = "NOS_ENCLAVE_SECRET"
    health_port: int | None = None
    log_level: str = "INFO"


@dataclass(frozen=True)
class EnclaveKeys:
    signing_key: bytes
    encryption_key: bytes

    @property
    def address(self) -> str:
        return str(Account.from_key(self.signing_key).address)

    @property
    def encryption_public_key(self) -> bytes:
        return public_key_of(self.encryption_key)

    @classmethod
    def generate(cls) -> EnclaveKeys:
        return cls(PrivateKey().secret, PrivateKey().secret)

    def sealed(self, secret: str) -> bytes:
        body = json.dumps({"signing": self.signing_key.hex(), "encryption": self.encryption_key.hex()})
        return seal(secret, body.encode())

    @classmethod
    def unsealed(cls, secret: str, blob: bytes) -> EnclaveKeys:
        body = json.loads(unseal(secret, blob))
        return cls(bytes.fromhex(body["signing"]), bytes.fromhex(body["encryption"]))


def secret_from_env(env_var: str) -> str:
    secret = os.environ.get(env_var)
    if secret is None:
        raise ConfigError(f"the enclave's sealing secret is read from ${env_var}, which is not set")
    if not secret:
        raise ConfigError(f"the enclave's sealing secret is read from ${env_var}, which is set but empty")
    return secret


def load_keys(path: Path, secret: str) -> EnclaveKeys:
    """Unseal an existing key file; a missing one is an error (a typo must not mint a new identity)."""
    if not path.is_file():
        raise ConfigError(f"sealed key not found: {path} (create one with `nos-enclave init --sealed-key {path}`)")
    try:
        return EnclaveKeys.unsealed(secret, path.read_bytes())
    except DecryptionError as err:
        raise ConfigError(f"{path}: {err}") from err
    except (ValueError, KeyError) as err:
        raise ConfigError(f"{path} is not a sealed enclave key") from err


def create_keys(path: Path, secret: str) -> EnclaveKeys:
    """Generate and seal a new identity; never overwrites an existing file."""
    if path.exists():
        raise ConfigError(f"{path} exists; refusing to replace an enclave identity")
    if not path.parent.is_dir():
        raise ConfigError(f"folder {path.parent} does not exist")
    keys = EnclaveKeys.generate()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(keys.sealed(secret))
    tmp.replace(path)
    return keys


@dataclass
class _Job:
    request_id: bytes
    params_hash: bytes
    chain_id: int
    oracle: str
    fetch: TlsFetch
    params: Any
    private: bool


class Enclave:
    """The enclave's logic, independent of the socket that carries it."""

    def __init__(self, keys: EnclaveKeys, ca_bundle: str) -> None:
        self.keys = keys
        self.tls_context = client_context(ca_bundle)
        self.measurement = measurement()
        self.stats = {"signed": 0, "failed": 0}
        self._stats_lock = threading.Lock()

    def info(self) -> dict[str, Any]:
        return {
            "op": "info",
            "address": self.keys.address,
            "encryption_public_key": self.keys.encryption_public_key.hex(),
            # Vouches for the encryption key with the signing key, so anyone can publish it on chain.
            "encryption_key_signature": "0x" + sign_digest(
                self.keys.signing_key, encryption_key_digest(self.keys.encryption_public_key)).hex(),
            "measurement": "0x" + self.measurement.hex(),
        }

    def begin(self, message: dict[str, Any]) -> tuple[_Job, dict[str, Any]]:
        try:
            request_id = bytes.fromhex(str(message["request_id"]).removeprefix("0x"))
            params_raw = bytes.fromhex(str(message["params"]).removeprefix("0x"))
            chain_id, oracle, requester = int(message["chain_id"]), str(message["oracle"]), str(message["requester"])
        except (KeyError, ValueError) as err:
            raise ParamsError(f"malformed fetch message: {err}") from err
        private = params_raw.startswith(PRIVATE_MARKER)
        if private:
            plain = ecies_decrypt(
                self.keys.encryption_key, params_raw[1:], private_associated_data(requester, request_id)
            )
            params = parse_params(plain)
            if params.reply_to is None:
                raise ParamsError("a private request must name reply_to")
        else:
            params = parse_params(params_raw)
        fetch = TlsFetch(self.tls_context, params.host, params.target)
        job = _Job(request_id, keccak(params_raw), chain_id, oracle, fetch, params, private)
        first = fetch.start()
        return job, {"op": "connect", "host": params.host, "port": params.port, "send": b64(first)}

    def advance(self, job: _Job, received: bytes, eof: bool) -> dict[str, Any]:
        outgoing = job.fetch.step(received, eof=eof)
        if job.fetch.response is None:
            return {"op": "send", "send": b64(outgoing)}
        response = job.fetch.response
        if response.status != 200:
            raise FetchError(f"source answered HTTP {response.status}")
        data = encode_result(select(response.body, job.params.path), job.params)
        if job.private:
            data = ecies_encrypt(job.params.reply_to, data, job.request_id)
        digest = response_digest(job.chain_id, job.oracle, job.request_id, job.params_hash, data)
        signature = sign_digest(self.keys.signing_key, digest)
        self._count("signed")
        return {
            "op": "done",
            "request_id": "0x" + job.request_id.hex(),
            "params_hash": "0x" + job.params_hash.hex(),
            "data": "0x" + data.hex(),
            "signature": "0x" + signature.hex(),
            "close": b64(outgoing),
        }

    def stats_now(self) -> dict[str, int]:
        with self._stats_lock:
            return dict(self.stats)

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    def handle(self, message: dict[str, Any], job: _Job | None) -> tuple[_Job | None, dict[str, Any]]:
        """One protocol step; errors end the job with an `error` reply, never the process."""
        op = message.get("op")
        try:
            if op == "info":
                return job, self.info()
            if op == "fetch":
                return self.begin(message)
            if op == "recv":
                if job is None:
                    raise ParamsError("recv without a fetch in progress")
                reply = self.advance(job, unb64(str(message.get("data", ""))), bool(message.get("eof")))
                return (None if reply["op"] == "done" else job), reply
            raise ParamsError(f"unknown op {op!r}")
        except (ParamsError, FetchError, DecryptionError, ValueError) as err:
            if op != "info":
                self._count("failed")
            log.info("request failed", extra={"error": str(err)})
            # Params that do not parse fail the same way every time: the relay must not retry them. (A
            # ciphertext this enclave cannot open may be for another registered enclave: not permanent.)
            permanent = op == "fetch" and isinstance(err, ParamsError)
            return None, {"op": "error", "error": str(err), "permanent": permanent}


def serve(enclave: Enclave, socket_path: str, *, sock: socket.socket | None = None
          ) -> socketserver.ThreadingUnixStreamServer:
    """Serve the relay on `sock` (bound beforehand), or bind `socket_path` now."""
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            job: _Job | None = None
            while True:
                try:
                    message = read_message(self.rfile)
                except (WireError, OSError) as err:
                    log.warning("dropping relay connection", extra={"error": str(err)})
                    return
                if message is None:
                    return
                job, reply = enclave.handle(message, job)
                try:
                    write_message(self.wfile, reply)
                except OSError:
                    return

    class Server(socketserver.ThreadingUnixStreamServer):
        request_queue_size = 128  # many relay workers connect at once

    server = adopt(Server, sock or bind_unix(socket_path, "enclave socket"), Handler)
    server.daemon_threads = True
    return server


# -- CLI ---------------------------------------------------------------------------------


def _config(config: Path | None, **overrides: Any) -> EnclaveConfig:
    return load_config(EnclaveConfig, config, "NOS_ENCLAVE", **overrides)


def _fail(err: Exception) -> NoReturn:
    click.echo(f"error: {err}", err=True)
    sys.exit(2)


def enclave_metrics(enclave: Enclave) -> ServiceMetrics:
    """Process-level figures only: the enclave has no chain, database or signing outbox."""
    metrics = ServiceMetrics("nos-enclave")
    metrics.counter("dccn_enclave_responses", "Oracle responses since start: signed, or failed (error replies).",
                    lambda: [((outcome,), float(n)) for outcome, n in enclave.stats_now().items()], ["outcome"])
    return metrics


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
        keys = create_keys(sealed_key, secret_from_env(secret_env or "NOS_ENCLAVE_SECRET"))
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
        keys = load_keys(sealed_key, secret_from_env(secret_env or "NOS_ENCLAVE_SECRET"))
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
        settings = _config(config, socket_path=socket_path, sealed_key=sealed_key, ca_bundle=ca_bundle,
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
    configure_logging("nos-enclave", settings.log_level)
    enclave = Enclave(keys, str(settings.ca_bundle))
    started = time.time()
    health = None
    if health_socket is not None:
        health = HealthServer(lambda: {"service": "nos-enclave", "ok": True, "uptime": time.time() - started,
                                       **enclave.info(), **enclave.stats}, sock=health_socket,
                              metrics=enclave_metrics(enclave).exposition)
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


if __name__ == "__main__":
    main()
