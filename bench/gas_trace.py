"""Where a transaction's gas goes, from anvil's opcode trace (anvil started with --steps-tracing).

Each opcode of the called contract's frame (depth 1) is charged the gas between it and the next
step at that depth, so a call or a precompile counts everything it used; calldata is the
intrinsic 4/16 gas per byte; the refund is what the receipt got back (SSTORE clears).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.report import table
from dccn_devtools.anvil import Anvil

TRACE_ARGS = ["--steps-tracing"]  # anvil keeps the opcode steps debug_traceTransaction returns

BREAKDOWN_KINDS = {"SLOAD": "SLOAD", "SSTORE": "SSTORE", "KECCAK256": "KECCAK256", "STATICCALL": "ecrecover",
                   "CALLDATACOPY": "copies", "MCOPY": "copies", "CODECOPY": "copies",
                   "LOG0": "LOG", "LOG1": "LOG", "LOG2": "LOG", "LOG3": "LOG", "LOG4": "LOG"}
BREAKDOWN_COLUMNS = ["calldata", "SLOAD", "SSTORE", "refund", "KECCAK256", "ecrecover", "LOG", "copies",
                     "other opcodes", "total"]


def breakdown(anvil: Anvil, receipt: Any) -> dict[str, int]:
    """Gas of one mined transaction by kind: intrinsic calldata, then each opcode's cost at depth 1
    (the gas between it and the next step, so a precompile call counts what it used), the refund."""
    tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
    data = bytes(anvil.web3(mined_on_return=False).eth.get_transaction(tx_hash)["input"])
    zeros = data.count(0)
    calldata = 4 * zeros + 16 * (len(data) - zeros)
    steps = anvil.rpc("debug_traceTransaction", tx_hash,
                      {"disableStack": True, "disableMemory": True, "disableStorage": True})["structLogs"]
    if not steps:
        raise RuntimeError("no opcode trace: start anvil with --steps-tracing")
    top = [s for s in steps if s["depth"] == 1]
    cost: Counter[str] = Counter()
    for step, nxt in zip(top, [*top[1:], None], strict=True):
        cost[BREAKDOWN_KINDS.get(step["op"], "other opcodes")] += step["gas"] - nxt["gas"] if nxt else step["gasCost"]
    used = int(receipt["gasUsed"])
    refund = 21_000 + calldata + sum(cost.values()) - used
    return {"calldata": calldata, **cost, "refund": -refund, "total": used}


def breakdown_table(anvil: Anvil, receipts: dict[str, Any]) -> str:
    rows = []
    for name, receipt in receipts.items():
        parts = breakdown(anvil, receipt)
        rows.append([name, *[parts.get(column, 0) for column in BREAKDOWN_COLUMNS]])
    return ("Gas by kind (21,000 base not shown; refund negative):\n\n"
            + table(["operation", *BREAKDOWN_COLUMNS], rows))
