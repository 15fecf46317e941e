"""Compiled contract artifacts, compiled once and cached on disk (dev tooling: no service
imports it).

ape compiles the same sources for `ape run deploy`; tests, benchmarks and the web3 deploy
backend use these artifacts, which come from the same pinned vyper (0.4.3) and the same
snekmate on sys.path.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from dccn_common import PROJECT_ROOT
from dccn_common.contracts import abi_hash, transact

CONTRACTS_DIR = PROJECT_ROOT / "contracts"


def cache_dir() -> Path:
    return Path(os.environ.get("DCCN_BUILD_CACHE", PROJECT_ROOT / ".build" / "dccn"))


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    source_path: Path

    @property
    def abi_hash(self) -> str:
        return abi_hash(self.abi)


def find_source(name: str) -> Path:
    matches = sorted(CONTRACTS_DIR.rglob(f"{name}.vy"))
    if not matches:
        raise FileNotFoundError(f"no contract named {name} under {CONTRACTS_DIR}")
    if len(matches) > 1:
        raise ValueError(f"contract name {name} is ambiguous: {matches}")
    return matches[0]


def _sources_fingerprint() -> str:
    """Hash of every source the compiler could read, plus the compiler version."""
    import vyper

    digest = hashlib.sha256(vyper.__version__.encode())
    for path in sorted(CONTRACTS_DIR.rglob("*.vy*")):
        digest.update(str(path.relative_to(CONTRACTS_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@cache
def load_artifact(name: str) -> Artifact:
    """ABI and deploy bytecode of contracts/**/<name>.vy, compiling at most once per source state."""
    source = find_source(name)
    target = cache_dir() / f"{name}-{_sources_fingerprint()}.json"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Serialise compilation across pytest-xdist workers: compile once, then all read.
        with open(target.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not target.exists():
                abi, bytecode = _compile(source)
                tmp = target.with_suffix(".tmp")
                tmp.write_text(json.dumps({"abi": abi, "bytecode": bytecode.hex()}))
                tmp.replace(target)
    data = json.loads(target.read_text())
    return Artifact(name=name, abi=data["abi"], bytecode=bytes.fromhex(data["bytecode"]), source_path=source)


def _compile(source: Path) -> tuple[list[dict[str, Any]], bytes]:
    # The search path mirrors vyper's CLI: the contracts root, then sys.path (snekmate).
    import sys

    import vyper
    from vyper.compiler.input_bundle import FilesystemInputBundle

    search_paths = [CONTRACTS_DIR, PROJECT_ROOT, *[Path(p) for p in sys.path if p]]
    bundle = FilesystemInputBundle(search_paths)
    file_input = bundle.load_file(source.relative_to(PROJECT_ROOT) if source.is_relative_to(PROJECT_ROOT) else source)
    out = vyper.compile_from_file_input(file_input, input_bundle=bundle, output_formats=["abi", "bytecode"])
    return [*out["abi"], *fallback_abi(source)], bytes.fromhex(out["bytecode"].removeprefix("0x"))


FALLBACK_ABI_TAG = re.compile(r"@custom:fallback-abi\s+(\S+)")


def fallback_abi(source: Path) -> list[dict[str, Any]]:
    """ABI entries of functions a contract serves from `__default__` (its own decoder, so
    Vyper's argument bounds do not apply): the `.vyi` files its docstring names with
    `@custom:fallback-abi <path relative to the contract>`. Vyper cannot list them itself."""
    import vyper

    entries: list[dict[str, Any]] = []
    for relative in FALLBACK_ABI_TAG.findall(source.read_text()):
        interface = (source.parent / relative).resolve()
        out = vyper.compile_code(interface.read_text(), contract_path=str(interface), output_formats=["abi"])
        entries.extend(out["abi"])
    return entries


def deploy(
    w3: Web3,
    name: str,
    *args: Any,
    sender: str | LocalAccount,
    value: int = 0,
    gas: int | None = None,
) -> Contract:
    """Deploy contracts/**/<name>.vy and wait for the receipt.

    `sender` is an address unlocked on the node (anvil dev accounts) or a local account.
    """
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = transact(w3, factory.constructor(*args), sender=sender, value=value, gas=gas)
    if not receipt["contractAddress"]:
        raise RuntimeError(f"deployment of {name} failed: {receipt}")
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)


