"""Deploy the suite, part by part, idempotently, into a manifest: the one deploy path.

`scripts/deploy.py` (run as `ape run deploy --network ...`) calls `run_deploy`, which
sends through ape. Tests, benchmarks and the demo run the same parts through web3
(`dccn_deploy.web3_backend.web3_context`, then `run_parts`).
Each part is a module `dccn_deploy/parts/<part>.py` with

    SIDES = {"ethereum"}              # which chains it lives on ("ethereum", "ankr")
    def deploy(ctx: DeployContext) -> None: ...

Parts run in `PARTS` order (dependencies first) and use `ctx.deploy(...)` for
contracts, `ctx.read(...)` for view calls and `ctx.call(...)` for configuration
transactions (the context's `Backend` sends them), so a re-run reports
what exists instead of duplicating it. `--dry-run` runs exactly the same code on a
throwaway fork of the network (`forked_target`) and prints what it sent there.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import click
import yaml

from dccn_common import PROJECT_ROOT
from dccn_common.contracts import abi_hash
from dccn_common.manifest import DeployedContract, Manifest, manifest_path
from dccn_devtools.contracts import fallback_abi, find_source

# Dependency order: everything after "token" may use the token.
PARTS = ["token", "plasma", "oracle", "dccn", "permissioning", "bridge"]
SIDES = ("ethereum", "ankr")
DEFAULT_PARAMS = PROJECT_ROOT / "config" / "deploy.local.yaml"


def resolve_ape_vyper_config() -> None:
    """Remove the cause of the pydantic-settings warning every ape command prints.

    ape-vyper 0.8.12 annotates `VyperConfig.import_remapping` with the forward reference
    "Remapping" and never rebuilds the model, so pydantic-settings warns
    (IncompleteFieldDefinitionWarning) each time the config loads. Rebuilding resolves it.
    """
    try:
        from ape_vyper.config import VyperConfig
    except ImportError:  # ape-vyper not installed: nothing to resolve
        return
    VyperConfig.model_rebuild()


class DeployError(click.ClickException):
    """A deploy cannot proceed; printed as one line, exit code 1."""


@dataclass
class PlannedTx:
    """One transaction the deploy sent (on the target, or on the dry run's fork), in nonce order."""

    kind: str  # "deploy" or "call"
    name: str  # the manifest key, or the call's description
    nonce: int
    gas: int
    address: str | None = None  # a deployment's contract address

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "nonce": self.nonce, "gas": self.gas, "address": self.address}


@dataclass
class Sent:
    """What a deployment's receipt says."""

    block: int
    tx_hash: str
    gas_used: int


class Backend(Protocol):
    """The chain a DeployContext sends to: ape (`ape run deploy`) or web3 (dccn_deploy.web3_backend)."""

    @property
    def deployer_address(self) -> str: ...

    def nonce(self) -> int: ...
    def has_code(self, address: str) -> bool: ...
    def abi(self, name: str) -> list[dict[str, Any]]: ...
    def deploy(self, name: str, args: list[Any], value: int) -> tuple[Any, Sent]: ...
    def at(self, entry: DeployedContract) -> Any: ...
    def read(self, contract: Any, method: str, args: tuple[Any, ...]) -> Any: ...
    def send(self, contract: Any, method: str, args: list[Any], value: int) -> int: ...
    def balance(self, address: str) -> int: ...
    def set_balance(self, address: str, wei: int) -> None: ...
    def errors(self, what: str) -> AbstractContextManager[None]: ...


class ApeBackend:
    """ape's project containers, the connected provider and an ape account."""

    def __init__(self, account: Any) -> None:
        self.account = account
        self.deployer_address = str(account.address)

    def nonce(self) -> int:
        return int(self.account.nonce)

    def has_code(self, address: str) -> bool:
        from ape import chain

        return bool(chain.provider.get_code(address))

    def abi(self, name: str) -> list[dict[str, Any]]:
        from ape import project

        container = getattr(project, name)
        abi = [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in container.contract_type.abi]
        return abi + fallback_abi(find_source(name))  # functions served by __default__, absent from ape's ABI

    def deploy(self, name: str, args: list[Any], value: int) -> tuple[Any, Sent]:
        from ape import chain, project

        instance = getattr(project, name).deploy(*args, sender=self.account, value=value)
        receipt = instance.creation_metadata.receipt if instance.creation_metadata else None
        block = int(receipt.block_number) if receipt else int(chain.blocks.head.number)
        tx_hash = str(receipt.txn_hash) if receipt else ""
        return instance, Sent(block, tx_hash, int(receipt.gas_used) if receipt else 0)

    def at(self, entry: DeployedContract) -> Any:
        from ape import project

        return getattr(project, entry.type_name).at(entry.address)

    def read(self, contract: Any, method: str, args: tuple[Any, ...]) -> Any:
        return getattr(contract, method)(*args)

    def send(self, contract: Any, method: str, args: list[Any], value: int) -> int:
        return int(getattr(contract, method)(*args, sender=self.account, value=value).gas_used)

    def balance(self, address: str) -> int:
        from ape import chain

        return int(chain.provider.get_balance(address))

    def set_balance(self, address: str, wei: int) -> None:
        from ape import chain

        chain.provider.set_balance(address, wei)

    def errors(self, what: str) -> AbstractContextManager[None]:
        return _reverts_as_errors(what)


@dataclass
class DeployContext:
    network: str
    chain_id: int
    side: str
    deployer: Any  # an ape account, or (web3) an unlocked address or a local account
    params: dict[str, Any]  # part -> its mapping (the YAML), or the part's params dataclass
    manifest: Manifest
    manifest_file: Path
    dry_run: bool = False  # running on a throwaway fork: the same transactions, nothing saved
    echo: Callable[[str], None] = click.echo
    gas_used: dict[str, int] = field(default_factory=dict)
    plan: list[PlannedTx] = field(default_factory=list)
    backend: Backend = None  # type: ignore[assignment]  # None: ape, sending from `deployer`

    def __post_init__(self) -> None:
        if self.backend is None:
            self.backend = ApeBackend(self.deployer)

    @property
    def deployer_address(self) -> str:
        return self.backend.deployer_address

    def part_params(self, part: str) -> Any:
        """The part's mapping (a copy), or the params object a Python caller passed."""
        value = self.params.get(part)
        if value is None:
            return {}
        return dict(value) if isinstance(value, Mapping) else value

    def add_params(self, params: dict[str, Any]) -> None:
        """More parts' parameters (a part's mapping, or its params dataclass); the manifest
        records them in their YAML form (a dataclass's `as_mapping()`)."""
        self.params.update(params)
        recorded = self.manifest.params.setdefault(self.side, {})
        recorded.update({part: v.as_mapping() if hasattr(v, "as_mapping") else v for part, v in params.items()})

    # -- chain -----------------------------------------------------------------------------

    def read(self, contract: Any, method: str, *args: Any) -> Any:
        """A view call."""
        return self.backend.read(contract, method, tuple(getattr(a, "address", a) for a in args))

    def balance(self, address: str) -> int:
        return self.backend.balance(address)

    def set_balance(self, address: str, wei: int) -> None:
        """Local chains only (anvil_setBalance)."""
        self.backend.set_balance(address, wei)

    # -- contracts -----------------------------------------------------------------------

    def at(self, name: str) -> Any:
        """The contract instance (ape's, or web3's) of an already deployed contract."""
        return self.backend.at(self.manifest.get(name))

    def deploy(self, name: str, *args: Any, part: str, value: int = 0, label: str | None = None) -> Any:
        """Deploy `name` unless the manifest already holds a live copy with the same ABI."""
        key = label or name
        abi = self.backend.abi(name)
        existing = self.manifest.contracts.get(key)
        if existing is not None:
            live = self.backend.has_code(existing.address)
            if live and existing.abi_hash == abi_hash(abi):
                self.echo(f"  = {key:<22} already deployed at {existing.address}")
                return self.at(key)
            reason = "no code at its address" if not live else "its ABI changed"
            self.echo(f"  ! {key:<22} redeploying: {reason}")

        plain_args = [getattr(a, "address", a) for a in args]
        nonce = self.backend.nonce()
        with self.backend.errors(f"deploying {key}"):
            instance, sent = self.backend.deploy(name, plain_args, value)
        self.gas_used[key] = sent.gas_used
        self.plan.append(PlannedTx("deploy", key, nonce, sent.gas_used, str(instance.address)))
        self.manifest.add(
            DeployedContract(
                key, str(instance.address), sent.block, sent.tx_hash, abi, abi_hash(abi), _jsonable(plain_args), part,
                sent.gas_used, contract_type=name,
            )
        )
        if self.dry_run:
            self.echo(f"  ~ {key:<22} would deploy at {instance.address} (nonce {nonce}, {sent.gas_used:,} gas)")
            return instance
        self.manifest.save(self.manifest_file)  # after every contract: a crash keeps what is done
        self.echo(f"  + {key:<22} deployed at {instance.address} (block {sent.block}, {sent.gas_used:,} gas)")
        return instance

    def call(self, description: str, contract: Any, method: str, *args: Any, value: int = 0) -> None:
        """A configuration transaction (in a dry run it is sent to the fork, like everything else)."""
        plain_args = [getattr(a, "address", a) for a in args]
        nonce = self.backend.nonce()
        with self.backend.errors(description):
            gas_used = self.backend.send(contract, method, plain_args, value)
        self.plan.append(PlannedTx("call", description, nonce, gas_used))
        verb = "~ would call" if self.dry_run else "+"
        self.echo(f"  {verb} {description} (nonce {nonce}, {gas_used:,} gas)")


MAX_ERROR_CHARS = 300


@contextmanager
def _reverts_as_errors(what: str) -> Iterator[None]:
    """A failed transaction as one short DeployError line (ape's own message can hold the whole init code)."""
    from ape.exceptions import ApeException, ContractLogicError

    try:
        with _stdout_only_on_success():
            yield
    except ContractLogicError as err:
        reason = err.revert_message or "reverted without a reason"
        raise DeployError(f"{what}: reverted: {_short(reason)}") from None
    except ApeException as err:
        raise DeployError(f"{what}: {_short(str(err))}") from None


@contextmanager
def _stdout_only_on_success() -> Iterator[None]:
    """Hold what is printed to stdout meanwhile and pass it on only if the block succeeds.

    On a revert ape prints a call trace holding the whole init code in hex (tens of KB)
    before it raises, through a console bound to the original stdout (so redirect_stdout
    cannot catch it): hold file descriptor 1 itself.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    succeeded = False
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 1)
        try:
            yield
            succeeded = True
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            if succeeded:
                held.seek(0)
                sys.stdout.buffer.write(held.read())
                sys.stdout.flush()


def _short(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return line if len(line) <= MAX_ERROR_CHARS else line[:MAX_ERROR_CHARS] + "..."


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
    mode = "DRY RUN (nothing is sent; the same transactions run on a throwaway fork)" if dry_run else "deploying"
    echo(f"{mode}: side {side}, network {network} (chain {chain_id}), deployer {deployer.address}")
    if not dry_run:
        ctx = DeployContext(network, chain_id, side, deployer, params, manifest, file, False, echo)
        run_parts(ctx, only)
        echo(f"manifest: {file}")
        return ctx
    with forked_target(chain_id) as impersonate:
        ctx = DeployContext(network, chain_id, side, impersonate(deployer.address), params, manifest, file, True, echo)
        run_parts(ctx, only)
    total = sum(tx.gas for tx in ctx.plan)
    echo(f"plan: {len(ctx.plan)} transaction(s), {total:,} gas in all; nothing was sent to chain {chain_id}")
    return ctx


def run_parts(ctx: DeployContext, only: tuple[str, ...] | list[str] = ()) -> DeployContext:
    """Run the parts (all, or `only` these) that live on the context's side, in PARTS order;
    save the manifest unless this is a dry run."""
    unknown = set(only) - set(PARTS)
    if unknown:
        raise DeployError(f"unknown part(s): {', '.join(sorted(unknown))}; parts are {', '.join(PARTS)}")
    for part in available_parts():
        if only and part not in only:
            continue
        module = importlib.import_module(f"dccn_deploy.parts.{part}")
        if ctx.side not in getattr(module, "SIDES", {"ethereum"}):
            continue
        ctx.echo(f"[{part}]")
        module.deploy(ctx)
    if not ctx.dry_run:
        ctx.manifest.save(ctx.manifest_file)
    return ctx


@contextmanager
def forked_target(chain_id: int) -> Iterator[Callable[[str], Any]]:
    """Point ape at a throwaway anvil forked from the connected chain, for as long as the block runs.

    Yields a function that turns an address into an account sending from it on the fork
    (impersonated: a dry run needs no key). The fork starts at the target's head, so every
    nonce, address and gas figure is the one a real run gets next.
    """
    from ape import accounts, chain, networks
    from ape.logging import logger

    from dccn_devtools.anvil import Anvil, AnvilError

    target = getattr(chain.provider, "uri", None) or getattr(chain.provider, "http_uri", None)
    if not target:
        raise DeployError("--dry-run needs an HTTP provider to fork from")
    fork = Anvil(chain_id=chain_id, accounts=0, extra_args=["--fork-url", str(target), "--auto-impersonate"])
    try:
        fork.start(timeout=120)
    except AnvilError as err:
        raise DeployError(f"--dry-run could not fork {target}: {err}") from None
    try:
        # ape's own "deployed" lines would read as if the target got them: the plan says it instead.
        with _without_env("APE_FOUNDRY_HOST"), logger.at_level("WARNING"), \
                networks.ethereum.local.use_provider("foundry", provider_settings={"host": fork.url}) as provider:
            if getattr(provider, "uri", None) != fork.url:  # never let a dry run send to the target
                raise DeployError(f"--dry-run: ape connected to {provider.uri}, not the fork {fork.url}")
            yield lambda address: accounts.test_accounts.impersonate_account(address)
    finally:
        fork.stop()


@contextmanager
def _without_env(name: str) -> Iterator[None]:
    """Unset an environment variable for a while (APE_FOUNDRY_HOST overrides a provider's host)."""
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved
