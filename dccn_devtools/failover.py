"""Taking the leader of a leader/standby pair down in a failover test (SIGKILL or SIGSTOP) and
timing how long the standby takes to report itself the leader on its /health."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable

from dccn_devtools.probes import role
from dccn_devtools.waiting import wait_for


def kill_until_taken_over(leader: subprocess.Popen[bytes], standby_port: int, *, timeout: float = 30) -> float:
    """SIGKILL the leader and wait for the standby to lead; the seconds the takeover took."""
    leader.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    leader.wait()
    wait_for(lambda: role(standby_port) == "leader", "the standby to take over", timeout=timeout)
    return time.monotonic() - killed


def pause_until_taken_over(leader: subprocess.Popen[bytes], standby_port: int, lease_seconds: float, *,
                           attempts: int = 3) -> float:
    """SIGSTOP the leader until the standby leads (it stays paused); the seconds the takeover took."""
    for _ in range(attempts):
        leader.send_signal(signal.SIGSTOP)
        paused = time.monotonic()
        try:
            # Paused inside a transaction the old leader holds the write lock, and the standby
            # waits for it; resume it well before the server ends its session, and pause again.
            wait_for(lambda: role(standby_port) == "leader", "the standby to take over", timeout=lease_seconds + 5)
            return time.monotonic() - paused
        except AssertionError:
            leader.send_signal(signal.SIGCONT)
            time.sleep(1.0)
    raise AssertionError("the standby never took over from the paused leader")


class Repeat:
    """`step()` called every `interval` seconds from a daemon thread until stop(): the load that
    keeps coming while the instances of a failover test fail."""

    def __init__(self, step: Callable[[], None], interval: float) -> None:
        self.step, self.interval = step, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Repeat:
        def loop() -> None:
            while not self._stop.is_set():
                self.step()
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30) -> bool:
        """Stop after the step under way; False if the thread has not ended within `timeout`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            return not self._thread.is_alive()
        return True
