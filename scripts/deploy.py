"""Deploy the suite: `ape run deploy --network <ecosystem:network:provider>`.

On local networks the first test account deploys; elsewhere pass `--account ALIAS`
(an ape keystore account; its passphrase may come from APE_ACCOUNTS_<ALIAS>_PASSPHRASE).
Re-running is safe: what the manifest already holds, and is live, is reported, not
deployed again. `--dry-run` prints the plan with predicted addresses and gas.
"""

from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand


@click.command(cls=ConnectedProviderCommand, short_help="Deploy the DCCN suite and write its manifest")
@click.option("--params", "params_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="YAML of per-part parameters (default: config/deploy.local.yaml).")
@click.option("--account", "account_alias", default=None, help="ape account alias (required off local networks).")
@click.option("--side", type=click.Choice(["ethereum", "ankr"]), default="ethereum", show_default=True,
              help="Which chain this is: Ethereum (token, plasma, ...) or the Ankr chain (bridge home side).")
@click.option("--only", multiple=True, help="Deploy only these parts (repeatable).")
@click.option("--dry-run", is_flag=True, help="Send nothing: print the plan, predicted addresses and gas.")
@click.option("--deployments-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where manifests go (default: deployments/ or $DCCN_DEPLOYMENTS_DIR).")
def cli(provider, params_file, account_alias, side, only, dry_run, deployments_dir):
    from ape import accounts

    from dccn_deploy import DeployError, run_deploy

    network = provider.network.choice
    if account_alias:
        deployer = accounts.load(account_alias)
    elif provider.network.is_local:
        deployer = accounts.test_accounts[0]
    else:
        raise DeployError("this is not a local network: pass --account ALIAS (see `ape accounts list`)")
    ctx = run_deploy(network=network, deployer=deployer, side=side, params_file=params_file, only=only,
                     dry_run=dry_run, deployments=deployments_dir)
    click.echo("")
    click.echo("next: start the services against the manifest, e.g.")
    click.echo(f"  plasma-operator --manifest {ctx.manifest_file} --rpc-url {provider.uri if hasattr(provider, 'uri') else '<rpc>'}")
