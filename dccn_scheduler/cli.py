"""`dccn-scheduler`: the WDRF scheduler of seed 000 on providers and tasks from JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from dccn_common.chain import bind_chain
from dccn_common.config import ConfigError
from dccn_common.manifest import ManifestError
from dccn_scheduler.inputs import EXAMPLE, load_input
from dccn_scheduler.onchain import OnChainIndices
from dccn_scheduler.wdrf import Schedule, SchedulerInputError, schedule


@click.group(help=__doc__)
def main() -> None:
    pass


@main.command("schedule")
@click.argument("input_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rpc", help="RPC URL: read stake and reputation from the contracts (needs --manifest).")
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Deployment manifest (deployments/<chain-id>.json) naming DccnStaking and DccnReputation.")
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="How to print the allocation.")
def schedule_command(input_file: Path, rpc: str | None, manifest_path: Path | None, output: str) -> None:
    """Filter, prioritise and allocate the tasks of INPUT_FILE (JSON; see `example`)."""
    try:
        document = load_input(input_file)
        providers, tasks, user_weights, weights = document.to_domain()
        if rpc or manifest_path:
            if not (rpc and manifest_path):
                raise SchedulerInputError("--rpc and --manifest go together")
            chain = bind_chain(rpc, manifest_path, label="--rpc")
            indices = OnChainIndices(chain.w3, chain.manifest)
            addresses = {name: u.address for name, u in document.users.items() if u.address}
            providers, user_weights = indices.enrich(providers, addresses, user_weights)
        result = schedule(providers, tasks, user_weights=user_weights, weights=weights)
    except (SchedulerInputError, ManifestError) as err:
        fail(str(err))
    except ConfigError as err:  # the node at --rpc cannot be reached
        fail(f"cannot read the contracts at {rpc}: {err}")
    except UnicodeDecodeError as err:
        fail(f"{input_file} is not UTF-8 text (byte {err.start}); the input is a JSON document")
    except (ConnectionError, OSError) as err:
        fail(f"cannot read the contracts at {rpc}: {err}")
    if output == "json":
        click.echo(json.dumps(as_json(result), indent=2))
    else:
        print_table(result)


@main.command("example")
def example_command() -> None:
    """Print an example input document."""
    click.echo(json.dumps(EXAMPLE, indent=2))


def fail(message: str) -> NoReturn:
    """One line on stderr and exit code 2, as every service CLI does."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def as_json(result: Schedule) -> dict[str, Any]:
    return {
        "placements": [{"task": p.task, "user": p.user, "provider": p.provider, "node": p.node}
                       for p in result.placements],
        "unscheduled": [{"task": task, "reason": reason} for task, reason in result.unscheduled.items()],
        "dominant_shares": result.dominant_shares,
    }


def print_table(result: Schedule) -> None:
    console = Console(file=sys.stdout, highlight=False)
    table = Table(title=f"{len(result.placements)} placed, {len(result.unscheduled)} unscheduled")
    for column in ("task", "user", "provider", "node"):
        table.add_column(column)
    for p in result.placements:
        table.add_row(p.task, p.user, p.provider, p.node)
    for task, reason in result.unscheduled.items():
        table.add_row(task, "", "[red]unscheduled[/]", reason)
    console.print(table)


if __name__ == "__main__":
    main()
