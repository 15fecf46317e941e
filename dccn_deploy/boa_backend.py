"""The deploy parts on titanoboa (fast contract tests): a `Backend` for
`dccn_deploy.DeployContext` deploying into `boa.env` from `deployer`.

    ctx = run_parts(boa_context(deployer, params={"dccn": EconomyParams(...)}, deployments=tmp), ("token", "dccn"))

The sources are compiled by boa (the same vyper); the manifest records ape's ABI of each
contract (dccn_deploy.web3_backend.compiled). A revert is boa's own error, so a test can
expect it (`boa.reverts`). Each context starts a new manifest: boa's state is rolled back
under the tests (`boa.env.anchor()`), so a manifest on disk says nothing about it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from pathlib import Path
from typing import Any

import boa

from dccn_common import PROJECT_ROOT
from dccn_common.manifest import DeployedContract, Manifest, manifest_path
from dccn_deploy import SIDES, DeployContext, DeployError, Sent
from dccn_deploy.web3_backend import compiled
from dccn_devtools.contracts import find_source


@cache
def _deployer(name: str) -> Any:
    boa.interpret.set_search_paths([str(PROJECT_ROOT / "contracts"), str(PROJECT_ROOT)])
    return boa.load_partial(str(find_source(name)))


class BoaBackend:
    def __init__(self, deployer: str) -> None:
        self.deployer_address = str(deployer)
        self.sent = 0

    def nonce(self) -> int:
        return self.sent  # transactions this context sent (boa keeps no account nonces of pranked senders)

    def has_code(self, address: str) -> bool:
        return bool(boa.env.get_code(address))

    def abi(self, name: str) -> list[dict[str, Any]]:
        return compiled(name).abi

    def deploy(self, name: str, args: list[Any], value: int) -> tuple[Any, Sent]:
        with boa.env.prank(self.deployer_address):
            contract = _deployer(name).deploy(*args, value=value)
        self.sent += 1
        return contract, Sent(int(boa.env.evm.patch.block_number), "", 0)

    def at(self, entry: DeployedContract) -> Any:
        return _deployer(entry.type_name).at(entry.address)

    def read(self, contract: Any, method: str, args: tuple[Any, ...]) -> Any:
        return getattr(contract, method)(*args)

    def send(self, contract: Any, method: str, args: list[Any], value: int) -> int:
        with boa.env.prank(self.deployer_address):
            getattr(contract, method)(*args, **({"value": value} if value else {}))
        self.sent += 1
        return 0

    def balance(self, address: str) -> int:
        return int(boa.env.get_balance(address))

    def set_balance(self, address: str, wei: int) -> None:
        boa.env.set_balance(address, wei)

    def errors(self, what: str) -> AbstractContextManager[None]:
        return nullcontext()  # boa's revert, as the test expects it


def boa_context(deployer: str, *, deployments: Path, side: str = "ethereum", params: dict[str, Any] | None = None,
                echo: Callable[[str], None] | None = None, manifest: Manifest | None = None) -> DeployContext:
    """A DeployContext on boa.env with a new manifest (or `manifest`, continued: both sides of
    the bridge in one EVM share its chain and so its manifest), written to `deployments/<chain id>.json`."""
    if side not in SIDES:
        raise DeployError(f"unknown side {side!r}; expected one of {', '.join(SIDES)}")
    chain_id = int(boa.env.evm.patch.chain_id)
    manifest = manifest or Manifest(chain_id=chain_id, network="local")
    ctx = DeployContext("local", chain_id, side, deployer, {}, manifest, manifest_path(chain_id, deployments), False,
                        echo or (lambda _line: None), backend=BoaBackend(deployer))
    ctx.add_params(params or {})
    return ctx
