"""The enode registry on anvil, node keystores, a loopback address endpoint, and daemon configs."""

from __future__ import annotations

import ipaddress
import json
import threading
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from dccn_common.contracts import transact
from dccn_common.keys import write_keystore
from dccn_devtools.pytest_fixtures import postgres_server, store_backend, store_target  # noqa: F401
from enode_dns.enode import EnodeId, sign_endpoint_update

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

    def remove_node(self, enode: EnodeId) -> None:
        """Propose the removal by one admin, approve by a second."""
        call = self.rules.functions.proposeRemoveNode(enode.high, enode.low)
        proposal_id = call.call({"from": self.admins[0]})
        transact(self.w3, call, sender=self.admins[0])
        transact(self.w3, self.rules.functions.approve(proposal_id), sender=self.admins[1])

    def move_node(self, node_key: LocalAccount, host: str, port: int = 30303) -> None:
        """The node's own signed self-update, relayed by an admin account."""
        enode = EnodeId.of_account(node_key)
        sequence = self.ingress.functions.sequence_of(enode.key).call() + 1
        signature = sign_endpoint_update(node_key, self.w3.eth.chain_id, self.rules.address, host, port, sequence)
        transact(self.w3, self.rules.functions.updateEndpoint(enode.key, host, port, sequence, signature),
                 sender=self.admins[0])


@pytest.fixture
def anvil_registry(w3: Web3, roles: Any, create_parts: Callable[..., Any]) -> AnvilRegistry:
    """EnodeIngress + EnodeRules (admins deployer, alice, bob; threshold 2), deployed by the
    permissioning part, and its manifest."""
    admins = [roles.deployer.address, roles.alice.address, roles.bob.address]
    deployed = create_parts("permissioning", permissioning={"admins": admins, "threshold": 2, "proposal_ttl": 3600})
    return AnvilRegistry(w3, deployed.at("EnodeIngress"), deployed.at("EnodeRules"), admins, deployed.manifest_file)


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


class _QuietHandler(BaseHTTPRequestHandler):
    """A loopback test endpoint's handler: answers with `reply`, logs nothing."""

    def reply(self, body: bytes, content_type: str | None = None) -> None:
        self.send_response(200)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` served on a loopback port by a thread; yields the server's http://host:port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def address_endpoint() -> Iterator[AddressEndpoint]:
    endpoint = AddressEndpoint("203.0.113.10")

    class Handler(_QuietHandler):
        def do_GET(self) -> None:
            endpoint.requests += 1
            self.reply((endpoint.address + "\n").encode())

    with _serving(Handler) as url:
        endpoint.url = f"{url}/ip"
        yield endpoint


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
def write_daemon_config(anvil_registry: AnvilRegistry, tmp_path: Path,
                        store_target: Callable[[str], str]) -> Callable[..., Path]:  # noqa: F811 (the fixture)
    """Factory: a YAML config for one node's daemon; its db is a SQLite file, or a PostgreSQL
    database when the test is parametrized over `store_backend` (one database per name)."""

    def factory(name: str, node: NodeKeys, sender_keystore: Path, **settings: Any) -> Path:
        config = {
            "rpc_url": anvil_registry.w3.provider.endpoint_uri,  # type: ignore[attr-defined]
            "manifest": str(anvil_registry.manifest_path),
            "db": store_target(f"{name}.sqlite"),
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


# -- a Besu node's PERM JSON-RPC API --------------------------------------------------------

# Besu's RpcErrorType codes and messages for the node allowlist (ethereum/api, jsonrpc).
NODE_ALLOWLIST_NOT_ENABLED = (-32000, "Node allowlist has not been enabled")
NODE_ALLOWLIST_EMPTY_ENTRY = (-32000, "Request contains an empty list of nodes")
NODE_ALLOWLIST_INVALID_ENTRY = (-32000, "Request contains an invalid node")
NODE_ALLOWLIST_DUPLICATED_ENTRY = (-32000, "Request contains duplicate nodes")
NODE_ALLOWLIST_EXISTING_ENTRY = (-32000, "Cannot add an existing node to allowlist")
NODE_ALLOWLIST_MISSING_ENTRY = (-32000, "Cannot remove an absent node from allowlist")
NODE_ALLOWLIST_FIXED_NODE = (-32000, "Cannot remove a fixed node (bootnode or static node) from allowlist")
ALLOWLIST_PERSIST_FAILURE = (-32000, "Unable to persist changes to allowlist configuration file. Changes reverted")
INVALID_ENODE_PARAMS = (-32602, "Invalid enode params")
METHOD_NOT_FOUND = (-32601, "Method not found")


class _BesuRpcFailure(Exception):
    def __init__(self, error: tuple[int, str]) -> None:
        self.error = error


def besu_enode(url: str) -> str:
    """An enode URL as Besu's EnodeURL parses and prints it (IP literal only, no DNS)."""
    if not isinstance(url, str) or not url.startswith("enode://") or "@" not in url:
        raise _BesuRpcFailure(NODE_ALLOWLIST_INVALID_ENTRY)
    node_id, _, rest = url.removeprefix("enode://").partition("@")
    host, _, port = rest.split("?", 1)[0].rpartition(":")
    try:
        if len(node_id) != 128:
            raise ValueError(node_id)
        int(node_id, 16)
        ip = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
        if not 0 < int(port) < 65536:
            raise ValueError(port)
    except ValueError:
        raise _BesuRpcFailure(NODE_ALLOWLIST_INVALID_ENTRY) from None
    shown = f"[{ip.compressed}]" if ip.version == 6 else str(ip)
    return f"enode://{node_id.lower()}@{shown}:{int(port)}"


@dataclass
class BesuPermServer:
    """A loopback JSON-RPC server answering perm_getNodesAllowlist, perm_addNodesToAllowlist,
    perm_removeNodesFromAllowlist and perm_reloadPermissionsFromFile with the results, error
    codes and messages of Besu's documented PERM API (Besu itself is not installable here:
    not on PyPI, npm or Debian). `fixed` are bootnodes/static nodes, which Besu never removes."""

    allowlist: list[str] = field(default_factory=list)
    fixed: set[str] = field(default_factory=set)
    enabled: bool = True
    permissions_file: Path | None = None
    fail_adds: int = 0  # the next n adds fail as Besu does when it cannot persist the file
    calls: list[tuple[str, list[Any]]] = field(default_factory=list)
    url: str = ""

    def handle(self, method: str, params: list[Any]) -> Any:
        self.calls.append((method, params))
        if method == "perm_reloadPermissionsFromFile":
            if not self.enabled:
                raise _BesuRpcFailure((-32000, "Node/Account allowlist has not been enabled"))
            if self.permissions_file is not None:
                text = self.permissions_file.read_text()
                self.allowlist = [besu_enode(u) for u in tomllib.loads(text).get("nodes-allowlist", [])]
            return "Success"
        if method not in ("perm_getNodesAllowlist", "perm_addNodesToAllowlist", "perm_removeNodesFromAllowlist"):
            raise _BesuRpcFailure(METHOD_NOT_FOUND)
        if not self.enabled:
            raise _BesuRpcFailure(NODE_ALLOWLIST_NOT_ENABLED)
        if method == "perm_getNodesAllowlist":
            return list(self.allowlist)
        if not params or not isinstance(params[0], list):
            raise _BesuRpcFailure(INVALID_ENODE_PARAMS)
        if not params[0]:
            raise _BesuRpcFailure(NODE_ALLOWLIST_EMPTY_ENTRY)
        if len(set(params[0])) != len(params[0]):
            raise _BesuRpcFailure(NODE_ALLOWLIST_DUPLICATED_ENTRY)
        urls = [besu_enode(u) for u in params[0]]
        if method == "perm_addNodesToAllowlist":
            if any(u in self.allowlist for u in urls):
                raise _BesuRpcFailure(NODE_ALLOWLIST_EXISTING_ENTRY)
            if self.fail_adds:
                self.fail_adds -= 1
                raise _BesuRpcFailure(ALLOWLIST_PERSIST_FAILURE)
            self.allowlist.extend(urls)
            return "Success"
        if any(u not in self.allowlist for u in urls):
            raise _BesuRpcFailure(NODE_ALLOWLIST_MISSING_ENTRY)
        if any(u in self.fixed for u in urls):
            raise _BesuRpcFailure(NODE_ALLOWLIST_FIXED_NODE)
        self.allowlist = [u for u in self.allowlist if u not in urls]
        return "Success"

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)


@pytest.fixture
def besu_perm_server() -> Iterator[BesuPermServer]:
    besu = BesuPermServer()

    class Handler(_QuietHandler):
        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request.get("id")}
            try:
                reply["result"] = besu.handle(request["method"], request.get("params", []))
            except _BesuRpcFailure as failure:
                reply["error"] = {"code": failure.error[0], "message": failure.error[1]}
            self.reply(json.dumps(reply).encode(), "application/json")

    with _serving(Handler) as url:
        besu.url = url
        yield besu
