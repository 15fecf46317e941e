"""NOS oracle benchmark: gas per operation beside the anchors, and end-to-end
requests answered per second on one host (anvil mining a block every second +
enclave process + relay process + a local HTTPS source), beside the chain's
gas bound measured in the same run.

    python -m bench.bench_oracle [--requests 3000] [--gas-limit 30000000] [--gas-only]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_utils import keccak
from web3 import Web3
from web3.logs import DISCARD

from bench.report import table, verdict, write_section
from dccn_common.anvil import Anvil, dev_private_keys, free_port
from dccn_common.contracts import abi_hash, deploy, transact
from dccn_common.keys import write_keystore
from dccn_common.manifest import DeployedContract, Manifest
from nos_enclave.crypto import sign_digest
from nos_enclave.framing import EnclaveClient
from nos_enclave.protocol import Params, response_digest
from nos_relay.carrier import TcpCarrier, fetch_signed
from nos_relay.devsource import DevPki, PriceSource

REQUEST_TTL = 3600
DELIVERY_OVERHEAD = 100_000
GWEI = 10**9
ZERO = "0x" + "00" * 20
ENCLAVE_KEY = keccak(b"bench enclave")
PARAMS = b'{"url":"https://127.0.0.1:8443/price.json","path":"json:data.price","type":"uint256","decimals":2}'
DATA = (234567).to_bytes(32, "big")
NOOP_CALLBACK = """
# pragma version ~=0.4.3
@external
def nosCallback(requestId: bytes32, data: Bytes[512]):
    pass
"""


# -- gas -------------------------------------------------------------------------------


class GasBench:
    def __init__(self, anvil: Anvil) -> None:
        self.w3 = anvil.web3()
        self.anvil = anvil
        keys = dev_private_keys(4)
        self.admin, self.requester, self.operator, self.other = (Account.from_key(k).address for k in keys)
        self.oracle = deploy(self.w3, "NosOracle", REQUEST_TTL, DELIVERY_OVERHEAD, sender=self.admin)
        transact(self.w3, self.oracle.functions.registerEnclave(Account.from_key(ENCLAVE_KEY).address, keccak(b"m")),
                 sender=self.admin)
        import vyper

        out = vyper.compile_code(NOOP_CALLBACK, output_formats=["abi", "bytecode"])
        receipt = transact(self.w3, self.w3.eth.contract(abi=out["abi"], bytecode=out["bytecode"]).constructor(),
                           sender=self.admin)
        self.noop = receipt["contractAddress"]

    def request(self, callback: str, limit: int = 60_000) -> tuple[bytes, int]:
        fee = self.oracle.functions.requestFee(limit, 10 * GWEI).call()
        receipt = transact(self.w3, self.oracle.functions.request(PARAMS, callback, limit), sender=self.requester,
                           value=fee, gas=300_000)
        return bytes(self.oracle.events.Request().process_receipt(receipt)[0]["args"]["requestId"]), receipt["gasUsed"]

    def response(self, request_id: bytes) -> tuple[bytes, bytes, bytes, bytes]:
        digest = response_digest(self.w3.eth.chain_id, self.oracle.address, request_id, keccak(PARAMS), DATA)
        return request_id, keccak(PARAMS), DATA, sign_digest(ENCLAVE_KEY, digest)

    def deliver(self, request_id: bytes) -> int:
        receipt = transact(self.w3, self.oracle.functions.deliver(*self.response(request_id)), sender=self.operator,
                           gas=1_000_000)
        return int(receipt["gasUsed"])

    def batch(self, ids: list[bytes], sender: str | None = None) -> int:
        receipt = transact(self.w3, self.oracle.functions.deliverBatch([self.response(i) for i in ids]),
                           sender=sender or self.operator, gas=20_000_000)
        return int(receipt["gasUsed"])

    def race_loss(self, size: int, settled: int) -> int:
        """Gas a relay loses on a batch of `size` of which another relay delivered `settled` just before."""
        ids = [self.request(ZERO)[0] for _ in range(size)]
        if settled:
            self.batch(ids[:settled], sender=self.other)  # the other relay was first
        receipt = transact(self.w3, self.oracle.functions.deliverBatch([self.response(i) for i in ids]),
                           sender=self.operator, gas=20_000_000)
        delivered = self.oracle.events.Delivered().process_receipt(receipt, errors=DISCARD)  # not DeliverySkipped
        paid = sum(e["args"]["payment"] for e in delivered)
        return int(receipt["gasUsed"]) - paid // int(receipt["effectiveGasPrice"])

    def first_request(self) -> int:
        """A requester's very first request, naming a separate callback contract (its account word is new)."""
        fresh = Account.from_key(dev_private_keys(20)[19]).address
        fee = self.oracle.functions.requestFee(60_000, 10 * GWEI).call()
        receipt = transact(self.w3, self.oracle.functions.request(PARAMS, self.noop, 60_000), sender=fresh,
                           value=fee, gas=300_000)
        return int(receipt["gasUsed"])

    def run(self) -> dict[str, float]:
        first_request = self.first_request()
        self.request(self.requester)  # first request of an account creates its account word
        self.deliver(self.request(ZERO)[0])  # ... and the first payment the operator's credit slot
        _, request_own = self.request(self.requester)
        zero_id, request_zero = self.request(ZERO)
        noop_id, request_separate = self.request(self.noop)
        deliver_plain = self.deliver(zero_id)
        deliver_noop = self.deliver(noop_id)
        figures: dict[str, float] = {
            "request_first_separate_callback": first_request,
            "request_callback_is_requester": request_own,
            "request_separate_callback": request_separate,
            "request_no_callback": request_zero,
            "deliver_no_callback": deliver_plain,
            "deliver_noop_callback": deliver_noop,
        }
        for size in (10, 50):
            ids = [self.request(ZERO)[0] for _ in range(size)]
            figures[f"batch_{size}_per_response"] = self.batch(ids) / size
        self.batch([self.request(ZERO)[0]], sender=self.other)  # the other relay's credit slot exists too
        for size, settled in ((10, 0), (10, 1), (10, 5), (10, 10), (64, 64)):
            figures[f"race_{settled}_of_{size}_loss"] = self.race_loss(size, settled)
        cancel_id, _ = self.request(self.requester)
        self.anvil.warp(REQUEST_TTL + 1)
        receipt = transact(self.w3, self.oracle.functions.cancel(cancel_id), sender=self.requester)
        figures["cancel"] = receipt["gasUsed"]
        return figures


def gas_table(g: dict[str, float]) -> str:
    rows = [
        ["request (callback = requester)", int(g["request_callback_is_requester"]),
         "Airnode 88,967 / Chainlink 128,555 / Town Crier 137,155", "<= 88,000",
         verdict(g["request_callback_is_requester"], 88_000)],
        ["request (separate callback contract)", int(g["request_separate_callback"]), "Airnode 88,967", "<= 88,000",
         verdict(g["request_separate_callback"], 88_000)],
        ["request (no callback)", int(g["request_no_callback"]), "-", "<= 88,000",
         verdict(g["request_no_callback"], 88_000)],
        ["request, a requester's first (new account word, separate callback)",
         int(g["request_first_separate_callback"]), "-", "<= 100,000",
         verdict(g["request_first_separate_callback"], 100_000)],
        ["deliver, no callback", int(g["deliver_no_callback"]),
         "Airnode ~42,000 / Chainlink 45,494 / Pyth 48,000", "<= 42,000",
         verdict(g["deliver_no_callback"], 42_000)],
        ["deliver, empty callback (CALL + no-op callee)", int(g["deliver_noop_callback"]), "same", "42,000 + callback",
         "(reference)"],
        ["deliverBatch of 10, per response", int(g["batch_10_per_response"]), "-", "< deliver",
         verdict(g["batch_10_per_response"], g["deliver_no_callback"])],
        ["deliverBatch of 50, per response", int(g["batch_50_per_response"]), "-", "< deliver",
         verdict(g["batch_50_per_response"], g["deliver_no_callback"])],
        ["cancel (after expiry, full refund credited)", int(g["cancel"]), "~50,000", "~50,000",
         verdict(g["cancel"], 50_000)],
    ]
    return table(["operation", "gas", "anchor", "goal", "result"], rows)


def race_table(g: dict[str, float]) -> str:
    """What a relay loses when another delivered some of its batch first (gas spent minus gas paid)."""
    per_entry = (g["race_5_of_10_loss"] - g["race_1_of_10_loss"]) / 4
    rows = [
        ["batch of 10, none settled (no race)", int(g["race_0_of_10_loss"]), "paid what it spent"],
        ["batch of 10, 1 already settled", int(g["race_1_of_10_loss"]), "one skipped entry"],
        ["batch of 10, 5 already settled", int(g["race_5_of_10_loss"]), "five skipped entries"],
        ["batch of 10, all settled", int(g["race_10_of_10_loss"]), "whole transaction unpaid"],
        ["batch of 64, all settled (worst case)", int(g["race_64_of_64_loss"]), "whole transaction unpaid"],
        ["per skipped entry (marginal)", int(per_entry), "calldata + status read + DeliverySkipped"],
    ]
    return table(["racing relay: deliverBatch", "gas lost (spent - paid)", "why"], rows)


# -- throughput ------------------------------------------------------------------------


def anvil_raw_tx_rate(anvil: Anvil, count: int = 400) -> float:
    """Physical limit 1: signed ETH transfers per second this anvil accepts and mines."""
    w3 = anvil.web3()
    keys = dev_private_keys(8)[4:8]
    senders = [Account.from_key(k) for k in keys]
    chain_id = w3.eth.chain_id

    def send_many(account: Any, n: int) -> list[bytes]:
        local = anvil.web3()
        nonce = local.eth.get_transaction_count(account.address)
        hashes = []
        for i in range(n):
            tx = {"to": account.address, "value": 1, "gas": 21_000, "maxFeePerGas": 50 * GWEI,
                  "maxPriorityFeePerGas": GWEI, "nonce": nonce + i, "chainId": chain_id}
            hashes.append(local.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction))
        return hashes

    started = time.monotonic()
    with ThreadPoolExecutor(len(senders)) as pool:
        results = list(pool.map(lambda a: send_many(a, count // len(senders)), senders))
    w3.eth.wait_for_transaction_receipt(results[-1][-1], poll_latency=0.01)
    return count / (time.monotonic() - started)


def enclave_fetch_rate(socket_path: str, source: PriceSource, oracle: str, count: int = 300, threads: int = 8) -> float:
    """Physical limit 2: TLS fetches signed per second by the enclave through a carrier (no chain)."""
    params = Params(source.url(), "json:data.price", "uint256", 2).to_json()

    def work(n: int) -> None:
        with EnclaveClient(socket_path) as client:
            for i in range(n):
                request = {"chain_id": 31337, "oracle": oracle, "request_id": "0x" + keccak(str(i).encode()).hex(),
                           "requester": oracle, "params": params.hex()}
                fetch_signed(client, request, TcpCarrier())

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, [count // threads] * threads))
    return count // threads * threads / (time.monotonic() - started)


def wait_healthy(port: int, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            if response.status_code == 200:
                return dict(response.json())
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"service on port {port} not healthy")


class Throughput:
    """anvil (automine) + enclave process + relay process + HTTPS source on one host."""

    def __init__(self, workdir: Path, requests: int) -> None:
        self.workdir = workdir
        self.requests = requests
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], env: dict[str, str], name: str) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 (owned by the process)
        self.processes.append(subprocess.Popen([sys.executable, "-m", *argv], env={**os.environ, **env},
                                               stdout=log, stderr=subprocess.STDOUT))

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=20)

    def run(self, anvil: Anvil, pki: DevPki, source: PriceSource) -> dict[str, float]:
        w3 = anvil.web3()
        keys = dev_private_keys(20)
        admin, relayer = Account.from_key(keys[0]), Account.from_key(keys[1])
        oracle = deploy(w3, "NosOracle", REQUEST_TTL, DELIVERY_OVERHEAD, sender=admin.address)
        manifest = Manifest(chain_id=w3.eth.chain_id, network="bench")
        manifest.add(DeployedContract("NosOracle", oracle.address, w3.eth.block_number, "", oracle.abi,
                                      abi_hash(oracle.abi)))
        manifest.save(self.workdir / "manifest.json")
        socket_path = str(Path(tempfile.mkdtemp(prefix="nosb", dir="/tmp")) / "e.sock")
        enclave_port, relay_port = free_port(), free_port()
        secret = {"NOS_ENCLAVE_SECRET": "bench"}
        subprocess.run([sys.executable, "-m", "nos_enclave", "init", "--sealed-key",
                        str(self.workdir / "enclave.sealed")], env={**os.environ, **secret}, check=True,
                       capture_output=True)
        self.start(["nos_enclave", "run", "--socket", socket_path, "--sealed-key",
                    str(self.workdir / "enclave.sealed"), "--ca-bundle", str(pki.ca_cert), "--health-port",
                    str(enclave_port)], secret, "enclave")
        info = wait_healthy(enclave_port)
        transact(w3, oracle.functions.registerEnclave(info["address"], bytes.fromhex(info["measurement"][2:])),
                 sender=admin.address)
        fetch_rate = enclave_fetch_rate(socket_path, source, oracle.address)
        write_keystore(self.workdir / "relayer.json", relayer.key, "bench", kdf_n=2**4)
        self.start(["nos_relay.relay", "run", "--rpc-url", anvil.url, "--manifest", str(self.workdir / "manifest.json"),
                    "--keystore", str(self.workdir / "relayer.json"), "--db", str(self.workdir / "relay.sqlite"),
                    "--enclave-socket", socket_path, "--health-port", str(relay_port)],
                   {"NOS_RELAY_PASSWORD": "bench", "NOS_RELAY_POLL_INTERVAL": "0.05", "NOS_RELAY_WORKERS": "8",
                    "NOS_RELAY_BATCH_MAX": "64", "NOS_RELAY_LOG_LEVEL": "WARNING"}, "relay")
        wait_healthy(relay_port)
        requesters = [Account.from_key(k) for k in keys[4:12]]
        # Burst: everything at once, for the highest rate the host sustains.
        sent_at, delivered_at = self._load(w3, oracle, requesters, source, self.requests, pace=None)
        span = max(delivered_at.values()) - min(sent_at.values())
        burst = {"answered": len(delivered_at), "requested": len(sent_at), "seconds": span,
                 "rate": len(delivered_at) / span, **_percentiles(sent_at, delivered_at, "burst")}
        # Paced at a third of that rate: latency without a queue in front of it.
        paced_rate = max(1.0, burst["rate"] / 3)
        sent_at, delivered_at = self._load(w3, oracle, requesters, source, int(paced_rate * 10), pace=paced_rate)
        return {**burst, "paced_rate": paced_rate, **_percentiles(sent_at, delivered_at, "paced"),
                "enclave_fetch_rate": fetch_rate}

    def _load(self, w3: Web3, oracle: Any, requesters: list[Any], source: PriceSource, count: int,
              pace: float | None) -> tuple[dict[bytes, float], dict[bytes, float]]:
        """Send `count` requests (all at once, or `pace` per second in total); time their deliveries."""
        params = Params(source.url(), "json:data.price", "uint256", 2).to_json()
        fee = oracle.functions.requestFee(0, 10 * GWEI).call()
        data = oracle.functions.request(params, ZERO, 0)._encode_transaction_data()
        chain_id = w3.eth.chain_id
        sent_at: dict[bytes, float] = {}
        lock = threading.Lock()
        per_sender = max(1, count // len(requesters))
        interval = len(requesters) / pace if pace else 0.0

        def send_requests(account: Any) -> None:
            local = Web3(w3.provider)
            nonce = local.eth.get_transaction_count(account.address)
            first_request = oracle.functions.nonces(account.address).call()
            for i in range(per_sender):
                oracle_nonce = first_request + i
                request_id = keccak(bytes.fromhex(
                    f"{chain_id:064x}{int(oracle.address, 16):064x}{int(account.address, 16):064x}{oracle_nonce:064x}"))
                tx = {"to": oracle.address, "data": data, "value": fee, "gas": 200_000, "nonce": nonce + i,
                      "maxFeePerGas": 50 * GWEI, "maxPriorityFeePerGas": GWEI, "chainId": chain_id}
                raw = account.sign_transaction(tx).raw_transaction
                with lock:
                    sent_at[request_id] = time.monotonic()
                local.eth.send_raw_transaction(raw)
                if interval:
                    time.sleep(interval)

        delivered_at: dict[bytes, float] = {}
        delivered_topic = "0x" + keccak(b"Delivered(bytes32,address,address,bool,uint256,uint256,bytes)").hex()
        done = threading.Event()

        def watch() -> None:
            next_block = w3.eth.block_number + 1  # blocks up to the head belong to earlier phases
            while not done.is_set():
                head = w3.eth.block_number
                if head >= next_block:
                    # Raw topics, not ABI decoding: the watcher must not eat the CPU it measures.
                    logs = w3.eth.get_logs({"address": oracle.address, "topics": [delivered_topic],
                                            "fromBlock": next_block, "toBlock": head})
                    for entry in logs:
                        delivered_at.setdefault(bytes(entry["topics"][1]), time.monotonic())
                    next_block = head + 1
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        with ThreadPoolExecutor(len(requesters)) as pool:
            list(pool.map(send_requests, requesters))
        deadline = time.monotonic() + 300
        while not set(sent_at) <= set(delivered_at) and time.monotonic() < deadline:
            time.sleep(0.1)
        done.set()
        watcher.join()
        return sent_at, delivered_at


def _percentiles(sent_at: dict[bytes, float], delivered_at: dict[bytes, float], label: str) -> dict[str, float]:
    strays = [i for i in delivered_at if i not in sent_at]
    if strays:
        print(f"{label}: {len(strays)} deliveries of ids this run did not send, e.g. {strays[0].hex()}")
    latencies = sorted(delivered_at[i] - sent_at[i] for i in delivered_at if i in sent_at)
    return {f"{label}_p50": statistics.median(latencies), f"{label}_p95": latencies[int(0.95 * (len(latencies) - 1))]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=800, help="requests in the end-to-end run")
    parser.add_argument("--gas-only", action="store_true", help="skip the end-to-end run")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:] if __name__ == "__main__" else [])
    with Anvil(chain_id=31337, accounts=20) as anvil:
        gas = GasBench(anvil).run()
    print(json.dumps(gas, indent=2))
    body = "### Gas per operation (anvil receipts, steady state: nonce and credit slots exist)\n\n" + gas_table(gas)
    body += (
        "\n\nA request stores two words (params-hash prefix | fee; requester | gas limit | expiry | status) and a"
        " third only when the callback is not the requester; params are only emitted. `deliver` clears the"
        " first word (gas refund) and pays the submitter by measurement, so its cost stays within a few thousand"
        " gas of what it spent (tests/contracts/oracle: test_fee__operator_paid_what_it_spent...)."
    )
    body += (
        "\n\n### Racing relays: the worst loss\n\nTwo relays deliver overlapping batches; the second one's batch"
        " skips the ids the first settled (`DeliverySkipped`, no revert). Delivered entries pay their own gas and"
        " share the transaction's fixed gas; skipped entries are paid by no one, so the loser loses exactly their"
        " gas, and the whole transaction only when every id was settled. The relay reads `statusesOf` right before"
        " sending and drops settled ids, so this happens only for ids settled in the block it sends in.\n\n"
        + race_table(gas)
    )
    if not args.gas_only:
        body += "\n\n" + throughput_section(args.requests)
    write_section("oracle", "NOS oracle", body, "python -m bench.bench_oracle")


def throughput_section(requests: int) -> str:
    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="nos-bench-"))
    pki = DevPki.create(workdir / "pki")
    bench = Throughput(workdir, requests)
    with Anvil(chain_id=31337, accounts=20, gas_limit=60_000_000) as anvil, PriceSource(pki) as source:
        raw_rate = anvil_raw_tx_rate(anvil)
        try:
            figures = bench.run(anvil, pki, source)
        finally:
            bench.stop()
    print(json.dumps({**figures, "anvil_raw_tx_per_s": raw_rate}, indent=2))
    rate = figures["rate"]
    limit = min(raw_rate, figures["enclave_fetch_rate"])
    rows: list[list[object]] = [
        ["requests answered per second (end to end, batched)", f"{rate:.0f}", "seed ~65/host; goal >= 650",
         verdict(rate, 650, lower_is_better=False)],
        ["latency p50 / p95 in the burst (queueing included)",
         f"{figures['burst_p50']:.2f} s / {figures['burst_p95']:.2f} s", "-", ""],
        [f"latency p50 / p95 paced at {figures['paced_rate']:.0f} req/s (request sent -> Delivered seen)",
         f"{figures['paced_p50']:.2f} s / {figures['paced_p95']:.2f} s", "-", ""],
        ["physical limit: anvil signed transfers per second", f"{raw_rate:.0f}", "-", ""],
        ["physical limit: enclave TLS fetch + sign per second (8 carriers)", f"{figures['enclave_fetch_rate']:.0f}",
         "-", ""],
        ["answered / tighter physical limit", f"{rate / limit:.2f}", "-", ""],
    ]
    return (
        f"### End to end on one host ({int(figures['answered'])}/{int(figures['requested'])} requests answered"
        f" in {figures['seconds']:.1f} s)\n\n"
        "anvil (automine), the enclave as its own process, the relay as its own process (8 fetch workers,"
        " batches of up to 64), an HTTPS source on 127.0.0.1 (P-256 certificate, one TLS handshake per request),"
        " 8 requesters sending signed requests as fast as anvil takes them. Every request is one transaction"
        " that anvil must accept, so the request side shares the anvil limit with the deliveries; the goal of 650/s"
        " is above what this anvil accepts at all, whatever the oracle does."
        f" 1-minute load average before the run: {load_before:.1f} (other jobs shared the 2 cores).\n\n"
        + table(["figure", "value", "anchor / goal", "result"], rows)
    )


if __name__ == "__main__":
    main()
