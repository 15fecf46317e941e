"""Deployment manifests: `deployments/<chain-id>.json`, written by `ape run deploy`,
read by every service (addresses, deploy blocks, ABIs and their hashes)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.contract import Contract

from dccn_common import PROJECT_ROOT
from dccn_common.contracts import abi_hash


class ManifestError(ValueError):
    """A manifest is missing, malformed, or lacks a contract."""


def deployments_dir() -> Path:
    return Path(os.environ.get("DCCN_DEPLOYMENTS_DIR", PROJECT_ROOT / "deployments"))


def manifest_path(chain_id: int, directory: Path | None = None) -> Path:
    return (directory or deployments_dir()) / f"{chain_id}.json"


@dataclass
class DeployedContract:
    name: str
    address: str
    block: int
    tx_hash: str
    abi: list[dict[str, Any]]
    abi_hash: str
    args: list[Any] = field(default_factory=list)
    part: str = ""
    gas_used: int = 0
    contract_type: str = ""  # the compiled contract's name when `name` is a label

    @property
    def type_name(self) -> str:
        return self.contract_type or self.name


@dataclass
class Manifest:
    chain_id: int
    network: str = ""
    contracts: dict[str, DeployedContract] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    updated_at: float = 0.0

    # -- lookup ------------------------------------------------------------------------

    def get(self, name: str) -> DeployedContract:
        try:
            return self.contracts[name]
        except KeyError:
            known = ", ".join(sorted(self.contracts)) or "none"
            raise ManifestError(f"contract {name} is not in the manifest of chain {self.chain_id} (has: {known})") from None

    def contract(self, w3: Web3, name: str) -> Contract:
        entry = self.get(name)
        return w3.eth.contract(address=Web3.to_checksum_address(entry.address), abi=entry.abi)

    def add(self, entry: DeployedContract) -> None:
        if entry.abi_hash != abi_hash(entry.abi):
            raise ManifestError(f"{entry.name}: ABI hash does not match its ABI")
        self.contracts[entry.name] = entry

    # -- files -------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | str) -> Manifest:
        path = Path(path)
        if not path.is_file():
            raise ManifestError(f"no deployment manifest at {path}: run `ape run deploy --network ...` first")
        try:
            data = json.loads(path.read_text())
            contracts = {name: DeployedContract(**entry) for name, entry in data.pop("contracts", {}).items()}
            manifest = cls(contracts=contracts, **data)
        except (json.JSONDecodeError, TypeError) as err:
            raise ManifestError(f"{path}: not a deployment manifest ({err})") from err
        for entry in manifest.contracts.values():
            if entry.abi_hash != abi_hash(entry.abi):
                raise ManifestError(f"{path}: ABI of {entry.name} does not match its hash")
        return manifest

    def save(self, path: Path | str) -> None:
        """Atomic write: readers see the old or the new manifest, never half of one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.updated_at = time.time()
        data = asdict(self)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        tmp.replace(path)
