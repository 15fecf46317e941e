"""Validators and a relayer run in one process against a deployed bridge pair (tests,
benchmarks). The pair itself is deployed by the deploy part, dccn_deploy/parts/bridge.py
(`ape run deploy --side ethereum|ankr`, or through web3 with dccn_deploy.web3_backend)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from token_bridge.chains import Side
from token_bridge.relayer import DestinationRelay
from token_bridge.validator import SignatureServer, Validator


@dataclass
class LocalNetwork:
    """Validators and a relayer in one process, stepped by the caller (tests, benchmarks):
    the same objects the `token-bridge` services run, without their loops."""

    validators: list[Validator]
    servers: list[SignatureServer]
    relays: dict[str, DestinationRelay]

    def pump(self) -> None:
        for validator in self.validators:
            validator.poll()
        for relay in self.relays.values():
            relay.tick()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def start_local_network(open_sides: Any, validator_accounts: list[LocalAccount], relayer: LocalAccount,
                        workdir: Path) -> LocalNetwork:
    """`open_sides()` returns fresh {name: Side} (each component gets its own web3 clients)."""
    validators = [Validator(open_sides(), workdir / f"validator-{a.address}.db", a) for a in validator_accounts]
    servers = [SignatureServer(v).start() for v in validators]
    sides: dict[str, Side] = open_sides()
    relays = {name: DestinationRelay(side, workdir / f"relayer-{name}.db", relayer, [s.url for s in servers])
              for name, side in sides.items()}
    return LocalNetwork(validators, servers, relays)
