"""Fixtures shared by the whole suite.

One anvil per pytest-xdist worker (session scope lives per worker process), a
snapshot/revert around every test that touches it, actors named by role, and a
contract factory over artifacts compiled once (dccn_common.contracts).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boa.interpret
import pytest
from hypothesis import HealthCheck, settings

from dccn_common import PROJECT_ROOT

# ape and the compile cache stay inside the project; nothing touches ~/.ape.
os.environ.setdefault("APE_DATA_FOLDER", str(PROJECT_ROOT / ".ape"))
os.environ["PATH"] = f"{PROJECT_ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}"

from dccn_devtools.anvil import Anvil, dev_private_keys
from dccn_devtools.contracts import deploy

# Signing-key claims are per machine and name a chain by its id and genesis hash. Two xdist workers
# start anvils of the same chain id within the same second (same genesis hash) and use the same dev
# keys, so each worker, and the services it starts, claims keys in a folder of its own.
os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix=f"dccn-claims-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-")

# titanoboa's compile cache too (its default is ~/.cache/titanoboa).
boa.interpret.set_cache_dir(str(PROJECT_ROOT / ".cache" / "titanoboa"))

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]
# Quick profile for CI and `make test`; `HYPOTHESIS_PROFILE=long make test` for a deep run.
settings.register_profile("ci", max_examples=25, stateful_step_count=20, deadline=None,
                          suppress_health_check=_SUPPRESS, print_blob=True)
settings.register_profile("long", max_examples=1000, stateful_step_count=60, deadline=None,
                          suppress_health_check=_SUPPRESS, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ETHEREUM_CHAIN_ID = 31337
ANKR_CHAIN_ID = 31338
ROLE_NAMES = ("deployer", "operator", "tenant", "provider", "validator", "challenger",
              "alice", "bob", "carol", "dave", "app_provider", "monitor", "guardian", "relayer",
              "v1", "v2", "v3", "v4", "v5", "v6")


@dataclass(frozen=True)
class Actor:
    """A funded, unlocked anvil account with its private key (local chains only)."""

    role: str
    address: str
    key: str


class Roles(dict[str, Actor]):
    def __getattr__(self, role: str) -> Actor:
        try:
            return self[role]
        except KeyError:
            raise AttributeError(role) from None


def _start_anvil(chain_id: int, tmp_root: Path) -> Anvil:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return Anvil(chain_id=chain_id, accounts=len(ROLE_NAMES),
                 log_path=tmp_root / f"anvil-{chain_id}-{worker}.log").start()


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    """The Ethereum-side chain of this worker."""
    node = _start_anvil(ETHEREUM_CHAIN_ID, tmp_path_factory.mktemp("anvil"))
    yield node
    node.stop()


@pytest.fixture(scope="session")
def ankr_anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    """A second chain (the Ankr side, another chain id), for the bridge."""
    node = _start_anvil(ANKR_CHAIN_ID, tmp_path_factory.mktemp("anvil-ankr"))
    yield node
    node.stop()


@pytest.fixture
def chain(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    """The worker's anvil, reverted to its prior state after the test; a fresh one for `reorgs`."""
    yield from _test_chain(request, tmp_path_factory, "anvil", ETHEREUM_CHAIN_ID)


@pytest.fixture
def ankr_chain(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    yield from _test_chain(request, tmp_path_factory, "ankr_anvil", ANKR_CHAIN_ID)


def _test_chain(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                shared: str, chain_id: int) -> Iterator[Anvil]:
    if request.node.get_closest_marker("reorgs"):
        # A reorg on a node that has reverted snapshots can load a reverted branch's state
        # (Anvil.reorg refuses it), so a test that reorgs gets a node of its own (0.2 s).
        node = _start_anvil(chain_id, tmp_path_factory.mktemp(f"{shared}-own"))
        try:
            yield node
        finally:
            node.stop()
        return
    node = request.getfixturevalue(shared)
    snapshot = node.snapshot()
    yield node
    _restore(node, snapshot)


def _restore(node: Anvil, snapshot: str) -> None:
    # evm_revert keeps the mempool: a transaction a test left pending (automine off, a reorg)
    # becomes valid again once its sender's nonce is reverted, and the next test's first block
    # would mine it. Drop it, and leave automine on as the next test expects.
    node.rpc("anvil_dropAllTransactions")
    node.revert(snapshot)
    node.rpc("anvil_dropAllTransactions")
    node.set_automine(True)


@pytest.fixture
def w3(chain: Anvil) -> Any:
    return chain.web3()


@pytest.fixture(scope="session")
def roles() -> Roles:
    keys = dev_private_keys(len(ROLE_NAMES))
    from eth_account import Account

    return Roles({name: Actor(name, Account.from_key(key).address, key) for name, key in zip(ROLE_NAMES, keys, strict=True)})


@pytest.fixture
def create_contract(w3: Any, roles: Roles) -> Callable[..., Any]:
    """Factory: create_contract("Name", *args, sender=roles.x.address, value=0)."""

    def factory(name: str, *args: Any, sender: str | None = None, value: int = 0) -> Any:
        return deploy(w3, name, *args, sender=sender or roles.deployer.address, value=value)

    return factory


@pytest.fixture
def create_parts(w3: Any, roles: Roles, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """Factory (the deploy parts, as yearn's create_vault runs the factory): create_parts("dccn",
    dccn=EconomyParams(...)) runs those parts of dccn_deploy on this test's chain through web3,
    from roles.deployer, into one manifest per test, and returns the DeployContext (ctx.at(name)
    is the contract). Parameters are a part's params dataclass or its mapping (the YAML's)."""
    from dccn_deploy import run_parts
    from dccn_deploy.web3_backend import web3_context

    ctx = web3_context(w3, roles.deployer.address, deployments=tmp_path_factory.mktemp("deployments"))

    def factory(*parts: str, **params: Any) -> Any:
        ctx.add_params(params)
        return run_parts(ctx, parts)

    return factory


@pytest.fixture
def ankr_token(create_parts: Callable[..., Any]) -> Any:
    """AnkrToken deployed by the token part (in the manifest the other parts read)."""
    return create_parts("token").at("AnkrToken")


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something already listens on (this test process)."""
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    yield int(holder.getsockname()[1])
    holder.close()


@pytest.fixture
def make_broken_db(tmp_path: Path) -> Callable[[str], Path]:
    """Factory: make_broken_db("not_sqlite" | "malformed") -> a database file no service may use."""
    import sqlite3

    def factory(kind: str) -> Path:
        path = tmp_path / f"{kind}.db"
        if kind == "not_sqlite":
            path.write_bytes(b"these are the operator's notes, not a database\n" * 50)
            return path
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE filler (x TEXT)")
        conn.executemany("INSERT INTO filler VALUES (?)", [("x" * 200,) for _ in range(500)])
        conn.commit()
        conn.close()
        data = bytearray(path.read_bytes())
        data[4096 * 2 : 4096 * 2 + 3000] = b"\x5a" * 3000  # a damaged page in the middle of the table
        path.write_bytes(bytes(data))
        return path

    return factory


@dataclass
class ServiceProcess:
    """A service started as a real subprocess; its stderr/stdout go to `log`."""

    process: Any
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def health(self, port: int, timeout: float = 30.0) -> Any:
        """The first answer of GET /health (any status), waiting while nothing listens."""
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()[-3000:]
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"nothing answered on port {port}: {self.output()[-3000:]}")

    def wait_healthy(self, port: int, timeout: float = 30.0) -> Any:
        """GET /health once it answers 200 (a service may say 503 until its first tick)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            reply = self.health(port, timeout)
            if reply.status_code == 200 or time.monotonic() > deadline:
                return reply
            time.sleep(0.1)


@pytest.fixture
def cli_run() -> Callable[..., Any]:
    """cli_run(module, *args, env={}, stdin="") -> the finished subprocess (text, 120 s timeout)."""
    import subprocess
    import sys

    def run(module: str, *args: str, env: dict[str, str] | None = None, stdin: str = "") -> Any:
        return subprocess.run([sys.executable, "-m", module, *args], input=stdin, capture_output=True, text=True,
                              timeout=120, env={**os.environ, **(env or {})})

    return run


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """spawn(module, *args, env={}, name=...) -> a running service process, killed after the test."""
    import subprocess
    import sys

    started: list[ServiceProcess] = []

    def start(module: str, *args: str, env: dict[str, str] | None = None, name: str = "service") -> ServiceProcess:
        log = tmp_path / f"{name}-{len(started)}.log"
        with log.open("wb") as handle:
            process = subprocess.Popen([sys.executable, "-m", module, *args], stdout=handle, stderr=subprocess.STDOUT,
                                       env={**os.environ, **(env or {})})
        started.append(ServiceProcess(process, log))
        return started[-1]

    yield start
    for service in started:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait()


@dataclass
class MetricsScrape:
    """One scrape of a /metrics endpoint: samples by name, each with its labels."""

    samples: dict[str, list[tuple[dict[str, str], float]]]
    families: dict[str, str]  # family name -> type

    def value(self, name: str, **labels: str) -> float | None:
        """The one sample `name` whose labels include `labels`; None when there is none."""
        found = [v for have, v in self.samples.get(name, []) if labels.items() <= have.items()]
        assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
        return found[0] if found else None


def assert_leader_and_standby(scrape: Callable[[str], MetricsScrape], leader_port: int, standby_port: int,
                              signer: str) -> None:
    """Two instances of one service on loopback ports agree who leads for `signer`: their /health
    roles, and their dccn_leader gauges (1 on the leader, 0 on the standby)."""
    from dccn_devtools.probes import role

    assert role(leader_port) == "leader" and role(standby_port) == "standby"
    assert scrape(f"http://127.0.0.1:{leader_port}/metrics").value("dccn_leader", signer=signer) == 1
    assert scrape(f"http://127.0.0.1:{standby_port}/metrics").value("dccn_leader", signer=signer) == 0


@pytest.fixture
def scrape_metrics() -> Callable[[str], MetricsScrape]:
    """Factory: scrape(url) GETs a /metrics URL and parses the Prometheus text format;
    scrape(url, until=check) scrapes again until check(scrape) holds (timeout seconds)."""
    import time

    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    def scrape(url: str, until: Callable[[MetricsScrape], bool] | None = None, timeout: float = 30.0) -> MetricsScrape:
        deadline = time.monotonic() + timeout
        while True:
            result = scrape_once(url)
            if until is None or until(result):
                return result
            assert time.monotonic() < deadline, f"{url} never showed the expected figures: {result.samples}"
            time.sleep(0.1)

    def scrape_once(url: str) -> MetricsScrape:
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        families: dict[str, str] = {}
        for family in text_string_to_metric_families(response.text):
            families[family.name] = family.type
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
        return MetricsScrape(samples, families)

    return scrape


DOMAIN_METRIC_PREFIXES = ("dccn_plasma_", "dccn_oracle_", "dccn_enclave_", "dccn_bridge_", "dccn_enode_")


@dataclass
class DocumentedMetrics:
    """Metric names in docs/operations.md, the alert rules and the Grafana dashboard."""

    alerts: dict[str, Any]
    dashboard: dict[str, Any]
    names: set[str]

    def with_prefix(self, prefix: str) -> set[str]:
        return {name for name in self.names if name.startswith(prefix)}

    def shared(self) -> set[str]:
        return {name for name in self.names if not name.startswith(DOMAIN_METRIC_PREFIXES)}

    def undocumented(self, scrape: MetricsScrape) -> set[str]:
        """Families `scrape` serves that the docs do not name (`*_created`: prometheus_client's own)."""
        served = {name for name in scrape.families if name.startswith("dccn_") and not name.endswith("_created")}
        return {name for name in served if name not in self.names and f"{name}_total" not in self.names}

    @staticmethod
    def missing(names: set[str], scrape: MetricsScrape) -> set[str]:
        """Names neither a family nor a sample of `scrape` (counters and histograms by any series name)."""
        import re

        return {name for name in names if name not in scrape.samples and name not in scrape.families
                and re.sub(r"_(total|bucket|count|sum)$", "", name) not in scrape.families}


@pytest.fixture(scope="session")
def documented_metrics() -> DocumentedMetrics:
    import json
    import re

    import yaml

    docs = PROJECT_ROOT / "docs"
    alerts = yaml.safe_load((docs / "prometheus" / "alerts.yml").read_text())
    dashboard = json.loads((docs / "grafana" / "dccn.json").read_text())
    texts = [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    texts += [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    texts.append((docs / "operations.md").read_text())
    names = {name for text in texts for name in re.findall(r"\bdccn_[a-z_]*[a-z](?![\w/.])", text)}  # not paths
    return DocumentedMetrics(alerts, dashboard, names)
