"""NOS oracle: NosOracle and the example PriceConsumer (Ethereum side).

Parameters (`oracle:` in config/deploy.*.yaml, or an `OracleParams`):
  request_ttl        seconds a request stays open before its requester may cancel it
  delivery_overhead  gas the oracle reserves per delivery on top of the callback's limit
  consumer_owner     the account that owns PriceConsumer (the dApp); default the deployer

Enclave keys are registered when an enclave exists, not here: the enclave
generates its key inside itself on first start, then the oracle owner runs
`nos-relay register-enclave --enclave-socket ...` (docs/oracle.md), as the
demo story does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dccn_deploy import DeployContext

SIDES = {"ethereum"}
DEFAULT_REQUEST_TTL = 600
DEFAULT_DELIVERY_OVERHEAD = 100_000


@dataclass(frozen=True)
class OracleParams:
    """NosOracle's constructor values and PriceConsumer's owner ("" = the deployer)."""

    request_ttl: int = DEFAULT_REQUEST_TTL
    delivery_overhead: int = DEFAULT_DELIVERY_OVERHEAD
    consumer_owner: str = ""

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> OracleParams:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown oracle parameter(s): {', '.join(sorted(unknown))}")
        # consumer_owner is a str, the rest int: one value type per key, which a dict's type cannot say.
        converted: dict[str, Any] = {k: str(v or "") if k == "consumer_owner" else int(v) for k, v in values.items()}
        return cls(**converted)

    def as_mapping(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "consumer_owner" or v}


def read_params(raw: dict[str, Any] | OracleParams) -> OracleParams:
    from dccn_deploy import DeployError

    try:
        params = raw if isinstance(raw, OracleParams) else OracleParams.from_mapping(raw)
    except (TypeError, ValueError) as err:
        raise DeployError(f"oracle parameters: {err}") from err
    if params.request_ttl <= 0 or params.delivery_overhead < 0:
        raise DeployError("oracle: request_ttl must be positive and delivery_overhead not negative")
    return params


def deploy(ctx: DeployContext) -> None:
    params = read_params(ctx.part_params("oracle"))
    oracle = ctx.deploy("NosOracle", params.request_ttl, params.delivery_overhead, part="oracle")
    consumer = ctx.deploy("PriceConsumer", oracle, part="oracle")
    owner = params.consumer_owner or ctx.deployer_address
    current = str(ctx.read(consumer, "owner"))
    if current.lower() == owner.lower():
        ctx.echo(f"  = PriceConsumer owned by {owner}")
    elif current.lower() == ctx.deployer_address.lower():
        ctx.call(f"PriceConsumer.transfer_ownership({owner})", consumer, "transfer_ownership", owner)
    else:
        ctx.echo(f"  ! PriceConsumer is owned by {current}, not {owner}: its owner must transfer it")
