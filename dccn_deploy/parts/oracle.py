"""NOS oracle: NosOracle and the example PriceConsumer (Ethereum side).

Enclave keys are registered when an enclave exists, not here: the enclave
generates its key inside itself on first start, then the oracle owner runs
`nos-relay register-enclave --enclave-socket ...` (docs/oracle.md), as the
demo story does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dccn_deploy import DeployContext

SIDES = {"ethereum"}
DEFAULT_REQUEST_TTL = 600
DEFAULT_DELIVERY_OVERHEAD = 100_000


def deploy(ctx: DeployContext) -> None:
    params = ctx.part_params("oracle")
    request_ttl = int(params.get("request_ttl", DEFAULT_REQUEST_TTL))
    delivery_overhead = int(params.get("delivery_overhead", DEFAULT_DELIVERY_OVERHEAD))
    oracle = ctx.deploy("NosOracle", request_ttl, delivery_overhead, part="oracle")
    ctx.deploy("PriceConsumer", oracle, part="oracle")
