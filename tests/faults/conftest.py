"""Fixtures of the fault-injection suite: the profile, the seed, one running system per
module, and a factory that runs one workload segment under one kind of fault."""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.faults.harness import PROFILES, Injector, Profile, System
from tests.faults.workload import Checker, Outcome, Workload

DEFAULT_SEED = 12
QUIET_SECONDS = 4.0


@dataclass
class Segment:
    """One table row: a fault kind, what was injected, and what the chains show after."""

    kind: str
    injected: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def lost(self) -> int:
        return sum(1 for o in self.outcomes if o.effects == 0)

    @property
    def repeated(self) -> int:
        return sum(1 for o in self.outcomes if o.effects > 1)

    def failures(self) -> list[str]:
        return [f"{o.item.kind}: {o.what}" for o in self.outcomes if o.effects != 1] + self.problems


@dataclass
class FaultRun:
    profile: Profile
    seed: int
    system: System
    workload: Workload
    checker: Checker
    injector: Injector
    segments: list[Segment] = field(default_factory=list)

    def table(self) -> str:
        lines = [f"fault-injection run: profile {self.profile.name}, seed {self.seed} "
                 f"(replay: DCCN_FAULTS_PROFILE={self.profile.name} DCCN_FAULTS_SEED={self.seed})",
                 f"{'fault kind':<16} {'injected':>8} {'items':>6} {'lost':>5} {'repeated':>8} {'other':>6} {'secs':>6}"]
        for s in self.segments:
            lines.append(f"{s.kind:<16} {s.injected:>8} {len(s.outcomes):>6} {s.lost:>5} {s.repeated:>8} "
                         f"{len(s.problems):>6} {s.seconds:>6.0f}")
            lines += [f"    {failure}" for failure in s.failures()]
        return "\n".join(lines)


def _profile() -> Profile:
    name = os.environ.get("DCCN_FAULTS_PROFILE", "quick")
    if name not in PROFILES:
        raise pytest.UsageError(f"DCCN_FAULTS_PROFILE must be one of {sorted(PROFILES)}, not {name!r}")
    return PROFILES[name]


def _seed() -> int:
    text = os.environ.get("DCCN_FAULTS_SEED", str(DEFAULT_SEED))
    try:
        return int(text)
    except ValueError:
        raise pytest.UsageError(f"DCCN_FAULTS_SEED must be an integer, not {text!r}") from None


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultRun]:
    """The whole system, started once for the module; the segments run against it in order."""
    profile, seed = _profile(), _seed()
    print(f"fault-injection seed {seed}, profile {profile.name}")
    # DCCN_FAULTS_WORKDIR keeps logs and databases where pytest's temp rotation won't delete them.
    chosen = os.environ.get("DCCN_FAULTS_WORKDIR")
    workdir = Path(chosen) if chosen else tmp_path_factory.mktemp("faults")
    if chosen:
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
    system = System(workdir, profile)
    try:
        system.start()
        workload = Workload(system, random.Random(f"{seed}-workload"))
        run = FaultRun(profile, seed, system, workload, Checker(workload),
                       Injector(system, random.Random(f"{seed}-faults"), lambda line: print(line, flush=True)))
        yield run
    finally:
        system.stop()
        print(f"logs of the run in {workdir}")


@pytest.fixture
def run_segment(fault_run: FaultRun) -> Callable[[str, list[str], int], Segment]:
    """Factory: run `items` workload items with faults of `kinds` at seeded random points,
    let the system settle, and count every item's effects on the chains."""

    def factory(name: str, kinds: list[str], faults: int) -> Segment:
        run, started = fault_run, time.monotonic()
        segment = Segment(name)
        rng = run.injector.rng
        items = run.profile.items_per_segment
        points = sorted(rng.choices(range(items), k=faults))
        new_items = []
        anchored = kinds[0].startswith("reorg_") and len(kinds) == 1
        for index in range(items):
            # The first reorg of a reorg segment follows a Plasma item and removes everything
            # from its submitBlock on (block, dishonest exit, challenge): the hardest case.
            forced = "plasma" if anchored and index == points[0] else None
            item = run.workload.run_item(name, forced)
            new_items.append(item)
            for _ in range(points.count(index)):
                anchor = run.checker.anchor_block(item) if forced else None
                if run.injector.inject(rng.choice(kinds), anchor) is not None:
                    segment.injected += 1
                forced = None
        run.injector.wait_outages()
        segment.outcomes, segment.problems = settle(run, new_items)
        segment.seconds = time.monotonic() - started
        run.segments.append(segment)
        print(run.table())
        return segment

    return factory


def settle(run: FaultRun, items: list) -> tuple[list[Outcome], list[str]]:
    """Wait (bounded) until every item has its effect and no service transaction is
    pending; then the outcomes and the invariant problems as the chains show them."""
    deadline = time.monotonic() + run.profile.settle_timeout
    while True:
        outcomes = run.checker.outcomes(items)
        problems = run.checker.invariant_problems()
        if time.monotonic() > deadline:
            return outcomes, problems
        if all(o.effects == 1 for o in outcomes) and not problems:
            # Settled; a repeat would show up a little later, so look once more.
            time.sleep(QUIET_SECONDS)
            return run.checker.outcomes(items), run.checker.invariant_problems()
        time.sleep(1.0)
