"""ANKR bridge: ForeignBridge on Ethereum (`--side ethereum`), HomeBridge on the Ankr
chain (`--side ankr`, run second, against the Ankr chain's node, with the same
DCCN_DEPLOYMENTS_DIR so it finds the Ethereum manifest for its peer).

Parameters (`bridge:` in config/deploy.*.yaml; amounts in whole ANKR):
  validators        validator signing addresses (same set on both sides)
  threshold         signatures per transfer, >= 2/3 of the validators
  ethereum_chain_id / ankr_chain_id   the two chains (each side's peer)
  min_per_tx, max_per_tx, daily_limit  limits of outgoing transfers on each side
  hold_threshold, hold_period           transfers of hold_threshold or more wait hold_period seconds
  pausers, guardians                    accounts given PAUSER_ROLE / GUARDIAN_ROLE (the deployer is admin)
  native_supply     native ANKR the home bridge holds; on a local chain it is set with
                    anvil_setBalance (in production it is in the Ankr chain's genesis)

The Ethereum side learns its peer (the HomeBridge address) when it is deployed again
after the Ankr side (idempotent: only the missing `setPeer` is sent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dccn_common.manifest import Manifest, manifest_path

if TYPE_CHECKING:
    from dccn_deploy import DeployContext

SIDES = {"ethereum", "ankr"}
ANKR = 10**18
AMOUNTS = ("min_per_tx", "max_per_tx", "daily_limit", "hold_threshold", "native_supply")  # whole ANKR in the YAML
REQUIRED = ("ethereum_chain_id", "ankr_chain_id", "min_per_tx", "max_per_tx", "daily_limit", "hold_threshold",
            "hold_period")


@dataclass
class BridgeParams:
    """The part's parameters, amounts in wei (the YAML has whole ANKR: `from_mapping`)."""

    validators: list[str]
    threshold: int
    ethereum_chain_id: int
    ankr_chain_id: int
    min_per_tx: int = 1 * ANKR
    max_per_tx: int = 1_000_000 * ANKR
    daily_limit: int = 10_000_000 * ANKR
    hold_threshold: int = 500_000 * ANKR
    hold_period: int = 3_600
    pausers: list[str] = field(default_factory=list)
    guardians: list[str] = field(default_factory=list)
    native_supply: int = 0  # what the home bridge holds; funded with anvil_setBalance on a local chain

    @property
    def limits(self) -> list[int]:
        """The constructors' limits: min per transfer, max per transfer, daily limit."""
        return [self.min_per_tx, self.max_per_tx, self.daily_limit]

    @property
    def hold(self) -> list[int]:
        """The constructors' hold: threshold, period (seconds)."""
        return [self.hold_threshold, self.hold_period]

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> BridgeParams:
        """From the `bridge:` section (amounts in whole ANKR); a DeployError names what is wrong."""
        from dccn_deploy import DeployError

        try:
            values = {key: int(raw[key] * ANKR) if key in AMOUNTS else int(raw[key]) for key in REQUIRED}
            return cls(
                validators=[str(v) for v in raw.get("validators") or []], threshold=int(raw.get("threshold") or 0),
                pausers=[str(a) for a in raw.get("pausers") or []], guardians=[str(a) for a in raw.get("guardians") or []],
                native_supply=int(raw.get("native_supply", 0) * ANKR), **values,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DeployError(f"bridge: bad or missing parameter: {err}") from err

    def as_mapping(self) -> dict[str, Any]:
        """The `bridge:` section these parameters come from (what the manifest records)."""
        def whole(wei: int) -> int | float:
            return wei // ANKR if wei % ANKR == 0 else wei / ANKR

        return {"validators": list(self.validators), "threshold": self.threshold,
                "ethereum_chain_id": self.ethereum_chain_id, "ankr_chain_id": self.ankr_chain_id,
                **{key: whole(getattr(self, key)) for key in AMOUNTS}, "hold_period": self.hold_period,
                "pausers": list(self.pausers), "guardians": list(self.guardians)}


def read_params(raw: dict[str, Any] | BridgeParams) -> BridgeParams:
    """The part's parameters from its mapping (or as given), checked; or a DeployError."""
    if not isinstance(raw, BridgeParams):
        _check_threshold(raw.get("validators") or [], int(raw.get("threshold") or 0))
        raw = BridgeParams.from_mapping(raw)
    _check_threshold(raw.validators, raw.threshold)
    return raw


def _check_threshold(validators: list[Any], threshold: int) -> None:
    from dccn_deploy import DeployError

    if not validators or not 3 * threshold >= 2 * len(validators) or threshold > len(validators):
        raise DeployError("bridge: set `validators` and a `threshold` of at least two thirds of them in the params file")


@dataclass
class BridgePair:
    """The deployed pair (the backend's contract instances) and the two sides' manifests."""

    token: Any
    foreign: Any
    home: Any
    ethereum_manifest: Path
    ankr_manifest: Path


def deploy_both_sides(ethereum: DeployContext, ankr: DeployContext) -> BridgePair:
    """The operator's order on two chains: the Ethereum side (the token, then the foreign bridge),
    the Ankr side (the home bridge), the Ethereum side again (it learns its peer)."""
    from dccn_deploy import run_parts

    run_parts(ethereum, ("token", "bridge"))
    run_parts(ankr, ("bridge",))
    run_parts(ethereum, ("bridge",))
    return BridgePair(ethereum.at("AnkrToken"), ethereum.at("ForeignBridge"), ankr.at("HomeBridge"),
                      ethereum.manifest_file, ankr.manifest_file)


def deploy(ctx: DeployContext) -> None:
    params = read_params(ctx.part_params("bridge"))
    if ctx.side == "ethereum":
        _deploy_foreign(ctx, params)
    else:
        _deploy_home(ctx, params)


def _deploy_foreign(ctx: DeployContext, params: BridgeParams) -> None:
    ankr_chain_id = params.ankr_chain_id
    token = ctx.at("AnkrToken")
    bridge = ctx.deploy("ForeignBridge", token, params.validators, params.threshold, ankr_chain_id, params.limits,
                        params.hold, part="bridge")
    _grant_roles(ctx, bridge, params)
    peer_file = manifest_path(ankr_chain_id, ctx.manifest_file.parent)
    peer = Manifest.load(peer_file).contracts.get("HomeBridge") if peer_file.exists() else None
    if peer is None:  # no Ankr side yet (or, both sides in one chain, only this one so far)
        ctx.echo(f"  . peer not set yet: deploy the Ankr side (--side ankr), then run this side again ({peer_file})")
        return
    home = peer.address
    if str(ctx.read(bridge, "peerBridge")).lower() != home.lower():
        ctx.call(f"ForeignBridge.setPeer({ankr_chain_id}, {home})", bridge, "setPeer", ankr_chain_id, home)


def _deploy_home(ctx: DeployContext, params: BridgeParams) -> None:
    from dccn_deploy import DeployError

    ethereum_chain_id, native_supply = params.ethereum_chain_id, params.native_supply
    peer_file = manifest_path(ethereum_chain_id, ctx.manifest_file.parent)
    if not peer_file.exists():
        raise DeployError(f"bridge: deploy the Ethereum side first; its manifest {peer_file} is missing")
    foreign = Manifest.load(peer_file).get("ForeignBridge").address
    bridge = ctx.deploy("HomeBridge", params.validators, params.threshold, ethereum_chain_id, foreign, params.limits,
                        params.hold, part="bridge")
    _grant_roles(ctx, bridge, params)
    if native_supply == 0:
        return
    balance = ctx.balance(bridge.address)
    if balance != 0:
        ctx.echo(f"  = HomeBridge holds {balance / ANKR:,.0f} native ANKR")
    elif "local" in ctx.network:
        ctx.set_balance(bridge.address, native_supply)
        ctx.echo(f"  + HomeBridge funded with the native supply, {native_supply / ANKR:,.0f} ANKR (anvil_setBalance)")
    else:
        ctx.echo("  ! HomeBridge holds no native coin: the Ankr chain's genesis must allocate the supply to it")


def _grant_roles(ctx: DeployContext, bridge: Any, params: BridgeParams) -> None:
    for role_name, accounts in (("PAUSER_ROLE", params.pausers), ("GUARDIAN_ROLE", params.guardians)):
        for account in accounts:
            role = ctx.read(bridge, role_name)
            if not ctx.read(bridge, "hasRole", role, account):
                ctx.call(f"grant {role_name} to {account}", bridge, "grantRole", role, account)
