"""Issue 12: the whole system (both chains, every service) under injected faults.

One segment of seeded workload per fault kind, against one running system, then a
mixed segment and the Plasma exits. After each segment the chains alone must show
every item with exactly one effect, the bridge invariant with nothing in flight,
and no service key with a nonce gap. DCCN_FAULTS_PROFILE=quick|long,
DCCN_FAULTS_SEED=<int> (printed with the table, so a failing run can be replayed).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.faults.conftest import FaultRun, Segment
from tests.faults.harness import FAULT_KINDS
from tests.faults.workload import PLASMA_DEPOSIT

pytestmark = pytest.mark.xdist_group("faults")


def _assert_clean(run: FaultRun, segment: Segment) -> None:
    assert segment.injected > 0, f"no {segment.kind} fault could be injected\n{run.table()}"
    assert segment.failures() == [], run.table()


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_fault_kind__seeded_workload__every_item_has_exactly_one_effect(
        kind: str, fault_run: FaultRun, run_segment: Callable[[str, list[str], int], Segment]) -> None:
    faults = fault_run.profile.faults_per_segment
    if kind == "sigkill":
        faults = max(faults, len(fault_run.system.services))  # each service at least once
    segment = run_segment(kind, [kind], faults)
    _assert_clean(fault_run, segment)


def test_mixed_faults__seeded_workload__every_item_has_exactly_one_effect(
        fault_run: FaultRun, run_segment: Callable[[str, list[str], int], Segment]) -> None:
    segment = run_segment("mixed", list(FAULT_KINDS), fault_run.profile.mixed_faults)
    _assert_clean(fault_run, segment)


def test_plasma_exits__after_the_faults__each_honest_exit_paid_once_and_none_challenged_paid(
        fault_run: FaultRun, capsys: pytest.CaptureFixture[str]) -> None:
    system, workload = fault_run.system, fault_run.workload
    rootchain, bob = workload.rootchain, system.actor("bob")
    from dccn_common.contracts import transact

    bond = int(rootchain.functions.exitBond().call())
    honest = [e for e in map(workload.honest_exit, workload.items) if e is not None]
    assert honest, "the workload made no Plasma transfer to exit"
    for exit_args in honest:
        transact(system.eth.w3, exit_args.call(rootchain), sender=bob, value=bond)
    system.eth.anvil.warp(2 * int(rootchain.functions.exitPeriod().call()) + 1)
    for _ in range(2):  # a second call must find nothing left to pay
        transact(system.eth.w3, rootchain.functions.finalizeExits(len(workload.items) + 10), sender=bob,
                 gas=3_000_000)
    paid = [int(e["args"]["exitId"]) for e in rootchain.events.ExitFinalized().get_logs(from_block=0)]
    assert all(paid.count(e.exit_id) == 1 for e in honest), paid
    assert fault_run.checker.exit_problems() == []
    assert int(rootchain.functions.balances(bob.address).call()) >= len(honest) * (PLASMA_DEPOSIT * 6 // 10)
    with capsys.disabled():
        print("\n" + fault_run.table())
