"""A node joins the permissioned network; its IP changes; a boot node's Besu files follow."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from eth_account import Account

from dccn_common.keys import write_keystore
from dccn_devtools.ports import free_port
from enode_dns.besu_files import read_toml_array
from enode_dns.enode import EnodeId

if TYPE_CHECKING:
    from dccn_demo.context import DemoContext

TITLE = "Permissioned network: enode registry and dynamic DNS"
PASSWORD_ENV = "ENODE_DNS_DEMO_PASSWORD"
PASSWORD = "demo only: a real node reads this from its secret store"
BOOT = 1


def _add_node(ctx: DemoContext, rules: Any, admins: list[Any], enode: EnodeId, host: str, org: str) -> int:
    """Proposal by one admin, approvals by the others up to the threshold; returns the gas."""
    w3 = ctx.ethereum.w3
    call = rules.functions.proposeAddNode(enode.high, enode.low, host, 30303, BOOT, org, False)
    proposal_id = call.call({"from": admins[0].address})
    gas = int(ctx.send(w3, call, admins[0])["gasUsed"])
    ctx.step(f"admin {admins[0].address[:10]} proposed #{proposal_id}: boot node {enode.hex[:12]}... at {host}:30303")
    for admin in admins[1:rules.functions.threshold().call()]:
        gas += int(ctx.send(w3, rules.functions.approve(proposal_id), admin)["gasUsed"])
        ctx.step(f"admin {admin.address[:10]} approved #{proposal_id}: threshold reached, node listed")
    return gas


def _daemon_config(ctx: DemoContext, name: str, keystore: Path, sender_keystore: Path, **settings: Any) -> Path:
    path = ctx.workdir / f"enode-dns-{name}.yaml"
    path.write_text(yaml.safe_dump({
        "rpc_url": ctx.ethereum.anvil.url, "manifest": str(ctx.ethereum.manifest_path),
        "db": str(ctx.workdir / f"enode-dns-{name}.sqlite"), "node_keystore": str(keystore),
        "node_password_env": PASSWORD_ENV, "sender_keystore": str(sender_keystore),
        "sender_password_env": PASSWORD_ENV, "confirmations": 0, "poll_interval": 0.5, "address_interval": 0.5,
        **{k: str(v) if isinstance(v, Path) else v for k, v in settings.items()},
    }))
    return path


def _start_daemon(ctx: DemoContext, name: str, config: Path) -> None:
    port = free_port()
    ctx.start_service(f"enode-dns-{name}", [ctx.python(), "-m", "enode_dns.daemon", "run", "--config", str(config),
                                            "--health-port", str(port)],
                      health_url=f"http://127.0.0.1:{port}/health", env={PASSWORD_ENV: PASSWORD})


def run(ctx: DemoContext) -> None:
    w3 = ctx.ethereum.w3
    ingress = ctx.ethereum.manifest.contract(w3, "EnodeIngress")
    rules = ctx.ethereum.manifest.contract(w3, "EnodeRules")
    admins = [a for a in ctx.actors.values() if rules.functions.is_admin(a.address).call()]
    threshold = rules.functions.threshold().call()
    ctx.step(f"EnodeIngress {ingress.address} (Besu's permissioning address); EnodeRules {rules.address}: "
             f"{len(admins)} admins, {threshold} approvals per change")

    # Node keys live only in encrypted keystores; the password comes from the environment.
    keys = {name: Account.create() for name in ("boot0", "boot1")}
    keystores = {name: ctx.workdir / f"{name}.keystore" for name in keys}
    for name, account in keys.items():
        write_keystore(keystores[name], account.key, PASSWORD)
    # Each daemon pays gas from its own account: two senders on one key and chain would race for nonces.
    payer_keystores = {name: ctx.workdir / f"enode-{name}-payer.keystore" for name in keys}
    for name, path in payer_keystores.items():
        write_keystore(path, ctx.actor(f"{name}_payer").key, PASSWORD)
    boot0, boot1 = EnodeId.of_account(keys["boot0"]), EnodeId.of_account(keys["boot1"])

    gas = _add_node(ctx, rules, admins, boot0, "10.0.0.1", "ankr")
    ctx.done("boot node boot0 listed (proposal + approval)", part="permissioning", address=ingress.address, gas=gas)
    gas = _add_node(ctx, rules, admins, boot1, "203.0.113.10", "lacchain")
    ctx.done("boot1 joined the permissioned network (M-of-N)", part="permissioning", address=ingress.address, gas=gas)
    allowed = ingress.functions.connectionAllowed(boot1.hex, "203.0.113.10", 30303).call()
    ctx.step(f"connectionAllowed(boot1, 203.0.113.10, 30303) = {allowed}")

    besu = ctx.workdir / "besu-boot0"
    besu.mkdir(exist_ok=True)
    config_toml = besu / "config.toml"
    config_toml.write_text('data-path="/var/lib/besu"\np2p-port=30303\nbootnodes=[]\n')
    address_file = ctx.workdir / "boot1-public-ip"
    address_file.write_text("203.0.113.10\n")
    _start_daemon(ctx, "boot0", _daemon_config(
        ctx, "boot0", keystores["boot0"], payer_keystores["boot0"], follow=True, besu_config=config_toml,
        static_nodes=besu / "static-nodes.json", permissions_config=besu / "permissions_config.toml"))
    _start_daemon(ctx, "boot1", _daemon_config(
        ctx, "boot1", keystores["boot1"], payer_keystores["boot1"], address_source=f"file:{address_file}"))

    def bootnodes() -> list[str]:
        return read_toml_array(config_toml, "bootnodes")

    ctx.wait_for("boot0's files to list boot1", lambda: any("203.0.113.10" in b for b in bootnodes()),
                 logs="enode-dns-*.log")
    before = next(line for line in config_toml.read_text().splitlines() if line.startswith("bootnodes"))
    ctx.step(f"boot0 {config_toml.relative_to(ctx.workdir)} before: {before[:60]}...{before[-24:]}")

    address_file.write_text("198.51.100.42\n")
    ctx.step("boot1's public address changed to 198.51.100.42 (its address source)")
    ctx.wait_for("boot0's files to follow the new IP", lambda: any("198.51.100.42" in b for b in bootnodes()),
                 logs="enode-dns-*.log")
    after = next(line for line in config_toml.read_text().splitlines() if line.startswith("bootnodes"))
    ctx.step(f"boot0 {config_toml.relative_to(ctx.workdir)} after:  {after[:60]}...{after[-24:]}")
    update = ingress.events.EndpointUpdated.get_logs(from_block=0, argument_filters={"enode_key": boot1.key})[-1]
    receipt = w3.eth.get_transaction_receipt(update.transactionHash)
    ctx.step(f"EndpointUpdated {update.args.old_host} -> {update.args.new_host} (sequence {update.args.sequence}), "
             f"signed by boot1's enode key, paid by its payer account")
    ctx.done("signed self-update of boot1's IP (no admin needed)", part="permissioning", address=rules.address,
             gas=int(receipt["gasUsed"]))
    ctx.done("boot0 config.toml / static-nodes.json / permissions_config.toml rewritten", part="permissioning",
             address=str(besu.relative_to(ctx.workdir)))
