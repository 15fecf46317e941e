"""Deploy the suite with ape, part by part, idempotently, into a manifest.

`scripts/deploy.py` (run as `ape run deploy --network ...`) calls `run_deploy`.
Each part is a module `dccn_deploy/parts/<part>.py` with

    SIDES = {"ethereum"}              # which chains it lives on ("ethereum", "ankr")
    def deploy(ctx: DeployContext) -> None: ...

Parts run in `PARTS` order (dependencies first) and use `ctx.deploy(...)` for
contracts and `ctx.call(...)` for configuration transactions, so a re-run reports
what exists instead of duplicating it, and `--dry-run` sends nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml

from dccn_common import PROJECT_ROOT
from dccn_common.contracts import abi_hash, fallback_abi, find_source
from dccn_common.manifest import DeployedContract, Manifest, manifest_path

# Dependency order: everything after "token" may use the token.
PARTS = ["token", "plasma", "oracle", "dccn", "permissioning", "bridge"]
SIDES = ("ethereum", "ankr")
DEFAULT_PARAMS = PROJECT_ROOT / "config" / "deploy.local.yaml"


class DeployError(click.ClickException):
    """A deploy cannot proceed; printed as one line, exit code 1."""


@dataclass
class DryRunContract:
    """Stands in for a contract that a dry run would deploy."""

    name: str
    address: str


@dataclass
class DeployContext:
    network: str
    chain_id: int
    side: str
    deployer: Any  # an ape account
    params: dict[str, Any]
    manifest: Manifest
    manifest_file: Path
    dry_run: bool = False
    echo: Callable[[str], None] = click.echo
    gas_used: dict[str, int] = field(default_factory=dict)
    _predicted_nonce: int | None = None

    def part_params(self, part: str) -> dict[str, Any]:
        return dict(self.params.get(part) or {})

    # -- contracts -----------------------------------------------------------------------

    def has(self, name: str) -> bool:
        return name in self.manifest.contracts

    def at(self, name: str) -> Any:
        """The ape contract instance of an already deployed contract."""
        from ape import project

        entry = self.manifest.get(name)
        if self.dry_run and entry.tx_hash == "dry-run":
            return DryRunContract(name, entry.address)
        return getattr(project, entry.type_name).at(entry.address)

    def deploy(self, name: str, *args: Any, part: str, value: int = 0, label: str | None = None) -> Any:
        """Deploy `name` unless the manifest already holds a live copy with the same ABI."""
        from ape import chain, project

        key = label or name
        container = getattr(project, name)
        abi = [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in container.contract_type.abi]
        abi += fallback_abi(find_source(name))  # functions served by __default__, absent from ape's ABI
        existing = self.manifest.contracts.get(key)
        if existing is not None:
            live = (self.dry_run and existing.tx_hash == "dry-run") or bool(chain.provider.get_code(existing.address))
            if live and existing.abi_hash == abi_hash(abi):
                self.echo(f"  = {key:<22} already deployed at {existing.address}")
                return self.at(key)
            reason = "no code at its address" if not live else "its ABI changed"
            self.echo(f"  ! {key:<22} redeploying: {reason}")

        plain_args = [getattr(a, "address", a) for a in args]
        if self.dry_run:
            address = self._predict_address()
            gas = self._estimate(container, plain_args, value)
            self.echo(f"  ~ {key:<22} would deploy at {address} (~{gas:,} gas)")
            self.manifest.add(
                DeployedContract(key, address, -1, "dry-run", abi, abi_hash(abi), _jsonable(plain_args), part, gas,
                                 contract_type=name)
            )
            self.gas_used[key] = gas
            return DryRunContract(key, address)

        instance = container.deploy(*plain_args, sender=self.deployer, value=value)
        receipt = instance.creation_metadata.receipt if instance.creation_metadata else None
        block = int(receipt.block_number) if receipt else int(chain.blocks.head.number)
        tx_hash = str(receipt.txn_hash) if receipt else ""
        self.gas_used[key] = int(receipt.gas_used) if receipt else 0
        self.manifest.add(
            DeployedContract(
                key, str(instance.address), block, tx_hash, abi, abi_hash(abi), _jsonable(plain_args), part,
                self.gas_used[key], contract_type=name,
            )
        )
        self.manifest.save(self.manifest_file)  # after every contract: a crash keeps what is done
        self.echo(f"  + {key:<22} deployed at {instance.address} (block {block}, {self.gas_used[key]:,} gas)")
        return instance

    def call(self, description: str, contract: Any, method: str, *args: Any, value: int = 0) -> None:
        """A configuration transaction; skipped (and printed) in a dry run."""
        if self.dry_run or isinstance(contract, DryRunContract):
            self.echo(f"  ~ would call {description}")
            return
        plain_args = [getattr(a, "address", a) for a in args]
        receipt = getattr(contract, method)(*plain_args, sender=self.deployer, value=value)
        self.echo(f"  + {description} ({int(receipt.gas_used):,} gas)")

    # -- dry-run helpers ----------------------------------------------------------------

    def _predict_address(self) -> str:
        from eth_utils import to_checksum_address
        from rlp import encode
        from web3 import Web3

        if self._predicted_nonce is None:
            self._predicted_nonce = int(self.deployer.nonce)
        sender = bytes.fromhex(str(self.deployer.address)[2:])
        address = Web3.keccak(encode([sender, self._predicted_nonce]))[12:]
        self._predicted_nonce += 1
        return to_checksum_address(address)

    def _estimate(self, container: Any, args: list[Any], value: int) -> int:
        from ape import chain

        try:
            txn = container.constructor.serialize_transaction(*args, sender=self.deployer, value=value)
            return int(chain.provider.estimate_gas_cost(txn))
        except Exception:
            return 0  # a constructor that calls a contract not yet deployed cannot be estimated


def _jsonable(args: list[Any]) -> list[Any]:
    return [a.hex() if isinstance(a, bytes) else a if isinstance(a, (int, str, bool, list)) else str(a) for a in args]


def load_params(path: Path | None) -> dict[str, Any]:
    path = path or DEFAULT_PARAMS
    if not path.is_file():
        raise DeployError(f"parameter file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise DeployError(f"{path}: invalid YAML: {err}") from err
    if not isinstance(data, dict):
        raise DeployError(f"{path}: expected a mapping of part -> parameters")
    return data


def available_parts() -> list[str]:
    return [p for p in PARTS if importlib.util.find_spec(f"dccn_deploy.parts.{p}") is not None]


def run_deploy(
    *,
    network: str,
    deployer: Any,
    side: str = "ethereum",
    params_file: Path | None = None,
    only: tuple[str, ...] = (),
    dry_run: bool = False,
    deployments: Path | None = None,
    echo: Callable[[str], None] = click.echo,
) -> DeployContext:
    from ape import chain

    if side not in SIDES:
        raise DeployError(f"unknown side {side!r}; expected one of {', '.join(SIDES)}")
    unknown = set(only) - set(PARTS)
    if unknown:
        raise DeployError(f"unknown part(s): {', '.join(sorted(unknown))}; parts are {', '.join(PARTS)}")
    params = load_params(params_file)
    chain_id = int(chain.chain_id)
    file = manifest_path(chain_id, deployments)
    manifest = Manifest.load(file) if file.exists() else Manifest(chain_id=chain_id, network=network)
    manifest.network = network
    manifest.params[side] = params
    ctx = DeployContext(network, chain_id, side, deployer, params, manifest, file, dry_run, echo)
    mode = "DRY RUN (nothing is sent)" if dry_run else "deploying"
    echo(f"{mode}: side {side}, network {network} (chain {chain_id}), deployer {deployer.address}")
    for part in available_parts():
        if only and part not in only:
            continue
        module = importlib.import_module(f"dccn_deploy.parts.{part}")
        if side not in getattr(module, "SIDES", {"ethereum"}):
            continue
        echo(f"[{part}]")
        module.deploy(ctx)
    if not dry_run:
        manifest.save(file)
        echo(f"manifest: {file}")
    return ctx
