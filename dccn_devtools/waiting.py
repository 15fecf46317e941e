"""The one way tests (and benchmarks) wait for something to become true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], what: str = "condition", *, timeout: float = 20.0,
             interval: float = 0.05, tick: Callable[[], object] | None = None) -> T:
    """Call `condition` until it returns something truthy and return that; `tick` runs between
    tries (drive a service loop, mine a block). Fails the test naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        if tick is not None:
            tick()
        time.sleep(interval)
