"""`dccn-scheduler` as a user runs it: a real subprocess, JSON in, allocation out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dccn_common import PROJECT_ROOT
from dccn_scheduler.cli import main
from dccn_scheduler.inputs import EXAMPLE


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """In-process (click's runner): exit code, stdout and stderr as a user sees them."""
    outcome = CliRunner(mix_stderr=False).invoke(main, list(args))
    return subprocess.CompletedProcess(args, outcome.exit_code, outcome.stdout, outcome.stderr)


def run_process(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script in a real process."""
    script = Path(sys.executable).parent / "dccn-scheduler"
    # The project root on the path: an editable install made before this package existed does not map it.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120, env=env)


def test_console_script__help_and_bad_json_in_a_real_process(tmp_path):
    result = run_process("--help")
    assert result.returncode == 0 and "Usage:" in result.stdout
    path = tmp_path / "bad.json"
    path.write_text("{nope")
    result = run_process("schedule", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


@pytest.fixture
def example_file(tmp_path: Path) -> Path:
    path = tmp_path / "market.json"
    path.write_text(json.dumps(EXAMPLE))
    return path


@pytest.mark.parametrize("args", [("--help",), ("schedule", "--help"), ("example", "--help")])
def test_help__on_every_command(args):
    result = run(*args)
    assert result.returncode == 0
    assert "Usage:" in result.stdout


def test_schedule__prints_the_allocation_as_json(example_file):
    result = run("schedule", str(example_file), "--format", "json")
    assert result.returncode == 0, result.stderr
    allocation = json.loads(result.stdout)
    assert sorted(p["task"] for p in allocation["placements"]) == ["ml-1", "web-1", "web-2"]
    assert allocation["unscheduled"] == []


def test_schedule__table_output(example_file):
    result = run("schedule", str(example_file))
    assert result.returncode == 0
    assert "3 placed, 0 unscheduled" in result.stdout


def test_example__round_trips(tmp_path):
    result = run("example")
    path = tmp_path / "x.json"
    path.write_text(result.stdout)
    assert run("schedule", str(path), "--format", "json").returncode == 0


@pytest.mark.parametrize(("content", "message"), [
    ('{"providers": [', "invalid JSON at line"),
    ('{"providers": [], "tasks": [], "surprise": 1}', "surprise: Extra inputs are not permitted"),
    ('{"providers": [{"id": "p", "nodes": [{"id": "n", "cpu": 1, "memory": 1, "price": 0.5}]}], "tasks": []}',
     "providers.0.nodes.0.price: Input should be greater than 1"),
    ('{"providers": [], "tasks": [{"id": "t", "user": "u", "cpu": -1, "memory": 1}]}', "tasks.0.cpu"),
    ("[1, 2]", "Input should be a valid dictionary"),
])
def test_schedule__bad_input__one_line_error_exit_2(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = run("schedule", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr


def test_schedule__missing_file_and_half_chain_options(tmp_path, example_file):
    result = run("schedule", str(tmp_path / "none.json"))
    assert result.returncode == 2 and "cannot read" in result.stderr
    result = run("schedule", str(example_file), "--rpc", "http://127.0.0.1:1")
    assert result.returncode == 2 and "--rpc and --manifest go together" in result.stderr


def test_schedule__non_utf8_file__one_line_error_in_a_real_process(tmp_path):
    path = tmp_path / "market.json"
    path.write_bytes(b'{"providers": [], "tasks": [], "users": {"caf\xe9": {}}}')
    result = run_process("schedule", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {path} is not UTF-8 text (byte 45); the input is a JSON document"
