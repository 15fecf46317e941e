"""The NOS enclave's logic and its Unix-socket server.

For each request it runs the TLS client in memory, asks the relay to carry the
ciphertext to the source, verifies the source's certificate against its CA bundle,
selects the value the params ask for, encrypts it for private requests, and signs
the EIP-712 response. The process around it (keys, sandbox, health) is in cli.py.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass
from typing import Any

from eth_utils import keccak

from nos_enclave.crypto import DecryptionError, ecies_decrypt, ecies_encrypt, sign_digest
from nos_enclave.framing import WireError, b64, read_message, unb64, write_message
from nos_enclave.keys import EnclaveKeys
from nos_enclave.listen import adopt, bind_unix
from nos_enclave.measurement import measurement
from nos_enclave.protocol import (
    PRIVATE_MARKER,
    FetchFailed,
    Params,
    ParamsError,
    encode_result,
    encryption_key_digest,
    parse_params,
    private_associated_data,
    response_digest,
)
from nos_enclave.selectors import select
from nos_enclave.tls import TlsFetch, client_context

log = logging.getLogger("nos.enclave")


@dataclass
class _Job:
    request_id: bytes
    params_hash: bytes
    chain_id: int
    oracle: str
    fetch: TlsFetch
    params: Params
    private: bool
    source: tuple[str, int]  # (host, port) of params.url


class Enclave:
    """The enclave's logic, independent of the socket that carries it."""

    def __init__(self, keys: EnclaveKeys, ca_bundle: str) -> None:
        self.keys = keys
        self.tls_context = client_context(ca_bundle)
        self.measurement = measurement()  # once, at start: the code this process loaded
        self.stats = {"signed": 0, "failed": 0}
        self._stats_lock = threading.Lock()
        # TLS sessions to resume, per source (host, port): what any HTTPS client keeps. They live only in this
        # process; a resumed session is the one whose certificate chain a full handshake verified.
        self._sessions: dict[tuple[str, int], ssl.SSLSession] = {}
        self._sessions_lock = threading.Lock()

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
        host, port = params.host, params.port  # each a URL parse
        with self._sessions_lock:
            session = self._sessions.get((host, port))
        fetch = TlsFetch(self.tls_context, host, params.target, session=session)
        job = _Job(request_id, keccak(params_raw), chain_id, oracle, fetch, params, private, (host, port))
        first = fetch.start()
        return job, {"op": "connect", "host": host, "port": port, "send": b64(first)}

    def advance(self, job: _Job, received: bytes, eof: bool) -> dict[str, Any]:
        source = job.source
        try:
            outgoing = job.fetch.step(received, eof=eof)
        except FetchFailed:
            with self._sessions_lock:  # the next fetch from this source starts with a full handshake
                self._sessions.pop(source, None)
            raise
        if job.fetch.response is None:
            return {"op": "send", "send": b64(outgoing)}
        # A full handshake's session replaces the kept one (a resumed one is that session already). Reading a
        # session out of OpenSSL costs about as much as the rest of a response's bookkeeping, so once only.
        session = None if job.fetch.session_reused else job.fetch.resumable_session()
        if session is not None:
            with self._sessions_lock:
                self._sessions[source] = session
        response = job.fetch.response
        if response.status != 200:
            raise FetchFailed(f"source answered HTTP {response.status}")
        data = encode_result(select(response.body, job.params.path), job.params)
        if job.private:
            assert job.params.reply_to is not None  # begin() refuses a private request without one
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
        except (ParamsError, FetchFailed, DecryptionError, ValueError) as err:
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
