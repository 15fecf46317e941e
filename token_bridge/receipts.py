"""Check a source log against the block's receiptsRoot before signing it.

A validator does not trust the RPC node's `eth_getLogs`: it fetches every receipt
of the block, re-encodes them as consensus does (EIP-2718 typed receipts, keyed by
rlp(index) in a Merkle-Patricia trie), rebuilds the trie with py-trie and compares
the root with the header's `receiptsRoot`; the header itself is checked against its
hash. Only a log found in receipts that pass this check is signed, and what is
signed is read from that log.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import rlp
from eth_utils import keccak
from hexbytes import HexBytes
from trie import HexaryTrie
from web3 import Web3


class ProofError(ValueError):
    """The block's receipts do not prove the log."""


class NodeUnavailable(RuntimeError):
    """The node cannot serve the block now (lagging, or the block was just reorged): retry later."""


@dataclass(frozen=True)
class VerifiedLog:
    address: str
    topics: tuple[bytes, ...]
    data: bytes


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def _bytes(value: Any) -> bytes:
    return bytes(HexBytes(value))


def encode_receipt(receipt: dict[str, Any]) -> bytes:
    """Consensus encoding of one receipt (EIP-2718: type byte + RLP, legacy: RLP)."""
    logs = [[_bytes(entry["address"]), [_bytes(t) for t in entry["topics"]], _bytes(entry["data"])]
            for entry in receipt["logs"]]
    status = b"\x01" if _int(receipt["status"]) == 1 else b""
    payload = rlp.encode([status, _int(receipt["cumulativeGasUsed"]), _bytes(receipt["logsBloom"]), logs])
    tx_type = _int(receipt.get("type", 0))
    return payload if tx_type == 0 else bytes([tx_type]) + payload


def receipts_root(receipts: list[dict[str, Any]]) -> bytes:
    trie = HexaryTrie(db={})
    for index, receipt in enumerate(receipts):
        trie[rlp.encode(index)] = encode_receipt(receipt)
    return bytes(trie.root_hash)


# Header fields in consensus order; later forks append fields, absent ones end the list.
_HEADER_FIELDS = [
    ("parentHash", _bytes), ("sha3Uncles", _bytes), ("miner", _bytes), ("stateRoot", _bytes),
    ("transactionsRoot", _bytes), ("receiptsRoot", _bytes), ("logsBloom", _bytes), ("difficulty", _int),
    ("number", _int), ("gasLimit", _int), ("gasUsed", _int), ("timestamp", _int), ("extraData", _bytes),
    ("mixHash", _bytes), ("nonce", _bytes), ("baseFeePerGas", _int), ("withdrawalsRoot", _bytes),
    ("blobGasUsed", _int), ("excessBlobGas", _int), ("parentBeaconBlockRoot", _bytes), ("requestsHash", _bytes),
]


def header_hash(header: dict[str, Any]) -> bytes:
    fields = []
    for name, convert in _HEADER_FIELDS:
        if header.get(name) is None:
            break
        fields.append(convert(header[name]))
    return keccak(rlp.encode(fields))


def verify_block_receipts(header: dict[str, Any], receipts: list[dict[str, Any]]) -> None:
    """Raise ProofError unless the header hashes to its hash and the receipts to its receiptsRoot."""
    if header_hash(header) != _bytes(header["hash"]):
        raise ProofError(f"block {_int(header['number'])}: header does not hash to its block hash")
    root = receipts_root(receipts)
    if root != _bytes(header["receiptsRoot"]):
        raise ProofError(
            f"block {_int(header['number'])}: receipts trie root 0x{root.hex()} != receiptsRoot "
            f"{HexBytes(header['receiptsRoot']).to_0x_hex()}"
        )


def find_log(receipts: list[dict[str, Any]], tx_hash: str, log_index: int) -> VerifiedLog:
    """The log at block-wide `log_index`, which must belong to transaction `tx_hash`."""
    position = 0
    for receipt in receipts:
        logs = receipt["logs"]
        if position + len(logs) > log_index:
            if _bytes(receipt["transactionHash"]) != _bytes(tx_hash):
                raise ProofError(f"log {log_index} belongs to another transaction")
            if _int(receipt["status"]) != 1:
                raise ProofError(f"transaction {tx_hash} reverted")
            entry = logs[log_index - position]
            return VerifiedLog(Web3.to_checksum_address(entry["address"]),
                               tuple(_bytes(t) for t in entry["topics"]), _bytes(entry["data"]))
        position += len(logs)
    raise ProofError(f"block has no log {log_index}")


def fetch_receipts(w3: Web3, block_hash: str) -> list[dict[str, Any]]:
    receipts = w3.provider.make_request("eth_getBlockReceipts", [block_hash])  # type: ignore[arg-type]
    if receipts.get("error") or receipts.get("result") is None:
        raise NodeUnavailable(f"node returned no receipts for {block_hash}: {receipts.get('error')}")
    result: list[dict[str, Any]] = sorted(receipts["result"], key=lambda r: _int(r["transactionIndex"]))
    return result


def fetch_header(w3: Web3, block_hash: str) -> dict[str, Any]:
    response = w3.provider.make_request("eth_getBlockByHash", [block_hash, False])  # type: ignore[arg-type]
    if response.get("result") is None:
        raise NodeUnavailable(f"block {block_hash} not found")
    header: dict[str, Any] = response["result"]
    return header


def verified_log(receipts_node: Web3, header_node: Web3, block_hash: str, tx_hash: str, log_index: int) -> VerifiedLog:
    """Fetch, check and return the log; `header_node` may be a second, independent node."""
    header = fetch_header(header_node, block_hash)
    receipts = fetch_receipts(receipts_node, block_hash)
    verify_block_receipts(header, receipts)
    return find_log(receipts, tx_hash, log_index)


class ProvenBlocks:
    """Receipts of recently proven blocks, by block hash: the trie is rebuilt once per block, not per log.

    Caching by hash is safe: the hash commits to the header and so to its receiptsRoot, which
    commits to every receipt; a reorg gives the block another hash. A block that fails the
    check is not kept, so each of its logs is checked (and rejected) on its own.
    """

    def __init__(self, keep: int = 64) -> None:
        self.keep = keep
        self._blocks: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self.proofs = 0  # blocks checked so far (tests and metrics)

    def verified_log(self, receipts_node: Web3, header_node: Web3, block_hash: str, tx_hash: str,
                     log_index: int) -> VerifiedLog:
        key = HexBytes(block_hash).to_0x_hex()
        receipts = self._blocks.get(key)
        if receipts is None:
            header = fetch_header(header_node, key)
            receipts = fetch_receipts(receipts_node, key)
            verify_block_receipts(header, receipts)
            self.proofs += 1
            self._blocks[key] = receipts
            if len(self._blocks) > self.keep:
                self._blocks.popitem(last=False)
        return find_log(receipts, tx_hash, log_index)
