"""Plasma root chains (Ethereum side): one for the native coin ("RootChain") and one
for ANKR ("RootChainAnkr"), each bound to its currency at deployment.

Parameters (config/deploy.*.yaml, section `plasma`): `operator` (address, or
`deployer`), `exit_period` (seconds), `exit_bond` and `operator_bond` (wei of the
native coin). The deployer posts the operator bond as the constructor's value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dccn_deploy import DeployContext

SIDES = {"ethereum"}
NATIVE = "0x" + "00" * 20
DEFAULTS: dict[str, Any] = {
    "operator": "deployer",
    "exit_period": 604_800,
    "exit_bond": 10**16,
    "operator_bond": 10**18,
}


def settings(ctx: DeployContext) -> dict[str, Any]:
    """The part's parameters with defaults; `deployer` names the deploying account."""
    from dccn_deploy import DeployError

    params = {**DEFAULTS, **ctx.part_params("plasma")}
    if params["operator"] == "deployer":
        params["operator"] = ctx.deployer_address
    for key in ("exit_period", "exit_bond", "operator_bond"):
        try:
            params[key] = int(params[key])
        except (TypeError, ValueError):
            raise DeployError(f"plasma.{key} must be an integer, got {params[key]!r}") from None
        if params[key] <= 0:
            raise DeployError(f"plasma.{key} must be positive, got {params[key]}")
    return params


def deploy(ctx: DeployContext) -> None:
    params = settings(ctx)
    common = (params["exit_bond"], params["exit_period"])
    ctx.deploy("RootChain", params["operator"], NATIVE, *common, part="plasma", value=params["operator_bond"])
    ctx.deploy("RootChain", params["operator"], ctx.at("AnkrToken"), *common, part="plasma",
               value=params["operator_bond"], label="RootChainAnkr")
