"""Every numeric input of the operator's HTTP API is range-checked: an integer outside its
range is a 400 with a reason (never a 500), one inside it is answered (200 or 404)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plasma_core import wire
from plasma_operator.api import MAX_BLKNUM

pytestmark = pytest.mark.anvil

VALID_SIG = "0x" + "11" * 65
ALICE_KEY = "0x" + "a1" * 32
# Each numeric input: (lowest accepted, highest accepted).
RANGES = {"blknum": (1, MAX_BLKNUM), "txindex": (0, wire.MAX_LEAVES - 1), "oindex": (0, 1)}
CONFIRM_RANGES = {"blknum": (1, MAX_BLKNUM), "txindex": (0, wire.MAX_LEAVES - 1), "slot": (0, 1)}


@pytest.fixture
def operator_http(start_operator: Any) -> httpx.Client:
    running = start_operator(block_interval=3600)
    return httpx.Client(base_url=running.url, timeout=10)


def _outside(low: int, high: int) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1),
                     st.sampled_from([low - 1, high + 1, 2**63, 2**64, 2**256]))


def _inside(low: int, high: int) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(min_value=low, max_value=high), st.sampled_from([low, high]))


def _path(name: str, value: int) -> list[str]:
    """Each GET path that takes `name`, with `value` there and valid values elsewhere."""
    numbers = {"blknum": 1000, "txindex": 0, "oindex": 0, name: value}
    paths = [f"/utxo/{numbers['blknum']}/{numbers['txindex']}/{numbers['oindex']}"]
    if name != "oindex":
        paths.append(f"/tx/{numbers['blknum']}/{numbers['txindex']}")
    if name == "blknum":
        paths.append(f"/block/{value}")
    return paths


def _spending(field: str, value: int) -> str:
    """A signed transfer whose first input's `field` is `value` (within uint256: a well-formed RLP)."""
    position = {"blknum": 1000, "txindex": 0, "oindex": 0, field: value}
    tx = wire.Transaction(blknum1=position["blknum"], txindex1=position["txindex"], oindex1=position["oindex"],
                          newowner1="0x" + "22" * 20, denom1=1)
    return "0x" + wire.encode(wire.sign(tx, ALICE_KEY, 0)).hex()


def _check(response: httpx.Response, allowed: set[int]) -> None:
    assert response.status_code in allowed, response.text[:300]
    assert response.json().get("reason"), response.text[:300]


@given(name=st.sampled_from(sorted(RANGES)), data=st.data())
def test_get__position_outside_its_range__400(operator_http: httpx.Client, name: str, data: st.DataObject) -> None:
    value = data.draw(_outside(*RANGES[name]))
    for path in _path(name, value):
        _check(operator_http.get(path), {400})


@given(name=st.sampled_from(sorted(RANGES)), data=st.data())
def test_get__position_inside_its_range__answered_not_500(
    operator_http: httpx.Client, name: str, data: st.DataObject
) -> None:
    value = data.draw(_inside(*RANGES[name]))
    for path in _path(name, value):
        response = operator_http.get(path)
        assert response.status_code in {200, 404}, response.text[:300]


@given(name=st.sampled_from(sorted(CONFIRM_RANGES)), data=st.data())
def test_confirm__number_outside_its_range__400(operator_http: httpx.Client, name: str, data: st.DataObject) -> None:
    body = {"blknum": 1000, "txindex": 0, "slot": 0, "sig": VALID_SIG, name: data.draw(_outside(*CONFIRM_RANGES[name]))}
    _check(operator_http.post("/confirm", json=body), {400})


@given(name=st.sampled_from(sorted(CONFIRM_RANGES)), data=st.data())
def test_confirm__number_inside_its_range__answered_not_500(
    operator_http: httpx.Client, name: str, data: st.DataObject
) -> None:
    body = {"blknum": 1000, "txindex": 0, "slot": 0, "sig": VALID_SIG, name: data.draw(_inside(*CONFIRM_RANGES[name]))}
    _check(operator_http.post("/confirm", json=body), {404, 422})


@given(name=st.sampled_from(sorted(RANGES)), data=st.data(), submit=st.sampled_from(["/tx", "/txs"]))
def test_submit__input_position_outside_its_range__4xx_never_500(
    operator_http: httpx.Client, name: str, data: st.DataObject, submit: str
) -> None:
    high = RANGES[name][1]
    # Negative numbers have no RLP encoding; beyond uint256 the RLP check already refuses.
    value = data.draw(st.one_of(st.integers(min_value=high + 1, max_value=2**256 - 1),
                                st.sampled_from([high + 1, 2**63, 2**64, 2**256 - 1])))
    raw = _spending(name, value)
    response = operator_http.post(submit, json={"tx": raw} if submit == "/tx" else {"txs": [raw]})
    _check(response, {400})


def test_max_blknum__the_highest_output_position_fits_the_store() -> None:
    # The store keys outputs by position in a signed 64-bit integer.
    assert wire.utxo_position(MAX_BLKNUM, wire.MAX_LEAVES - 1, 1) <= 2**63 - 1
    assert wire.utxo_position(MAX_BLKNUM + 1, wire.MAX_LEAVES - 1, 1) > 2**63 - 1
