"""Two anvils, a bridge pair deployed on them, and validators/relayer run in-process
(or as real subprocesses, see test_restart.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from dccn_common.contracts import transact
from dccn_deploy.parts.bridge import BridgePair, BridgeParams, deploy_both_sides
from dccn_deploy.web3_backend import web3_context
from dccn_devtools.anvil import Anvil
from dccn_devtools.pytest_fixtures import postgres_server, store_backend, store_target  # noqa: F401
from token_bridge.chains import ANKR, ETHEREUM, Side, open_side
from token_bridge.cli import relay_db_path
from token_bridge.relayer import DestinationRelay
from token_bridge.validator import SignatureServer, Validator

ANKR_WEI = 10**18
NATIVE_SUPPLY = 1_000_000_000 * ANKR_WEI
VALIDATOR_ROLES = ("v1", "v2", "v3", "v4", "v5", "v6", "validator")
CONFIRMATIONS = {ETHEREUM: 2, ANKR: 1}


@dataclass
class LocalNetwork:
    """Validators and a relayer in one process, stepped by the test: the same objects the
    `token-bridge` services run, without their loops."""

    validators: list[Validator]
    servers: list[SignatureServer]
    relays: dict[str, DestinationRelay]

    def pump(self) -> None:
        for validator in self.validators:
            validator.poll()
        for relay in self.relays.values():
            relay.tick()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@dataclass
class BridgeHarness:
    eth: Anvil
    ankr: Anvil
    eth_w3: Web3
    ankr_w3: Web3
    bridge: BridgePair
    validator_accounts: list[LocalAccount]
    roles: Any
    workdir: Path
    networks: list[LocalNetwork] = field(default_factory=list)
    # The store setting of a service's database by name (store_target): a SQLite file in workdir,
    # or a postgresql:// database when the test runs on the "postgresql" backend.
    store: Callable[[str], str] | None = None
    backend: str = "sqlite"

    def sides(self, *, eth_rpc: str | None = None) -> dict[str, Side]:
        return {
            ETHEREUM: open_side(ETHEREUM, eth_rpc or self.eth.url, self.bridge.ethereum_manifest,
                                CONFIRMATIONS[ETHEREUM], None),
            ANKR: open_side(ANKR, self.ankr.url, self.bridge.ankr_manifest, CONFIRMATIONS[ANKR], None),
        }

    def db(self, name: str) -> Path | str:
        """Where a service named `name` keeps its state on this test's backend."""
        if self.backend == "sqlite" or self.store is None:
            return self.workdir / f"{name}.db"
        return self.store(name)

    def start_validator(self, account: LocalAccount, *, eth_rpc: str | None = None) -> tuple[Validator, SignatureServer]:
        validator = Validator(self.sides(eth_rpc=eth_rpc), self.db(f"validator-{account.address}"), account)
        return validator, SignatureServer(validator).start()

    def network(self) -> LocalNetwork:
        """Every validator and both relays, each component with its own web3 clients and its
        state in its own store on this test's backend (a file in workdir, or a PostgreSQL
        database or schema)."""
        relayer = Account.from_key(self.roles.relayer.key)
        validators = [Validator(self.sides(), self.db(f"validator-{a.address}"), a) for a in self.validator_accounts]
        servers = [SignatureServer(v).start() for v in validators]
        relays = {name: DestinationRelay(side, relay_db_path(self.db("relayer"), name), relayer,
                                         [s.url for s in servers]) for name, side in self.sides().items()}
        network = LocalNetwork(validators, servers, relays)
        self.networks.append(network)
        return network

    def mine_both(self, blocks: int = 1) -> None:
        self.eth.mine(blocks)
        self.ankr.mine(blocks)

    def lock(self, sender: Any, recipient: str, amount: int) -> Any:
        token, foreign = self.bridge.token, self.bridge.foreign
        transact(self.eth_w3, token.functions.approve(foreign.address, amount), sender=sender.address)
        return transact(self.eth_w3, foreign.functions.relayTokens(recipient, amount), sender=sender.address)

    def bridge_out(self, sender: Any, recipient: str, amount: int) -> Any:
        return transact(self.ankr_w3, self.bridge.home.functions.relayNative(recipient), sender=sender.address,
                        value=amount)

    def locked(self) -> int:
        return int(self.bridge.token.functions.balanceOf(self.bridge.foreign.address).call())

    def native_outside(self) -> int:
        return NATIVE_SUPPLY - int(self.ankr_w3.eth.get_balance(self.bridge.home.address))

    def pump_until(self, network: LocalNetwork, condition: Callable[[], bool], *, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            self.mine_both()
            network.pump()


def _params(harness_roles: Any, chains: tuple[Anvil, Anvil], validators: list[str], threshold: int,
            **overrides: Any) -> BridgeParams:
    return BridgeParams(validators=validators, threshold=threshold, ethereum_chain_id=chains[0].chain_id,
                        ankr_chain_id=chains[1].chain_id, pausers=[harness_roles.guardian.address],
                        guardians=[harness_roles.guardian.address], native_supply=NATIVE_SUPPLY, **overrides)


@pytest.fixture
def make_bridge(chain: Anvil, ankr_chain: Anvil, roles: Any, tmp_path: Path, store_backend: str,  # noqa: F811
                store_target: Callable[[str], str]) -> Iterator[Callable[..., BridgeHarness]]:  # noqa: F811
    """Factory: make_bridge(validators=4, threshold=3, **BridgeParams overrides) -> BridgeHarness:
    the bridge part deployed on both chains (through web3), as `ape run deploy` does."""
    made: list[BridgeHarness] = []

    def factory(validators: int = 4, threshold: int = 3, **overrides: Any) -> BridgeHarness:
        eth_w3, ankr_w3 = chain.web3(), ankr_chain.web3()
        accounts = [Account.from_key(roles[role].key) for role in VALIDATOR_ROLES[:validators]]
        params = {"bridge": _params(roles, (chain, ankr_chain), [a.address for a in accounts], threshold, **overrides)}
        deployments = tmp_path / "deployments"
        bridge = deploy_both_sides(
            web3_context(eth_w3, roles.deployer.address, side="ethereum", params=params, deployments=deployments),
            web3_context(ankr_w3, roles.deployer.address, side="ankr", params=params, deployments=deployments),
        )
        transact(eth_w3, bridge.token.functions.transfer(roles.alice.address, 1_000_000 * ANKR_WEI),
                 sender=roles.deployer.address)
        harness = BridgeHarness(chain, ankr_chain, eth_w3, ankr_w3, bridge, accounts, roles, tmp_path,
                                store=store_target, backend=store_backend)
        made.append(harness)
        return harness

    yield factory
    for harness in made:
        for network in harness.networks:
            network.stop()
