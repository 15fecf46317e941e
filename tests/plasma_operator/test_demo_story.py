"""The demo's Plasma story, run against a RootChain on this test's anvil (the full
`make demo` path, with `ape run deploy`, is exercised by tests/demo)."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from dccn_common.manifest import Manifest
from dccn_demo.context import Chain, DemoContext
from dccn_demo.stories import plasma as story

pytestmark = pytest.mark.anvil


def test_plasma_story__honest_exit_paid__dishonest_exit_challenged(plasma: Any, tmp_path: Any) -> None:
    chain = Chain("ethereum", plasma.anvil, plasma.w3, Manifest.load(plasma.manifest), plasma.manifest)
    ctx = DemoContext(console=Console(width=160, record=True), workdir=tmp_path, ethereum=chain, ankr=chain)
    assert ctx.actor("operator").address == plasma.roles.operator.address
    try:
        story.run(ctx)
    finally:
        ctx.stop_services()
    done = [row[1] for row in ctx.summary]
    assert done == ["Plasma deposit (alice, 1 ETH)", "child block 1000 submitted by the operator",
                    "Plasma challengeExit by the watcher", "Plasma startExit (bob, 1 input)", "Plasma finalizeExits",
                    "Plasma withdraw (bob)"]
    assert plasma.rootchain.functions.exits(1_000_000_000_000).call()[3] == 2  # bob's exit finalized
    assert plasma.rootchain.functions.balances(plasma.roles.bob.address).call() == 0  # and withdrawn
