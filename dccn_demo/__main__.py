"""`make demo`: the whole system on two local chains, one story per part.

Starts two anvils on loopback (the Ethereum side and the Ankr side), deploys with
`ape run deploy` (the same script a testnet deploy uses), runs the stories of the
parts in order, prints a summary table, and stops everything it started unless
`--keep-running` is given.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dccn_common import PROJECT_ROOT
from dccn_common.manifest import Manifest, manifest_path
from dccn_demo.context import DEMO_ROLES, Chain, DemoContext
from dccn_devtools.anvil import Anvil, AnvilError

# Story order (issue 9): bridge, economy, oracle, plasma, permissioned network.
STORIES = ["token", "bridge", "dccn", "oracle", "plasma", "permissioning"]
ETHEREUM_CHAIN_ID = 31337
ANKR_CHAIN_ID = 31338


def run_ape_deploy(anvil: Anvil, side: str, deployments: Path, console: Console, workdir: Path) -> Manifest:
    """Run the deploy script exactly as an operator would, against this anvil."""
    env = {
        **os.environ,
        "APE_FOUNDRY_HOST": anvil.url,
        "APE_DATA_FOLDER": os.environ.get("APE_DATA_FOLDER", str(PROJECT_ROOT / ".ape")),
        "DCCN_DEPLOYMENTS_DIR": str(deployments),
    }
    ape = shutil.which("ape") or str(Path(sys.executable).parent / "ape")
    argv = [ape, "run", "deploy", "--network", "ethereum:local:foundry", "--side", side,
            "--params", str(PROJECT_ROOT / "config" / "deploy.local.yaml")]
    console.print(f"  [dim]$ {' '.join(argv[1:])}  (APE_FOUNDRY_HOST={anvil.url})[/]")
    with open(workdir / f"deploy-{side}.log", "w") as log:
        result = subprocess.run(argv, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    for line in result.stdout.splitlines():
        if line.startswith(("  +", "  =", "  !", "[")):
            console.print(f"    {escape(line.strip())}")
    if result.returncode != 0:
        raise click.ClickException(f"deploy failed on the {side} side; see {workdir / f'deploy-{side}.log'}")
    return Manifest.load(manifest_path(anvil.chain_id, deployments))


def available_stories(selected: tuple[str, ...]) -> list[str]:
    names = [s for s in STORIES if importlib.util.find_spec(f"dccn_demo.stories.{s}") is not None]
    return [s for s in names if not selected or s in selected]


@click.command(help=__doc__)
@click.option("--keep-running", is_flag=True, help="Leave chains and services up after the story.")
@click.option("--short", is_flag=True, help="A shortened story (used by the test suite).")
@click.option("--only", multiple=True, type=click.Choice(STORIES), help="Run only these stories (repeatable).")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=PROJECT_ROOT / "demo-run",
              show_default=True, help="Logs, databases, keystores and manifests of this run.")
def main(keep_running: bool, short: bool, only: tuple[str, ...], workdir: Path) -> None:
    console = Console(highlight=False)
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    deployments = workdir / "deployments"
    started = time.monotonic()
    eth = Anvil(chain_id=ETHEREUM_CHAIN_ID, accounts=len(DEMO_ROLES), log_path=workdir / "anvil-ethereum.log")
    ankr = Anvil(chain_id=ANKR_CHAIN_ID, accounts=len(DEMO_ROLES), log_path=workdir / "anvil-ankr.log")
    ctx: DemoContext | None = None
    try:
        console.rule("[bold]Ankr DCCN suite demo")
        console.print("[bold]1. chains[/]")
        for node, label in ((eth, "Ethereum side"), (ankr, "Ankr side")):
            node.start()
            console.print(f"    [green]up[/] anvil {label}: chain {node.chain_id} at {node.url}")
        console.print("[bold]2. deploy[/] (the same `ape run deploy` a testnet uses)")
        eth_manifest = run_ape_deploy(eth, "ethereum", deployments, console, workdir)
        ankr_manifest = run_ape_deploy(ankr, "ankr", deployments, console, workdir)
        ctx = DemoContext(
            console=console, workdir=workdir, short=short,
            ethereum=Chain("ethereum", eth, eth.web3(), eth_manifest, manifest_path(eth.chain_id, deployments)),
            ankr=Chain("ankr", ankr, ankr.web3(), ankr_manifest, manifest_path(ankr.chain_id, deployments)),
        )
        for number, name in enumerate(available_stories(only), start=3):
            story = importlib.import_module(f"dccn_demo.stories.{name}")
            console.print(f"[bold]{number}. {story.TITLE}[/]")
            story.run(ctx)
        print_summary(ctx, time.monotonic() - started)
        if keep_running:
            console.print(f"[bold]Still running[/] (Ctrl-C to stop): Ethereum {eth.url}, Ankr {ankr.url}; "
                          f"logs and manifests in {workdir}")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except AnvilError as err:
        raise click.ClickException(str(err)) from err
    finally:
        console.print("[bold]stopping[/]")
        if ctx is not None:
            ctx.stop_services()
        eth.stop()
        ankr.stop()
        console.print(f"    stopped both chains; logs in {workdir}")


def print_summary(ctx: DemoContext, seconds: float) -> None:
    table = Table(title=f"What happened ({seconds:.0f} s)")
    for column in ("part", "what", "address", "gas"):
        table.add_column(column)
    for row in ctx.summary:
        table.add_row(*row)
    ctx.console.print(table)


if __name__ == "__main__":
    main()
