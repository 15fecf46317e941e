"""Enode registry: EnodeIngress (the node list; the address Besu is configured with)
and EnodeRules (admins, M-of-N approvals, signed self-updates).

Parameters (`permissioning:` in config/deploy.*.yaml):
  admins         admin addresses; the word `deployer` stands for the deploying account
  threshold      approvals a proposal needs (1..len(admins))
  proposal_ttl   seconds a proposal stays open

Idempotent: the rules are attached to the ingress (`set_rules`) only while the
ingress has none; later rule changes go through an approved `proposeRulesUpgrade`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dccn_deploy import DeployContext

SIDES = {"ethereum"}
ZERO_ADDRESS = "0x" + "00" * 20


def read_params(raw: dict[str, Any], deployer: str) -> tuple[list[str], int, int]:
    from dccn_deploy import DeployError

    admins = [deployer if str(a) == "deployer" else str(a) for a in raw.get("admins") or ["deployer"]]
    threshold = int(raw.get("threshold", 1))
    ttl = int(raw.get("proposal_ttl", 7 * 86400))
    if len(set(admins)) != len(admins):
        raise DeployError("permissioning: `admins` lists an address twice")
    if not 1 <= threshold <= len(admins):
        raise DeployError(f"permissioning: threshold {threshold} must be between 1 and {len(admins)} (the admins)")
    if ttl <= 0:
        raise DeployError("permissioning: proposal_ttl must be positive")
    return admins, threshold, ttl


def deploy(ctx: DeployContext) -> None:
    admins, threshold, ttl = read_params(ctx.part_params("permissioning"), ctx.deployer_address)
    ingress = ctx.deploy("EnodeIngress", part="permissioning")
    rules = ctx.deploy("EnodeRules", ingress, admins, threshold, ttl, part="permissioning")
    current = str(ctx.read(ingress, "rules"))
    if current.lower() == ZERO_ADDRESS:
        ctx.call("EnodeIngress.set_rules(EnodeRules)", ingress, "set_rules", rules)
    elif current.lower() != str(rules.address).lower():
        ctx.echo(f"  ! EnodeIngress answers to rules {current}, not {rules.address}: "
                 "hand over with an approved EnodeRules.proposeRulesUpgrade")
    else:
        ctx.echo("  = EnodeIngress rules already set")
