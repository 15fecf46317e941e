"""The ANKR bridge: validators and a relayer as services; ANKR to the Ankr chain and back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from eth_account.signers.local import LocalAccount

from dccn_common.keys import write_keystore
from dccn_deploy import run_parts
from dccn_deploy.web3_backend import web3_context
from dccn_devtools.ports import free_port

if TYPE_CHECKING:
    from dccn_demo.context import DemoContext

TITLE = "ERC20 / native bridge (3-of-4 validators)"
ANKR = 10**18
PASSWORD_ENV = "DCCN_DEMO_BRIDGE_PASSWORD"
CONFIRMATIONS = {"ethereum": 2, "ankr": 1}


def run(ctx: DemoContext) -> None:
    eth, ankr = ctx.ethereum, ctx.ankr
    token = eth.manifest.contract(eth.w3, "AnkrToken")
    foreign = eth.manifest.contract(eth.w3, "ForeignBridge")
    home = ankr.manifest.contract(ankr.w3, "HomeBridge")
    supply = int(ankr.manifest.params["ankr"]["bridge"]["native_supply"] * ANKR)
    deployer, alice, bob = ctx.actor("deployer"), ctx.actor("alice"), ctx.actor("bob")

    if foreign.functions.peerBridge().call() != home.address:
        # What a second `ape run deploy --side ethereum` does once the Ankr side exists: the bridge
        # part again (through web3), which finds everything deployed and sends only the missing setPeer.
        again = web3_context(eth.w3, deployer, params=dict(eth.manifest.params["ethereum"]),
                             deployments=eth.manifest_path.parent, network=eth.manifest.network)
        run_parts(again, ("bridge",))
        ctx.step("ran the bridge part of the Ethereum side again: " + ", ".join(tx.name for tx in again.plan))
    ctx.step(f"ForeignBridge {foreign.address} (Ethereum) <-> HomeBridge {home.address} (Ankr chain), "
             f"home bridge holds the native supply {ankr.w3.eth.get_balance(home.address) / ANKR:,.0f} ANKR")

    def invariant(label: str) -> None:
        locked = int(token.functions.balanceOf(foreign.address).call())
        outside = supply - int(ankr.w3.eth.get_balance(home.address))
        ctx.step(f"invariant ({label}): locked on Ethereum {locked / ANKR:,.0f} == native outside the home bridge "
                 f"{outside / ANKR:,.0f} + in flight {(locked - outside) / ANKR:,.0f} ANKR")

    urls = _start_services(ctx)
    ctx.done(f"{len(urls)} validators (3 of 4 sign) and a relayer running", part="bridge")
    invariant("start")

    ctx.send(eth.w3, token.functions.transfer(alice.address, 10_000 * ANKR), deployer)
    amount = 5_000 * ANKR
    ctx.send(eth.w3, token.functions.approve(foreign.address, amount), alice)
    receipt = ctx.send(eth.w3, foreign.functions.relayTokens(bob.address, amount), alice)
    ctx.step(f"alice locked {amount / ANKR:,.0f} ANKR on Ethereum for bob on the Ankr chain")
    ctx.done("lock ANKR (relayTokens)", part="bridge", address=foreign.address, gas=int(receipt["gasUsed"]))
    invariant("after the lock")
    before = ankr.w3.eth.get_balance(bob.address)
    _wait(ctx, "validators sign, relayer executes on the Ankr chain",
          lambda: ankr.w3.eth.get_balance(bob.address) > before)
    ctx.step(f"bob received {(ankr.w3.eth.get_balance(bob.address) - before) / ANKR:,.0f} native ANKR")
    ctx.done("release native ANKR (executeSignatures, 3 signatures)", part="bridge", address=home.address,
             gas=_execution_gas(ankr.w3, home))
    invariant("after the release")

    back = 2_000 * ANKR
    receipt = ctx.send(ankr.w3, home.functions.relayNative(alice.address), bob, value=back)
    ctx.step(f"bob sent {back / ANKR:,.0f} native ANKR back to alice on Ethereum")
    ctx.done("bridge native ANKR out (relayNative)", part="bridge", address=home.address, gas=int(receipt["gasUsed"]))
    invariant("after bridging out")
    held_before = token.functions.balanceOf(alice.address).call()
    _wait(ctx, "validators sign, relayer executes on Ethereum",
          lambda: token.functions.balanceOf(alice.address).call() > held_before)
    ctx.step(f"alice received {(token.functions.balanceOf(alice.address).call() - held_before) / ANKR:,.0f} ANKR")
    ctx.done("release ERC20 ANKR (executeSignatures, 3 signatures)", part="bridge", address=foreign.address,
             gas=_execution_gas(eth.w3, foreign))
    invariant("end")


def _start_services(ctx: DemoContext) -> list[str]:
    workdir = ctx.workdir / "bridge"
    workdir.mkdir(parents=True, exist_ok=True)
    base = {
        "ethereum_rpc_url": ctx.ethereum.anvil.url, "ankr_rpc_url": ctx.ankr.anvil.url,
        "ethereum_manifest": str(ctx.ethereum.manifest_path), "ankr_manifest": str(ctx.ankr.manifest_path),
        "ethereum_confirmations": CONFIRMATIONS["ethereum"], "ankr_confirmations": CONFIRMATIONS["ankr"],
        "password_env": PASSWORD_ENV, "poll_interval": 0.3,
    }
    env = {PASSWORD_ENV: "demo-only-password"}
    urls = []
    for role in ("v1", "v2", "v3", "v4"):
        port = free_port()
        urls.append(f"http://127.0.0.1:{port}")
        config = _config(workdir, role, ctx.actor(role), base, env[PASSWORD_ENV], signatures_port=port)
        ctx.start_service(f"bridge-validator-{role}", [ctx.python(), "-m", "token_bridge.cli", "validator",
                                                        "--config", str(config[0])],
                          health_url=f"http://127.0.0.1:{config[1]}/health", env=env)
    config = _config(workdir, "relayer", ctx.actor("relayer"), base, env[PASSWORD_ENV], validator_urls=urls)
    ctx.start_service("bridge-relayer", [ctx.python(), "-m", "token_bridge.cli", "relayer", "--config", str(config[0])],
                      health_url=f"http://127.0.0.1:{config[1]}/health", env=env)
    return urls


def _config(workdir: Path, name: str, account: LocalAccount, base: dict[str, Any], password: str,
            **extra: Any) -> tuple[Path, int]:
    keystore = workdir / f"{name}.keystore.json"
    write_keystore(keystore, account.key, password)
    health_port = free_port()
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**base, **extra, "keystore": str(keystore), "db_path": str(workdir / f"{name}.db"),
                                    "health_port": health_port}))
    return path, health_port


def _wait(ctx: DemoContext, what: str, condition: Any, timeout: float = 90.0) -> None:
    def mine_both() -> None:
        # anvil only mines on transactions: mine on both chains so confirmations advance.
        ctx.ethereum.anvil.mine()
        ctx.ankr.anvil.mine()

    ctx.wait_for(what, condition, timeout=timeout, logs="bridge-*.log", between=mine_both)


def _execution_gas(w3: Any, bridge: Any) -> int:
    events = bridge.events.TransferExecuted().get_logs(from_block=0)
    return int(w3.eth.get_transaction_receipt(events[-1]["transactionHash"])["gasUsed"])
