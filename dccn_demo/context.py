"""What a demo story gets: chains, manifests, actors, services, and the summary."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from rich.console import Console
from web3 import Web3

from dccn_common import PROJECT_ROOT
from dccn_common.manifest import Manifest
from dccn_devtools.anvil import Anvil, dev_private_keys

T = TypeVar("T")

# Actors of the story, by role; anvil's dev accounts in this order.
DEMO_ROLES = ("deployer", "operator", "tenant", "provider", "app_provider", "monitor", "alice", "bob",
              "challenger", "guardian", "relayer", "v1", "v2", "v3", "v4", "oracle_relayer",
              "boot0_payer", "boot1_payer")


@dataclass
class Chain:
    name: str
    anvil: Anvil
    w3: Web3
    manifest: Manifest
    manifest_path: Path


@dataclass
class DemoContext:
    console: Console
    workdir: Path
    ethereum: Chain
    ankr: Chain
    short: bool = False
    actors: dict[str, LocalAccount] = field(default_factory=dict)
    summary: list[tuple[str, str, str, str]] = field(default_factory=list)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        keys = dev_private_keys(len(DEMO_ROLES))
        self.actors = {role: Account.from_key(key) for role, key in zip(DEMO_ROLES, keys, strict=True)}

    def actor(self, role: str) -> LocalAccount:
        return self.actors[role]

    def step(self, text: str) -> None:
        self.console.print(f"  [bold cyan]>[/] {text}")

    def done(self, what: str, *, part: str, address: str = "", gas: int | str = "") -> None:
        """Record one line of the final summary table."""
        self.summary.append((part, what, address, f"{gas:,}" if isinstance(gas, int) else gas))
        self.console.print(f"    [green]ok[/] {what}" + (f" [dim]({gas:,} gas)[/]" if isinstance(gas, int) else ""))

    def start_service(self, name: str, argv: list[str], *, health_url: str | None = None,
                      env: dict[str, str] | None = None, timeout: float = 60.0) -> subprocess.Popen[bytes]:
        """Start a service process (logs in the workdir) and wait for its health endpoint."""
        log_file = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 (owned by the process)
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                                   env={**os.environ, **(env or {})}, start_new_session=True)
        self.processes.append((name, process))
        if health_url:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}; see {self.workdir / (name + '.log')}")
                try:
                    if httpx.get(health_url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not healthy at {health_url} after {timeout}s")
                time.sleep(0.2)
        self.console.print(f"    [green]up[/] {name}" + (f" [dim]{health_url}[/]" if health_url else ""))
        return process

    def stop_services(self) -> None:
        for name, process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
            self.console.print(f"    stopped {name}")
        self.processes.clear()

    def wait_for(self, what: str, check: Callable[[], T | None], *, timeout: float = 60.0,
                 logs: str = "", between: Callable[[], object] | None = None) -> T:
        """Poll `check` until it returns something truthy (returned), with a spinner.

        `between` runs after each miss (the bridge mines blocks so confirmations advance);
        on timeout the error names what was awaited and which logs in the workdir to read.
        """
        deadline = time.monotonic() + timeout
        with self.console.status(f"    waiting for {what}..."):
            while not (result := check()):
                if time.monotonic() > deadline:
                    hint = f"; see {logs} in {self.workdir}" if logs else ""
                    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}{hint}")
                if between:
                    between()
                time.sleep(0.2)
        return result

    def python(self) -> str:
        return sys.executable

    def send(self, w3: Web3, call: Any, sender: LocalAccount, *, value: int = 0) -> Any:
        """Sign and send a contract call from a story actor; returns the receipt."""
        from dccn_common.contracts import transact

        return transact(w3, call, sender=sender, value=value)
