"""The ANKR token: deployed with its fixed supply, and a transfer."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dccn_demo.context import DemoContext

TITLE = "ANKR token"


def run(ctx: DemoContext) -> None:
    w3 = ctx.ethereum.w3
    token = ctx.ethereum.manifest.contract(w3, "AnkrToken")
    deployer, tenant = ctx.actor("deployer"), ctx.actor("tenant")
    supply = token.functions.totalSupply().call()
    ctx.step(f"AnkrToken at {token.address}: total supply {supply / 10**18:,.0f} ANKR, all with the deployer")
    ctx.done("ANKR deployed (10,000,000,000 fixed supply)", part="token", address=token.address,
             gas=ctx.ethereum.manifest.get("AnkrToken").gas_used)
    amount = 250_000 * 10**18
    receipt = ctx.send(w3, token.functions.transfer(tenant.address, amount), deployer)
    balance = token.functions.balanceOf(tenant.address).call()
    ctx.step(f"deployer sent {amount / 10**18:,.0f} ANKR to the tenant; tenant balance {balance / 10**18:,.0f} ANKR")
    ctx.done("ANKR transfer deployer -> tenant", part="token", address=token.address, gas=int(receipt["gasUsed"]))
