"""nos_enclave on its own: it imports nothing from the rest of the project, its measurement is the
hash of every file in the package (the rule in nos_enclave/measurement.py), and it serves its
own /health and /metrics."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from nos_enclave.health import EnclaveMetrics, HealthServer
from nos_enclave.listen import bind_tcp
from nos_enclave.measurement import PACKAGE_ROOT, measurement, package_files

PROJECT_ROOT = PACKAGE_ROOT.parent


def project_modules() -> set[str]:
    """Top-level packages and modules of the project (everything importable from its root)."""
    names = {path.parent.name for path in PROJECT_ROOT.glob("*/__init__.py")}
    names |= {path.stem for path in PROJECT_ROOT.glob("*.py")}
    return names - {"nos_enclave"}


def project_imports(source: str, forbidden: set[str]) -> list[str]:
    """Absolute imports in `source` (anywhere: module level, functions, TYPE_CHECKING) of `forbidden`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] in forbidden]
        elif (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
              and node.module.split(".")[0] in forbidden):
            found.append(node.module)
    return found


def test_project_imports__finds_an_import_of_another_package() -> None:
    # The checker itself: a function-level import of the shared core is caught.
    source = "import json\ndef f():\n    from dccn_common.health import HealthServer\n    import nos_relay.relay\n"
    assert project_imports(source, project_modules()) == ["dccn_common.health", "nos_relay.relay"]
    assert {"dccn_common", "nos_relay", "plasma_operator"} <= project_modules()


def test_nos_enclave__source_imports_nothing_from_the_project() -> None:
    forbidden = project_modules()
    offenders = {name: project_imports(path.read_text(), forbidden)
                 for name, path in package_files() if name.endswith(".py")}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_nos_enclave__every_module_imports_with_the_rest_of_the_project_blocked() -> None:
    # A fresh interpreter where importing any other project package fails: every module and the CLI load.
    code = f"""
import importlib, pkgutil, sys
blocked = {sorted(project_modules())!r}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import nos_enclave
for module in pkgutil.iter_modules(nos_enclave.__path__):
    if module.name != "__main__":
        importlib.import_module("nos_enclave." + module.name)
from nos_enclave.cli import main
main(["--help"])
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    assert "Commands:" in result.stdout and "run" in result.stdout
    leaked = subprocess.run(
        [sys.executable, "-c", "import json, sys, nos_enclave.cli; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert {name.split(".")[0] for name in json.loads(leaked.stdout)} & project_modules() == set()


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "nos_enclave"
    shutil.copytree(PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_measurement__32_bytes_stable_and_independent_of_where_the_package_lives(package_copy: Path) -> None:
    assert len(measurement()) == 32
    assert measurement() == measurement()
    assert measurement(package_copy) == measurement()


def test_measurement__covers_every_file_walked_not_listed() -> None:
    names = [name for name, _ in package_files()]
    on_disk = sorted(path.relative_to(PACKAGE_ROOT).as_posix() for path in PACKAGE_ROOT.rglob("*")
                     if path.is_file() and "__pycache__" not in path.relative_to(PACKAGE_ROOT).parts)
    assert names == on_disk
    assert {"enclave.py", "cli.py", "health.py", "config.py", "logs.py", "framing.py", "measurement.py"} <= set(names)


def test_measurement__any_file_of_the_package_changed__changes(package_copy: Path) -> None:
    before = measurement(package_copy)
    for name, path in package_files(package_copy):
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        assert measurement(package_copy) != before, f"a change to {name} went unmeasured"
        path.write_bytes(original)
    assert measurement(package_copy) == before


def test_measurement__file_added_removed_or_renamed__changes(package_copy: Path) -> None:
    before = measurement(package_copy)
    added = package_copy / "extra.py"
    added.write_text("")
    assert measurement(package_copy) != before
    added.unlink()
    (package_copy / "logs.py").rename(package_copy / "logs2.py")
    assert measurement(package_copy) != before
    (package_copy / "logs2.py").unlink()
    assert measurement(package_copy) != before


def test_measurement__bytecode_caches__not_measured(package_copy: Path) -> None:
    before = measurement(package_copy)
    (package_copy / "__pycache__").mkdir()
    (package_copy / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"bytecode")
    assert measurement(package_copy) == before


def test_measurement__the_documented_rule_recomputed_independently() -> None:
    # What a verifier outside the project would compute from docs/oracle.md.
    digest = hashlib.sha256()
    entries = sorted((p.relative_to(PACKAGE_ROOT).as_posix(), p.read_bytes()) for p in PACKAGE_ROOT.rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts)
    for name, content in entries:
        digest.update(name.encode() + b"\x00" + len(content).to_bytes(8, "big") + content)
    assert digest.digest() == measurement()


def test_cli_init__prints_the_package_measurement(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "nos_enclave", "init", "--sealed-key", str(tmp_path / "k.sealed")],
                            env={**os.environ, "NOS_ENCLAVE_SECRET": "s"}, capture_output=True, text=True,
                            timeout=120, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["measurement"] == "0x" + measurement().hex()


@pytest.mark.parametrize(("ok", "code"), [(True, 200), (False, 503)])
def test_health_server__status_ok_200_else_503_metrics_and_404(ok: bool, code: int) -> None:
    stats = {"signed": 3, "failed": 1}
    server = HealthServer(lambda: {"ok": ok, "service": "nos-enclave"}, EnclaveMetrics(lambda: stats, 1.5),
                          bind_tcp("127.0.0.1", 0, "health_port")).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        for path in ("/health", "/healthz"):
            reply = httpx.get(base + path, timeout=10)
            assert reply.status_code == code and reply.json() == {"ok": ok, "service": "nos-enclave"}
        metrics = httpx.get(base + "/metrics", timeout=10)
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
        samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                   for family in text_string_to_metric_families(metrics.text) for sample in family.samples}
        assert samples == {
            ("dccn_service_start_time_seconds", (("service", "nos-enclave"),)): 1.5,
            ("dccn_enclave_responses_total", (("outcome", "signed"), ("service", "nos-enclave"))): 3.0,
            ("dccn_enclave_responses_total", (("outcome", "failed"), ("service", "nos-enclave"))): 1.0,
        }
        assert httpx.get(base + "/other", timeout=10).status_code == 404
    finally:
        server.stop()


def test_health_server__status_that_raises__503_naming_the_error() -> None:
    def broken() -> dict[str, object]:
        raise RuntimeError("boom")

    server = HealthServer(broken, EnclaveMetrics(dict), bind_tcp("127.0.0.1", 0)).start()
    try:
        reply = httpx.get(f"http://127.0.0.1:{server.port}/health", timeout=10)
        assert reply.status_code == 503 and reply.json() == {"ok": False, "error": "RuntimeError: boom"}
    finally:
        server.stop()
