"""The receipts-trie check: real blocks verify; a node that forges a log is caught."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dccn_devtools.anvil import Anvil
from token_bridge.jsonhttp import JsonServer
from token_bridge.receipts import (
    ProofError,
    fetch_header,
    fetch_receipts,
    find_log,
    receipts_root,
    verify_block_receipts,
)

from .conftest import ANKR_WEI, CONFIRMATIONS, BridgeHarness


class LyingNode(JsonServer):
    """A JSON-RPC proxy in front of anvil that multiplies the amount of every bridge log it
    returns from eth_getLogs and, if asked, from eth_getBlockReceipts too."""

    def __init__(self, upstream: str, *, forge_receipts: bool) -> None:
        client = httpx.Client(timeout=30)

        def forge(entry: dict[str, Any]) -> None:
            if len(entry.get("topics", [])) == 3 and len(entry["data"]) == 66:
                entry["data"] = "0x" + (int(entry["data"], 16) * 100).to_bytes(32, "big").hex()

        def app(_method: str, _path: str, _query: str, body: bytes) -> tuple[int, Any]:
            request = json.loads(body)
            reply = client.post(upstream, json=request).json()
            if request.get("method") == "eth_getLogs" or (forge_receipts and request.get("method") == "eth_getBlockReceipts"):
                for item in reply.get("result") or []:
                    for entry in item.get("logs", [item]):
                        forge(entry)
            return 200, reply

        super().__init__(app)
        self.start()


@pytest.fixture
def lying_node(chain: Anvil) -> Iterator[Any]:
    nodes: list[LyingNode] = []

    def factory(*, forge_receipts: bool) -> LyingNode:
        nodes.append(LyingNode(chain.url, forge_receipts=forge_receipts))
        return nodes[-1]

    yield factory
    for node in nodes:
        node.stop()


@pytest.mark.anvil
def test_receipts_root__legacy_and_typed_transactions__match_header(chain: Anvil, roles: Any) -> None:
    w3 = chain.web3()
    chain.set_automine(False)
    try:
        w3.eth.send_transaction({"from": roles.alice.address, "to": roles.bob.address, "value": 1, "gasPrice": 10**10})
        w3.eth.send_transaction({"from": roles.bob.address, "to": roles.carol.address, "value": 2})
        chain.mine()
    finally:
        chain.set_automine(True)
    block_hash = w3.eth.get_block("latest")["hash"].to_0x_hex()
    header, receipts = fetch_header(w3, block_hash), fetch_receipts(w3, block_hash)
    assert sorted(int(r["type"], 16) for r in receipts) == [0, 2]
    verify_block_receipts(header, receipts)
    assert "0x" + receipts_root(receipts).hex() == header["receiptsRoot"]


@pytest.mark.anvil
def test_verify__tampered_receipt_or_header__rejected(make_bridge: Any, roles: Any) -> None:
    h: BridgeHarness = make_bridge(4, 3)
    receipt = h.lock(roles.alice, roles.dave.address, 3 * ANKR_WEI)
    block_hash = receipt["blockHash"].to_0x_hex()
    header, receipts = fetch_header(h.eth_w3, block_hash), fetch_receipts(h.eth_w3, block_hash)
    log_index = int(receipt["logs"][-1]["logIndex"])
    verify_block_receipts(header, receipts)
    assert int.from_bytes(find_log(receipts, receipt["transactionHash"].to_0x_hex(), log_index).data, "big") == 3 * ANKR_WEI

    receipts[0]["logs"][-1]["data"] = "0x" + (300 * ANKR_WEI).to_bytes(32, "big").hex()
    with pytest.raises(ProofError, match="receipts trie root"):
        verify_block_receipts(header, receipts)
    forged_header = {**header, "receiptsRoot": "0x" + receipts_root(receipts).hex()}
    with pytest.raises(ProofError, match="does not hash"):
        verify_block_receipts(forged_header, receipts)
    with pytest.raises(ProofError, match="another transaction"):
        find_log(receipts, "0x" + "11" * 32, log_index)


@pytest.mark.anvil
@pytest.mark.parametrize("forge_receipts", [False, True], ids=["forged-log", "forged-log-and-receipts"])
def test_validator__node_forges_lock_amount__refuses_to_sign(
    make_bridge: Any, roles: Any, lying_node: Any, forge_receipts: bool
) -> None:
    h: BridgeHarness = make_bridge(4, 3)
    node = lying_node(forge_receipts=forge_receipts)
    honest, _ = h.start_validator(h.validator_accounts[0])
    fooled, server = h.start_validator(h.validator_accounts[1], eth_rpc=node.url)
    try:
        h.lock(roles.alice, roles.dave.address, 2 * ANKR_WEI)
        h.eth.mine(CONFIRMATIONS["ethereum"] + 1)
        honest.poll()
        fooled.poll()
        assert honest.status()["signed"] == 1
        assert fooled.status() | {} and fooled.status()["signed"] == 0
        assert fooled.status()["rejected_logs"] == 1
        reason = fooled.db.execute("SELECT reason FROM rejected_logs").fetchone()["reason"]
        assert ("receipts trie root" in reason) if forge_receipts else ("differs from the proven receipt" in reason)
    finally:
        server.stop()
        _.stop()


@pytest.mark.anvil
def test_validator__several_locks_in_one_block__receipts_trie_checked_once_all_signed(
    make_bridge: Any, roles: Any
) -> None:
    h: BridgeHarness = make_bridge(4, 3)
    validator, server = h.start_validator(h.validator_accounts[0])
    token, foreign = h.bridge.token.functions, h.bridge.foreign.functions
    try:
        transact_approve = token.approve(h.bridge.foreign.address, 3 * ANKR_WEI)
        h.eth_w3.eth.wait_for_transaction_receipt(transact_approve.transact({"from": roles.alice.address}))
        h.eth.set_automine(False)
        hashes = [foreign.relayTokens(recipient, ANKR_WEI).transact({"from": roles.alice.address})
                  for recipient in (roles.bob.address, roles.carol.address, roles.dave.address)]
        h.eth.mine()
        h.eth.set_automine(True)
        blocks = {h.eth_w3.eth.get_transaction_receipt(tx)["blockNumber"] for tx in hashes}
        assert len(blocks) == 1  # the three locks share one block
        h.eth.mine(CONFIRMATIONS["ethereum"] + 1)
        validator.poll()
        assert validator.status()["signed"] == 3
        assert validator.proven.proofs == 1
    finally:
        server.stop()
