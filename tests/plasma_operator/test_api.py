"""The operator's HTTP API over a real socket: every endpoint answers malformed input with a
4xx JSON reason and changes nothing; the OpenAPI schema lists every endpoint."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from plasma_client.wallet import Coin, build_transfer
from plasma_core import wire

pytestmark = pytest.mark.anvil

ETHER = 10**18


@pytest.fixture
def api_world(plasma: Any, start_operator: Any, roles: Any, eventually: Any) -> dict[str, Any]:
    """An operator holding one deposit of alice's and one pending transfer to bob."""
    running = start_operator(block_interval=3600)
    http = httpx.Client(base_url=running.url, timeout=10)
    blknum = plasma.deposit(roles.alice, ETHER)
    eventually(lambda: http.get(f"/utxo/{blknum}/0/0").status_code == 200, what="deposit credited")
    tx = build_transfer([Coin(blknum, 0, 0, ETHER)], roles.alice.address, roles.bob.address, ETHER, 0, roles.alice.key)
    assert http.post("/tx", json={"tx": "0x" + wire.encode(tx).hex()}).status_code == 200
    return {"http": http, "deposit": blknum, "tx": tx}


def _state(http: httpx.Client) -> Any:
    status = http.get("/status").json()
    return (status["pending_transactions"], status["open_block"], http.get("/block/1000").json())


VALID_SIG = "0x" + "11" * 65


MALFORMED: list[tuple[str, str, Any, int]] = [
    ("POST", "/tx", None, 400),                                  # no body
    ("POST", "/tx", "not json", 400),
    ("POST", "/tx", {}, 400),                                    # missing field
    ("POST", "/tx", {"tx": 5}, 400),
    ("POST", "/tx", {"tx": "0xzz"}, 400),
    ("POST", "/tx", {"tx": "0xc0"}, 400),                        # an empty RLP list
    ("POST", "/tx", {"tx": "0x" + "ab" * 1100}, 400),            # longer than the contract takes
    ("POST", "/tx", {"tx": "0x" + wire.encode(wire.Transaction(blknum1=1, newowner1="0x" + "22" * 20,
                                                               denom1=1)).hex()}, 422),  # unsigned
    ("POST", "/txs", {"txs": []}, 400),
    ("POST", "/txs", {"txs": "0x00"}, 400),
    ("POST", "/txs", {"txs": ["0x00"] * 10_001}, 400),
    ("POST", "/txs", {"txs": [None]}, 400),
    ("GET", "/block/abc", None, 400),
    ("GET", "/block/0", None, 400),
    ("GET", "/block/-5", None, 400),
    ("GET", f"/block/{2**70}", None, 400),
    ("GET", "/block/5000", None, 404),
    ("GET", "/tx/1000/65536", None, 400),
    ("GET", "/tx/1000/x", None, 400),
    ("GET", "/tx/7000/0", None, 404),
    ("GET", "/utxo/1/0/2", None, 400),
    ("GET", "/utxo/9/0/0", None, 404),
    ("GET", "/utxos/not-an-address", None, 400),
    ("GET", "/utxos/0x1234", None, 400),
    ("POST", "/confirm", {"blknum": 1000, "txindex": 0, "slot": 0, "sig": "0xzz"}, 400),
    ("POST", "/confirm", {"blknum": 1000, "txindex": 0, "slot": 0, "sig": "0x1234"}, 400),
    ("POST", "/confirm", {"blknum": 1000, "txindex": 0, "slot": 3, "sig": VALID_SIG}, 400),
    ("POST", "/confirm", {"blknum": 1000, "txindex": 9, "slot": 0, "sig": VALID_SIG}, 404),
    ("POST", "/confirm", {"blknum": 1000, "txindex": 0, "slot": 0, "sig": VALID_SIG}, 422),  # block not sealed
    ("GET", "/nowhere", None, 404),
    ("DELETE", "/tx", None, 405),
]


def test_malformed_input_to_every_endpoint__clear_4xx_json_reason__nothing_changes(api_world: dict[str, Any]) -> None:
    # One running operator for every case (each would otherwise cost a deployment).
    http = api_world["http"]
    before = _state(http)
    wrong = []
    for method, path, body, status in MALFORMED:
        kwargs: dict[str, Any] = {"content": body} if isinstance(body, str) else {"json": body}
        response = http.request(method, path, **kwargs)
        json_reason = response.headers["content-type"].startswith("application/json") and response.json().get("reason")
        if response.status_code != status or not json_reason:
            wrong.append((method, path, response.status_code, response.text[:200]))
    assert wrong == []
    assert _state(http) == before


def test_openapi_schema__lists_every_endpoint(api_world: dict[str, Any]) -> None:
    paths = set(api_world["http"].get("/openapi.json").json()["paths"])
    assert paths == {"/health", "/metrics", "/status", "/tx", "/txs", "/block/{blknum}", "/tx/{blknum}/{txindex}",
                     "/utxo/{blknum}/{txindex}/{oindex}", "/utxos/{owner}", "/confirm"}


def test_batch__valid_batch_accepted_in_order__chained_spends_allowed(
    api_world: dict[str, Any], plasma: Any, roles: Any, eventually: Any
) -> None:
    http = api_world["http"]
    blknum = plasma.deposit(roles.carol, 3 * ETHER)
    eventually(lambda: http.get(f"/utxo/{blknum}/0/0").status_code == 200, what="deposit credited")
    first = build_transfer([Coin(blknum, 0, 0, 3 * ETHER)], roles.carol.address, roles.dave.address, ETHER, 0,
                           roles.carol.key)
    # the batch's second tx spends the change of the first (position known: next index of the open block)
    second = build_transfer([Coin(1000, 1, 1, 2 * ETHER)], roles.carol.address, roles.dave.address, ETHER, 0,
                            roles.carol.key)
    response = http.post("/txs", json={"txs": ["0x" + wire.encode(t).hex() for t in (first, second)]})
    assert response.status_code == 200, response.text
    assert [(a["blknum"], a["txindex"]) for a in response.json()["accepted"]] == [(1000, 1), (1000, 2)]
    dave = http.get(f"/utxos/{roles.dave.address}").json()
    assert dave["balance"] == str(2 * ETHER)
