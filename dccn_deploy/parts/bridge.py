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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dccn_common.manifest import Manifest, manifest_path

if TYPE_CHECKING:
    from dccn_deploy import DeployContext

SIDES = {"ethereum", "ankr"}
ANKR = 10**18


@dataclass
class BridgeParams:
    """The constructor arguments both sides share (amounts in wei)."""

    validators: list[str]
    threshold: int
    limits: list[int]  # min per transfer, max per transfer, daily limit
    hold: list[int]  # hold threshold, hold period (seconds)
    pausers: list[str]
    guardians: list[str]


def read_params(raw: dict[str, Any]) -> tuple[BridgeParams, int, int, int]:
    """(params, ethereum chain id, ankr chain id, native supply in wei), or a DeployError."""
    from dccn_deploy import DeployError

    validators = [str(v) for v in raw.get("validators") or []]
    threshold = int(raw.get("threshold") or 0)
    if not validators or not 3 * threshold >= 2 * len(validators) or threshold > len(validators):
        raise DeployError("bridge: set `validators` and a `threshold` of at least two thirds of them in the params file")
    try:
        params = BridgeParams(
            validators=validators, threshold=threshold,
            limits=[int(raw[name] * ANKR) for name in ("min_per_tx", "max_per_tx", "daily_limit")],
            hold=[int(raw["hold_threshold"] * ANKR), int(raw["hold_period"])],
            pausers=[str(a) for a in raw.get("pausers") or []], guardians=[str(a) for a in raw.get("guardians") or []],
        )
        chains = int(raw["ethereum_chain_id"]), int(raw["ankr_chain_id"])
    except (KeyError, TypeError, ValueError) as err:
        raise DeployError(f"bridge: bad or missing parameter: {err}") from err
    return params, chains[0], chains[1], int(raw.get("native_supply", 0) * ANKR)


def deploy(ctx: DeployContext) -> None:
    params, ethereum_chain_id, ankr_chain_id, native_supply = read_params(ctx.part_params("bridge"))
    if ctx.side == "ethereum":
        _deploy_foreign(ctx, params, ankr_chain_id)
    else:
        _deploy_home(ctx, params, ethereum_chain_id, native_supply)


def _deploy_foreign(ctx: DeployContext, params: BridgeParams, ankr_chain_id: int) -> None:
    token = ctx.at("AnkrToken")
    bridge = ctx.deploy("ForeignBridge", token, params.validators, params.threshold, ankr_chain_id, params.limits,
                        params.hold, part="bridge")
    _grant_roles(ctx, bridge, params)
    peer_file = manifest_path(ankr_chain_id, ctx.manifest_file.parent)
    if not peer_file.exists():
        ctx.echo(f"  . peer not set yet: deploy the Ankr side (--side ankr), then run this side again ({peer_file})")
        return
    home = Manifest.load(peer_file).get("HomeBridge").address
    if str(bridge.peerBridge()).lower() != home.lower():
        ctx.call(f"ForeignBridge.setPeer({ankr_chain_id}, {home})", bridge, "setPeer", ankr_chain_id, home)


def _deploy_home(ctx: DeployContext, params: BridgeParams, ethereum_chain_id: int, native_supply: int) -> None:
    from dccn_deploy import DeployError

    peer_file = manifest_path(ethereum_chain_id, ctx.manifest_file.parent)
    if not peer_file.exists():
        raise DeployError(f"bridge: deploy the Ethereum side first; its manifest {peer_file} is missing")
    foreign = Manifest.load(peer_file).get("ForeignBridge").address
    bridge = ctx.deploy("HomeBridge", params.validators, params.threshold, ethereum_chain_id, foreign, params.limits,
                        params.hold, part="bridge")
    _grant_roles(ctx, bridge, params)
    if native_supply == 0:
        return
    from ape import chain

    balance = int(chain.provider.get_balance(bridge.address))
    if balance != 0:
        ctx.echo(f"  = HomeBridge holds {balance / ANKR:,.0f} native ANKR")
    elif "local" in ctx.network:
        chain.provider.set_balance(bridge.address, native_supply)
        ctx.echo(f"  + HomeBridge funded with the native supply, {native_supply / ANKR:,.0f} ANKR (anvil_setBalance)")
    else:
        ctx.echo("  ! HomeBridge holds no native coin: the Ankr chain's genesis must allocate the supply to it")


def _grant_roles(ctx: DeployContext, bridge: Any, params: BridgeParams) -> None:
    for role_name, accounts in (("PAUSER_ROLE", params.pausers), ("GUARDIAN_ROLE", params.guardians)):
        for account in accounts:
            role = getattr(bridge, role_name)()
            if not bridge.hasRole(role, account):
                ctx.call(f"grant {role_name} to {account}", bridge, "grantRole", role, account)
