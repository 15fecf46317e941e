"""Factories for the enode registry on titanoboa (fast, in-process EVM)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boa
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from dccn_deploy import DeployContext, run_parts
from dccn_deploy.boa_backend import boa_context
from enode_dns.enode import EnodeId, sign_endpoint_update
from enode_dns.hosts import MAX_HOST_LENGTH, HostKind, classify_host

PROPOSAL_TTL = 3600
VALIDATOR, BOOT, WRITER, OBSERVER = 0, 1, 2, 3
CONNECTION_ALLOWED_SELECTOR = keccak(text="connectionAllowed(string,string,uint16)")[:4]
HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


@pytest.fixture(scope="session")
def registry_deployments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the permissioning part writes its manifests (a new one per context)."""
    return tmp_path_factory.mktemp("registry-deployments")


def registry_context(deployments: Path, admins: list[str] | None = None, threshold: int = 1,
                     ttl: int = PROPOSAL_TTL) -> DeployContext:
    """A boa deploy context from boa's default account (the ingress's bootstrapper) with the
    permissioning part's parameters."""
    params = {"admins": admins or ["deployer"], "threshold": threshold, "proposal_ttl": ttl}
    return boa_context(boa.env.eoa, deployments=deployments, params={"permissioning": params})


def run_registry(deployments: Path, admins: list[str], threshold: int, ttl: int = PROPOSAL_TTL) -> Registry:
    """The permissioning part run on boa: ingress and rules deployed, the rules attached."""
    ctx = run_parts(registry_context(deployments, admins, threshold, ttl), ("permissioning",))
    return Registry(ctx.at("EnodeIngress"), ctx.at("EnodeRules"), admins, ctx)


@pytest.fixture
def isolated() -> Iterator[None]:
    with boa.env.anchor():
        yield


@dataclass
class Node:
    """A node operator's enode key, and the id the registry knows it by."""

    key: LocalAccount
    enode: EnodeId

    @classmethod
    def create(cls) -> Node:
        account = Account.create()
        return cls(account, EnodeId.of_account(account))


@dataclass
class Registry:
    ingress: Any
    rules: Any
    admins: list[str]
    ctx: DeployContext | None = None  # the deploy context that made it (more contracts: ctx.deploy)

    def propose_add(self, node: Node, host: str = "10.0.0.1", port: int = 30303, *, node_type: int = BOOT,
                    organisation: str = "ankr", id_only: bool = False, admin: str | None = None) -> int:
        with boa.env.prank(admin or self.admins[0]):
            return int(self.rules.proposeAddNode(node.enode.high, node.enode.low, host, port, node_type,
                                                 organisation, id_only))

    def approve(self, proposal_id: int, *admins: str) -> None:
        for admin in admins:
            with boa.env.prank(admin):
                self.rules.approve(proposal_id)

    def add(self, node: Node, host: str = "10.0.0.1", port: int = 30303, **kwargs: Any) -> None:
        """Propose by the first admin, approve by the next ones up to the threshold."""
        proposal_id = self.propose_add(node, host, port, **kwargs)
        self.approve(proposal_id, *self.admins[1:self.rules.threshold()])

    def remove(self, node: Node) -> None:
        with boa.env.prank(self.admins[0]):
            proposal_id = self.rules.proposeRemoveNode(node.enode.high, node.enode.low)
        self.approve(proposal_id, *self.admins[1:self.rules.threshold()])

    def signed_update(self, node: Node, host: str, port: int, sequence: int) -> bytes:
        return sign_endpoint_update(node.key, boa.env.evm.patch.chain_id, self.rules.address, host, port, sequence)

    def allowed(self, node: Node, host: str, port: int = 30303) -> bool:
        return connection_allowed(self.ingress, node.enode.hex, host, port)


def connection_allowed_calldata(enode_id: str | bytes, host: str | bytes, port: int) -> bytes:
    """What Besu sends: the selector and the standard ABI encoding (strings as raw bytes,
    so non-UTF-8 content can be encoded too)."""
    as_bytes = [v.encode() if isinstance(v, str) else v for v in (enode_id, host)]
    return CONNECTION_ALLOWED_SELECTOR + _encode_strings_and_port(as_bytes[0], as_bytes[1], port)


def _encode_strings_and_port(enode_id: bytes, host: bytes, port: int) -> bytes:
    def tail(value: bytes) -> bytes:
        return len(value).to_bytes(32, "big") + value + bytes(-len(value) % 32)

    id_tail = tail(enode_id)
    head = (96).to_bytes(32, "big") + (96 + len(id_tail)).to_bytes(32, "big") + port.to_bytes(32, "big")
    return head + id_tail + tail(host)


def call_ingress(ingress: Any, calldata: bytes) -> bytes:
    """The raw return data of a call to the ingress; raises if it reverts."""
    return bytes(boa.env.raw_call(ingress.address, data=calldata).output)


def connection_allowed(ingress: Any, enode_id: str | bytes, host: str | bytes, port: int) -> bool:
    """connectionAllowed, checking the answer is one well-formed ABI bool."""
    output = call_ingress(ingress, connection_allowed_calldata(enode_id, host, port))
    assert output in (bytes(32), (1).to_bytes(32, "big")), output.hex()
    return output[-1] == 1


@dataclass
class ModelEntry:
    host: str
    port: int
    id_only: bool = False


def model_connection_allowed(entries: dict[bytes, ModelEntry], enode_id: bytes, host: bytes, port: int) -> bool:
    """The Python model of connectionAllowed: 128 hex digits naming a listed key, then the
    same port and the same name, or any spelling of the same IP (enode_dns.hosts). A host
    longer than any valid one makes the call malformed: false even for an id-only entry."""
    if len(host) > MAX_HOST_LENGTH or len(enode_id) != 128 or not all(c in HEX_DIGITS for c in enode_id):
        return False
    entry = entries.get(keccak(bytes.fromhex(enode_id.decode())))
    if entry is None:
        return False
    if entry.id_only:
        return True
    if port != entry.port:
        return False
    stored_kind, stored_ip = classify_host(entry.host)
    if stored_kind == HostKind.DNS:
        return host == entry.host.encode()
    try:
        kind, ip = classify_host(host.decode("ascii"))
    except UnicodeDecodeError:
        return False
    return kind in (HostKind.IPV4, HostKind.IPV6) and ip == stored_ip


@pytest.fixture
def make_registry(registry_deployments: Path, isolated: None) -> Callable[..., Registry]:
    """Factory: an ingress + rules pair with `admins` admins and `threshold` (the permissioning part)."""

    def factory(admins: int = 3, threshold: int = 2, ttl: int = PROPOSAL_TTL) -> Registry:
        admin_addresses = [boa.env.generate_address(f"admin{i}") for i in range(admins)]
        return run_registry(registry_deployments, admin_addresses, threshold, ttl)

    return factory


@pytest.fixture
def registry(make_registry: Callable[..., Registry]) -> Registry:
    """Three admins, two approvals needed."""
    return make_registry()


@pytest.fixture
def boot_node() -> Node:
    return Node.create()


@pytest.fixture
def validator_node() -> Node:
    return Node.create()
