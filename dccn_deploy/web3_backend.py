"""The deploy parts through web3 (tests, benchmarks, the demo): a `Backend` for
`dccn_deploy.DeployContext` that sends from an unlocked node account or a local key.

    ctx = web3_context(w3, deployer, side="ethereum", params={"bridge": BridgeParams(...)}, deployments=tmp)
    run_parts(ctx, only=("token", "bridge"))

Contracts come from the artifacts `ape compile` wrote (.build/__local__.json), so the
bytecode and the manifest's ABI (and its hash) are the ones `ape run deploy` uses. A
contract whose sources changed since ape compiled them comes from the vyper cache of
dccn_common.contracts (the same compiler and settings), its ABI in ape's form.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3Exception
from web3.types import RPCEndpoint

from dccn_common import PROJECT_ROOT
from dccn_common.contracts import transact
from dccn_common.manifest import DeployedContract, Manifest, manifest_path
from dccn_deploy import SIDES, DeployContext, DeployError, Sent, _short
from dccn_devtools.contracts import CONTRACTS_DIR, fallback_abi, find_source, load_artifact

APE_BUILD = PROJECT_ROOT / ".build" / "__local__.json"


@dataclass(frozen=True)
class Compiled:
    name: str
    abi: list[dict[str, Any]]  # in ape's form, with the functions served by __default__
    bytecode: bytes


def _ape_form(abi: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An ABI as ape writes it (ethpm-types' model: no empty `outputs` of a constructor, ...)."""
    from ethpm_types import ContractType

    return [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in ContractType.model_validate({"abi": abi}).abi]


@cache
def _fallback(name: str) -> tuple[dict[str, Any], ...]:
    return tuple(fallback_abi(find_source(name)))


@cache
def _ape_build(mtime_ns: int) -> dict[str, dict[str, Any]]:
    """Contract types of ape's build whose sources have not changed since (none when it is stale)."""
    import vyper

    try:
        data = json.loads(APE_BUILD.read_text())
    except (OSError, json.JSONDecodeError):  # absent, or being rewritten by `ape compile`
        return {}
    if any(c.get("name") == "vyper" and c.get("version") != vyper.__version__ for c in data.get("compilers", [])):
        return {}
    recorded = data.get("sources", {})
    # Modules (snake_case, compiled into the contracts that use them) ape does not list: any
    # change to one after the build makes the whole build stale.
    for path in CONTRACTS_DIR.rglob("*.vy*"):
        module = path.name[0].islower()
        if module and str(path.relative_to(PROJECT_ROOT)) not in recorded and path.stat().st_mtime_ns > mtime_ns:
            return {}
    fresh = {}
    for name, contract_type in data.get("contractTypes", {}).items():
        source = PROJECT_ROOT / str(contract_type.get("sourceId", ""))
        content = recorded.get(contract_type.get("sourceId"), {}).get("content")
        if source.is_file() and content == source.read_text() and contract_type.get("deploymentBytecode"):
            fresh[name] = contract_type
    return fresh


def compiled(name: str) -> Compiled:
    """ABI and deploy bytecode of a contract: ape's build when it is current, else the vyper cache."""
    try:
        build = _ape_build(APE_BUILD.stat().st_mtime_ns)
    except FileNotFoundError:
        build = {}
    fallback = list(_fallback(name))
    if name in build:
        contract_type = build[name]
        bytecode = bytes.fromhex(contract_type["deploymentBytecode"]["bytecode"].removeprefix("0x"))
        return Compiled(name, [*contract_type["abi"], *fallback], bytecode)
    artifact = load_artifact(name)
    own = artifact.abi[: len(artifact.abi) - len(fallback)]  # load_artifact appends the fallback entries
    return Compiled(name, [*_ape_form(own), *fallback], artifact.bytecode)


class Web3Backend:
    """Sends with web3 from `deployer`: an address the node has unlocked (anvil) or a local account."""

    def __init__(self, w3: Web3, deployer: str | LocalAccount) -> None:
        self.w3 = w3
        self.deployer = deployer
        address = deployer if isinstance(deployer, str) else deployer.address
        self.deployer_address = Web3.to_checksum_address(address)

    def nonce(self) -> int:
        return int(self.w3.eth.get_transaction_count(self.deployer_address, "pending"))

    def has_code(self, address: str) -> bool:
        return bool(self.w3.eth.get_code(Web3.to_checksum_address(address)))

    def abi(self, name: str) -> list[dict[str, Any]]:
        return compiled(name).abi

    def deploy(self, name: str, args: list[Any], value: int) -> tuple[Any, Sent]:
        artifact = compiled(name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = transact(self.w3, factory.constructor(*args), sender=self.deployer, value=value)
        if not receipt["contractAddress"]:
            raise DeployError(f"deploying {name}: no contract address in the receipt")
        contract = self.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        return contract, Sent(int(receipt["blockNumber"]), tx_hash, int(receipt["gasUsed"]))

    def at(self, entry: DeployedContract) -> Any:
        return self.w3.eth.contract(address=Web3.to_checksum_address(entry.address), abi=entry.abi)

    def read(self, contract: Any, method: str, args: tuple[Any, ...]) -> Any:
        return getattr(contract.functions, method)(*args).call()

    def send(self, contract: Any, method: str, args: list[Any], value: int) -> int:
        receipt = transact(self.w3, getattr(contract.functions, method)(*args), sender=self.deployer, value=value)
        return int(receipt["gasUsed"])

    def balance(self, address: str) -> int:
        return int(self.w3.eth.get_balance(Web3.to_checksum_address(address)))

    def set_balance(self, address: str, wei: int) -> None:
        self.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [Web3.to_checksum_address(address), hex(wei)])

    @contextmanager
    def errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except ContractLogicError as err:
            raise DeployError(f"{what}: reverted: {_short(err.message or 'reverted without a reason')}") from err
        except (Web3Exception, RuntimeError) as err:  # RuntimeError: transact's "reverted"
            raise DeployError(f"{what}: {_short(str(err))}") from err


def web3_context(w3: Web3, deployer: str | LocalAccount, *, deployments: Path, side: str = "ethereum",
                 params: dict[str, Any] | None = None, network: str = "local",
                 echo: Callable[[str], None] | None = None) -> DeployContext:
    """A DeployContext on `w3`'s chain whose manifest is `deployments/<chain id>.json` (continued when it exists).

    `params` maps a part to its mapping (as in config/deploy.*.yaml) or to the part's params
    dataclass; `echo` gets the progress lines (default: nothing is printed)."""
    if side not in SIDES:
        raise DeployError(f"unknown side {side!r}; expected one of {', '.join(SIDES)}")
    chain_id = int(w3.eth.chain_id)
    file = manifest_path(chain_id, deployments)
    manifest = Manifest.load(file) if file.exists() else Manifest(chain_id=chain_id, network=network)
    manifest.network = network
    manifest.params[side] = {}
    ctx = DeployContext(network, chain_id, side, deployer, {}, manifest, file, False, echo or (lambda _line: None),
                        backend=Web3Backend(w3, deployer))
    ctx.add_params(params or {})
    return ctx
