"""Enode ids, registry keys, enode URLs and the signed self-update message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coincurve import PublicKey
from eth_account.signers.local import LocalAccount
from eth_typing import Hash32
from eth_utils import keccak, to_checksum_address

from dccn_common.eip712 import Domain, Struct, digest, typed_data
from enode_dns.hosts import HostKind, classify_host

DOMAIN_NAME = "DCCN Enode Registry"
DOMAIN_VERSION = "1"
ENDPOINT_UPDATE = Struct("EndpointUpdate", [("bytes32", "enodeKey"), ("string", "host"), ("uint16", "port"),
                                             ("uint256", "sequence")])


class EnodeError(ValueError):
    """A malformed enode id or URL."""


@dataclass(frozen=True)
class EnodeId:
    """A node's 64-byte secp256k1 public key (x || y), as Besu prints it in hex."""

    public_key: bytes

    def __post_init__(self) -> None:
        if len(self.public_key) != 64:
            raise EnodeError(f"an enode id is 64 bytes, got {len(self.public_key)}")
        try:
            PublicKey(b"\x04" + self.public_key)
        except ValueError as err:
            raise EnodeError("the enode id is not a secp256k1 public key") from err

    @classmethod
    def from_hex(cls, text: str) -> EnodeId:
        digits = text.removeprefix("0x").removeprefix("enode://").split("@")[0]
        try:
            raw = bytes.fromhex(digits)
        except ValueError as err:
            raise EnodeError(f"enode id is not hex: {text[:20]}...") from err
        return cls(raw)

    @classmethod
    def of_account(cls, account: LocalAccount) -> EnodeId:
        return cls(PublicKey.from_secret(bytes(account.key)).format(compressed=False)[1:])

    @property
    def hex(self) -> str:
        return self.public_key.hex()

    @property
    def high(self) -> bytes:
        return self.public_key[:32]

    @property
    def low(self) -> bytes:
        return self.public_key[32:]

    @property
    def key(self) -> bytes:
        """The registry key: keccak256 of the public key."""
        return keccak(self.public_key)

    @property
    def address(self) -> str:
        """The Ethereum address of the enode key (what signs self-updates)."""
        return to_checksum_address(self.key[12:])


def enode_url(enode_hex: str, host: str, port: int) -> str:
    """enode://<id>@<host>:<port>, with IPv6 literals in brackets."""
    shown = f"[{host}]" if classify_host(host)[0] == HostKind.IPV6 else host
    return f"enode://{enode_hex}@{shown}:{port}"


def registry_domain(chain_id: int, rules_address: str) -> Domain:
    return Domain(DOMAIN_NAME, DOMAIN_VERSION, chain_id, rules_address)


def endpoint_update_typed_data(
    chain_id: int, rules_address: str, enode_key: bytes, host: str, port: int, sequence: int
) -> dict[str, Any]:
    """The self-update in EIP-712 JSON form (what a wallet's eth_signTypedData_v4 takes)."""
    return typed_data(registry_domain(chain_id, rules_address), ENDPOINT_UPDATE, enode_key, host, port, sequence)


def endpoint_update_digest(
    chain_id: int, rules_address: str, enode_key: bytes, host: str, port: int, sequence: int
) -> bytes:
    """The EIP-712 digest `EnodeRules.endpointUpdateDigest` computes."""
    return digest(registry_domain(chain_id, rules_address), ENDPOINT_UPDATE.hash(enode_key, host, port, sequence))


def sign_endpoint_update(
    node_key: LocalAccount, chain_id: int, rules_address: str, host: str, port: int, sequence: int
) -> bytes:
    """The 65-byte signature `EnodeRules.updateEndpoint` accepts from this node."""
    enode = EnodeId.of_account(node_key)
    message_hash = endpoint_update_digest(chain_id, rules_address, enode.key, host, port, sequence)
    return bytes(node_key.unsafe_sign_hash(Hash32(message_hash)).signature)
