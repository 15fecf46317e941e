"""The signed message: EIP-712 `Transfer` in the destination bridge's domain."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_typing import Hash32
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes

DOMAIN_NAME = "Ankr Bridge"
DOMAIN_VERSION = "1"
TRANSFER_TYPE = [
    {"name": "srcChainId", "type": "uint256"},
    {"name": "srcBridge", "type": "address"},
    {"name": "srcTxHash", "type": "bytes32"},
    {"name": "logIndex", "type": "uint256"},
    {"name": "recipient", "type": "address"},
    {"name": "amount", "type": "uint256"},
]
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

    def message(self) -> dict[str, Any]:
        return {
            "srcChainId": self.src_chain_id,
            "srcBridge": to_checksum_address(self.src_bridge),
            "srcTxHash": bytes(HexBytes(self.src_tx_hash)),
            "logIndex": self.log_index,
            "recipient": to_checksum_address(self.recipient),
            "amount": self.amount,
        }

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


def signable(transfer: Transfer, destination: Destination) -> Any:
    return encode_typed_data(full_message={
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Transfer": TRANSFER_TYPE,
        },
        "primaryType": "Transfer",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": destination.chain_id,
                   "verifyingContract": to_checksum_address(destination.bridge)},
        "message": transfer.message(),
    })


_EIP712_DOMAIN_TYPEHASH = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
_TRANSFER_TYPEHASH = keccak(("Transfer(" + ",".join(f"{f['type']} {f['name']}" for f in TRANSFER_TYPE) + ")").encode())


@lru_cache(maxsize=64)
def _domain_separator(destination: Destination) -> bytes:
    return keccak(_EIP712_DOMAIN_TYPEHASH + keccak(DOMAIN_NAME.encode()) + keccak(DOMAIN_VERSION.encode())
                  + destination.chain_id.to_bytes(32, "big") + bytes(12) + bytes(HexBytes(destination.bridge)))


def struct_hash(transfer: Transfer) -> bytes:
    """EIP-712 hashStruct of the transfer (`signable(...).body`), hashed directly."""
    return keccak(_TRANSFER_TYPEHASH + transfer.src_chain_id.to_bytes(32, "big") + bytes(12)
                  + bytes(HexBytes(transfer.src_bridge)) + bytes(HexBytes(transfer.src_tx_hash)).rjust(32, b"\0")
                  + transfer.log_index.to_bytes(32, "big") + bytes(12) + bytes(HexBytes(transfer.recipient))
                  + transfer.amount.to_bytes(32, "big"))


def transfer_digest(transfer: Transfer, destination: Destination) -> bytes:
    """The EIP-712 digest of `signable`, hashed directly (the same bytes, without the generic
    typed-data encoder, which costs more than the signature itself on the hot path)."""
    return keccak(b"\x19\x01" + _domain_separator(destination) + struct_hash(transfer))


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
