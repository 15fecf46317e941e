"""Deploy a bridge pair straight through web3 on two local chains, with manifests.

Tests and benchmarks use this; operators use `ape run deploy --side ethereum|ankr`
(dccn_deploy/parts/bridge.py), which deploys the same contracts with the same arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from dccn_common.contracts import abi_hash, deploy, load_artifact, transact
from dccn_common.manifest import DeployedContract, Manifest, manifest_path
from token_bridge.chains import Side
from token_bridge.relayer import DestinationRelay
from token_bridge.validator import SignatureServer, Validator

ANKR = 10**18


@dataclass
class BridgeParams:
    validators: list[str]
    threshold: int
    min_per_tx: int = 1 * ANKR
    max_per_tx: int = 1_000_000 * ANKR
    daily_limit: int = 10_000_000 * ANKR
    hold_threshold: int = 500_000 * ANKR
    hold_period: int = 3_600
    pausers: list[str] = field(default_factory=list)
    guardians: list[str] = field(default_factory=list)

    @property
    def limits(self) -> list[int]:
        return [self.min_per_tx, self.max_per_tx, self.daily_limit]

    @property
    def hold(self) -> list[int]:
        return [self.hold_threshold, self.hold_period]


@dataclass
class LocalBridge:
    token: Contract
    foreign: Contract
    home: Contract
    ethereum_manifest: Path
    ankr_manifest: Path


def _record(manifest: Manifest, w3: Web3, name: str, contract: Contract, args: list[Any]) -> None:
    abi = load_artifact(name).abi
    block = w3.eth.block_number
    manifest.add(DeployedContract(name, contract.address, block, "", abi, abi_hash(abi),
                                  [a if isinstance(a, (int, str, list)) else str(a) for a in args], "bridge"))


def grant_roles(w3: Web3, bridge: Contract, params: BridgeParams, admin: str | LocalAccount) -> None:
    for role_fn, accounts in ((bridge.functions.PAUSER_ROLE, params.pausers),
                              (bridge.functions.GUARDIAN_ROLE, params.guardians)):
        role = role_fn().call()
        for account in accounts:
            transact(w3, bridge.functions.grantRole(role, account), sender=admin)


def deploy_local_bridge(eth_w3: Web3, ankr_w3: Web3, *, token: Contract, deployer: str | LocalAccount,
                        params: BridgeParams, native_supply: int, set_balance: Any, deployments: Path) -> LocalBridge:
    """Foreign bridge on `eth_w3`, home bridge on `ankr_w3` funded with `native_supply`
    (through `set_balance(address, wei)`, i.e. anvil_setBalance), peers wired, manifests written."""
    eth_chain, ankr_chain = eth_w3.eth.chain_id, ankr_w3.eth.chain_id
    foreign_args = [token.address, params.validators, params.threshold, ankr_chain, params.limits, params.hold]
    foreign = deploy(eth_w3, "ForeignBridge", *foreign_args, sender=deployer)
    home_args = [params.validators, params.threshold, eth_chain, foreign.address, params.limits, params.hold]
    home = deploy(ankr_w3, "HomeBridge", *home_args, sender=deployer)
    transact(eth_w3, foreign.functions.setPeer(ankr_chain, home.address), sender=deployer)
    grant_roles(eth_w3, foreign, params, deployer)
    grant_roles(ankr_w3, home, params, deployer)
    set_balance(home.address, native_supply)

    eth_manifest = Manifest(chain_id=eth_chain, network="local")
    _record(eth_manifest, eth_w3, "AnkrToken", token, [])
    _record(eth_manifest, eth_w3, "ForeignBridge", foreign, foreign_args)
    ankr_manifest = Manifest(chain_id=ankr_chain, network="local")
    _record(ankr_manifest, ankr_w3, "HomeBridge", home, home_args)
    eth_path, ankr_path = manifest_path(eth_chain, deployments), manifest_path(ankr_chain, deployments)
    eth_manifest.save(eth_path)
    ankr_manifest.save(ankr_path)
    return LocalBridge(token, foreign, home, eth_path, ankr_path)


@dataclass
class LocalNetwork:
    """Validators and a relayer in one process, stepped by the caller (tests, benchmarks):
    the same objects the `token-bridge` services run, without their loops."""

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


def start_local_network(open_sides: Any, validator_accounts: list[LocalAccount], relayer: LocalAccount,
                        workdir: Path) -> LocalNetwork:
    """`open_sides()` returns fresh {name: Side} (each component gets its own web3 clients)."""
    validators = [Validator(open_sides(), workdir / f"validator-{a.address}.db", a) for a in validator_accounts]
    servers = [SignatureServer(v).start() for v in validators]
    sides: dict[str, Side] = open_sides()
    relays = {name: DestinationRelay(side, workdir / f"relayer-{name}.db", relayer, [s.url for s in servers])
              for name, side in sides.items()}
    return LocalNetwork(validators, servers, relays)
