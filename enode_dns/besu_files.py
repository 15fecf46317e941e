"""Besu's files, rewritten atomically from the registry mirror.

- config.toml: the top-level `bootnodes` array (every other line is kept);
- static-nodes.json: the list of enode URLs to stay connected to;
- permissions_config.toml: `nodes-allowlist` for file-based permissioning
  (`accounts-allowlist` and anything else is kept).

A file is written (temp file in the same directory, fsync, rename) only when its
content changes, so Besu and operators never see half a file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from enode_dns.enode import enode_url
from enode_dns.resolver import Resolver, resolve

VALIDATOR, BOOT = 0, 1


@dataclass(frozen=True)
class NodeRecord:
    enode_hex: str
    host: str
    port: int
    node_type: int
    organisation: str
    id_only: bool


@dataclass
class RenderResult:
    bootnodes: list[str]
    static_nodes: list[str]
    allowlist: list[str]
    unresolved: list[str]


def render(nodes: Iterable[NodeRecord], resolver: Resolver, self_enode: str | None) -> RenderResult:
    """Enode URLs by role: boot nodes, validators + boot nodes, and every node."""
    result = RenderResult([], [], [], [])
    for node in sorted(nodes, key=lambda n: (n.node_type, n.enode_hex)):
        address = resolve(resolver, node.host)
        if address is None:
            result.unresolved.append(node.host)
            continue
        url = enode_url(node.enode_hex, address, node.port)
        result.allowlist.append(url)
        if node.enode_hex == self_enode:
            continue
        if node.node_type == BOOT:
            result.bootnodes.append(url)
        if node.node_type in (BOOT, VALIDATOR):
            result.static_nodes.append(url)
    return result


def atomic_write(path: Path, text: str) -> bool:
    """Replace `path` with `text` (write temp, fsync, rename); False if unchanged."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return True


def toml_array(key: str, values: list[str]) -> str:
    return f"{key}=[" + ",".join(json.dumps(v) for v in values) + "]"


def set_toml_key(text: str, key: str, values: list[str]) -> str:
    """Replace the top-level `key = [...]` (possibly spanning lines) or add it first."""
    lines = text.splitlines()
    start = re.compile(rf"^\s*{re.escape(key)}\s*=")
    new_line = toml_array(key, values)
    for index, line in enumerate(lines):
        if line.lstrip().startswith("["):
            break  # past the top-level table
        if start.match(line):
            end = index
            # A multi-line array ends at the line whose brackets balance.
            depth = line.count("[") - line.count("]")
            while depth > 0 and end + 1 < len(lines):
                end += 1
                depth += lines[end].count("[") - lines[end].count("]")
            lines[index:end + 1] = [new_line]
            return "\n".join(lines) + "\n"
    return "\n".join([new_line, *lines]) + "\n"


def read_toml_array(path: Path, key: str) -> list[str]:
    """The values of a top-level string array (for status output and tests)."""
    import tomllib

    if not path.exists():
        return []
    return list(tomllib.loads(path.read_text()).get(key, []))


@dataclass
class BesuFiles:
    config_toml: Path | None = None
    static_nodes: Path | None = None
    permissions_config: Path | None = None

    def write(self, result: RenderResult) -> list[Path]:
        """Write every configured file; returns those that changed."""
        changed: list[Path] = []
        if self.config_toml is not None:
            current = self.config_toml.read_text() if self.config_toml.exists() else ""
            if atomic_write(self.config_toml, set_toml_key(current, "bootnodes", result.bootnodes)):
                changed.append(self.config_toml)
        if self.static_nodes is not None and atomic_write(
            self.static_nodes, json.dumps(result.static_nodes, indent=2) + "\n"
        ):
            changed.append(self.static_nodes)
        if self.permissions_config is not None:
            path = self.permissions_config
            current = path.read_text() if path.exists() else ""
            if atomic_write(path, set_toml_key(current, "nodes-allowlist", result.allowlist)):
                changed.append(path)
        return changed
