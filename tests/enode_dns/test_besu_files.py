"""Rendering and atomic rewriting of Besu's files, and the address sources and resolvers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enode_dns.besu_files import BesuFiles, NodeRecord, atomic_write, read_toml_array, render, set_toml_key
from enode_dns.enode import EnodeId, enode_url
from enode_dns.resolver import HostsFileResolver, parse_resolver
from enode_dns.sources import AddressSourceError, CommandSource, FileSource, parse_source

from .conftest import BOOT, OBSERVER, VALIDATOR

ID_A, ID_B, ID_C = "aa" * 64, "bb" * 64, "cc" * 64


def test_set_toml_key__replaces_multiline_array_and_keeps_the_rest() -> None:
    text = 'a=1\nbootnodes=[\n "x",\n "y"\n]\n[section]\nbootnodes=["keep"]\n'
    result = set_toml_key(text, "bootnodes", ["enode://n@1.2.3.4:1"])
    assert result == 'a=1\nbootnodes=["enode://n@1.2.3.4:1"]\n[section]\nbootnodes=["keep"]\n'


def test_set_toml_key__absent_key__added_at_top_level() -> None:
    assert set_toml_key("[metrics]\nenabled=true\n", "bootnodes", []) == "bootnodes=[]\n[metrics]\nenabled=true\n"


def test_render__roles_self_exclusion_ipv6_brackets_and_unresolved(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("# comment\n10.0.0.9 val.ankr.test other.name\n")
    nodes = [
        NodeRecord(ID_A, "10.0.0.1", 30303, BOOT, "o", False),
        NodeRecord(ID_B, "val.ankr.test", 30304, VALIDATOR, "o", False),
        NodeRecord(ID_C, "2001:db8::1", 30305, OBSERVER, "o", False),
        NodeRecord("dd" * 64, "gone.ankr.test", 30303, BOOT, "o", False),
    ]
    result = render(nodes, HostsFileResolver(hosts), self_enode=ID_A)
    assert result.bootnodes == []
    assert result.static_nodes == [enode_url(ID_B, "10.0.0.9", 30304)]
    assert enode_url(ID_C, "2001:db8::1", 30305) == f"enode://{ID_C}@[2001:db8::1]:30305"
    assert len(result.allowlist) == 3 and result.unresolved == ["gone.ankr.test"]


def test_besu_files__unchanged_content__not_rewritten(tmp_path: Path) -> None:
    files = BesuFiles(tmp_path / "config.toml", tmp_path / "static-nodes.json", tmp_path / "permissions_config.toml")
    result = render([NodeRecord(ID_A, "10.0.0.1", 30303, BOOT, "o", False)], parse_resolver("system"), None)
    assert len(files.write(result)) == 3
    assert files.write(result) == []
    assert json.loads((tmp_path / "static-nodes.json").read_text()) == [enode_url(ID_A, "10.0.0.1", 30303)]
    assert read_toml_array(tmp_path / "config.toml", "bootnodes") == [enode_url(ID_A, "10.0.0.1", 30303)]
    assert not list(tmp_path.glob(".*.tmp"))


def test_atomic_write__replaces_inode_never_truncates_in_place(tmp_path: Path) -> None:
    path = tmp_path / "static-nodes.json"
    path.write_text("[]\n")
    before = path.stat().st_ino
    assert atomic_write(path, '["x"]\n')
    assert path.stat().st_ino != before and path.read_text() == '["x"]\n'


def test_sources__file_command_and_bad_output(tmp_path: Path) -> None:
    address_file = tmp_path / "ip"
    address_file.write_text("198.51.100.5\n")
    assert parse_source(f"file:{address_file}").fetch() == "198.51.100.5"
    assert CommandSource("echo 2001:db8::5").fetch() == "2001:db8::5"
    with pytest.raises(AddressSourceError, match="not an IP literal"):
        CommandSource("echo not_a..host").fetch()
    with pytest.raises(AddressSourceError, match="exited with"):
        CommandSource("false").fetch()
    with pytest.raises(AddressSourceError, match="cannot read"):
        FileSource(tmp_path / "missing").fetch()
    with pytest.raises(ValueError, match="expected command"):
        parse_source("ftp://x")


def test_enode_id__rejects_non_points_and_wrong_length() -> None:
    with pytest.raises(ValueError):
        EnodeId(bytes(64))
    with pytest.raises(ValueError):
        EnodeId.from_hex("ab" * 63)
