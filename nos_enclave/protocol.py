"""What the contract, enclave, relay and requesters agree on: request params,
private-request envelopes, result encoding and the EIP-712 response digest.

Public params are UTF-8 JSON:

    {"url": "https://host:port/path", "path": "json:data.price",
     "type": "uint256", "decimals": 2}

`path` is the selector: `json:a.b[0].c`, `xml:./quote/price` (ElementTree
path) or `regex:price=(\\d+)` (first group). `type` is how the selected text
becomes the response data: uint256 / int256 (ABI-encoded, times
10**decimals, rounded half to even when the source has more decimals),
string (UTF-8) or bytes32.

A private request is PRIVATE_MARKER || ECIES(enclave encryption key, the same
JSON plus "reply_to": <requester-named public key, hex>), with associated data
requester || request id. Its response data is ECIES(reply_to, encoded result)
with the request id as associated data, so only the holder of the reply key
reads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from coincurve import PublicKey
from eth_utils import to_canonical_address

from nos_enclave.crypto import ENVELOPE_OVERHEAD, PUBKEY_BYTES, ecies_encrypt
from nos_enclave.eip712 import Domain, Struct, digest, keccak

PRIVATE_MARKER = b"\x01"
MAX_PARAMS = 1024
MAX_DATA = 512
SELECTOR_KINDS = ("json", "xml", "regex")
RESULT_TYPES = ("uint256", "int256", "string", "bytes32")
# 2**256 has 78 decimal digits: anything longer cannot be encoded.
MAX_INTEGER_DIGITS = 78


class ParamsError(ValueError):
    """Params that the enclave cannot act on."""


class FetchFailed(RuntimeError):
    """A request the enclave could not answer: the source could not be fetched authentically inside the
    enclave, or (on the relay's side) the enclave replied `error`. `permanent` when retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Params:
    url: str
    path: str
    type: str = "uint256"
    decimals: int = 0
    reply_to: bytes | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 443

    @property
    def target(self) -> str:
        parts = urlsplit(self.url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def to_json(self) -> bytes:
        body: dict[str, Any] = {"url": self.url, "path": self.path, "type": self.type}
        if self.decimals:
            body["decimals"] = self.decimals
        if self.reply_to is not None:
            body["reply_to"] = self.reply_to.hex()
        return json.dumps(body, separators=(",", ":")).encode()


def parse_params(raw: bytes) -> Params:
    try:
        body = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ParamsError(f"params are not JSON: {err}") from err
    if not isinstance(body, dict):
        raise ParamsError("params must be a JSON object")
    url, path = body.get("url"), body.get("path")
    if not isinstance(url, str) or urlsplit(url).scheme != "https" or not urlsplit(url).hostname:
        raise ParamsError("params.url must be an https:// URL")
    if not isinstance(path, str) or path.split(":", 1)[0] not in SELECTOR_KINDS or ":" not in path:
        raise ParamsError(f"params.path must start with one of {', '.join(k + ':' for k in SELECTOR_KINDS)}")
    result_type = body.get("type", "uint256")
    if result_type not in RESULT_TYPES:
        raise ParamsError(f"params.type must be one of {', '.join(RESULT_TYPES)}")
    decimals = body.get("decimals", 0)
    if not isinstance(decimals, int) or not 0 <= decimals <= 36:
        raise ParamsError("params.decimals must be an integer in 0..36")
    reply_to = body.get("reply_to")
    try:
        reply_key = bytes.fromhex(reply_to) if reply_to is not None else None
    except (TypeError, ValueError) as err:
        raise ParamsError("params.reply_to must be a hex public key") from err
    return Params(url, path, result_type, decimals, reply_key)


def check_params(raw: bytes) -> None:
    """What the relay can check before any fetch (raises ParamsError): public
    params fully, a private envelope's framing (its content only the enclave reads)."""
    if raw.startswith(PRIVATE_MARKER):
        check_envelope(raw[len(PRIVATE_MARKER) :])
    else:
        parse_params(raw)


def check_envelope(ciphertext: bytes) -> None:
    """The framing anyone can check without the enclave's key: length and a valid ephemeral point."""
    if len(ciphertext) < ENVELOPE_OVERHEAD:
        raise ParamsError(f"private envelope is {len(ciphertext)} bytes; at least {ENVELOPE_OVERHEAD} expected")
    try:
        PublicKey(ciphertext[:PUBKEY_BYTES])
    except ValueError as err:
        raise ParamsError("private envelope does not start with a compressed secp256k1 public key") from err


def private_associated_data(requester: str, request_id: bytes) -> bytes:
    return to_canonical_address(requester) + request_id


def encrypt_params(enclave_public_key: bytes, params: Params, requester: str, request_id: bytes) -> bytes:
    """What a requester puts on chain for a private request."""
    if params.reply_to is None:
        raise ParamsError("a private request names a reply_to public key")
    sealed = ecies_encrypt(enclave_public_key, params.to_json(), private_associated_data(requester, request_id))
    raw = PRIVATE_MARKER + sealed
    if len(raw) > MAX_PARAMS:
        raise ParamsError(f"params are {len(raw)} bytes; the oracle takes at most {MAX_PARAMS}")
    return raw


def scale_number(text: str, decimals: int) -> int:
    """`text` times 10**decimals, rounded half to even (banker's rounding) to an integer.

    Exact at any length: the digits are scaled as integers, never through a
    Decimal context whose precision would round first.
    """
    try:
        value = Decimal(text)
    except InvalidOperation as err:
        raise ParamsError(f"selected value {text[:40]!r} is not a number") from err
    if not value.is_finite():
        raise ParamsError(f"selected value {text[:40]!r} is not a finite number")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    coefficient = int("".join(map(str, digits)) or "0")
    shift = exponent + decimals
    if coefficient == 0:
        return 0
    if shift >= 0:
        if len(digits) + shift > MAX_INTEGER_DIGITS:  # also stops 1e999999999 from being expanded
            raise ParamsError(f"selected value {text[:40]} is too large")
        number = coefficient * 10**shift
    elif -shift > len(digits):
        number = 0  # below half of the last unit: rounds to zero
    else:
        unit = 10**-shift
        number, rest = divmod(coefficient, unit)
        if 2 * rest > unit or (2 * rest == unit and number % 2 == 1):
            number += 1
    return -number if sign else number


def encode_result(value: str, params: Params) -> bytes:
    """The selected text as response data."""
    text = value.strip()
    if params.type == "string":
        data = text.encode()
    elif params.type == "bytes32":
        raw = bytes.fromhex(text.removeprefix("0x"))
        if len(raw) != 32:
            raise ParamsError("selected value is not 32 bytes of hex")
        data = raw
    else:
        number = scale_number(text, params.decimals)
        if params.type == "uint256" and number < 0:
            raise ParamsError(f"{text} is negative; use type int256")
        low, high = (0, 2**256) if params.type == "uint256" else (-(2**255), 2**255)
        if not low <= number < high:
            raise ParamsError(f"{text[:40]} times 10**{params.decimals} does not fit {params.type}")
        data = number.to_bytes(32, "big", signed=params.type == "int256")  # the ABI word of either type
    if len(data) > MAX_DATA:
        raise ParamsError(f"result is {len(data)} bytes; the oracle takes at most {MAX_DATA}")
    return data


ENCRYPTION_KEY_PREFIX = b"NOS encryption key v1"


def encryption_key_digest(encryption_public_key: bytes) -> bytes:
    """What an enclave signs to publish its encryption key on chain (NosOracle.publishEncryptionKey)."""
    return keccak(ENCRYPTION_KEY_PREFIX + encryption_public_key)


RESPONSE = Struct("Response", [("bytes32", "requestId"), ("bytes32", "paramsHash"), ("bytes32", "dataHash")])


@lru_cache(maxsize=64)
def response_domain(chain_id: int, oracle: str) -> Domain:
    """The NOS domain of one oracle. Cached (with its separator): one enclave serves one or a few oracles."""
    return Domain("NOS", "1", chain_id, oracle)


def response_digest(chain_id: int, oracle: str, request_id: bytes, params_hash: bytes, data: bytes) -> bytes:
    """The EIP-712 digest of Response(requestId, paramsHash, dataHash) in the NOS domain."""
    return digest(response_domain(chain_id, oracle), RESPONSE.hash(request_id, params_hash, keccak(data)))
