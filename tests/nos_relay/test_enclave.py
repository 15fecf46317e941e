"""The enclave against real HTTPS sources on 127.0.0.1, through the relay's carrier.
(The package on its own, measurement and imports: tests/nos_enclave.)"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys

import pytest
from coincurve import PrivateKey
from eth_account import Account
from eth_utils import keccak

from nos_enclave.crypto import DecryptionError, ecies_decrypt
from nos_enclave.framing import EnclaveClient
from nos_enclave.protocol import FetchFailed, Params, encrypt_params, response_digest
from nos_enclave.tls import TlsFetch, client_context
from nos_relay.carrier import TcpCarrier, fetch_signed
from nos_relay.devsource import PriceSource
from tests.nos_relay.conftest import price_params

ORACLE = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
REQUESTER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
REQUEST_ID = keccak(b"request 1")


class ByteFlippingCarrier(TcpCarrier):
    """A malicious relay: flips one byte of what the source sends, after the handshake started."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.seen = 0
        self.at = at

    def incoming(self, data: bytes) -> bytes:
        start, self.seen = self.seen, self.seen + len(data)
        if start <= self.at < self.seen:
            index = self.at - start
            data = data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]
        return data


def fetch(socket_path: str, params: bytes, carrier: TcpCarrier | None = None, requester: str = REQUESTER) -> dict:
    request = {"chain_id": 31337, "oracle": ORACLE, "request_id": "0x" + REQUEST_ID.hex(), "requester": requester,
               "params": params.hex()}
    with EnclaveClient(socket_path) as client:
        return fetch_signed(client, request, carrier or TcpCarrier())


def signer_of(response: dict, params: bytes) -> str:
    digest = response_digest(31337, ORACLE, REQUEST_ID, keccak(params), bytes.fromhex(response["data"][2:]))
    return Account._recover_hash(digest, signature=bytes.fromhex(response["signature"][2:]))


@pytest.mark.parametrize(("path", "selector"), [
    ("/price.json", "json:data.price"),
    ("/price.xml", "xml:./price"),
    ("/price.txt", r"regex:price=([0-9.]+)"),
])
def test_fetch__trusted_source__signed_by_enclave_key(enclave_socket, enclave_keys, price_source, path, selector):
    params = price_params(price_source, path, selector)
    response = fetch(enclave_socket, params)
    assert int(response["data"], 16) == 234567  # 2345.67 with 2 decimals
    assert response["params_hash"] == "0x" + keccak(params).hex()
    assert signer_of(response, params) == enclave_keys.address


def test_fetch__source_certificate_from_untrusted_ca__fails_cleanly(enclave_socket, rogue_source, price_source):
    with pytest.raises(FetchFailed, match="not trusted"):
        fetch(enclave_socket, price_params(rogue_source))
    assert fetch(enclave_socket, price_params(price_source))["data"]  # the enclave keeps serving


@pytest.mark.parametrize("offset", [60, 400, 900])
def test_fetch__relay_flips_a_byte__fails_instead_of_signing(enclave_socket, price_source, offset):
    with pytest.raises(FetchFailed, match=r"TLS failure|closed|not trusted"):
        fetch(enclave_socket, price_params(price_source), ByteFlippingCarrier(offset))


@pytest.mark.parametrize(("params", "message"), [
    (b"not json", "not JSON"),
    (b'{"url":"http://127.0.0.1/x","path":"json:a"}', "https"),
    (b'{"url":"https://127.0.0.1/x","path":"css:a"}', "params.path"),
])
def test_fetch__bad_params__error_reply(enclave_socket, params, message):
    with pytest.raises(FetchFailed, match=message):
        fetch(enclave_socket, params)


def test_fetch__selector_misses__error_reply(enclave_socket, price_source):
    with pytest.raises(FetchFailed, match="not found"):
        fetch(enclave_socket, price_params(price_source, selector="json:data.volume"))


def test_private_request__only_reply_key_reads_result(enclave_socket, enclave_keys, price_source):
    reply_key = PrivateKey()
    params = Params(price_source.url(), "json:data.price", "uint256", 2, reply_key.public_key.format())
    sealed = encrypt_params(enclave_keys.encryption_public_key, params, REQUESTER, REQUEST_ID)
    assert b"price" not in sealed and b"127.0.0.1" not in sealed  # the chain and relay see ciphertext
    response = fetch(enclave_socket, sealed)
    data = bytes.fromhex(response["data"][2:])
    assert int.from_bytes(ecies_decrypt(reply_key.secret, data, REQUEST_ID), "big") == 234567
    with pytest.raises(DecryptionError):
        ecies_decrypt(PrivateKey().secret, data, REQUEST_ID)
    assert signer_of(response, sealed) == enclave_keys.address


def test_private_request__moved_to_another_requester__refused(enclave_socket, enclave_keys, price_source):
    params = Params(price_source.url(), "json:data.price", "uint256", 2, PrivateKey().public_key.format())
    sealed = encrypt_params(enclave_keys.encryption_public_key, params, REQUESTER, REQUEST_ID)
    with pytest.raises(FetchFailed, match="does not authenticate"):
        fetch(enclave_socket, sealed, requester=ORACLE)


def test_sandbox__enclave_process_cannot_connect_out(price_source):
    code = (
        "import socket\nfrom nos_enclave.sandbox import deny_network\ndeny_network()\n"
        f"socket.create_connection(('127.0.0.1', {price_source.port}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "enclave has no network access" in result.stderr


# -- TLS session resumption --------------------------------------------------------------------


def tls_get(context: ssl.SSLContext, source: PriceSource, session: ssl.SSLSession | None = None) -> TlsFetch:
    """One TlsFetch driven over a plain socket (the carrier's job), returning the finished fetch."""
    tls = TlsFetch(context, "127.0.0.1", "/price.json", session=session)
    with socket.create_connection(("127.0.0.1", source.port), timeout=10) as connection:
        outgoing = tls.start()
        while tls.response is None:
            if outgoing:
                connection.sendall(outgoing)
            received = connection.recv(65536)
            outgoing = tls.step(received, eof=not received)
    return tls


def test_tls__second_fetch_from_a_source__resumes_the_session_and_reads_the_same(trusted_pki, price_source):
    context = client_context(str(trusted_pki.ca_cert))
    first = tls_get(context, price_source)
    assert not first.session_reused and first.resumable_session() is not None
    second = tls_get(context, price_source, first.resumable_session())
    assert second.session_reused
    assert second.response is not None and first.response is not None
    assert second.response.body == first.response.body


def test_tls__session_offered_to_another_server__full_handshake_still_verifies_its_chain(
        trusted_pki, price_source, rogue_source):
    context = client_context(str(trusted_pki.ca_cert))
    session = tls_get(context, price_source).resumable_session()
    with pytest.raises(FetchFailed, match="not trusted"):  # the rogue cannot resume it: full handshake, refused
        tls_get(context, rogue_source, session)


def test_fetch__enclave_resumes_per_source_and_a_flipped_byte_still_fails(enclave_socket, price_source):
    params = price_params(price_source)
    assert fetch(enclave_socket, params)["data"]  # full handshake: the session is kept
    for offset in (60, 300):  # a resumed handshake is as authenticated as a full one
        with pytest.raises(FetchFailed, match=r"TLS failure|closed|not trusted"):
            fetch(enclave_socket, params, ByteFlippingCarrier(offset))
    assert int(fetch(enclave_socket, params)["data"], 16) == 234567
