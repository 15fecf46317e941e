"""Private requests as a dApp builds them: from the byte layout in docs/oracle.md
with `cryptography` alone, with the `nos_relay.client` module, and with the
`nos-client` command, each answered by the real enclave through the relay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_account import Account

from dccn_common.contracts import transact
from nos_enclave.protocol import Params
from nos_relay.client import ClientError, NosClient
from tests.nos_relay.conftest import MAX_GAS_PRICE, RELAY_PASSWORD, drive

PRICE = 234567  # the source's 2345.67 with 2 decimals
ZERO = "0x" + "00" * 20
CURVE = ec.SECP256K1()


# -- the documented layout, written from docs/oracle.md with `cryptography` only ----------------


def compressed(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)


def documented_key(shared_x: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral, info=b"NOS ECIES v2" + recipient).derive(shared_x)


def documented_seal(recipient: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """E (33) || nonce (12) || AES-256-GCM(plaintext) || tag (16)."""
    ephemeral = ec.generate_private_key(CURVE)
    shared_x = ephemeral.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(CURVE, recipient))
    nonce = os.urandom(12)
    key = documented_key(shared_x, compressed(ephemeral.public_key()), recipient)
    return compressed(ephemeral.public_key()) + nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def documented_open(private_key: ec.EllipticCurvePrivateKey, envelope: bytes, associated_data: bytes) -> bytes:
    ephemeral, nonce, body = envelope[:33], envelope[33:45], envelope[45:]
    shared_x = private_key.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(CURVE, ephemeral))
    key = documented_key(shared_x, ephemeral, compressed(private_key.public_key()))
    return AESGCM(key).decrypt(nonce, body, associated_data)


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def published(deployment: dict[str, Any], enclave_socket: str, relay_keystore: Callable[[str], Path], chain: Any,
              tmp_path: Path) -> str:
    """The owner's `nos-relay register-enclave` has published the enclave's encryption key; its output."""
    result = subprocess.run(
        [sys.executable, "-m", "nos_relay.relay", "register-enclave", "--rpc-url", chain.url, "--manifest",
         str(deployment["manifest"]), "--keystore", str(relay_keystore("deployer")), "--password-env",
         "NOS_RELAY_PASSWORD", "--enclave-socket", enclave_socket, "--db", str(tmp_path / "admin.sqlite")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "NOS_RELAY_PASSWORD": RELAY_PASSWORD})
    assert result.returncode == 0, result.stderr
    return result.stdout


def delivered_data(oracle: Any, request_id: bytes) -> bytes | None:
    logs = oracle.events.Delivered().get_logs(from_block=0, argument_filters={"requestId": request_id})
    return bytes(logs[0]["args"]["data"]) if logs else None


# -- tests ----------------------------------------------------------------------------------------


def test_private_request__built_from_documented_layout_with_cryptography__delivered_and_decrypted(
        w3, deployment, roles, enclave_keys, published, price_source, make_relay, enclave_socket):
    oracle, requester = deployment["oracle"], roles.alice.address
    enclave_key = bytes(oracle.functions.enclaveEncryptionKey(enclave_keys.address).call())  # read from chain
    reply_key = ec.generate_private_key(CURVE)
    request_id = bytes(oracle.functions.nextRequestId(requester).call())
    plaintext = json.dumps({"url": price_source.url(), "path": "json:data.price", "type": "uint256", "decimals": 2,
                            "reply_to": compressed(reply_key.public_key()).hex()}).encode()
    associated = bytes.fromhex(requester[2:]) + request_id  # requester (20) || request id (32)
    params = b"\x01" + documented_seal(enclave_key, plaintext, associated)
    fee = oracle.functions.requestFee(0, MAX_GAS_PRICE).call()
    transact(w3, oracle.functions.request(params, ZERO, 0), sender=requester, value=fee, gas=500_000)
    relay = make_relay([enclave_socket])
    drive([relay], lambda: delivered_data(oracle, request_id) is not None)
    data = delivered_data(oracle, request_id)
    assert data is not None and PRICE.to_bytes(32, "big") not in data
    assert int.from_bytes(documented_open(reply_key, data, request_id), "big") == PRICE


def test_register_enclave__publishes_encryption_key_once(w3, deployment, enclave_keys, published, relay_keystore,
                                                         enclave_socket, chain, tmp_path):
    oracle = deployment["oracle"]
    assert bytes(oracle.functions.enclaveEncryptionKey(enclave_keys.address).call()) == \
        enclave_keys.encryption_public_key
    assert "published encryption key" in published
    again = subprocess.run(
        [sys.executable, "-m", "nos_relay.relay", "register-enclave", "--rpc-url", chain.url, "--manifest",
         str(deployment["manifest"]), "--keystore", str(relay_keystore("deployer")), "--password-env",
         "NOS_RELAY_PASSWORD", "--enclave-socket", enclave_socket, "--db", str(tmp_path / "admin.sqlite")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "NOS_RELAY_PASSWORD": RELAY_PASSWORD})
    assert again.returncode == 0 and "already published" in again.stdout
    assert len(oracle.events.EncryptionKeyPublished().get_logs(from_block=0)) == 1


def test_client_module__private_request__answer_decrypted(w3, deployment, roles, published, price_source,
                                                          make_relay, enclave_socket):
    oracle = deployment["oracle"]
    client = NosClient(w3, oracle, Account.from_key(roles.bob.key))
    relay = make_relay([enclave_socket])
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(client.request, Params(price_source.url(), "json:data.price", "uint256", 2),
                             private=True, max_gas_price=MAX_GAS_PRICE, timeout=60)
        drive([relay], future.done, timeout=60)
        answer = future.result()
    assert answer.value == PRICE
    assert delivered_data(oracle, answer.request_id) != answer.data  # the chain holds only ciphertext


def test_client_module__no_published_key__clear_error(w3, deployment, roles, price_source):
    client = NosClient(w3, deployment["oracle"], Account.from_key(roles.bob.key))
    with pytest.raises(ClientError, match="no registered enclave has published"):
        client.request(Params(price_source.url(), "json:data.price", "uint256", 2), private=True)


def nos_client(chain: Any, deployment: dict[str, Any], keystore: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "nos_relay.client", "request", "--rpc-url", chain.url, "--manifest",
         str(deployment["manifest"]), "--keystore", str(keystore), "--password-env", "NOS_RELAY_PASSWORD", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NOS_RELAY_PASSWORD": RELAY_PASSWORD})


def test_nos_client_cli__private_request__prints_decrypted_value(chain, deployment, published, price_source,
                                                                 relay_keystore, make_relay, enclave_socket):
    process = nos_client(chain, deployment, relay_keystore("carol"), "--url", price_source.url(), "--path",
                         "json:data.price", "--decimals", "2", "--private", "--max-gas-price-gwei", "20",
                         "--timeout", "60")
    relay = make_relay([enclave_socket])
    drive([relay], lambda: process.poll() is not None, timeout=90)
    stdout, stderr = process.communicate()
    assert process.returncode == 0, stderr
    answer = json.loads(stdout)
    assert answer["value"] == PRICE and answer["private"] is True


@pytest.mark.parametrize(("args", "message"), [
    (["--url", "http://127.0.0.1:1/p", "--path", "json:price"], "https"),
    (["--url", "https://127.0.0.1:1/p", "--path", "css:price"], "params.path"),
    (["--url", "https://127.0.0.1:1/p", "--path", "json:price", "--decimals", "99"], "decimals"),
])
def test_nos_client_cli__bad_params__one_line_error_exit_2(chain, deployment, relay_keystore, args, message):
    process = nos_client(chain, deployment, relay_keystore("carol"), *args)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and stderr.startswith("error:") and message in stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
