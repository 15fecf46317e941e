"""The on-chain host validator against the Python reference (enode_dns.hosts), on generated hosts."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import boa
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dccn_deploy import run_parts
from enode_dns.hosts import MAX_HOST_LENGTH, HostKind, classify_host

from .conftest import registry_context

_label = st.text(alphabet="abcz09-", min_size=0, max_size=66)
_dns_names = st.lists(_label, min_size=1, max_size=6).map(".".join)
_long_dns_names = st.lists(st.text(alphabet="ab1-", min_size=55, max_size=63), min_size=3, max_size=5).map(".".join)
_octet = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "01", "007", "", "1a", "-1"]))
_ipv4 = st.lists(_octet, min_size=3, max_size=5).map(".".join)
_ipv6_exact = st.integers(0, 2**128 - 1).flatmap(
    lambda n: st.sampled_from([ipaddress.IPv6Address(n).compressed, ipaddress.IPv6Address(n).exploded]))
_ipv6_groups = st.lists(st.text(alphabet="0123456789abcdefABCDEFg", min_size=0, max_size=5), min_size=1,
                        max_size=10).map(":".join)
_noise = st.text(alphabet="ab09-.:fF_ %[]", min_size=0, max_size=40)
hosts = st.one_of(_dns_names, _long_dns_names, _ipv4, _ipv6_exact, _ipv6_groups, _noise).filter(
    lambda h: len(h) <= MAX_HOST_LENGTH)


@pytest.fixture(scope="module")
def ingress(registry_deployments: Path) -> Any:
    return run_parts(registry_context(registry_deployments), ("permissioning",)).at("EnodeIngress")


@given(host=hosts)
@example(host="::")
@example(host="1:2:3:4:5:6:7::")
@example(host="::1:2:3:4:5:6:7")
@example(host="1::2:3:4:5:6:7:8")
@example(host="a" * 63 + ".org")
@example(host="a" * 64 + ".org")
@example(host=".".join(["a" * 63] * 3 + ["b" * 61]))
@example(host="0.0.0.0")
@example(host="localhost")
def test_classify_host__contract_matches_python_reference(ingress: Any, host: str) -> None:
    with boa.env.anchor():
        kind, packed = ingress.classifyHost(host)
    expected_kind, expected_packed = classify_host(host)
    assert HostKind(kind) == expected_kind, host
    assert packed == expected_packed, host
