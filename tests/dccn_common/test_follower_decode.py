"""The follower's eth_abi fast path decodes every event of every contract exactly as web3 does.

Logs are built from random argument values (eth_abi's own hypothesis strategies), encoded
the way the EVM emits them, and decoded both ways.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode
from eth_abi.tools import get_abi_strategy
from eth_utils import event_abi_to_log_topic
from hypothesis import given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3._utils.events import get_event_data
from web3.exceptions import LogTopicError

from dccn_common import PROJECT_ROOT
from dccn_common.follower import FlatEventLayout
from dccn_devtools.contracts import load_artifact

DEPLOYABLES = sorted(
    path.stem for path in (PROJECT_ROOT / "contracts").rglob("*.vy") if path.stem[0].isupper()
)
CODEC = Web3().codec


def events() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name in DEPLOYABLES:
        for item in load_artifact(name).abi:
            if item["type"] == "event":
                found.append((f"{name}.{item['name']}", item))
    return found


EVENTS = events()


def log_of(abi: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    indexed = [a for a in abi["inputs"] if a.get("indexed")]
    plain = [a for a in abi["inputs"] if not a.get("indexed")]
    return {
        "address": "0x" + "11" * 20,
        "topics": [event_abi_to_log_topic(abi)] + [encode([a["type"]], [values[a["name"]]]) for a in indexed],
        "data": encode([a["type"] for a in plain], [values[a["name"]] for a in plain]),
        "blockNumber": 7, "blockHash": b"\x22" * 32, "transactionHash": b"\x33" * 32,
        "logIndex": 0, "transactionIndex": 0,
    }


def test_every_project_event__has_the_fast_layout() -> None:
    assert len(EVENTS) > 40
    slow = [name for name, abi in EVENTS if FlatEventLayout.of(abi) is None]
    assert slow == [], f"events that fall back to web3's decoder: {slow}"


@pytest.mark.parametrize(("name", "abi"), EVENTS, ids=[name for name, _ in EVENTS])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_fast_decode__equals_web3s(name: str, abi: dict[str, Any], data: st.DataObject) -> None:
    values = {a["name"]: data.draw(get_abi_strategy(a["type"]), label=a["name"]) for a in abi["inputs"]}
    entry = log_of(abi, values)
    layout = FlatEventLayout.of(abi)
    assert layout is not None
    assert layout.decode(entry) == dict(get_event_data(CODEC, abi, entry)["args"])  # type: ignore[arg-type]


def test_fast_decode__log_with_other_indexed_layout__log_topic_error_like_web3() -> None:
    abi = {"type": "event", "name": "Transfer", "anonymous": False, "inputs": [
        {"name": "sender", "type": "address", "indexed": True},
        {"name": "receiver", "type": "address", "indexed": True},
        {"name": "value", "type": "uint256", "indexed": False},
    ]}
    entry = log_of(abi, {"sender": "0x" + "aa" * 20, "receiver": "0x" + "bb" * 20, "value": 5})
    entry["topics"] = entry["topics"][:2]  # e.g. a token that indexes one address less
    entry["data"] = encode(["address", "uint256"], ["0x" + "bb" * 20, 5])
    layout = FlatEventLayout.of(abi)
    assert layout is not None
    with pytest.raises(LogTopicError):
        get_event_data(CODEC, abi, entry)  # type: ignore[arg-type]
    with pytest.raises(LogTopicError):
        layout.decode(entry)


def test_flat_layout__tuple_array_or_hashed_topic__falls_back_to_web3() -> None:
    def event(kind: str, indexed: bool) -> dict[str, Any]:
        return {"type": "event", "name": "E", "anonymous": False,
                "inputs": [{"name": "x", "type": kind, "indexed": indexed, "components": []}]}

    assert FlatEventLayout.of(event("uint256[]", False)) is None
    assert FlatEventLayout.of(event("tuple", False)) is None
    assert FlatEventLayout.of(event("string", True)) is None
    assert FlatEventLayout.of(event("string", False)) is not None
