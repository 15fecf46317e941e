"""Ending a subprocess a test, a benchmark or the anvil harness started."""

from __future__ import annotations

import subprocess
from typing import Any


def stop_process(process: subprocess.Popen[Any] | None, timeout: float = 10) -> None:
    """SIGTERM a still running process and reap it; SIGKILL it if it has not ended within `timeout`."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
