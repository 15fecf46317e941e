"""A local HTTPS data source with its own CA, for tests, the benchmark and the
demo (everything on 127.0.0.1; nothing leaves the machine).

    pki = DevPki.create(directory)              # ca.pem, server.pem, server.key
    with PriceSource(pki) as source:            # https://127.0.0.1:<port>/price.json
        source.price = "2345.67"
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass(frozen=True)
class DevPki:
    ca_cert: Path
    server_cert: Path
    server_key: Path

    @classmethod
    def create(cls, directory: Path, name: str = "NOS dev CA") -> DevPki:
        """A fresh CA and a server certificate for 127.0.0.1 / localhost, signed by it."""
        directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (
            x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = (
            x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        pki = cls(directory / "ca.pem", directory / "server.pem", directory / "server.key")
        pki.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        pki.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
        pki.server_key.write_bytes(_pem_key(server_key))
        pki.server_key.chmod(0o600)
        return pki


class PriceSource:
    """HTTPS on 127.0.0.1 serving one price as /price.json, /price.xml and /price.txt."""

    def __init__(self, pki: DevPki, price: str = "2345.67", port: int = 0) -> None:
        self.price = price
        self.requests = 0
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pki.server_cert, pki.server_key)
        source = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                source.requests += 1
                bodies = {
                    "/price.json": ("application/json", json.dumps({"data": {"symbol": "ETH", "price": source.price}})),
                    "/price.xml": ("application/xml", f"<quote><symbol>ETH</symbol><price>{source.price}</price></quote>"),
                    "/price.txt": ("text/plain", f"ETH price={source.price} USD"),
                }
                if self.path not in bodies:
                    self._reply(404, "text/plain", "not found")
                    return
                self._reply(200, *bodies[self.path])

            def _reply(self, code: int, content_type: str, body: str) -> None:
                payload = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)
                self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._server.handle_error = lambda *args: None  # type: ignore[method-assign]  # failed handshakes are expected in tests
        # Handshakes happen in the handler threads, not in accept().
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="price-source")

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/price.json") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def start(self) -> PriceSource:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> PriceSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
