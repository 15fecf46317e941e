"""Plasma root chain gas benchmark: every operation's gas from anvil receipts beside the
OMG plasma-mvp anchors (issue 16's goals), the same operations with 10,000 exits queued, and the
heap harness at n = 1, 1,000, 10,000.

    python -m bench.bench_plasma_contracts [--heap-sizes 1,1000,10000] [--queue 10000] [--breakdown]

The 10,000 queued exits are written straight into the root chain's storage (anvil_setStorageAt,
slots from the compiler's storage layout): a valid heap of exits of blocks above every real one,
each with its record and state word, as startExit would leave them. Every measured transaction
is a real one on the real contract. `--breakdown` also prints where each operation's gas goes
(anvil debug_traceTransaction, opcode costs by kind), the figures in docs/gas/plasma.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils import keccak

from bench.gas_trace import TRACE_ARGS, breakdown_table
from bench.report import table, verdict, write_section
from dccn_common.contracts import transact
from dccn_deploy import run_parts
from dccn_deploy.web3_backend import web3_context
from dccn_devtools.anvil import Anvil, dev_private_keys
from dccn_devtools.contracts import CONTRACTS_DIR, PROJECT_ROOT, deploy, find_source
from plasma_core import wire

EXIT_BOND = 10**16
EXIT_PERIOD = 1000
OPERATOR_BOND = 10**18
CEILING = 400_000
QUEUED_GOAL = 150_000  # issue 16: every operation at 10,000 exits queued
GOALS_AT_QUEUE = {"challengeExit": 120_000, "finalize per exit": 60_000}
ANCHORS = {
    "deposit": 75_517,
    "submitBlock": 77_000,
    "startExit": 173_196,
    "challengeExit": 63_585,
    "finalize per exit": 28_000,
    "heap pop at n≈1,000": 144_832,
}


class RootChainBench:
    """A root chain on anvil with dev accounts as operator and users: the native one ("RootChain")
    or, with `token`, the ANKR one ("RootChainAnkr"), both from the token and plasma parts, run
    by the operator (who posts the operator bond and holds the ANKR supply)."""

    def __init__(self, anvil: Anvil, token: bool = False) -> None:
        self.w3 = anvil.web3(mined_on_return=False)
        self.anvil = anvil
        keys = dev_private_keys(10)
        self.keys = {Account.from_key(k).address: k for k in keys}
        self.deployer, self.operator, *self.users = list(self.keys)
        self.deployments = tempfile.TemporaryDirectory()
        params = {"plasma": {"operator": "deployer", "exit_period": EXIT_PERIOD, "exit_bond": EXIT_BOND,
                             "operator_bond": OPERATOR_BOND}}
        deployed = run_parts(web3_context(self.w3, self.operator, params=params,
                                          deployments=Path(self.deployments.name)), ("token", "plasma"))
        self.token = deployed.at("AnkrToken") if token else None
        self.rc = deployed.at("RootChainAnkr" if token else "RootChain")
        self.blocks: dict[int, tuple[list[wire.Transaction], wire.MerkleTree]] = {}
        self.deposit_owner: dict[int, str] = {}

    def gas(self, call: Any, sender: str, value: int = 0, limit: int | None = None) -> int:
        self.last = transact(self.w3, call, sender=sender, value=value, gas=limit)
        return int(self.last["gasUsed"])

    def finalize(self, max_exits: int, sender: str) -> int:
        # finalizeExits stops early when gas runs low, so estimateGas would under-fill it: set the limit.
        return self.gas(self.rc.functions.finalizeExits(max_exits), sender, limit=5_000_000)

    def deposit(self, owner: str, amount: int, limit: int | None = None) -> tuple[int, int]:
        blknum = self.rc.functions.currentChildBlock().call() - 1000 + self.rc.functions.currentDepositBlock().call()
        if self.token is None:
            gas = self.gas(self.rc.functions.deposit(), owner, value=amount, limit=limit)
        else:
            gas = self.gas(self.rc.functions.depositToken(amount), owner)
        self.deposit_owner[blknum] = owner
        return blknum, gas

    def submit(self, txs: list[wire.Transaction]) -> tuple[int, int]:
        blknum = self.rc.functions.currentChildBlock().call()
        tree = wire.MerkleTree([wire.leaf(tx) for tx in txs])
        gas = self.gas(self.rc.functions.submitBlock(tree.root), self.operator)
        self.blocks[blknum] = (txs, tree)
        return blknum, gas

    def spend(self, inputs: list[tuple[int, int, int]], owners: list[str], outputs: list[tuple[str, int]]
              ) -> wire.Transaction:
        fields: dict[str, Any] = {}
        for slot, (blknum, txindex, oindex) in enumerate(inputs):
            fields |= {f"blknum{slot + 1}": blknum, f"txindex{slot + 1}": txindex, f"oindex{slot + 1}": oindex}
        for index, (owner, amount) in enumerate(outputs):
            fields |= {f"newowner{index + 1}": owner, f"denom{index + 1}": amount}
        tx = wire.Transaction(**fields)
        for slot, owner in enumerate(owners):
            tx = wire.sign(tx, self.keys[owner], slot)
        return tx

    def start_exit(self, blknum: int, txindex: int, oindex: int, exitor: str, confirmers: list[str] = (),  # type: ignore[assignment]
                   limit: int | None = None) -> int:
        if blknum % 1000:
            return self.gas(self.rc.functions.startExit(blknum, 0, 0, b"", b"", b""), exitor, value=EXIT_BOND,
                            limit=limit)
        txs, tree = self.blocks[blknum]
        leaf = wire.leaf(txs[txindex])
        confirm = b"".join(wire.confirm_sign(leaf, tree.root, self.keys[c]) for c in confirmers)
        call = self.rc.functions.startExit(blknum, txindex, oindex, wire.encode(txs[txindex]), tree.proof(txindex),
                                           confirm)
        return self.gas(call, exitor, value=EXIT_BOND)

    def start_fee_exit(self) -> int:
        """Submit a block whose last leaf is the operator's fee transaction and exit its output."""
        fee_tx = wire.Transaction(newowner1=self.operator, denom1=10**15)
        tree = wire.MerkleTree([], last=wire.leaf(fee_tx))
        blknum = self.rc.functions.currentChildBlock().call()
        self.gas(self.rc.functions.submitBlock(tree.root), self.operator)
        call = self.rc.functions.startExit(blknum, wire.FEE_TXINDEX, 0, wire.encode(fee_tx),
                                           tree.proof(wire.FEE_TXINDEX), b"")
        return self.gas(call, self.operator, value=EXIT_BOND)

    def challenge(self, exit_id: int, blknum: int, txindex: int, slot: int, exitor: str, challenger: str) -> int:
        txs, tree = self.blocks[blknum]
        confirm = wire.confirm_sign(wire.leaf(txs[txindex]), tree.root, self.keys[exitor])
        call = self.rc.functions.challengeExit(exit_id, blknum, txindex, slot, wire.encode(txs[txindex]),
                                               tree.proof(txindex), confirm)
        return self.gas(call, challenger)


def _now(b: RootChainBench) -> int:
    return int(b.w3.eth.get_block("latest")["timestamp"])


def storage_slots(name: str = "RootChain") -> dict[str, int]:
    """Storage slots of the contract's variables (module variables as `module.name`), from the compiler."""
    import vyper
    from vyper.compiler.input_bundle import FilesystemInputBundle

    bundle = FilesystemInputBundle([CONTRACTS_DIR, PROJECT_ROOT, *[Path(p) for p in sys.path if p]])
    source = bundle.load_file(find_source(name).relative_to(PROJECT_ROOT))
    layout = vyper.compile_from_file_input(source, input_bundle=bundle, output_formats=["layout"])["layout"]
    slots: dict[str, int] = {}

    def walk(prefix: str, node: dict[str, Any]) -> None:
        for key, value in node.items():
            if "slot" in value and "type" in value:
                slots[prefix + key] = value["slot"]
            else:
                walk(f"{prefix}{key}.", value)

    walk("", layout["storage_layout"])
    return slots


def _map_slot(slot: int, key: int) -> int:
    # Vyper: HashMap[k] lives at keccak256(slot ++ k).
    return int.from_bytes(keccak(slot.to_bytes(32, "big") + key.to_bytes(32, "big")), "big")


def fill_queue(anvil: Anvil, root_chain: str, count: int, first_blknum: int, exitable_at: int,
               owner: str = "0x" + "11" * 20, amount: int = 10**12) -> None:
    """Write `count` pending deposit-block exits (blocks first_blknum, +1, ...) as startExit leaves
    them: record, state word and a heap (keys ascending in array order, a valid heap), 4 keys a word."""
    slots = storage_slots()
    writes: dict[int, int] = {}
    keys = [(first_blknum + i) << 17 for i in range(count)]
    record = int(owner, 16) | (amount << 160)
    for blknum in range(first_blknum, first_blknum + count):
        exit_id = blknum * 1_000_000_000
        writes[_map_slot(slots["_exits"], exit_id)] = record
        writes[_map_slot(slots["_exit_states"], exit_id)] = exitable_at
    heap_slot = slots["priority_queue._heap"]
    for pos, key in enumerate(keys[1:], start=1):
        word = _map_slot(heap_slot, (pos - 1) >> 2)
        writes[word] = writes.get(word, 0) | (key << (64 * ((pos - 1) & 3)))
    meta_slot = slots["priority_queue._meta"]
    meta = int(anvil.rpc("eth_getStorageAt", root_chain, hex(meta_slot), "latest"), 16)
    if meta != 0:
        raise RuntimeError("fill_queue expects an empty queue")
    writes[meta_slot] = keys[0] | (count << 64)
    batch = [{"jsonrpc": "2.0", "id": i, "method": "anvil_setStorageAt",
              "params": [root_chain, hex(slot), "0x" + value.to_bytes(32, "big").hex()]}
             for i, (slot, value) in enumerate(writes.items())]
    for start in range(0, len(batch), 2000):
        answers = anvil._client.post(anvil.url, json=batch[start:start + 2000]).json()
        if any("error" in a for a in answers):
            raise RuntimeError(f"anvil_setStorageAt failed: {answers[:1]}")
    rc = anvil.web3(mined_on_return=False).eth.contract(address=root_chain, abi=[
        {"name": "exitQueueSize", "type": "function", "stateMutability": "view", "inputs": [],
         "outputs": [{"type": "uint256"}]},
        {"name": "getNextExit", "type": "function", "stateMutability": "view", "inputs": [],
         "outputs": [{"type": "uint256"}, {"type": "uint256"}]}])
    # The contract reads the written state back as the queue it describes.
    assert rc.functions.exitQueueSize().call() == count
    assert rc.functions.getNextExit().call() == [first_blknum * 1_000_000_000, exitable_at]


def _average(values: list[int]) -> int:
    return round(statistics.mean(values))


def measure_root_chain(anvil: Anvil, queue: int, breakdowns: dict[str, Any]
                       ) -> tuple[list[list[object]], list[str]]:
    b = RootChainBench(anvil)
    alice, bob, carol, dave, challenger = b.users[:5]
    rows: list[list[object]] = []
    notes: list[str] = []

    def row(name: str, gas: int, anchor_key: str | None, note: str = "") -> None:
        anchor = ANCHORS.get(anchor_key or "")
        goal = verdict(gas, anchor) if anchor else verdict(gas, CEILING)
        rows.append([name, gas, anchor if anchor else f"< {CEILING:,}", goal, note])

    # Deposits: four share a packed timestamp word; the first of a word pays for a new slot.
    deposit_gas = [b.deposit(u, 10**18)[1] for u in (alice, bob, carol, dave) * 2]
    row("deposit (native), mean of 8", _average(deposit_gas), "deposit")
    row("deposit (native), worst (new timestamp word)", max(deposit_gas), "deposit")
    submit_gas = [b.submit([])[1] for _ in range(8)]
    row("submitBlock, mean of 8", _average(submit_gas), "submitBlock")
    row("submitBlock, worst (new timestamp word)", max(submit_gas), "submitBlock")

    d_alice, _ = b.deposit(alice, 10**18)
    d_bob, _ = b.deposit(bob, 10**18)
    d_carol, _ = b.deposit(carol, 10**18)
    one_in = b.spend([(d_alice, 0, 0)], [alice], [(dave, 6 * 10**17), (alice, 4 * 10**17)])
    two_in = b.spend([(d_bob, 0, 0), (d_carol, 0, 0)], [bob, carol], [(dave, 2 * 10**18)])
    block, _ = b.submit([one_in, two_in])
    # The spent deposits' exits are challenged first: while one is pending, the root chain
    # refuses exits of the transactions spending it (one value exits once).
    row("startExit, deposit output", b.start_exit(d_alice, 0, 0, alice), "startExit")
    breakdowns["startExit, deposit"] = b.last
    row("challengeExit (challenger's first credit)",
        b.challenge(wire.utxo_position(d_alice, 0, 0), block, 0, 0, alice, challenger), "challengeExit",
        "pays 22,100 for a new ledger slot")
    b.start_exit(d_bob, 0, 0, bob)
    row("challengeExit (challenger already owed)",
        b.challenge(wire.utxo_position(d_bob, 0, 0), block, 1, 0, bob, challenger), "challengeExit")
    breakdowns["challengeExit (challenger already owed)"] = b.last
    row("startExit, 1-input spend", b.start_exit(block, 0, 0, dave, [alice]), "startExit",
        "records its input's spender: 22,100 for a new slot")
    breakdowns["startExit, 1-input spend"] = b.last
    row("startExit, 2-input spend", b.start_exit(block, 1, 0, dave, [bob, carol]), "startExit",
        "records both inputs' spender: 2 x 22,100")
    breakdowns["startExit, 2-input spend"] = b.last
    row("startExit, operator's fee output (txindex 65535)", b.start_fee_exit(), "startExit")

    # Finalization: 10 matured exits of distinct owners vs 1; the marginal cost per exit.
    anvil.warp(3 * EXIT_PERIOD)
    b.finalize(10, challenger)  # drain the two pending exits above
    for i in range(11):
        owner = b.users[i % len(b.users)]
        blknum, _ = b.deposit(owner, 10**15)
        b.start_exit(blknum, 0, 0, owner)
    anvil.warp(3 * EXIT_PERIOD)
    one = b.finalize(1, challenger)
    breakdowns["finalizeExits(1)"] = b.last
    ten = b.finalize(10, challenger)
    breakdowns["finalizeExits(10)"] = b.last
    row("finalizeExits, 1 exit (whole tx)", one, None)
    row("finalizeExits, per exit (marginal, 10 exits)", round((ten - one) / 9), "finalize per exit",
        f"10 exits in one tx: {ten:,}")
    row("withdraw (native)", b.gas(b.rc.functions.withdraw(), b.users[0]), None)

    # The same operations with `queue` exits pending: two real deposit exits below the filled queue.
    d_first, _ = b.deposit(alice, 10**18)
    d_second, _ = b.deposit(bob, 10**18)
    d_one, _ = b.deposit(carol, 10**18)
    d_two_a, _ = b.deposit(dave, 10**18)
    d_two_b, _ = b.deposit(alice, 10**18)
    spend_second = b.spend([(d_second, 0, 0)], [bob], [(carol, 10**18)])
    spend_one = b.spend([(d_one, 0, 0)], [carol], [(dave, 10**18)])
    spend_two = b.spend([(d_two_a, 0, 0), (d_two_b, 0, 0)], [dave, alice], [(bob, 2 * 10**18)])
    late_block, _ = b.submit([spend_second, spend_one, spend_two])
    fill_queue(anvil, b.rc.address, queue, first_blknum=late_block + 1000, exitable_at=_now(b) + EXIT_PERIOD)
    row(f"startExit with {queue:,} exits queued (sifts to the root)", b.start_exit(d_first, 0, 0, alice),
        "startExit", "the longest sift-up")
    breakdowns["startExit, deposit, 10,000 queued"] = b.last
    b.start_exit(d_second, 0, 0, bob)
    challenge = b.challenge(wire.utxo_position(d_second, 0, 0), late_block, 0, 0, bob, challenger)
    row(f"challengeExit with {queue + 2:,} exits queued", challenge, "challengeExit",
        f"goal at this size ≤ {GOALS_AT_QUEUE['challengeExit']:,}: {verdict(challenge, GOALS_AT_QUEUE['challengeExit'])}")
    breakdowns["challengeExit, 10,000 queued"] = b.last
    spend_rows = [
        (f"startExit, 1-input spend, with {queue:,} exits queued", b.start_exit(late_block, 1, 0, dave, [carol])),
        (f"startExit, 2-input spend, with {queue:,} exits queued",
         b.start_exit(late_block, 2, 0, bob, [dave, alice])),
    ]
    for name, gas in spend_rows:
        row(name, gas, "startExit", "sifts to depth 1 (below the deposit exits)")
    anvil.warp(3 * EXIT_PERIOD)
    one = b.finalize(1, challenger)
    row(f"finalizeExits(1) with {queue:,} exits queued (the longest sift-down)", one, None,
        "whole tx; the exitor's ledger slot is new (she withdrew): 22,100 of it")
    breakdowns["finalizeExits(1), 10,000 queued"] = b.last
    dead_top = b.finalize(1, challenger)
    row(f"finalizeExits(1) with {queue:,} queued, a challenged exit's key on top", dead_top, None,
        "two pops: the dead key, then the exit")
    ten = b.finalize(10, challenger)
    row(f"finalizeExits, per exit (marginal, 10 exits) with {queue:,} queued", round((ten - one) / 9),
        "finalize per exit", f"10 exits in one tx: {ten:,}; goal at this size ≤ "
        f"{GOALS_AT_QUEUE['finalize per exit']:,}: {verdict(round((ten - one) / 9), GOALS_AT_QUEUE['finalize per exit'])}")
    spends = {name for name, _ in spend_rows}
    worst = max(r[1] for r in rows if "queued" in str(r[0]) and r[0] not in spends)  # type: ignore[type-var]
    notes.append(f"Worst queue operation (insert, challenge, pop) with {queue:,} exits queued: {worst:,} gas "
                 f"(goal ≤ {QUEUED_GOAL:,}: {verdict(worst, QUEUED_GOAL)}); the spend exits, above "
                 f"{QUEUED_GOAL:,} with no queue at all (new slots per input), are listed beside it.")
    notes.append(f"Exit bond {EXIT_BOND} wei, period {EXIT_PERIOD} s; native-coin chain.")
    return rows, notes


def measure_token_chain(anvil: Anvil) -> list[list[object]]:
    w3 = anvil.web3(mined_on_return=False)
    b = RootChainBench(anvil, token=True)
    token, user = b.token, b.users[0]
    transact(w3, token.functions.transfer(user, 10**24), sender=b.operator)  # the token part minted to the operator
    transact(w3, token.functions.approve(b.rc.address, 2**256 - 1), sender=user)
    gas = [b.deposit(user, 10**18)[1] for _ in range(4)]
    return [["depositToken (ANKR), mean of 4", _average(gas), f"< {CEILING:,}", verdict(_average(gas), CEILING),
             "no anchor (the deposit anchor is a native deposit); includes the ERC-20 transferFrom"]]


def measure_heap(anvil: Anvil, sizes: list[int]) -> list[list[object]]:
    w3 = anvil.web3(mined_on_return=False)
    sender = Account.from_key(dev_private_keys(1)[0]).address
    rows: list[list[object]] = []
    for size in sizes:
        heap = deploy(w3, "PriorityQueueHarness", sender=sender)
        step, first = 10, 10**12
        for start in range(0, size, 250):
            batch = min(250, size - start)
            transact(w3, heap.functions.insertMany(first + start * step, batch, step), sender=sender)
        largest = first + size * step
        append = int(transact(w3, heap.functions.insert(largest), sender=sender)["gasUsed"])
        worst_insert = int(transact(w3, heap.functions.insert(1), sender=sender)["gasUsed"])
        pop = int(transact(w3, heap.functions.pop(), sender=sender)["gasUsed"])
        middle = heap.functions.at(max(1, size // 2)).call()
        discard = int(transact(w3, heap.functions.discard(middle), sender=sender)["gasUsed"])
        pop_goal = ANCHORS["heap pop at n≈1,000"] if size == 1000 else CEILING
        all_goal = QUEUED_GOAL if size >= 10_000 else CEILING
        rows.append([f"{size:,}", append, worst_insert, pop, discard, f"pop < {pop_goal:,}, all < {all_goal:,}",
                     "meets goal" if pop < pop_goal and max(append, worst_insert, pop, discard) < all_goal
                     else "MISSES goal"])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--heap-sizes", default="1,1000,10000")
    parser.add_argument("--queue", type=int, default=10_000, help="exits queued in the root chain for the at-size rows")
    parser.add_argument("--breakdown", action="store_true", help="also print where each operation's gas goes")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.heap_sizes.split(",")]
    breakdowns: dict[str, Any] = {}
    extra = TRACE_ARGS if args.breakdown else []
    with Anvil(accounts=10, balance_eth=10**9, gas_limit=60_000_000, extra_args=extra) as anvil:
        rows, notes = measure_root_chain(anvil, args.queue, breakdowns)
        rows += measure_token_chain(anvil)
        heap_rows = measure_heap(anvil, sizes)
        detail = breakdown_table(anvil, breakdowns) if args.breakdown else ""
    body = (
        "Gas from anvil receipts (whole transaction, 21,000 base included). Anchors: OMG plasma-mvp "
        f"under Prague rules; goal: below the anchor, and no operation at or above {CEILING:,} gas.\n\n"
        + table(["operation", "gas", "anchor", "goal", "note"], rows)
        + "\n\nPriority queue harness (`PriorityQueueHarness`), gas of one transaction at heap size n: "
        "append = insert of a key larger than all; worst insert = a key smaller than all (sift to the root); "
        "pop = remove the root (sift to the bottom); discard = lazy removal of a node in the middle "
        "(a challenge: counted dead, popped when it reaches the top). 4-ary heap, four 64-bit keys a word.\n\n"
        + table(["n", "append", "worst insert", "pop", "discard middle", "goal", "verdict"],
                heap_rows)
        + "\n\n" + " ".join(notes)
    )
    write_section("plasma_contracts", "Plasma root chain (gas)", body, "python -m bench.bench_plasma_contracts")
    print(body)
    if detail:
        print("\n" + detail)


if __name__ == "__main__":
    main()
