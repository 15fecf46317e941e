"""The validator's signature API over a real socket: every numeric query parameter is
range-checked and a value outside its range is a 400 with a reason, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from token_bridge.jsonhttp import SQLITE_MAX_INT

from .conftest import BridgeHarness

pytestmark = pytest.mark.anvil

# Each numeric parameter with the smallest value it accepts.
PARAMS = {"destination": 1, "after": 0}
VALID = {"destination": "31338", "after": "0"}


@pytest.fixture
def signatures_url(make_bridge: Any) -> Iterator[str]:
    """The /signatures URL of a validator of a fresh bridge (it has signed nothing yet)."""
    h: BridgeHarness = make_bridge()
    _, server = h.start_validator(h.validator_accounts[0])
    yield f"{server.url}/signatures"
    server.stop()


@given(name=st.sampled_from(sorted(PARAMS)), data=st.data())
def test_signatures__integer_outside_its_range__400_naming_the_parameter(
    signatures_url: str, name: str, data: st.DataObject
) -> None:
    value = data.draw(st.one_of(st.integers(max_value=PARAMS[name] - 1), st.integers(min_value=SQLITE_MAX_INT + 1),
                                st.sampled_from([2**64, 2**64 + 1, 2**256])))
    response = httpx.get(signatures_url, params={**VALID, name: str(value)}, timeout=10)
    assert response.status_code == 400, response.text
    assert name in response.json()["error"]


@given(name=st.sampled_from(sorted(PARAMS)), data=st.data())
def test_signatures__integer_inside_its_range__200(signatures_url: str, name: str, data: st.DataObject) -> None:
    value = data.draw(st.one_of(st.integers(min_value=PARAMS[name], max_value=SQLITE_MAX_INT),
                                st.sampled_from([PARAMS[name], SQLITE_MAX_INT])))
    response = httpx.get(signatures_url, params={**VALID, name: str(value)}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["signatures"] == []


@given(name=st.sampled_from(sorted(PARAMS)),
       text=st.text(min_size=1, max_size=40).filter(lambda t: not (t.isascii() and t.isdigit())))
def test_signatures__not_a_decimal_integer__400(signatures_url: str, name: str, text: str) -> None:
    response = httpx.get(signatures_url, params={**VALID, name: text}, timeout=10)
    assert response.status_code == 400, response.text


def test_signatures__destination_missing__400(signatures_url: str) -> None:
    response = httpx.get(signatures_url, params={"after": "0"}, timeout=10)
    assert response.status_code == 400
    assert "destination is required" in response.json()["error"]
