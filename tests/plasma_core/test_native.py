"""The compiled hot path (plasma_fast, through plasma_core.wire) gives exactly the
pure-Python reference's answers and errors, on random transactions and on malformed bytes;
and everything still works without it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import rlp
from hypothesis import given
from hypothesis import strategies as st

from plasma_core import recovery, wire

uint = st.one_of(st.integers(0, 300), st.integers(0, 2**64), st.integers(0, 2**256 - 1))
addresses = st.binary(min_size=20, max_size=20).map(wire.to_checksum_address)
transactions = st.builds(
    wire.Transaction,
    blknum1=uint, txindex1=uint, oindex1=uint, sig1=st.binary(min_size=65, max_size=65),
    blknum2=uint, txindex2=uint, oindex2=uint, sig2=st.binary(min_size=65, max_size=65),
    newowner1=addresses, denom1=uint, newowner2=addresses, denom2=uint, fee=uint,
)


@pytest.fixture
def pure_python() -> Iterator[None]:
    """wire as it runs when plasma_fast is not built."""
    with wire.reference_only():
        yield


def _error_of(call: object, *args: object) -> str | None:
    try:
        call(*args)  # type: ignore[operator]
    except wire.WireError as err:
        return str(err)
    return None


def test_native__built_by_bootstrap__is_what_wire_runs() -> None:
    if os.environ.get("PLASMA_PURE_PYTHON"):
        pytest.skip("PLASMA_PURE_PYTHON asks for the pure-Python path")
    assert wire.NATIVE, "plasma_fast is not built: run `make install`"


@given(transactions)
def test_parse__same_transaction_signing_hash_and_leaf_as_the_reference(tx: wire.Transaction) -> None:
    raw = wire.encode(tx)
    parsed, reference = wire.parse(raw), wire.parse_reference(raw)
    assert parsed == reference
    assert parsed.tx == tx
    assert parsed.signing_hash == wire.keccak(wire.signing_bytes(tx))
    assert parsed.leaf == wire.keccak(raw)


@given(st.binary(max_size=300))
def test_parse__garbage__same_answer_or_error_as_the_reference(raw: bytes) -> None:
    expected = _error_of(wire.parse_reference, raw)
    assert _error_of(wire.parse, raw) == expected
    if expected is None:
        assert wire.parse(raw) == wire.parse_reference(raw)


@given(transactions, st.integers(0, 10_000), st.integers(0, 255), st.booleans())
def test_parse__mutated_encoding__same_answer_or_error_as_the_reference(tx: wire.Transaction, where: int, byte: int,
                                                                        truncate: bool) -> None:
    raw = bytearray(wire.encode(tx))
    where %= len(raw)
    if truncate:
        del raw[where:]
    else:
        raw[where] = byte
    expected = _error_of(wire.parse_reference, bytes(raw))
    assert _error_of(wire.parse, bytes(raw)) == expected
    if expected is None:
        assert wire.parse(bytes(raw)) == wire.parse_reference(bytes(raw))


@given(st.lists(st.one_of(st.binary(max_size=70), st.lists(st.binary(max_size=3), max_size=2)), min_size=11, max_size=15))
def test_parse__random_rlp_lists__same_answer_or_error_as_the_reference(items: list[object]) -> None:
    raw = rlp.encode(items)
    expected = _error_of(wire.parse_reference, raw)
    assert _error_of(wire.parse, raw) == expected
    if expected is None:
        assert wire.parse(raw) == wire.parse_reference(raw)


def test_parse__non_canonical_integer__refused() -> None:
    items = rlp.decode(wire.encode(wire.Transaction(blknum1=5)))
    items[0] = b"\x00\x05"
    with pytest.raises(wire.WireError, match="leading zero"):
        wire.parse(rlp.encode(items))


@given(st.integers(1, wire.SECP256K1_N - 1), st.binary(min_size=32, max_size=32))
def test_recover__same_signer_as_the_reference(key: int, digest: bytes) -> None:
    signature = wire.sign_hash(digest, key)
    assert wire.recover(digest, signature) == wire.recover_reference(digest, signature)
    assert wire.recover_many(digest, signature) == [wire.recover_reference(digest, signature)]


@given(st.binary(min_size=65, max_size=65), st.binary(min_size=32, max_size=32))
def test_recover__random_signatures__same_signer_or_error_as_the_reference(signature: bytes, digest: bytes) -> None:
    expected = _error_of(wire.recover_reference, digest, signature)
    assert _error_of(wire.recover, digest, signature) == expected
    reference = None if expected else wire.recover_reference(digest, signature)
    assert wire.recover_many(digest, signature) == [reference]
    if expected is None:
        assert wire.recover(digest, signature) == reference


@given(st.integers(1, wire.SECP256K1_N - 1), st.binary(min_size=32, max_size=32),
       st.sampled_from(["high_s", "v", "r_zero", "r_n", "s_zero"]))
def test_recover__edge_signatures__refused_by_both(key: int, digest: bytes, how: str) -> None:
    signature = bytearray(wire.sign_hash(digest, key))
    s = int.from_bytes(signature[32:64], "big")
    if how == "high_s":
        signature[32:64] = (wire.SECP256K1_N - s).to_bytes(32, "big")
        signature[64] = 55 - signature[64]
    elif how == "v":
        signature[64] -= 27
    elif how == "r_zero":
        signature[:32] = bytes(32)
    elif how == "r_n":
        signature[:32] = wire.SECP256K1_N.to_bytes(32, "big")
    else:
        signature[32:64] = bytes(32)
    expected = _error_of(wire.recover_reference, digest, bytes(signature))
    assert expected is not None
    assert _error_of(wire.recover, digest, bytes(signature)) == expected
    assert wire.recover_many(digest, bytes(signature)) == [None]


@given(st.binary(max_size=700))
def test_compiled_keccak__equals_pysha3(data: bytes) -> None:
    plasma_fast = pytest.importorskip("plasma_fast")
    assert plasma_fast.keccak(data) == wire.keccak(data)


@given(st.binary(min_size=20, max_size=20))
def test_checksum__is_eip55(raw: bytes) -> None:
    assert wire.checksum(raw) == wire.to_checksum_address(raw)


@given(transactions)
def test_pure_python_path__parses_and_recovers_like_the_compiled_one(tx: wire.Transaction) -> None:
    raw = wire.encode(wire.sign(tx, 7, 0))
    compiled = wire.parse(raw)
    signer = wire.recover(compiled.signing_hash, compiled.tx.sig1)
    with wire.reference_only():
        assert not wire.NATIVE
        assert wire.parse(raw) == compiled
        assert wire.recover(compiled.signing_hash, compiled.tx.sig1) == signer
        assert wire.recover_many(compiled.signing_hash, compiled.tx.sig1) == [signer]


def test_signer_pool__without_the_compiled_path__uses_worker_processes(pure_python: None) -> None:
    pool = recovery.signer_pool(1)
    try:
        assert isinstance(pool, recovery.SignerPool)
    finally:
        pool.close()


def test_operator_modules__import_and_validate_without_plasma_fast() -> None:
    script = ("from plasma_core import wire, validation; assert not wire.NATIVE; "
              "tx = wire.sign(wire.Transaction(blknum1=1000, newowner1='0x' + '11' * 20, denom1=5), 3, 0); "
              "p = validation.parse('0x' + wire.encode(tx).hex()); "
              "assert wire.recover(p.signing_hash, p.tx.sig1) == wire.recover_reference(p.signing_hash, p.tx.sig1)")
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ, "PLASMA_PURE_PYTHON": "1"})
