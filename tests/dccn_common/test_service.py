"""The service runner: ticks the follower, tasks and outbox; health; clean stop."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from dccn_common.follower import ChainFollower
from dccn_common.service import Service


def test_service__runs_tasks_reports_health_and_stops_on_request(w3: Any, make_db: Any, ankr_token: Any) -> None:
    db = make_db()
    follower = ChainFollower(w3, db, "svc")
    seen: list[int] = []
    follower.subscribe(ankr_token.address, ankr_token.abi, "Transfer", lambda event, tx: seen.append(event.block_number))
    service = Service("demo-svc", w3=w3, db=db, follower=follower, poll_interval=0.05, health_port=0,
                      status=lambda: {"seen": len(seen)})
    ticks: list[float] = []
    service.every(0.1)(lambda: ticks.append(time.monotonic()))
    runner = threading.Thread(target=service.run)
    runner.start()
    deadline = time.monotonic() + 10
    while len(ticks) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    body = httpx.get(f"http://127.0.0.1:{service.health_port}/health").json()
    service.stop_event.set()
    runner.join(timeout=10)
    assert not runner.is_alive()
    assert body["ok"] and body["seen"] == 1 and body["cursor"] == body["head"]
    assert len(ticks) >= 3
