"""Plasma: the operator and a watcher as services; a deposit, a transfer, a block, an
honest exit paid out, and a dishonest exit challenged by the watcher."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from dccn_common.contracts import transact
from dccn_common.keys import write_keystore
from dccn_devtools.ports import free_port
from plasma_client.remote import OperatorClient
from plasma_client.wallet import Coin, build_transfer, deposit_exit_args, exit_args_from_api
from plasma_core import wire

if TYPE_CHECKING:
    from dccn_demo.context import DemoContext

TITLE = "Plasma child chain: operator, watcher, deposit, transfer, exits"
PASSWORD = "demo-plasma-password"
ETHER = 10**18
T = TypeVar("T")


def _start_services(ctx: DemoContext) -> tuple[str, str]:
    eth = ctx.ethereum
    common = ["--rpc-url", eth.anvil.url, "--manifest", str(eth.manifest_path), "--confirmations", "0",
              "--poll-interval", "0.2"]
    operator_keystore = ctx.workdir / "plasma-operator.keystore.json"
    watcher_keystore = ctx.workdir / "plasma-watcher-bob.keystore.json"
    write_keystore(operator_keystore, ctx.actor("operator").key, PASSWORD)
    write_keystore(watcher_keystore, ctx.actor("bob").key, PASSWORD)
    api_port, health_port = free_port(), free_port()
    operator_url = f"http://127.0.0.1:{api_port}"
    ctx.start_service(
        "plasma-operator",
        [ctx.python(), "-m", "plasma_operator.server", *common, "--keystore", str(operator_keystore),
         "--db", str(ctx.workdir / "plasma-operator.db"), "--api-port", str(api_port), "--block-interval", "1"],
        health_url=f"{operator_url}/health", env={"PLASMA_OPERATOR_PASSWORD": PASSWORD})
    ctx.start_service(
        "plasma-watcher",
        [ctx.python(), "-m", "plasma_client.watcher", *common, "--keystore", str(watcher_keystore),
         "--db", str(ctx.workdir / "plasma-watcher.db"), "--operator-url", operator_url,
         "--health-port", str(health_port)],
        health_url=f"http://127.0.0.1:{health_port}/health", env={"PLASMA_WATCHER_PASSWORD": PASSWORD})
    return operator_url, f"http://127.0.0.1:{health_port}/health"


def run(ctx: DemoContext) -> None:
    w3 = ctx.ethereum.w3
    rootchain = ctx.ethereum.manifest.contract(w3, "RootChain")
    alice, bob = ctx.actor("alice"), ctx.actor("bob")
    bond = int(rootchain.functions.exitBond().call())
    period = int(rootchain.functions.exitPeriod().call())
    operator_url, _ = _start_services(ctx)
    api = OperatorClient(operator_url)

    receipt = ctx.send(w3, rootchain.functions.deposit(), alice, value=ETHER)
    deposit_blknum = int(rootchain.events.Deposit().process_receipt(receipt)[0]["args"]["blknum"])
    ctx.wait_for("the operator to credit the deposit", lambda: api.utxo(deposit_blknum, 0, 0))
    ctx.step(f"alice deposited 1 ETH into RootChain {rootchain.address}: deposit block {deposit_blknum}")
    ctx.done("Plasma deposit (alice, 1 ETH)", part="plasma", address=rootchain.address, gas=int(receipt["gasUsed"]))

    tx = build_transfer([Coin(deposit_blknum, 0, 0, ETHER)], alice.address, bob.address, 6 * ETHER // 10, 0,
                        alice.key)
    sent = api.submit(tx)
    blknum, txindex = sent["blknum"], sent["txindex"]
    data = ctx.wait_for(f"block {blknum} on the root chain", lambda: (lambda d: d if d and d["final"] else None)(
        api.tx(blknum, txindex)))
    submitted = rootchain.events.BlockSubmitted().get_logs(from_block=0, argument_filters={"blknum": blknum})
    ctx.step(f"alice sent 0.6 ETH to bob on the child chain; the operator submitted block {blknum} "
             f"(root {data['root'][:18]}...)")
    ctx.done(f"child block {blknum} submitted by the operator", part="plasma", address=rootchain.address,
             gas=int(w3.eth.get_transaction_receipt(submitted[0]["transactionHash"])["gasUsed"]))
    leaf, root = bytes.fromhex(data["hash"][2:]), bytes.fromhex(data["root"][2:])
    api.confirm(blknum, txindex, 0, wire.confirm_sign(leaf, root, alice.key))
    ctx.step("alice published her confirm signature of the transfer to the operator")

    cheat = deposit_exit_args(deposit_blknum, alice.address, ETHER)
    receipt = ctx.send(w3, cheat.call(rootchain), alice, value=bond)
    ctx.step("alice tries to exit her deposit although she spent it ...")
    challenged = ctx.wait_for("the watcher's challenge", lambda: rootchain.events.ExitChallenged().get_logs(
        from_block=receipt["blockNumber"]))
    challenge_gas = int(w3.eth.get_transaction_receipt(challenged[0]["transactionHash"])["gasUsed"])
    ctx.step(f"... the watcher challenged it with her confirm signature; bob's watcher earned the {bond} wei bond")
    ctx.done("Plasma challengeExit by the watcher", part="plasma", address=rootchain.address, gas=challenge_gas)

    spent = api.tx(blknum, txindex)
    if spent is None:
        raise RuntimeError(f"the operator no longer knows transaction ({blknum}, {txindex})")
    honest = exit_args_from_api(spent, 0)
    receipt = ctx.send(w3, honest.call(rootchain), bob, value=bond)
    # After the challenge: while alice's exit was pending the root chain refused this one.
    ctx.step(f"bob started the exit of his 0.6 ETH output (exit id {honest.exit_id}); the root chain "
             "takes it only now that the exit of its input is challenged")
    ctx.done("Plasma startExit (bob, 1 input)", part="plasma", address=rootchain.address, gas=int(receipt["gasUsed"]))

    ctx.ethereum.anvil.warp(2 * period + 1)
    receipt = transact(w3, rootchain.functions.finalizeExits(10), sender=bob, gas=1_500_000)
    paid = rootchain.events.ExitFinalized().process_receipt(receipt)
    ctx.step(f"time warped past the exit period ({period} s); finalizeExits paid {len(paid)} exit(s)")
    ctx.done("Plasma finalizeExits", part="plasma", address=rootchain.address, gas=int(receipt["gasUsed"]))
    owed = int(rootchain.functions.balances(bob.address).call())
    receipt = ctx.send(w3, rootchain.functions.withdraw(), bob)
    ctx.step(f"bob withdrew {owed / ETHER:.2f} ETH (his 0.6 ETH output, his bond and the challenge bond)")
    ctx.done("Plasma withdraw (bob)", part="plasma", address=rootchain.address, gas=int(receipt["gasUsed"]))
    status: dict[str, Any] = api.status()
    ctx.step(f"operator status: last final block {status['last_final_block']}, "
             f"{status['pending_transactions']} pending; logs in {ctx.workdir}/plasma-*.log")
