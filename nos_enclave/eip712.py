"""EIP-712 typed-data hashing: the one encoder every service signs with.

The enclave's Response, the bridge's Transfer and the enode registry's EndpointUpdate are flat structs of
static types, so a struct hash is keccak(typeHash || one 32-byte word per field) and the digest is
keccak(0x19 0x01 || domainSeparator || structHash). This module builds those words directly: the generic
typed-data encoder of eth-account costs more than the signature itself on the bridge validator's hot path.
`typed_data` gives the same message in EIP-712 JSON form, for wallets and as the reference in tests.

The code lives in the enclave's package, which may import nothing from the project (its measurement
covers all it runs); dccn_common.eip712 re-exports it for every other service.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import sha3  # safe-pysha3 (eth-hash's fast backend): several times faster than pycryptodome
from eth_utils import is_address, to_checksum_address

Word = Callable[[Any], bytes]
_UINT = re.compile(r"uint(\d+)")
_INT = re.compile(r"int(\d+)")
_BYTES = re.compile(r"bytes(\d+)")


def keccak(data: bytes) -> bytes:
    return sha3.keccak_256(data).digest()  # type: ignore[no-any-return]


def uint_word(bits: int = 256) -> Word:
    limit = 1 << bits

    def word(value: int) -> bytes:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < limit:
            raise ValueError(f"uint{bits} value out of range: {value!r}")
        return value.to_bytes(32, "big")
    return word


def int_word(bits: int = 256) -> Word:
    limit = 1 << (bits - 1)

    def word(value: int) -> bytes:
        if not isinstance(value, int) or isinstance(value, bool) or not -limit <= value < limit:
            raise ValueError(f"int{bits} value out of range: {value!r}")
        return value.to_bytes(32, "big", signed=True)
    return word


def _raw(value: bytes | str, what: str) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        try:
            return bytes.fromhex(value.removeprefix("0x").removeprefix("0X"))
        except ValueError as err:
            raise ValueError(f"{what} value is not hex: {value[:70]!r}") from err
    raise ValueError(f"{what} value must be bytes or hex, got {type(value).__name__}")


def fixed_bytes_word(size: int = 32) -> Word:
    """bytesN: the value left-aligned in its word (shorter values padded on the right, as the ABI does)."""

    def word(value: bytes | str) -> bytes:
        if type(value) is bytes and len(value) == 32 == size:  # the common case: a hash, already a word
            return value
        raw = _raw(value, f"bytes{size}")
        if len(raw) > size:
            raise ValueError(f"bytes{size} value is {len(raw)} bytes")
        return raw.ljust(32, b"\0")
    return word


def address_word(value: bytes | str) -> bytes:
    """An address, right-aligned. Hex text in any case (the hot path checks no checksum: the caller's
    config or the chain already did)."""
    raw = _raw(value, "address")
    if len(raw) != 20:
        raise ValueError(f"an address is 20 bytes, got {len(raw)}")
    return bytes(12) + raw


def bool_word(value: bool) -> bytes:
    return (1 if value else 0).to_bytes(32, "big")


def string_word(value: str) -> bytes:
    return keccak(value.encode())


def bytes_word(value: bytes | str) -> bytes:
    return keccak(_raw(value, "bytes"))


def field_word(type_name: str) -> Word:
    """The encoder of one field of an atomic EIP-712 type (no arrays or nested structs: none is signed here)."""
    if type_name == "address":
        return address_word
    if type_name == "bool":
        return bool_word
    if type_name == "string":
        return string_word
    if type_name == "bytes":
        return bytes_word
    for pattern, make, widths in ((_UINT, uint_word, range(8, 257, 8)), (_INT, int_word, range(8, 257, 8)),
                                  (_BYTES, fixed_bytes_word, range(1, 33))):
        match = pattern.fullmatch(type_name)
        if match and int(match.group(1)) in widths:
            return make(int(match.group(1)))
    raise ValueError(f"unsupported EIP-712 field type {type_name!r}")


@dataclass(frozen=True)
class Struct:
    """A flat EIP-712 struct type: `Struct("Mail", [("address", "to"), ("string", "contents")])`."""

    name: str
    fields: tuple[tuple[str, str], ...]
    words: tuple[Word, ...] = field(init=False, repr=False, compare=False)

    def __init__(self, name: str, fields: Sequence[tuple[str, str]]) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "fields", tuple((str(kind), str(key)) for kind, key in fields))
        object.__setattr__(self, "words", tuple(field_word(kind) for kind, _ in self.fields))

    @classmethod
    def from_types(cls, name: str, members: Sequence[dict[str, str]]) -> Struct:
        """From an EIP-712 JSON type list: [{"name": ..., "type": ...}, ...]."""
        return cls(name, [(member["type"], member["name"]) for member in members])

    @property
    def encode_type(self) -> str:
        return f"{self.name}({','.join(f'{kind} {key}' for kind, key in self.fields)})"

    @cached_property
    def type_hash(self) -> bytes:
        return keccak(self.encode_type.encode())

    def types(self) -> list[dict[str, str]]:
        """The EIP-712 JSON type list."""
        return [{"name": key, "type": kind} for kind, key in self.fields]

    def hash(self, *values: Any) -> bytes:
        """hashStruct of the values, in field order."""
        if len(values) != len(self.words):
            raise ValueError(f"{self.name} has {len(self.words)} fields, got {len(values)} values")
        return keccak(self.type_hash + b"".join([word(value) for word, value in zip(self.words, values, strict=True)]))

    def message(self, *values: Any) -> dict[str, Any]:
        """The values by field name (EIP-712 JSON `message`)."""
        return {key: value for (_, key), value in zip(self.fields, values, strict=True)}


DOMAIN = Struct("EIP712Domain", [("string", "name"), ("string", "version"), ("uint256", "chainId"),
                                 ("address", "verifyingContract")])


@dataclass(frozen=True)
class Domain:
    """An EIP-712 domain (name, version, chainId, verifyingContract), its separator computed once."""

    name: str
    version: str
    chain_id: int
    verifying_contract: str

    def __post_init__(self) -> None:
        if not is_address(self.verifying_contract):  # 20 bytes as hex, in any case (as eth-abi takes it)
            raise ValueError(f"verifying contract {self.verifying_contract!r} is not an address")

    @cached_property
    def separator(self) -> bytes:
        return DOMAIN.hash(self.name, self.version, self.chain_id, self.verifying_contract)

    def as_json(self) -> dict[str, Any]:
        """EIP-712 JSON `domain`."""
        return {"name": self.name, "version": self.version, "chainId": self.chain_id,
                "verifyingContract": to_checksum_address(self.verifying_contract)}


def digest(domain: Domain, struct_hash: bytes) -> bytes:
    """What is signed: keccak(0x19 0x01 || domainSeparator || hashStruct(message))."""
    return keccak(b"\x19\x01" + domain.separator + struct_hash)


def typed_data(domain: Domain, struct: Struct, *values: Any) -> dict[str, Any]:
    """The message in EIP-712 JSON form (eth_signTypedData_v4, eth-account's `encode_typed_data(full_message=...)`)."""
    return {
        "types": {DOMAIN.name: DOMAIN.types(), struct.name: struct.types()},
        "primaryType": struct.name,
        "domain": domain.as_json(),
        "message": struct.message(*values),
    }
