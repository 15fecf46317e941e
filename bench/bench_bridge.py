"""ANKR bridge: gas of lock and release (N signatures) and end-to-end transfers per second.

Gas on two automining anvils; throughput on two anvils that mine a block every second
with a stated gas limit, as a real chain does, so many transfers share a block. The
bridge is deployed by the deploy part (dccn_deploy/parts/bridge.py, through web3: the same
code as `ape run deploy`); validators and the relayer are the service objects, each in its own process.
Run: python -m bench.bench_bridge
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from statistics import mean
from typing import Any

import httpx
from eth_account import Account
from hexbytes import HexBytes
from web3 import Web3

from bench.report import table, verdict, write_section
from dccn_common.contracts import transact
from dccn_deploy.parts.bridge import ANKR, BridgePair, BridgeParams, deploy_both_sides
from dccn_deploy.web3_backend import web3_context
from dccn_devtools.anvil import Anvil, dev_private_keys
from dccn_devtools.ports import free_port
from token_bridge.chains import ANKR as ANKR_SIDE
from token_bridge.chains import ETHEREUM, open_side
from token_bridge.relayer import DestinationRelay
from token_bridge.transfer import Destination, Transfer, sign_transfer, sorted_for_contract
from token_bridge.validator import SignatureServer, Validator

OMNI_EXECUTE_SIGNATURES = 114_527  # omni tokenbridge executeSignatures, average
GOAL_BASE, GOAL_PER_SIGNATURE = 89_000, 6_900
NATIVE_SUPPLY = 10_000_000_000 * ANKR
RUNS = 5
# Throughput run: the chains, the load and the services' loop.
THROUGHPUT_BLOCK_TIME = 1
THROUGHPUT_GAS_LIMIT = 3_000_000  # Ethereum mainnet's gas per second (36M per 12 s block)
E2E_TRANSFERS = 900  # enough that filling the pipeline (the latency) weighs little on the rate
E2E_TIMEOUT = 150.0
OFFERED_OVER_BOUND = 1.2  # locks offered faster than the destination can release: it is the limit
LOCKERS = 6
LOCK_GAS_LIMIT = 120_000
TRANSFER_AMOUNT = 10 * ANKR
SERVICE_POLL = 0.25
ETH_CONFIRMATIONS, ANKR_CONFIRMATIONS = 2, 1
RELEASE_ROW = "release native on the Ankr chain, 3 signatures (3-of-4), fresh recipient"


def _setup(eth: Anvil, ankr: Anvil, validators: list[Any], threshold: int, workdir: Path) -> BridgePair:
    deployer = eth.dev_accounts()[0]
    params = {"bridge": BridgeParams([v.address for v in validators], threshold, eth.chain_id, ankr.chain_id,
                                     hold_threshold=0, native_supply=NATIVE_SUPPLY)}
    return deploy_both_sides(web3_context(eth.web3(mined_on_return=False), deployer, side="ethereum", params=params, deployments=workdir),
                             web3_context(ankr.web3(mined_on_return=False), deployer, side="ankr", params=params, deployments=workdir))


def _release_gas(w3: Web3, bridge: Any, source: Destination, validators: list[Any], signers: int, sender: str,
                 recipient: str | None) -> int:
    """executeSignatures with `signers` signatures, average of RUNS; a fresh recipient each
    time when `recipient` is None (its balance slot goes from zero: +17,100 gas)."""
    gas = []
    for run in range(RUNS):
        tx_hash = (10_000 * signers + 100 * (recipient is None) + run).to_bytes(32, "big").hex()
        transfer = Transfer(source.chain_id, source.bridge, "0x" + tx_hash, 0, recipient or Account.create().address,
                            10 * ANKR)
        destination = Destination(w3.eth.chain_id, bridge.address)
        signatures = {v.address: sign_transfer(v, transfer, destination) for v in validators[:signers]}
        call = bridge.functions.executeSignatures(transfer.as_tuple(), sorted_for_contract(signatures, signers))
        gas.append(int(transact(w3, call, sender=sender)["gasUsed"]))
    return round(mean(gas))


def gas_figures(eth: Anvil, ankr: Anvil, workdir: Path) -> list[list[object]]:
    keys = dev_private_keys(20)
    validators = [Account.from_key(k) for k in keys[11:18]]
    rows: list[list[object]] = []
    eth_w3, ankr_w3 = eth.web3(mined_on_return=False), ankr.web3(mined_on_return=False)
    user = eth.dev_accounts()[1]
    for count, threshold in ((4, 3), (7, 5)):
        bridge = _setup(eth, ankr, validators[:count], threshold, workdir / f"{count}")
        deployer = eth.dev_accounts()[0]
        transact(eth_w3, bridge.token.functions.transfer(user, 1_000_000 * ANKR), sender=deployer)
        transact(eth_w3, bridge.token.functions.approve(bridge.foreign.address, 2**255), sender=user)
        if count == 4:
            lock = [int(transact(eth_w3, bridge.foreign.functions.relayTokens(user, 100 * ANKR), sender=user)["gasUsed"])
                    for _ in range(RUNS)]
            out = [int(transact(ankr_w3, bridge.home.functions.relayNative(user), sender=user, value=100 * ANKR)["gasUsed"])
                   for _ in range(RUNS)]
            rows.append(["lock ANKR on Ethereum (relayTokens)", round(mean(lock)), "", "", ""])
            rows.append(["bridge out native on the Ankr chain (relayNative)", round(mean(out)), "", "", ""])
        else:
            for _ in range(RUNS):
                transact(eth_w3, bridge.foreign.functions.relayTokens(user, 100 * ANKR), sender=user)
        home_source = Destination(ankr_w3.eth.chain_id, bridge.home.address)  # where releases on Ethereum come from
        foreign_source = Destination(eth_w3.eth.chain_id, bridge.foreign.address)
        for signers in sorted({threshold, count}):
            goal = GOAL_BASE + GOAL_PER_SIGNATURE * signers
            for label, recipient in (("recipient already holds ANKR", user), ("fresh recipient", None)):
                foreign_gas = _release_gas(eth_w3, bridge.foreign, home_source, validators, signers, user, recipient)
                home_gas = _release_gas(ankr_w3, bridge.home, foreign_source, validators, signers, user, recipient)
                where = f"{signers} signatures ({threshold}-of-{count}), {label}"
                rows.append([f"release ERC20 on Ethereum, {where}", foreign_gas, OMNI_EXECUTE_SIGNATURES, goal,
                             verdict(foreign_gas, goal)])
                rows.append([f"release native on the Ankr chain, {where}", home_gas, OMNI_EXECUTE_SIGNATURES, goal,
                             verdict(home_gas, goal)])
    return rows


@dataclass
class Throughput:
    transfers: int
    wall_seconds: float
    lock_seconds: float
    dest_blocks_per_second: float
    source_blocks_per_second: float
    release_gas: float
    lock_gas: float
    latency_blocks: list[int]
    release_span_blocks: int
    fullness: float
    load: str

    @property
    def rate(self) -> float:
        return self.transfers / self.wall_seconds

    @property
    def steady_rate(self) -> float:
        return self.transfers * self.dest_blocks_per_second / self.release_span_blocks

    @property
    def dest_bound(self) -> float:
        return THROUGHPUT_GAS_LIMIT * self.dest_blocks_per_second / self.release_gas

    @property
    def source_bound(self) -> float:
        return THROUGHPUT_GAS_LIMIT * self.source_blocks_per_second / self.lock_gas

    @property
    def bound(self) -> float:
        return min(self.dest_bound, self.source_bound)

    def latency(self, fraction: float) -> int:
        ordered = sorted(self.latency_blocks)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _send_all(w3: Web3, txs: list[Any]) -> None:
    """Broadcast unlocked-account transactions at once and wait for them all (setup on interval chains)."""
    hashes = [w3.eth.send_transaction(tx) for tx in txs]
    for tx_hash in hashes:
        if w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)["status"] != 1:
            raise RuntimeError(f"setup transaction {tx_hash.hex()} reverted")


def _presign_locks(w3: Web3, foreign: Any, lockers: list[Any], recipients: list[str]) -> list[list[bytes]]:
    """One list of raw relayTokens transactions per locker, in nonce order (signed before the clock starts)."""
    chain_id = w3.eth.chain_id
    per_locker: list[list[bytes]] = [[] for _ in lockers]
    nonces = [w3.eth.get_transaction_count(locker.address) for locker in lockers]
    for i, recipient in enumerate(recipients):
        k = i % len(lockers)
        data = foreign.functions.relayTokens(recipient, TRANSFER_AMOUNT)._encode_transaction_data()
        tx = {"to": foreign.address, "data": data, "value": 0, "gas": LOCK_GAS_LIMIT, "nonce": nonces[k],
              "chainId": chain_id, "maxFeePerGas": 500 * 10**9, "maxPriorityFeePerGas": 10**9}
        per_locker[k].append(bytes(lockers[k].sign_transaction(tx).raw_transaction))
        nonces[k] += 1
    return per_locker


def _broadcast(url: str, raws: list[bytes], interval: float) -> None:
    """One thread: send `raws` in order, one every `interval` seconds (the offered load)."""
    with httpx.Client(timeout=30) as client:
        started = time.perf_counter()
        for n, raw in enumerate(raws):
            delay = started + n * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            reply = client.post(url, json={"jsonrpc": "2.0", "id": n, "method": "eth_sendRawTransaction",
                                           "params": ["0x" + raw.hex()]}).json()
            if "error" in reply:
                raise RuntimeError(f"lock not accepted: {reply['error']}")


def _loop(step: Any, stop: Any) -> None:
    """A service's loop: step, then wait SERVICE_POLL; a failed step is reported and tried again."""
    while not stop.is_set():
        try:
            step()
        except Exception as err:  # a service rides out a hiccup, as its loop does
            print(f"service step failed: {type(err).__name__}: {err}")
        stop.wait(SERVICE_POLL)


def _validator_process(urls: tuple[str, str], manifests: tuple[Path, Path], key: str, db_path: Path, port: int,
                       ready: Any, stop: Any) -> None:
    """One validator service in its own process, as each validator runs (its own host, its own loop)."""
    sides = {ETHEREUM: open_side(ETHEREUM, urls[0], manifests[0], ETH_CONFIRMATIONS, None),
             ANKR_SIDE: open_side(ANKR_SIDE, urls[1], manifests[1], ANKR_CONFIRMATIONS, None)}
    validator = Validator(sides, db_path, Account.from_key(key))
    server = SignatureServer(validator, port=port).start()
    ready.set()
    try:
        _loop(validator.poll, stop)
    finally:
        server.stop()


def _relayer_process(urls: tuple[str, str], manifests: tuple[Path, Path], key: str, dbdir: Path,
                     validator_urls: list[str], ready: Any, stop: Any) -> None:
    """The relayer service in its own process: per destination, one loop collects and settles
    (tick(send=False)) and another sends (the shared TxSender, as it is)."""
    relayer = Account.from_key(key)
    relays = [DestinationRelay(open_side(name, url, manifest, confirmations, None), dbdir / f"relayer-{name}.db",
                               relayer, validator_urls)
              for name, url, manifest, confirmations in ((ETHEREUM, urls[0], manifests[0], ETH_CONFIRMATIONS),
                                                         (ANKR_SIDE, urls[1], manifests[1], ANKR_CONFIRMATIONS))]
    steps = [step for r in relays for step in (partial(r.tick, send=False), r.own_sender().process)]
    threads = [threading.Thread(target=_loop, args=(step, stop), daemon=True) for step in steps]
    for thread in threads:
        thread.start()
    ready.set()
    for thread in threads:
        thread.join()


def _blocks(w3: Web3, first: int, last: int) -> dict[int, Any]:
    return {n: w3.eth.get_block(n) for n in range(first, last + 1)}


def end_to_end(workdir: Path, release_gas_estimate: int) -> Throughput:
    """Ethereum -> Ankr through 3-of-4 validators and the relayer on two chains that mine a block every
    THROUGHPUT_BLOCK_TIME seconds with THROUGHPUT_GAS_LIMIT gas, 2 confirmations on Ethereum, 1 on the
    Ankr chain. Locks are offered at OFFERED_OVER_BOUND x the expected release bound from several
    threads (pre-signed), so the destination's blocks, not the lock side, are the limit."""
    keys = dev_private_keys(20)
    validators = [Account.from_key(k) for k in keys[11:15]]
    lockers = [Account.from_key(k) for k in keys[1:1 + LOCKERS]]
    with Anvil(chain_id=31337, accounts=20, block_time=THROUGHPUT_BLOCK_TIME, gas_limit=THROUGHPUT_GAS_LIMIT) as eth, \
            Anvil(chain_id=31338, accounts=20, block_time=THROUGHPUT_BLOCK_TIME, gas_limit=THROUGHPUT_GAS_LIMIT) as ankr:
        bridge = _setup(eth, ankr, validators, 3, workdir / "e2e")
        eth_w3, ankr_w3 = eth.web3(mined_on_return=False), ankr.web3(mined_on_return=False)
        deployer = eth.dev_accounts()[0]
        token = bridge.token.functions
        _send_all(eth_w3, [{"from": deployer, "to": bridge.token.address,
                            "data": token.transfer(locker.address, 1_000_000 * ANKR)._encode_transaction_data()}
                           for locker in lockers])
        _send_all(eth_w3, [{"from": locker.address, "to": bridge.token.address,
                            "data": token.approve(bridge.foreign.address, 2**255)._encode_transaction_data()}
                           for locker in lockers])
        recipients = [Account.create().address for _ in range(E2E_TRANSFERS)]
        raws = _presign_locks(eth_w3, bridge.foreign, lockers, recipients)

        urls, manifests = (eth.url, ankr.url), (bridge.ethereum_manifest, bridge.ankr_manifest)
        ports = [free_port() for _ in validators]
        context = multiprocessing.get_context("fork")  # nothing runs in other threads yet: a clean fork
        stop = context.Event()
        readies = [context.Event() for _ in validators]
        processes = [context.Process(target=_validator_process, daemon=True,
                                     args=(urls, manifests, v.key.hex(), workdir / "e2e" / f"validator-{v.address}.db",
                                           port, ready, stop))
                     for v, port, ready in zip(validators, ports, readies, strict=True)]
        for process in processes:
            process.start()
        for ready in readies:
            if not ready.wait(60):
                raise RuntimeError("a validator process did not start")
        validator_urls = [f"http://127.0.0.1:{port}" for port in ports]
        relayer_ready = context.Event()
        processes.append(context.Process(target=_relayer_process, daemon=True,
                                         args=(urls, manifests, keys[10], workdir / "e2e", validator_urls,
                                               relayer_ready, stop)))
        processes[-1].start()
        if not relayer_ready.wait(60):
            raise RuntimeError("the relayer process did not start")
        # Read-only from this process: the relayer's own record of transfers paid.
        relay_db = sqlite3.connect(f"file:{workdir / 'e2e' / 'relayer-ankr.db'}?mode=ro", uri=True, timeout=30)

        def paid() -> int:
            return int(relay_db.execute("SELECT COUNT(*) FROM relay_transfers WHERE status = 'done'").fetchone()[0])

        offered = OFFERED_OVER_BOUND * THROUGHPUT_GAS_LIMIT / THROUGHPUT_BLOCK_TIME / release_gas_estimate
        eth_first, ankr_first = eth_w3.eth.block_number, ankr_w3.eth.block_number
        try:
            started = time.perf_counter()
            senders = [threading.Thread(target=_broadcast, args=(eth.url, chunk, len(raws) / offered))
                       for chunk in raws]
            for thread in senders:
                thread.start()
            for thread in senders:
                thread.join()
            locked_at = time.perf_counter()
            deadline = started + E2E_TIMEOUT
            while paid() < E2E_TRANSFERS:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"only {paid()} of {E2E_TRANSFERS} transfers paid in {E2E_TIMEOUT}s")
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
            eth_last, ankr_last = eth_w3.eth.block_number, ankr_w3.eth.block_number
            # Blocks per wall-clock second: a loaded machine can make anvil slip behind its interval.
            rates = ((eth_last - eth_first) / elapsed, (ankr_last - ankr_first) / elapsed)
        finally:
            stop.set()
            relay_db.close()
            for process in processes:
                process.join(timeout=30)
        load = f"{os.getloadavg()[0]:.2f}"
        return _measure(eth_w3, ankr_w3, bridge, (eth_first, eth_last), (ankr_first, ankr_last), rates, elapsed,
                        locked_at - started, load)


def _measure(eth_w3: Web3, ankr_w3: Web3, bridge: BridgePair, eth_range: tuple[int, int],
             ankr_range: tuple[int, int], rates: tuple[float, float], elapsed: float, lock_seconds: float,
             load: str) -> Throughput:
    """Gas, block rate and per-transfer latency from the chains themselves."""
    eth_blocks, ankr_blocks = _blocks(eth_w3, *eth_range), _blocks(ankr_w3, *ankr_range)
    locks = bridge.foreign.events.TransferInitiated().get_logs(from_block=eth_range[0], to_block=eth_range[1])
    releases = bridge.home.events.TransferExecuted().get_logs(from_block=ankr_range[0], to_block=ankr_range[1])
    chain_id = eth_w3.eth.chain_id
    lock_block = {Transfer(chain_id, bridge.foreign.address, HexBytes(e["transactionHash"]).to_0x_hex(),
                           int(e["logIndex"]), e["args"]["recipient"], e["args"]["amount"]).key():
                  int(e["blockNumber"]) for e in locks}
    latency = [round((int(ankr_blocks[int(e["blockNumber"])]["timestamp"])
                      - int(eth_blocks[lock_block[HexBytes(e["args"]["key"]).to_0x_hex()]]["timestamp"]))
                     / THROUGHPUT_BLOCK_TIME) for e in releases]
    release_gas = mean(int(ankr_w3.eth.get_transaction_receipt(e["transactionHash"])["gasUsed"]) for e in releases)
    lock_gas = mean(int(eth_w3.eth.get_transaction_receipt(e["transactionHash"])["gasUsed"]) for e in locks)
    release_blocks = sorted({int(e["blockNumber"]) for e in releases})
    # Fullness of the destination's blocks between the first and the last release.
    inner = [ankr_blocks[n] for n in range(release_blocks[0], release_blocks[-1] + 1)]
    fullness = sum(int(b["gasUsed"]) for b in inner) / (THROUGHPUT_GAS_LIMIT * len(inner))
    return Throughput(len(releases), elapsed, lock_seconds, rates[1], rates[0], release_gas, lock_gas, latency,
                      release_blocks[-1] - release_blocks[0] + 1, fullness, load)


def main() -> None:
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with Anvil(chain_id=31337, accounts=20) as eth, Anvil(chain_id=31338, accounts=20) as ankr:
            rows = gas_figures(eth, ankr, workdir)
        # The release the throughput run makes: native coin, 3 of 4 signatures, a fresh recipient each.
        expected = next(int(str(row[1])) for row in rows if str(row[0]) == RELEASE_ROW)
        t = end_to_end(workdir, expected)
    ratio = t.rate / t.bound
    throughput = table(["throughput (Ethereum -> Ankr, 3-of-4, 2 + 1 confirmations)", "value"], [
        ["chains", f"two anvils, a block every {THROUGHPUT_BLOCK_TIME} s, gas limit {THROUGHPUT_GAS_LIMIT:,} "
                   f"({THROUGHPUT_GAS_LIMIT // THROUGHPUT_BLOCK_TIME:,} gas/s, Ethereum mainnet's 36M per 12 s)"],
        ["measured blocks/s (destination; source)", f"{t.dest_blocks_per_second:.3f}; {t.source_blocks_per_second:.3f}"],
        ["release gas per transfer (receipts of this run)", f"{t.release_gas:,.0f}"],
        ["lock gas per transfer (receipts of this run)", f"{t.lock_gas:,.0f}"],
        ["bound, destination: gas/s / release gas", f"{t.dest_bound:.1f} transfers/s"],
        ["bound, source: gas/s / lock gas", f"{t.source_bound:.1f} transfers/s"],
        [f"end-to-end transfers/s ({t.transfers} transfers, first lock sent to last payment)", f"{t.rate:.1f}"],
        ["ratio to the tighter bound (goal >= 0.7)", f"{ratio:.2f} ({verdict(ratio, 0.7, lower_is_better=False)})"],
        ["destination blocks from the first to the last release; their gas used / gas limit",
         f"{t.release_span_blocks}; {t.fullness:.0%}"],
        ["transfers/s while releasing (those blocks); ratio to the bound",
         f"{t.steady_rate:.1f}; {t.steady_rate / t.bound:.2f}"],
        ["latency lock block -> release block, p50 / p95 (blocks)", f"{t.latency(0.5)} / {t.latency(0.95)}"],
        [f"offered load: locks sent from {LOCKERS} accounts in {LOCKERS} threads, pre-signed (s to send all)",
         f"{OFFERED_OVER_BOUND} x the expected bound ({t.lock_seconds:.1f})"],
        ["1-minute load average at the end of the run", t.load],
    ])
    body = "\n\n".join([
        "Gas from receipts on anvil (average of 5 each). A release to a recipient that already holds ANKR "
        "(or native coin) is the common case; a fresh recipient pays 17,100 more for its new balance slot "
        "(ERC20) or 25,000 for creating its account (native coin sent to an empty account). The anchor is "
        "omni tokenbridge's `executeSignatures` average (an ERC20 release, comparable to the Ethereum rows); "
        "the goal is 89,000 + 6,900 per signature.",
        table(["operation", "gas", "omni anchor", "goal", "verdict"], rows),
        throughput,
        "Throughput runs on chains that make blocks on an interval, as a real chain does, so many transfers "
        "share a block. The bound is the tighter side's gas per second (gas limit x blocks per second measured "
        "in this run) divided by that side's gas per transfer (receipts of this run). Validators and relayer "
        "are the service classes, each validator and the relayer in its own process (the relayer's collecting and sending loops in two threads), polling every "
        f"{SERVICE_POLL} s as its service loop does; every validator proves each log against its block's "
        f"receiptsRoot before signing. Whole benchmark: {time.perf_counter() - began:.0f} s.",
    ])
    write_section("bridge", "ERC20 / native bridge", body, "python -m bench.bench_bridge")
    print(body)


if __name__ == "__main__":
    main()
