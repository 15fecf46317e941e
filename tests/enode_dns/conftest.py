"""The enode registry on anvil, node keystores, a loopback address endpoint, and daemon configs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from dccn_common.contracts import abi_hash, deploy, transact
from dccn_common.keys import write_keystore
from dccn_common.manifest import DeployedContract, Manifest
from enode_dns.enode import EnodeId

PASSWORD = "correct horse battery staple"
NODE_PASSWORD_ENV = "ENODE_DNS_NODE_PASSWORD"
SENDER_PASSWORD_ENV = "ENODE_DNS_SENDER_PASSWORD"
VALIDATOR, BOOT, WRITER, OBSERVER = 0, 1, 2, 3


@dataclass
class AnvilRegistry:
    w3: Web3
    ingress: Any
    rules: Any
    admins: list[str]
    manifest_path: Path

    def add_node(self, enode: EnodeId, host: str, port: int = 30303, node_type: int = BOOT) -> None:
        """Propose by one admin, approve by a second (threshold 2)."""
        call = self.rules.functions.proposeAddNode(enode.high, enode.low, host, port, node_type, "ankr", False)
        proposal_id = call.call({"from": self.admins[0]})
        transact(self.w3, call, sender=self.admins[0])
        transact(self.w3, self.rules.functions.approve(proposal_id), sender=self.admins[1])

    def endpoint_updates(self, enode: EnodeId) -> list[Any]:
        return list(self.ingress.events.EndpointUpdated.get_logs(
            from_block=0, argument_filters={"enode_key": enode.key}))

    def registered_host(self, enode: EnodeId) -> tuple[str, int]:
        node = self.ingress.functions.node(enode.key).call()
        return node[2], node[3]


def _manifest_entry(name: str, contract: Any, w3: Web3) -> DeployedContract:
    return DeployedContract(name, contract.address, w3.eth.block_number, "0x", contract.abi, abi_hash(contract.abi))


@pytest.fixture
def anvil_registry(w3: Web3, roles: Any, tmp_path: Path) -> AnvilRegistry:
    """EnodeIngress + EnodeRules (admins deployer, alice, bob; threshold 2) and their manifest."""
    admins = [roles.deployer.address, roles.alice.address, roles.bob.address]
    ingress = deploy(w3, "EnodeIngress", sender=roles.deployer.address)
    ingress_entry = _manifest_entry("EnodeIngress", ingress, w3)
    rules = deploy(w3, "EnodeRules", ingress.address, admins, 2, 3600, sender=roles.deployer.address)
    transact(w3, ingress.functions.set_rules(rules.address), sender=roles.deployer.address)
    manifest = Manifest(chain_id=w3.eth.chain_id, network="test")
    manifest.add(ingress_entry)
    manifest.add(_manifest_entry("EnodeRules", rules, w3))
    path = tmp_path / "deployments" / f"{w3.eth.chain_id}.json"
    manifest.save(path)
    return AnvilRegistry(w3, ingress, rules, admins, path)


@dataclass
class NodeKeys:
    account: LocalAccount
    enode: EnodeId
    keystore: Path


@pytest.fixture
def make_node_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], NodeKeys]:
    """Factory: a fresh enode key in an encrypted keystore (password from the environment)."""
    monkeypatch.setenv(NODE_PASSWORD_ENV, PASSWORD)
    monkeypatch.setenv(SENDER_PASSWORD_ENV, PASSWORD)

    def factory(name: str) -> NodeKeys:
        account = Account.create()
        path = tmp_path / f"{name}.keystore"
        write_keystore(path, account.key, PASSWORD)
        return NodeKeys(account, EnodeId.of_account(account), path)

    return factory


@pytest.fixture
def relayer_keystore(roles: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The funded account that pays for self-updates (not the enode key)."""
    monkeypatch.setenv(SENDER_PASSWORD_ENV, PASSWORD)
    path = tmp_path / "relayer.keystore"
    write_keystore(path, roles.relayer.key, PASSWORD)
    return path


@dataclass
class AddressEndpoint:
    """A loopback HTTP endpoint answering the node's 'public address' (what the test sets)."""

    address: str
    url: str = ""
    requests: int = 0
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)


@pytest.fixture
def address_endpoint() -> Iterator[AddressEndpoint]:
    endpoint = AddressEndpoint("203.0.113.10")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            endpoint.requests += 1
            body = (endpoint.address + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/ip"
    endpoint._server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield endpoint
    server.shutdown()
    server.server_close()


@pytest.fixture
def besu_dir(tmp_path: Path) -> Path:
    """A boot node's Besu directory with a config.toml holding other settings too."""
    directory = tmp_path / "besu"
    directory.mkdir()
    (directory / "config.toml").write_text(
        'data-path="/var/lib/besu"\nbootnodes=[\n  "enode://old@10.9.9.9:30303"\n]\np2p-port=30303\n'
        '\n[metrics]\nenabled=true\n'
    )
    (directory / "permissions_config.toml").write_text('accounts-allowlist=["0xabc"]\nnodes-allowlist=[]\n')
    (directory / "hosts").write_text("10.2.0.1 validator1.ankr.test\n")
    return directory


@pytest.fixture
def write_daemon_config(anvil_registry: AnvilRegistry, tmp_path: Path) -> Callable[..., Path]:
    """Factory: a YAML config for one node's daemon."""

    def factory(name: str, node: NodeKeys, sender_keystore: Path, **settings: Any) -> Path:
        config = {
            "rpc_url": anvil_registry.w3.provider.endpoint_uri,  # type: ignore[attr-defined]
            "manifest": str(anvil_registry.manifest_path),
            "db": str(tmp_path / f"{name}.sqlite"),
            "node_keystore": str(node.keystore),
            "sender_keystore": str(sender_keystore),
            "confirmations": 0,
            "poll_interval": 0.2,
            "address_interval": 0.2,
            **{k: str(v) if isinstance(v, Path) else v for k, v in settings.items()},
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    return factory
