"""ANKR bridge: gas of lock and release (N signatures) and end-to-end transfers per second.

Two anvils on loopback; the bridge deployed with token_bridge.local (the same contracts
and arguments as `ape run deploy`); validators and the relayer are the service objects
stepped in this process. Run: python -m bench.bench_bridge
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any

from eth_account import Account
from web3 import Web3

from bench.report import table, verdict, write_section
from dccn_common.anvil import Anvil, dev_private_keys
from dccn_common.contracts import deploy, transact
from token_bridge.chains import ANKR as ANKR_SIDE
from token_bridge.chains import ETHEREUM, open_side
from token_bridge.local import ANKR, BridgeParams, LocalBridge, deploy_local_bridge, start_local_network
from token_bridge.transfer import Destination, Transfer, sign_transfer, sorted_for_contract

OMNI_EXECUTE_SIGNATURES = 114_527  # omni tokenbridge executeSignatures, average
GOAL_BASE, GOAL_PER_SIGNATURE = 89_000, 6_900
NATIVE_SUPPLY = 10_000_000_000 * ANKR
RUNS = 5
E2E_TRANSFERS = 30


def _setup(eth: Anvil, ankr: Anvil, validators: list[Any], threshold: int, workdir: Path) -> LocalBridge:
    eth_w3, ankr_w3 = eth.web3(), ankr.web3()
    deployer = eth.dev_accounts()[0]
    token = deploy(eth_w3, "AnkrToken", sender=deployer)
    return deploy_local_bridge(eth_w3, ankr_w3, token=token, deployer=deployer,
                               params=BridgeParams([v.address for v in validators], threshold, hold_threshold=0),
                               native_supply=NATIVE_SUPPLY, set_balance=ankr.set_balance, deployments=workdir)


def _release_gas(w3: Web3, bridge: Any, source: Destination, validators: list[Any], signers: int, sender: str,
                 recipient: str | None) -> int:
    """executeSignatures with `signers` signatures, average of RUNS; a fresh recipient each
    time when `recipient` is None (its balance slot goes from zero: +17,100 gas)."""
    gas = []
    for run in range(RUNS):
        tx_hash = (10_000 * signers + 100 * (recipient is None) + run).to_bytes(32, "big").hex()
        transfer = Transfer(source.chain_id, source.bridge, "0x" + tx_hash, 0, recipient or Account.create().address,
                            10 * ANKR)
        destination = Destination(w3.eth.chain_id, bridge.address)
        signatures = {v.address: sign_transfer(v, transfer, destination) for v in validators[:signers]}
        call = bridge.functions.executeSignatures(transfer.as_tuple(), sorted_for_contract(signatures, signers))
        gas.append(int(transact(w3, call, sender=sender)["gasUsed"]))
    return round(mean(gas))


def gas_figures(eth: Anvil, ankr: Anvil, workdir: Path) -> list[list[object]]:
    keys = dev_private_keys(20)
    validators = [Account.from_key(k) for k in keys[11:18]]
    rows: list[list[object]] = []
    eth_w3, ankr_w3 = eth.web3(), ankr.web3()
    user = eth.dev_accounts()[1]
    for count, threshold in ((4, 3), (7, 5)):
        bridge = _setup(eth, ankr, validators[:count], threshold, workdir / f"{count}")
        deployer = eth.dev_accounts()[0]
        transact(eth_w3, bridge.token.functions.transfer(user, 1_000_000 * ANKR), sender=deployer)
        transact(eth_w3, bridge.token.functions.approve(bridge.foreign.address, 2**255), sender=user)
        if count == 4:
            lock = [int(transact(eth_w3, bridge.foreign.functions.relayTokens(user, 100 * ANKR), sender=user)["gasUsed"])
                    for _ in range(RUNS)]
            out = [int(transact(ankr_w3, bridge.home.functions.relayNative(user), sender=user, value=100 * ANKR)["gasUsed"])
                   for _ in range(RUNS)]
            rows.append(["lock ANKR on Ethereum (relayTokens)", round(mean(lock)), "", "", ""])
            rows.append(["bridge out native on the Ankr chain (relayNative)", round(mean(out)), "", "", ""])
        else:
            for _ in range(RUNS):
                transact(eth_w3, bridge.foreign.functions.relayTokens(user, 100 * ANKR), sender=user)
        home_source = Destination(ankr_w3.eth.chain_id, bridge.home.address)  # where releases on Ethereum come from
        foreign_source = Destination(eth_w3.eth.chain_id, bridge.foreign.address)
        for signers in sorted({threshold, count}):
            goal = GOAL_BASE + GOAL_PER_SIGNATURE * signers
            for label, recipient in (("recipient already holds ANKR", user), ("fresh recipient", None)):
                foreign_gas = _release_gas(eth_w3, bridge.foreign, home_source, validators, signers, user, recipient)
                home_gas = _release_gas(ankr_w3, bridge.home, foreign_source, validators, signers, user, recipient)
                where = f"{signers} signatures ({threshold}-of-{count}), {label}"
                rows.append([f"release ERC20 on Ethereum, {where}", foreign_gas, OMNI_EXECUTE_SIGNATURES, goal,
                             verdict(foreign_gas, goal)])
                rows.append([f"release native on the Ankr chain, {where}", home_gas, OMNI_EXECUTE_SIGNATURES, goal,
                             verdict(home_gas, goal)])
    return rows


def raw_tx_per_second(node: Anvil, count: int = 100) -> float:
    w3 = node.web3()
    a, b = node.dev_accounts()[2:4]
    started = time.perf_counter()
    for _ in range(count):
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": a, "to": b, "value": 1}))
    return count / (time.perf_counter() - started)


def end_to_end(eth: Anvil, ankr: Anvil, workdir: Path) -> tuple[float, float]:
    """Transfers per second Ethereum -> Ankr through 3-of-4 validators and the relayer,
    from the first lock to the last payment (2 confirmations on Ethereum, 1 on the Ankr chain)."""
    keys = dev_private_keys(20)
    validators = [Account.from_key(k) for k in keys[11:15]]
    bridge = _setup(eth, ankr, validators, 3, workdir / "e2e")
    eth_w3, ankr_w3 = eth.web3(), ankr.web3()
    deployer, user = eth.dev_accounts()[0], eth.dev_accounts()[5]
    transact(eth_w3, bridge.token.functions.transfer(user, 1_000_000 * ANKR), sender=deployer)
    transact(eth_w3, bridge.token.functions.approve(bridge.foreign.address, 2**255), sender=user)

    def sides() -> dict[str, Any]:
        return {ETHEREUM: open_side(ETHEREUM, eth.url, bridge.ethereum_manifest, 2, None),
                ANKR_SIDE: open_side(ANKR_SIDE, ankr.url, bridge.ankr_manifest, 1, None)}

    network = start_local_network(sides, validators, Account.from_key(keys[10]), workdir / "e2e")
    recipients = [Account.create().address for _ in range(E2E_TRANSFERS)]
    try:
        started = time.perf_counter()
        for recipient in recipients:
            transact(eth_w3, bridge.foreign.functions.relayTokens(recipient, 10 * ANKR), sender=user)
        locked_at = time.perf_counter()
        while sum(ankr_w3.eth.get_balance(r) > 0 for r in recipients) < E2E_TRANSFERS:
            eth.mine()
            ankr.mine()
            network.pump()
        elapsed = time.perf_counter() - started
    finally:
        network.stop()
    return E2E_TRANSFERS / elapsed, locked_at - started


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, Anvil(chain_id=31337, accounts=20) as eth, \
            Anvil(chain_id=31338, accounts=20) as ankr:
        workdir = Path(tmp)
        rows = gas_figures(eth, ankr, workdir)
        raw = raw_tx_per_second(ankr)
        e2e, lock_seconds = end_to_end(eth, ankr, workdir)
    # Each transfer needs at least two transactions (lock, execute): the physical bound.
    bound = raw / 2
    body = "\n\n".join([
        "Gas from receipts on anvil (average of 5 each). A release to a recipient that already holds ANKR "
        "(or native coin) is the common case; a fresh recipient pays 17,100 more for its new balance slot "
        "(ERC20) or 25,000 for creating its account (native coin sent to an empty account). The anchor is "
        "omni tokenbridge's `executeSignatures` average (an ERC20 release, comparable to the Ethereum rows); "
        "the goal is 89,000 + 6,900 per signature.",
        table(["operation", "gas", "omni anchor", "goal", "verdict"], rows),
        table(["throughput", "value"], [
            ["raw anvil tx/s (value transfer, one tx per block, same run)", f"{raw:.1f}"],
            ["physical bound for transfers/s (2 transactions per transfer)", f"{bound:.1f}"],
            [f"end-to-end transfers/s Ethereum -> Ankr ({E2E_TRANSFERS} transfers, 3-of-4, receipts-trie check "
             "on every log, 2 + 1 confirmations)", f"{e2e:.2f}"],
            ["ratio to the physical bound", f"{e2e / bound:.0%}"],
            [f"of which locking {E2E_TRANSFERS} transfers took (s)", f"{lock_seconds:.1f}"],
        ]),
        "Validators and relayer are the service classes stepped in one process (no poll sleeps); every "
        "validator proves each log against its block's receiptsRoot before signing.",
    ])
    write_section("bridge", "ERC20 / native bridge", body, "python -m bench.bench_bridge")
    print(body)


if __name__ == "__main__":
    main()
