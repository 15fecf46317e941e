"""Bridge contracts on titanoboa: both sides in one EVM (fast), real signatures."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boa
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from dccn_common import PROJECT_ROOT
from dccn_deploy.boa_backend import boa_context
from dccn_deploy.parts.bridge import BridgeParams, deploy_both_sides
from token_bridge.transfer import Destination, Transfer, sign_transfer, sorted_for_contract

ANKR = 10**18
NATIVE_SUPPLY = 1_000_000_000 * ANKR
LIMITS = [1 * ANKR, 1_000_000 * ANKR, 5_000_000 * ANKR]  # min, max per transfer, daily
HOLD = [100_000 * ANKR, 3_600]  # transfers of 100k ANKR or more wait an hour
_TX_COUNTER = itertools.count(1)


@dataclass
class Bridges:
    """ANKR token, both bridges, the validators and the roles, in one boa EVM."""

    token: Any
    foreign: Any
    home: Any
    validators: list[LocalAccount]
    threshold: int
    admin: str
    pauser: str
    guardian: str
    user: str
    chain_id: int
    outsiders: list[LocalAccount] = field(default_factory=list)

    def destination(self, bridge: Any) -> Destination:
        return Destination(self.chain_id, str(bridge.address))

    def source_of(self, bridge: Any) -> Any:
        return self.home if bridge is self.foreign else self.foreign

    def transfer_to(self, bridge: Any, recipient: str, amount: int, *, tx_hash: str | None = None,
                    log_index: int = 0) -> Transfer:
        """A transfer as if a lock on the other side had happened (the contract trusts the signers)."""
        tx_hash = tx_hash or "0x" + next(_TX_COUNTER).to_bytes(32, "big").hex()
        return Transfer(self.chain_id, str(self.source_of(bridge).address), tx_hash, log_index, recipient, amount)

    def sign(self, bridge: Any, transfer: Transfer, signers: list[LocalAccount] | None = None,
             destination: Destination | None = None) -> list[tuple[int, int, int]]:
        signers = signers if signers is not None else self.validators[: self.threshold]
        destination = destination or self.destination(bridge)
        signatures = {s.address: sign_transfer(s, transfer, destination) for s in signers}
        return sorted_for_contract(signatures, len(signatures))

    def execute(self, bridge: Any, transfer: Transfer, signatures: list[tuple[int, int, int]] | None = None) -> Any:
        signatures = signatures if signatures is not None else self.sign(bridge, transfer)
        return bridge.executeSignatures(transfer.as_tuple(), signatures)

    def native_outside(self) -> int:
        return NATIVE_SUPPLY - boa.env.get_balance(str(self.home.address))


@pytest.fixture(scope="session")
def bridge_sources() -> dict[str, Any]:
    """Contracts only these tests deploy (contracts/testing/); the bridges come from the bridge part."""
    return {"two_locks": boa.load_partial(str(PROJECT_ROOT / "contracts" / "testing" / "TwoLocks.vy"))}


def make_bridges(deployments: Path, n_validators: int = 4, threshold: int = 3) -> Bridges:
    """The token and bridge parts run on boa from `admin`, both sides in this one EVM (one chain id,
    one manifest in `deployments`), in the operator's order (dccn_deploy.parts.bridge.deploy_both_sides)."""
    validators = [Account.create() for _ in range(n_validators)]
    admin, pauser, guardian, user = (boa.env.generate_address(label) for label in ("admin", "pauser", "guardian", "user"))
    chain_id = boa.env.evm.patch.chain_id
    params = {"bridge": BridgeParams(
        validators=[v.address for v in validators], threshold=threshold, ethereum_chain_id=chain_id,
        ankr_chain_id=chain_id, min_per_tx=LIMITS[0], max_per_tx=LIMITS[1], daily_limit=LIMITS[2],
        hold_threshold=HOLD[0], hold_period=HOLD[1], pausers=[pauser], guardians=[guardian],
        native_supply=NATIVE_SUPPLY)}
    ethereum = boa_context(admin, deployments=deployments, params=params)
    ankr = boa_context(admin, deployments=deployments, side="ankr", params=params, manifest=ethereum.manifest)
    pair = deploy_both_sides(ethereum, ankr)
    token, foreign, home = pair.token, pair.foreign, pair.home
    with boa.env.prank(admin):
        token.transfer(user, 50_000_000 * ANKR)
    boa.env.set_balance(user, 0)
    return Bridges(token, foreign, home, validators, threshold, admin, pauser, guardian, user, chain_id,
                   [Account.create() for _ in range(3)])


@pytest.fixture(scope="session")
def bridge_deployments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bridge-deployments")


@pytest.fixture
def bridges(bridge_deployments: Path) -> Iterator[Bridges]:
    """3-of-4 validators; the user holds 50M ANKR on Ethereum; the home bridge holds 1B native."""
    with boa.env.anchor():
        yield make_bridges(bridge_deployments)


@pytest.fixture
def bridges_5_of_7(bridge_deployments: Path) -> Iterator[Bridges]:
    with boa.env.anchor():
        yield make_bridges(bridge_deployments, 7, 5)


def lock(b: Bridges, amount: int, recipient: str | None = None) -> None:
    """The user locks ANKR in the foreign bridge."""
    with boa.env.prank(b.user):
        b.token.approve(b.foreign.address, amount)
        b.foreign.relayTokens(recipient or b.user, amount)


def key_of(transfer: Transfer) -> bytes:
    return bytes.fromhex(transfer.key()[2:])
