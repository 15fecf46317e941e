"""The README's first command, shortened: the whole story runs and cleans up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dccn_common import PROJECT_ROOT

pytestmark = pytest.mark.xdist_group("ape")


def test_demo__short_story__succeeds_and_prints_summary(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "dccn_demo", "--short", "--workdir", str(workdir)],
        cwd=PROJECT_ROOT, env={**os.environ, "COLUMNS": "160"}, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "What happened" in result.stdout
    assert "stopped both chains" in result.stdout
    assert (workdir / "deployments" / "31337.json").exists()
