"""The whole system as the demo runs it, with handles to break it.

`System` starts two anvils, deploys both sides with `ape run deploy` (the demo's
`run_ape_deploy`), and starts every service as a subprocess with its CLI. Services
reach anvil only through a loopback proxy per chain (so the RPC can be cut); the
test's own actors and the injectors talk to anvil directly, as other clients would.

`Injector` applies the faults: SIGKILL + restart, a deep reorg whose removed
transactions are dropped or returned to the mempool, an RPC outage, and a restart
after another client advanced a service key's nonce.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from eth_account import Account
from eth_account.signers.local import LocalAccount
from rich.console import Console
from web3 import Web3

from dccn_common import PROJECT_ROOT
from dccn_common.contracts import transact
from dccn_common.keys import write_keystore
from dccn_common.manifest import Manifest, manifest_path
from dccn_demo.__main__ import run_ape_deploy
from dccn_demo.context import DEMO_ROLES
from dccn_devtools.anvil import Anvil, AnvilError, dev_private_keys
from dccn_devtools.ports import free_port
from dccn_devtools.processes import stop_process
from enode_dns.enode import EnodeId
from nos_relay.devsource import DevPki, PriceSource
from tests.dccn_common.conftest import TcpProxy

ETHEREUM_CHAIN_ID = 31337
ANKR_CHAIN_ID = 31338
# The demo's actors, then one key per service the demo shares a key between (a shared
# key would make nonce checks meaningless), and a dApp that asks the oracle.
ROLES = (*DEMO_ROLES, "watcher", "oracle_relayer", "enode_sender", "dapp")
PASSWORD_ENV = "DCCN_FAULTS_PASSWORD"
PASSWORD = "faults suite only"
SEAL_SECRET = "faults suite only: enclave sealing secret"
# Confirmations each service waits for; every reorg the injector makes is deeper.
CONFIRMATIONS = {"ethereum": 1, "ankr": 1}
BRIDGE_CONFIRMATIONS = {"ethereum": 2, "ankr": 1}
MINE_INTERVAL = 1.0


@dataclass(frozen=True)
class Profile:
    name: str
    items_per_segment: int
    faults_per_segment: int
    outage_seconds: tuple[float, float]
    validators: int
    settle_timeout: float
    mixed_faults: int


PROFILES = {
    "quick": Profile("quick", items_per_segment=4, faults_per_segment=1, outage_seconds=(10.0, 15.0),
                     validators=3, settle_timeout=60.0, mixed_faults=2),
    "long": Profile("long", items_per_segment=12, faults_per_segment=3, outage_seconds=(20.0, 40.0),
                    validators=4, settle_timeout=240.0, mixed_faults=8),
}


@dataclass
class ChainNode:
    """One chain: its anvil, the proxy services use, a direct web3, the manifest."""

    name: str
    anvil: Anvil
    proxy: TcpProxy
    w3: Web3
    manifest: Manifest
    manifest_path: Path

    def contract(self, name: str) -> Any:
        return self.manifest.contract(self.w3, name)


@dataclass
class ServiceProcess:
    """One service subprocess, restartable with the same command line and ports."""

    name: str
    argv: list[str]
    env: dict[str, str]
    health_url: str
    log_path: Path
    # (chain, address) of the keys this service signs transactions with.
    signers: list[tuple[str, str]] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        """Restart as a supervisor would: a service refuses to start while its RPC is cut
        (one `error:` line, exit 2), so it is launched again until it stays up."""
        self.launch()
        self.wait_healthy(timeout, relaunch=True)

    def launch(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                                            env={**os.environ, **self.env}, start_new_session=True)

    def wait_healthy(self, timeout: float = 90.0, *, relaunch: bool = False) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not self._healthy():
            if self.process.poll() is not None:
                if not relaunch or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
                time.sleep(1.0)
                self.launch()
                continue
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not healthy at {self.health_url} after {timeout:.0f} s")
            time.sleep(0.3)

    def _healthy(self) -> bool:
        # Up means the process answers; 503 (e.g. RPC just cut) still counts as up.
        try:
            return httpx.get(self.health_url, timeout=2).status_code in (200, 503)
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush; what a crash or OOM kill does."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        stop_process(self.process)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Miner:
    """Mines a block on each chain every MINE_INTERVAL, so confirmations advance (anvil
    only mines on transactions). `paused()` holds it during a reorg."""

    def __init__(self, anvils: list[Anvil]) -> None:
        self._anvils = anvils
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(MINE_INTERVAL):
            with self._lock:
                for node in self._anvils:
                    with contextlib.suppress(AnvilError, httpx.HTTPError):
                        node.mine()

    @contextlib.contextmanager
    def paused(self) -> Any:
        with self._lock:
            yield

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class System:
    """Both chains, the deployment, every service, and the actors by role."""

    def __init__(self, workdir: Path, profile: Profile) -> None:
        self.workdir = workdir
        self.profile = profile
        self.actors: dict[str, LocalAccount] = {
            role: Account.from_key(key) for role, key in zip(ROLES, dev_private_keys(len(ROLES)), strict=True)}
        self.services: dict[str, ServiceProcess] = {}
        self.chains: dict[str, ChainNode] = {}
        self.price_source: PriceSource | None = None
        self.operator_url = ""
        self.enclave_socket = ""
        self.validator_urls: list[str] = []
        self.enode_address_file = workdir / "enode-public-ip"
        self.enode_key = Account.from_key(random.Random(ETHEREUM_CHAIN_ID).randbytes(32))
        self._anvils: list[Anvil] = []
        self.miner: Miner | None = None

    def actor(self, role: str) -> LocalAccount:
        return self.actors[role]

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> System:
        deployments = self.workdir / "deployments"
        console = Console(file=open(self.workdir / "deploy.out", "w"), width=160)  # noqa: SIM115 (closed with the run)
        for name, chain_id in (("ethereum", ETHEREUM_CHAIN_ID), ("ankr", ANKR_CHAIN_ID)):
            node = Anvil(chain_id=chain_id, accounts=len(ROLES), log_path=self.workdir / f"anvil-{name}.log").start()
            self._anvils.append(node)
            manifest = run_ape_deploy(node, name, deployments, console, self.workdir)
            self.chains[name] = ChainNode(name, node, TcpProxy(node.port), node.web3(), manifest,
                                          manifest_path(chain_id, deployments))
        self.miner = Miner(self._anvils)
        self.miner.start()
        # Launched in two waves (the second needs the first up), each wave in parallel.
        for wave in ((self._start_operator, self._start_enclave, self._start_validators, self._start_enode_dns),
                     (self._register_enclave, self._start_watcher, self._start_relay, self._start_relayer)):
            for part in wave:
                part()
            for service in self.services.values():
                service.wait_healthy()
        return self


    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()
        if self.miner:
            self.miner.stop()
        if self.price_source:
            self.price_source.stop()
        for chain in self.chains.values():
            chain.proxy.close()
        for node in self._anvils:
            node.stop()

    @property
    def eth(self) -> ChainNode:
        return self.chains["ethereum"]

    @property
    def ankr(self) -> ChainNode:
        return self.chains["ankr"]

    def rpc_url(self, chain: str) -> str:
        """What services are given: the proxy, never anvil itself."""
        return self.chains[chain].proxy.url

    def service_signers(self, chain: str) -> set[str]:
        return {address for s in self.services.values() for c, address in s.signers if c == chain}

    # -- services ----------------------------------------------------------------------

    def _keystore(self, role: str) -> Path:
        path = self.workdir / f"{role}.keystore.json"
        if not path.exists():
            write_keystore(path, self.actor(role).key, PASSWORD)
        return path

    def _add(self, name: str, argv: list[str], health_port: int, *, env: dict[str, str] | None = None,
             signers: list[tuple[str, str]] | None = None) -> ServiceProcess:
        service = ServiceProcess(name, [sys.executable, "-m", *argv], {PASSWORD_ENV: PASSWORD, **(env or {})},
                                 f"http://127.0.0.1:{health_port}/health", self.workdir / f"{name}.log",
                                 signers or [])
        self.services[name] = service
        service.launch()
        return service

    def _plasma_common(self) -> list[str]:
        return ["--rpc-url", self.rpc_url("ethereum"), "--manifest", str(self.eth.manifest_path),
                "--confirmations", str(CONFIRMATIONS["ethereum"]), "--poll-interval", "0.3",
                "--password-env", PASSWORD_ENV]

    def _start_operator(self) -> None:
        api_port = free_port()
        self.operator_url = f"http://127.0.0.1:{api_port}"
        self._add("plasma-operator",
                  ["plasma_operator.server", *self._plasma_common(), "--keystore", str(self._keystore("operator")),
                   "--db", str(self.workdir / "plasma-operator.db"), "--api-port", str(api_port),
                   "--block-interval", "1"],
                  api_port, signers=[("ethereum", self.actor("operator").address)])

    def _start_watcher(self) -> None:
        watcher_port = free_port()
        self._add("plasma-watcher",
                  ["plasma_client.watcher", *self._plasma_common(), "--keystore", str(self._keystore("watcher")),
                   "--db", str(self.workdir / "plasma-watcher.db"), "--operator-url", self.operator_url,
                   "--health-port", str(watcher_port)],
                  watcher_port, signers=[("ethereum", self.actor("watcher").address)])

    def _start_enclave(self) -> None:
        pki = DevPki.create(self.workdir / "pki", "NOS faults CA")
        self.price_source = PriceSource(pki, price="2345.67").start()
        socket_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"nosfaults-{os.getpid()}"  # short: AF_UNIX limit
        socket_dir.mkdir(parents=True, exist_ok=True)
        self.enclave_socket = str(socket_dir / "enclave.sock")
        enclave_port = free_port()
        sealed_key = self.workdir / "enclave.sealed"
        # Only `init` creates the enclave's identity; `run` refuses a missing key.
        subprocess.run([sys.executable, "-m", "nos_enclave", "init", "--sealed-key", str(sealed_key)],
                       env={**os.environ, "NOS_ENCLAVE_SECRET": SEAL_SECRET}, check=True, capture_output=True,
                       cwd=PROJECT_ROOT)
        self._add("nos-enclave", ["nos_enclave", "run", "--socket", self.enclave_socket, "--sealed-key",
                                  str(self.workdir / "enclave.sealed"), "--ca-bundle", str(pki.ca_cert),
                                  "--health-port", str(enclave_port)],
                  enclave_port, env={"NOS_ENCLAVE_SECRET": SEAL_SECRET})

    def _register_enclave(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "nos_relay.relay", "register-enclave", "--rpc-url", self.eth.anvil.url,
             "--manifest", str(self.eth.manifest_path), "--keystore", str(self._keystore("deployer")),
             "--password-env", PASSWORD_ENV, "--enclave-socket", self.enclave_socket,
             "--db", str(self.workdir / "oracle-admin.sqlite")],
            capture_output=True, text=True, env={**os.environ, PASSWORD_ENV: PASSWORD}, check=False, cwd=PROJECT_ROOT)
        if result.returncode != 0:
            raise RuntimeError(f"register-enclave failed: {result.stderr.strip()}")

    def _start_relay(self) -> None:
        relay_port = free_port()
        self._add("nos-relay", ["nos_relay.relay", "run", "--rpc-url", self.rpc_url("ethereum"),
                                "--manifest", str(self.eth.manifest_path), "--keystore",
                                str(self._keystore("oracle_relayer")), "--db", str(self.workdir / "relay.sqlite"),
                                "--enclave-socket", self.enclave_socket, "--health-port", str(relay_port)],
                  relay_port, env={"NOS_RELAY_PASSWORD_ENV": PASSWORD_ENV, "NOS_RELAY_POLL_INTERVAL": "0.3",
                                   "NOS_RELAY_CONFIRMATIONS": str(CONFIRMATIONS["ethereum"])},
                  signers=[("ethereum", self.actor("oracle_relayer").address)])

    def _bridge_config(self, role: str, **extra: Any) -> tuple[Path, int]:
        health_port = free_port()
        path = self.workdir / f"bridge-{role}.yaml"
        path.write_text(yaml.safe_dump({
            "ethereum_rpc_url": self.rpc_url("ethereum"), "ankr_rpc_url": self.rpc_url("ankr"),
            "ethereum_manifest": str(self.eth.manifest_path), "ankr_manifest": str(self.ankr.manifest_path),
            "ethereum_confirmations": BRIDGE_CONFIRMATIONS["ethereum"],
            "ankr_confirmations": BRIDGE_CONFIRMATIONS["ankr"], "password_env": PASSWORD_ENV,
            "poll_interval": 0.3, "keystore": str(self._keystore(role)),
            "db_path": str(self.workdir / f"bridge-{role}.db"), "health_port": health_port, **extra}))
        return path, health_port

    def _start_validators(self) -> None:
        foreign, home = self.eth.contract("ForeignBridge"), self.ankr.contract("HomeBridge")
        if foreign.functions.peerBridge().call() != home.address:
            # What a second `ape run deploy --side ethereum` does once the Ankr side exists.
            transact(self.eth.w3, foreign.functions.setPeer(ANKR_CHAIN_ID, home.address), sender=self.actor("deployer"))
        for role in ("v1", "v2", "v3", "v4")[:self.profile.validators]:
            port = free_port()
            self.validator_urls.append(f"http://127.0.0.1:{port}")
            config, health = self._bridge_config(role, signatures_port=port)
            self._add(f"bridge-validator-{role}", ["token_bridge.cli", "validator", "--config", str(config)], health)

    def _start_relayer(self) -> None:
        config, health = self._bridge_config("relayer", validator_urls=self.validator_urls)
        relayer = self.actor("relayer").address
        self._add("bridge-relayer", ["token_bridge.cli", "relayer", "--config", str(config)], health,
                  signers=[("ethereum", relayer), ("ankr", relayer)])

    def _start_enode_dns(self) -> None:

        rules = self.eth.contract("EnodeRules")
        enode = EnodeId.of_account(self.enode_key)
        call = rules.functions.proposeAddNode(enode.high, enode.low, "203.0.113.10", 30303, 1, "faults", False)
        proposer, approver = self.actor("deployer"), self.actor("tenant")  # two of the local admins
        proposal_id = call.call({"from": proposer.address})
        transact(self.eth.w3, call, sender=proposer)
        transact(self.eth.w3, rules.functions.approve(proposal_id), sender=approver)
        node_keystore = self.workdir / "enode-node.keystore.json"
        write_keystore(node_keystore, self.enode_key.key, PASSWORD)
        self.enode_address_file.write_text("203.0.113.10\n")
        config = self.workdir / "enode-dns.yaml"
        config.write_text(yaml.safe_dump({
            "rpc_url": self.rpc_url("ethereum"), "manifest": str(self.eth.manifest_path),
            "db": str(self.workdir / "enode-dns.sqlite"), "node_keystore": str(node_keystore),
            "node_password_env": PASSWORD_ENV, "sender_keystore": str(self._keystore("enode_sender")),
            "sender_password_env": PASSWORD_ENV, "confirmations": CONFIRMATIONS["ethereum"], "poll_interval": 0.5,
            "address_interval": 0.5, "address_source": f"file:{self.enode_address_file}"}))
        port = free_port()
        self._add("enode-dns", ["enode_dns.daemon", "run", "--config", str(config), "--health-port", str(port)], port,
                  signers=[("ethereum", self.actor("enode_sender").address)])


# -- faults ------------------------------------------------------------------------------

FAULT_KINDS = ("sigkill", "rpc_outage", "nonce_advanced", "reorg_mempool", "reorg_dropped")
MAX_REORG_DEPTH = 12


@dataclass
class FaultRecord:
    kind: str
    detail: str


class Injector:
    """Applies faults to a running System; every choice comes from `rng` (seeded)."""

    def __init__(self, system: System, rng: random.Random, log: Callable[[str], None]) -> None:
        self.system = system
        self.rng = rng
        self.log = log
        self.injected: list[FaultRecord] = []
        self._outages: list[threading.Thread] = []
        self._kill_deck: list[str] = []

    def inject(self, kind: str, anchor: int | None = None) -> FaultRecord | None:
        """Apply one fault; `anchor` (reorgs only) is an Ethereum block the reorg must remove."""
        if kind.startswith("reorg_"):
            record = self._reorg(returned=kind == "reorg_mempool", anchor=anchor)
        else:
            record = getattr(self, f"_{kind}")()
        if record is not None:
            self.injected.append(record)
            self.log(f"fault {record.kind}: {record.detail}")
        return record

    def wait_outages(self) -> None:
        for thread in self._outages:
            thread.join()
        self._outages.clear()

    # -- the kinds ---------------------------------------------------------------------

    def _sigkill(self) -> FaultRecord:
        # A shuffled deck: every service is killed once before any is killed twice.
        if not self._kill_deck:
            self._kill_deck = self.rng.sample(sorted(self.system.services), len(self.system.services))
        service = self.system.services[self._kill_deck.pop()]
        time.sleep(self.rng.uniform(0.0, 1.5))  # a random point in its work
        service.kill()
        service.start()
        return FaultRecord("sigkill", service.name)

    def _rpc_outage(self) -> FaultRecord:
        chains = self.rng.choice([["ethereum"], ["ankr"], ["ethereum", "ankr"]])
        seconds = self.rng.uniform(*self.system.profile.outage_seconds)
        proxies = [self.system.chains[c].proxy for c in chains]
        for proxy in proxies:
            proxy.up = False

        def restore() -> None:
            time.sleep(seconds)
            for proxy in proxies:
                proxy.up = True

        thread = threading.Thread(target=restore, daemon=True)
        thread.start()
        self._outages.append(thread)
        return FaultRecord("rpc_outage", f"{'+'.join(chains)} for {seconds:.0f} s")

    def _nonce_advanced(self) -> FaultRecord:
        candidates = sorted((s.name, chain, address) for s in self.system.services.values()
                            for chain, address in s.signers)
        name, chain, address = self.rng.choice(candidates)
        service = self.system.services[name]
        service.stop()
        key = next(a for a in self.system.actors.values() if a.address == address)
        w3 = self.system.chains[chain].w3
        # Another client (a wallet with the same key) sends a transaction meanwhile.
        tx = {"to": address, "value": 0, "gas": 21_000, "nonce": w3.eth.get_transaction_count(address, "pending"),
              "chainId": w3.eth.chain_id, "maxFeePerGas": 50 * 10**9, "maxPriorityFeePerGas": 10**9}
        tx_hash = w3.eth.send_raw_transaction(key.sign_transaction(tx).raw_transaction)
        w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        service.start()
        return FaultRecord("nonce_advanced", f"{name} on {chain} (nonce {tx['nonce']} taken)")

    def _reorg(self, *, returned: bool, anchor: int | None) -> FaultRecord | None:
        chain_name = "ethereum" if anchor is not None else self.rng.choice(["ethereum", "ethereum", "ankr"])
        chain = self.system.chains[chain_name]
        signers = self.system.service_signers(chain_name)
        confirmations = max(CONFIRMATIONS[chain_name], BRIDGE_CONFIRMATIONS[chain_name])
        assert self.system.miner is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with self.system.miner.paused():
                removed = self._try_reorg(chain, signers, confirmations, returned, anchor)
            if removed is not None:
                depth, service_txs, resent = removed
                variant = "returned to the mempool" if returned else "dropped"
                return FaultRecord("reorg_mempool" if returned else "reorg_dropped",
                                   f"{chain_name} depth {depth} (> {confirmations} confirmations): "
                                   f"{service_txs} confirmed service txs removed, {variant}; {resent} re-sent")
            time.sleep(1.0)  # no confirmed service transaction near the head yet
        return None

    def _try_reorg(self, chain: ChainNode, signers: set[str], confirmations: int,
                   returned: bool, anchor: int | None) -> tuple[int, int, int] | None:
        anvil = chain.anvil
        head = anvil.block_number()
        newest = None
        blocks: dict[int, list[dict[str, Any]]] = {}
        bottom = min(anchor, head - confirmations) if anchor is not None else max(head - MAX_REORG_DEPTH, 1)
        for number in range(head, bottom - 1, -1):
            block = anvil.rpc("eth_getBlockByNumber", hex(number), True)
            blocks[number] = block["transactions"]
            if newest is None and head - number >= confirmations and any(
                    Web3.to_checksum_address(tx["from"]) in signers for tx in block["transactions"]):
                newest = number
        if anchor is not None:
            newest = bottom  # back to the anchor, however many service txs came after it
        if newest is None:
            return None
        depth = head - newest + 1
        removed = [tx for number in range(newest, head + 1) for tx in blocks[number]]
        raws = [(Web3.to_checksum_address(tx["from"]), anvil.rpc("eth_getRawTransactionByHash", tx["hash"]))
                for tx in removed]
        service_txs = sum(1 for sender, _ in raws if sender in signers)
        anvil.reorg(depth)  # the removed blocks are replaced by empty ones
        anvil.rpc("anvil_dropAllTransactions")
        resent = 0
        for sender, raw in raws:
            # Users' wallets always re-send; services' transactions only in the mempool variant.
            if returned or sender not in signers:
                # One second apart, as the originals were: a deal settled in the block after its
                # opening must still stream something (evm_increaseTime does not do it here).
                latest = int(anvil.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
                anvil.set_next_timestamp(latest + 1)
                with contextlib.suppress(AnvilError):
                    anvil.rpc("eth_sendRawTransaction", raw)
                    resent += 1
        anvil.mine()
        return depth, service_txs, resent
