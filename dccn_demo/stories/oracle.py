"""NOS oracle: the enclave and relay run as services, a dApp asks for a price
over HTTPS (local source, demo CA) and the enclave answers; then a private
request whose params and answer only the requester can read."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from coincurve import PrivateKey
from web3.logs import DISCARD

from dccn_common.keys import write_keystore
from dccn_devtools.ports import free_port
from nos_enclave.crypto import ecies_decrypt
from nos_enclave.protocol import Params, encrypt_params
from nos_relay.devsource import DevPki, PriceSource

if TYPE_CHECKING:
    from dccn_demo.context import DemoContext

TITLE = "NOS oracle: enclave + relay answer a dApp over HTTPS"
PASSWORD_ENV = "NOS_DEMO_PASSWORD"
PASSWORD = "demo only: a real operator reads this from its secret store"
SEAL_SECRET = "demo only: sealing secret of the enclave"
MAX_GAS_PRICE = 20 * 10**9
ZERO = "0x" + "00" * 20


def run(ctx: DemoContext) -> None:
    w3 = ctx.ethereum.w3
    oracle = ctx.ethereum.manifest.contract(w3, "NosOracle")
    consumer = ctx.ethereum.manifest.contract(w3, "PriceConsumer")
    # The relay signs with its own key: one key per service and chain (the bridge relayer holds "relayer").
    deployer, relayer, alice = ctx.actor("deployer"), ctx.actor("oracle_relayer"), ctx.actor("alice")
    workdir = ctx.workdir / "oracle"
    workdir.mkdir(exist_ok=True)
    ctx.step(f"NosOracle {oracle.address}, example dApp PriceConsumer {consumer.address}")

    pki = DevPki.create(workdir / "pki", "NOS demo CA")
    source = PriceSource(pki, price="2345.67").start()
    ctx.step(f"HTTPS price source {source.url()} (certificate from a demo CA in {pki.ca_cert})")

    # The enclave: its key is generated inside it and sealed at rest; it gets no network.
    socket_path = str(Path(tempfile.mkdtemp(prefix="nosdemo", dir="/tmp")) / "enclave.sock")
    enclave_port = free_port()
    sealed_key = workdir / "enclave.sealed"
    if not sealed_key.exists():  # only `init` creates an identity; `run` refuses a missing key
        subprocess.run([ctx.python(), "-m", "nos_enclave", "init", "--sealed-key", str(sealed_key)],
                       env={**os.environ, "NOS_ENCLAVE_SECRET": SEAL_SECRET}, check=True, capture_output=True)
    ctx.start_service("nos-enclave", [ctx.python(), "-m", "nos_enclave", "run", "--socket", socket_path,
                                      "--sealed-key", str(workdir / "enclave.sealed"), "--ca-bundle", str(pki.ca_cert),
                                      "--health-port", str(enclave_port)],
                      health_url=f"http://127.0.0.1:{enclave_port}/health", env={"NOS_ENCLAVE_SECRET": SEAL_SECRET})
    info = httpx.get(f"http://127.0.0.1:{enclave_port}/health", timeout=5).json()
    ctx.step(f"enclave key {info['address']}, measurement {info['measurement'][:18]}...")

    # The oracle owner registers it with the admin CLI (idempotent).
    for name, account in (("admin", deployer), ("relayer", relayer)):
        write_keystore(workdir / f"{name}.keystore", account.key, PASSWORD)
    result = subprocess.run(
        [ctx.python(), "-m", "nos_relay.relay", "register-enclave", "--rpc-url", ctx.ethereum.anvil.url,
         "--manifest", str(ctx.ethereum.manifest_path), "--keystore", str(workdir / "admin.keystore"),
         "--password-env", PASSWORD_ENV, "--enclave-socket", socket_path, "--db", str(workdir / "admin.sqlite")],
        capture_output=True, text=True, env={**os.environ, PASSWORD_ENV: PASSWORD}, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"register-enclave failed: {result.stderr.strip()}")
    ctx.step(f"$ nos-relay register-enclave ...  -> {result.stdout.strip()}")
    ctx.done("enclave registered (key, measurement)", part="oracle", address=oracle.address)

    relay_port = free_port()
    ctx.start_service("nos-relay", [ctx.python(), "-m", "nos_relay.relay", "run", "--rpc-url", ctx.ethereum.anvil.url,
                                    "--manifest", str(ctx.ethereum.manifest_path), "--keystore",
                                    str(workdir / "relayer.keystore"), "--db", str(workdir / "relay.sqlite"),
                                    "--enclave-socket", socket_path, "--health-port", str(relay_port)],
                      health_url=f"http://127.0.0.1:{relay_port}/health",
                      env={"NOS_RELAY_PASSWORD_ENV": PASSWORD_ENV, PASSWORD_ENV: PASSWORD,
                           "NOS_RELAY_POLL_INTERVAL": "0.2"})
    try:
        _public_request(ctx, oracle, consumer, deployer, source)
        _private_request(ctx, oracle, alice, info, source)
    finally:
        source.stop()


def _public_request(ctx: DemoContext, oracle: Any, consumer: Any, owner: Any, source: PriceSource) -> None:
    w3 = ctx.ethereum.w3
    params = Params(source.url(), "json:data.price", "uint256", 2).to_json()
    fee = oracle.functions.requestFee(consumer.functions.CALLBACK_GAS_LIMIT().call(), MAX_GAS_PRICE).call()
    receipt = ctx.send(w3, consumer.functions.requestPrice(params), owner, value=fee)
    request_id = bytes(oracle.events.Request().process_receipt(receipt, errors=DISCARD)[0]["args"]["requestId"])
    ctx.step(f"dApp asked for {params.decode()} paying {fee / 10**18:.5f} ETH (max gas price 20 gwei)")
    ctx.done("dApp price request (via PriceConsumer)", part="oracle", address=consumer.address,
             gas=int(receipt["gasUsed"]))
    delivered = ctx.wait_for("the delivery", lambda: _delivered(oracle, request_id), logs="nos-*.log")
    price = consumer.functions.price().call()
    ctx.step(f"enclave fetched it over TLS, relay delivered: price {price / 100:,.2f}; "
             f"operator paid {delivered['args']['payment'] / 10**18:.6f} ETH, "
             f"requester credited {delivered['args']['refund'] / 10**18:.6f} ETH back")
    gas = int(w3.eth.get_transaction_receipt(delivered["transactionHash"])["gasUsed"])
    ctx.done(f"price {price / 100:,.2f} delivered to the dApp", part="oracle", address=oracle.address, gas=gas)


def _private_request(ctx: DemoContext, oracle: Any, requester: Any, info: dict[str, Any], source: PriceSource) -> None:
    w3 = ctx.ethereum.w3
    reply_key = PrivateKey()
    request_id = bytes(oracle.functions.nextRequestId(requester.address).call())
    params = Params(source.url("/price.xml"), "xml:./price", "uint256", 2, reply_key.public_key.format())
    sealed = encrypt_params(bytes.fromhex(info["encryption_public_key"]), params, requester.address, request_id)
    fee = oracle.functions.requestFee(0, MAX_GAS_PRICE).call()
    receipt = ctx.send(w3, oracle.functions.request(sealed, ZERO, 0), requester, value=fee)
    ctx.step(f"alice sent a private request: {len(sealed)} bytes of ciphertext on chain, bound to her and "
             f"request {request_id.hex()[:12]}...")
    ctx.done("private request (params encrypted to the enclave)", part="oracle", address=oracle.address,
             gas=int(receipt["gasUsed"]))
    delivered = ctx.wait_for("the private delivery", lambda: _delivered(oracle, request_id), logs="nos-*.log")
    data = bytes(delivered["args"]["data"])
    price = int.from_bytes(ecies_decrypt(reply_key.secret, data, request_id), "big")
    ctx.step(f"the chain holds {len(data)} bytes of ciphertext; alice decrypts price {price / 100:,.2f}")
    ctx.done("private answer readable only by alice", part="oracle", address=oracle.address)


def _delivered(oracle: Any, request_id: bytes) -> Any:
    logs = oracle.events.Delivered().get_logs(from_block=0, argument_filters={"requestId": request_id})
    return logs[0] if logs else None
