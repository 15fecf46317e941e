"""The signed message: EIP-712 `Transfer` in the destination bridge's domain."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import Hash32
from eth_utils import to_checksum_address
from hexbytes import HexBytes

from dccn_common.eip712 import Domain, Struct, digest, keccak, typed_data

DOMAIN_NAME = "Ankr Bridge"
DOMAIN_VERSION = "1"
TRANSFER = Struct("Transfer", [("uint256", "srcChainId"), ("address", "srcBridge"), ("bytes32", "srcTxHash"),
                               ("uint256", "logIndex"), ("address", "recipient"), ("uint256", "amount")])
# secp256k1 group order; signatures with s above half of it are refused on chain.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass(frozen=True)
class Transfer:
    """One source log that pays `amount` to `recipient` on the other side."""

    src_chain_id: int
    src_bridge: str
    src_tx_hash: str
    log_index: int
    recipient: str
    amount: int

    def as_tuple(self) -> tuple[int, str, bytes, int, str, int]:
        """The Vyper `Transfer` struct as web3 encodes it."""
        return (self.src_chain_id, to_checksum_address(self.src_bridge), bytes(HexBytes(self.src_tx_hash)),
                self.log_index, to_checksum_address(self.recipient), self.amount)

    def key(self) -> str:
        """The replay key, as the contract computes it: the source log."""
        encoded = (self.src_chain_id.to_bytes(32, "big") + bytes(12) + bytes(HexBytes(self.src_bridge))
                   + bytes(HexBytes(self.src_tx_hash)) + self.log_index.to_bytes(32, "big"))
        return "0x" + keccak(encoded).hex()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Transfer:
        return cls(int(data["src_chain_id"]), to_checksum_address(data["src_bridge"]), HexBytes(data["src_tx_hash"]).to_0x_hex(),
                   int(data["log_index"]), to_checksum_address(data["recipient"]), int(data["amount"]))


@dataclass(frozen=True)
class Destination:
    """The bridge that pays: its chain and address form the EIP-712 domain."""

    chain_id: int
    bridge: str


@dataclass(frozen=True)
class Signature:
    v: int
    r: int
    s: int

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.v, self.r, self.s)


@lru_cache(maxsize=64)
def bridge_domain(destination: Destination) -> Domain:
    """The destination bridge's EIP-712 domain, cached with its separator."""
    return Domain(DOMAIN_NAME, DOMAIN_VERSION, destination.chain_id, destination.bridge)


def transfer_typed_data(transfer: Transfer, destination: Destination) -> dict[str, Any]:
    """The signed message in EIP-712 JSON form (what a wallet's eth_signTypedData_v4 takes)."""
    return typed_data(bridge_domain(destination), TRANSFER, *transfer.as_tuple())


def struct_hash(transfer: Transfer) -> bytes:
    """EIP-712 hashStruct of the transfer (the relayer's row key)."""
    return TRANSFER.hash(transfer.src_chain_id, transfer.src_bridge, transfer.src_tx_hash, transfer.log_index,
                         transfer.recipient, transfer.amount)


def transfer_digest(transfer: Transfer, destination: Destination) -> bytes:
    """The EIP-712 digest the validators sign and the destination bridge checks."""
    return digest(bridge_domain(destination), struct_hash(transfer))


def sign_transfer(account: LocalAccount, transfer: Transfer, destination: Destination) -> Signature:
    """eth-account signs with low s (RFC 6979 + normalisation), as the contract requires."""
    signed = account.unsafe_sign_hash(Hash32(transfer_digest(transfer, destination)))
    return Signature(int(signed.v), int(signed.r), int(signed.s))


def recover_signer(transfer: Transfer, destination: Destination, signature: Signature) -> str:
    return str(Account._recover_hash(transfer_digest(transfer, destination), vrs=signature.as_tuple()))


def sorted_for_contract(signatures: dict[str, Signature], limit: int) -> list[tuple[int, int, int]]:
    """The first `limit` signatures by signer address, strictly increasing as the contract checks."""
    ordered = sorted(signatures.items(), key=lambda item: int(item[0], 16))
    return [sig.as_tuple() for _, sig in ordered[:limit]]
