"""ANKR token: fixed supply minted to the deployer (Ethereum side only; on the
Ankr chain ANKR is the native coin)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dccn_deploy import DeployContext

SIDES = {"ethereum"}


def deploy(ctx: DeployContext) -> None:
    ctx.deploy("AnkrToken", part="token")
