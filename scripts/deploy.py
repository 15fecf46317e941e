"""Deploy the suite: `ape run deploy --network <ecosystem:network:provider>`.

On local networks the first test account deploys; elsewhere pass `--account ALIAS`
(an ape keystore account; its passphrase may come from APE_ACCOUNTS_<ALIAS>_PASSPHRASE).
Re-running is safe: what the manifest already holds, and is live, is reported, not
deployed again. `--dry-run` runs the same transactions on a throwaway fork of the
network and prints the plan: every transaction in nonce order, its address and gas.
"""

import json
from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand

from dccn_deploy import resolve_ape_vyper_config

resolve_ape_vyper_config()  # before ape loads the project's config


@click.command(cls=ConnectedProviderCommand, short_help="Deploy the DCCN suite and write its manifest")
@click.option("--params", "params_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="YAML of per-part parameters (default: config/deploy.local.yaml).")
@click.option("--account", "account_alias", default=None, help="ape account alias (required off local networks).")
@click.option("--side", type=click.Choice(["ethereum", "ankr"]), default="ethereum", show_default=True,
              help="Which chain this is: Ethereum (token, plasma, ...) or the Ankr chain (bridge home side).")
@click.option("--only", multiple=True, help="Deploy only these parts (repeatable).")
@click.option("--dry-run", is_flag=True,
              help="Send nothing: run the deploy on a throwaway fork of the network, print the plan and gas.")
@click.option("--plan-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the plan (every transaction: kind, name, nonce, gas, address) as JSON here.")
@click.option("--deployments-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where manifests go (default: deployments/ or $DCCN_DEPLOYMENTS_DIR).")
def cli(provider, params_file, account_alias, side, only, dry_run, plan_out, deployments_dir):
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
    if plan_out:
        plan_out.write_text(json.dumps({"chain_id": ctx.chain_id, "dry_run": dry_run,
                                        "transactions": [tx.as_json() for tx in ctx.plan]}, indent=2))
    if not dry_run:
        print_next_steps(ctx, getattr(provider, "uri", "<rpc-url>"))


# What an operator runs next, per deployed part (full options in docs/<part>.md).
NEXT_STEPS = {
    "plasma": [
        "plasma-operator --rpc-url {rpc} --manifest {manifest} --keystore operator.json --db plasma.db --api-port 8700",
        "plasma-watcher --rpc-url {rpc} --manifest {manifest} --keystore you.json --operator-url http://127.0.0.1:8700  (docs/plasma_operator.md)",
    ],
    "oracle": [
        "nos-enclave init --sealed-key enclave.sealed  then  nos-enclave run --socket enclave.sock "
        "--sealed-key enclave.sealed --ca-bundle <CA file> --health-port 9101",
        "nos-relay register-enclave ...  then  nos-relay run --rpc-url {rpc} --manifest {manifest} --keystore relayer.json "
        "--db relay.db --enclave-socket enclave.sock  (docs/oracle.md)",
    ],
    "dccn": ["dccn-scheduler schedule market.json --rpc {rpc} --manifest {manifest}  (docs/dccn.md)"],
    "permissioning": ["enode-dns run --config enode-dns.yaml  (docs/permissioning.md)"],
    "bridge": ["token-bridge validator --config validator.yaml; token-bridge relayer --config relayer.yaml  (docs/bridge.md)"],
}


def print_next_steps(ctx, rpc: str) -> None:
    parts = {entry.part for entry in ctx.manifest.contracts.values()}
    lines = [line for part, steps in NEXT_STEPS.items() if part in parts for line in steps]
    if not lines:
        return
    click.echo("")
    click.echo("next: start the services against this manifest (keystore passwords come from the environment):")
    for line in lines:
        click.echo("  " + line.format(rpc=rpc, manifest=ctx.manifest_file))
