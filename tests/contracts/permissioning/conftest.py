"""Factories for the enode registry on titanoboa (fast, in-process EVM)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boa
import pytest
from boa.interpret import set_search_paths
from eth_account import Account
from eth_account.signers.local import LocalAccount

from dccn_common.contracts import CONTRACTS_DIR
from enode_dns.enode import EnodeId, sign_endpoint_update

PROPOSAL_TTL = 3600
VALIDATOR, BOOT, WRITER, OBSERVER = 0, 1, 2, 3


def _search_paths() -> list[str]:
    return [str(CONTRACTS_DIR), str(CONTRACTS_DIR.parent), *[p for p in sys.path if p and os.path.isdir(p)]]


@pytest.fixture(scope="session")
def registry_deployers() -> tuple[Any, Any]:
    set_search_paths(_search_paths())
    ingress = boa.load_partial(str(CONTRACTS_DIR / "permissioning" / "EnodeIngress.vy"))
    rules = boa.load_partial(str(CONTRACTS_DIR / "permissioning" / "EnodeRules.vy"))
    return ingress, rules


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
        return bool(self.ingress.connectionAllowed(node.enode.hex, host, port))


@pytest.fixture
def make_registry(registry_deployers: tuple[Any, Any], isolated: None) -> Callable[..., Registry]:
    """Factory: an ingress + rules pair with `admins` admins and `threshold`."""
    ingress_deployer, rules_deployer = registry_deployers

    def factory(admins: int = 3, threshold: int = 2, ttl: int = PROPOSAL_TTL) -> Registry:
        admin_addresses = [boa.env.generate_address(f"admin{i}") for i in range(admins)]
        ingress = ingress_deployer.deploy()
        rules = rules_deployer.deploy(ingress.address, admin_addresses, threshold, ttl)
        ingress.set_rules(rules.address)
        return Registry(ingress, rules, admin_addresses)

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
