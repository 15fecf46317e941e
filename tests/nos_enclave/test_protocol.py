"""Result encoding: numbers scaled by 10**decimals and rounded half to even,
checked against Python's decimal module as the reference."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Context, Decimal

import pytest
from eth_abi import decode
from hypothesis import given
from hypothesis import strategies as st

from dccn_common import PROJECT_ROOT
from nos_enclave.protocol import MAX_DATA, MAX_PARAMS, Params, ParamsError, encode_result, scale_number

REFERENCE = Context(prec=400, rounding=ROUND_HALF_EVEN)


def reference(text: str, decimals: int) -> int:
    """What the decimal module says: scale exactly, quantize to an integer half-even."""
    scaled = REFERENCE.multiply(Decimal(text), REFERENCE.power(Decimal(10), decimals))
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_EVEN, context=REFERENCE))


def params(result_type: str = "uint256", decimals: int = 2) -> Params:
    return Params("https://127.0.0.1/p", "json:price", result_type, decimals)


@given(value=st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**30), max_value=10**30,
                         places=None),
       decimals=st.integers(0, 36))
def test_scale_number__matches_decimal_round_half_even(value: Decimal, decimals: int) -> None:
    text = str(value)
    assert scale_number(text, decimals) == reference(text, decimals)


@given(digits=st.text("0123456789", min_size=1, max_size=60), point=st.integers(0, 60),
       decimals=st.integers(0, 36))
def test_scale_number__long_source_texts__exact_beyond_decimal_default_precision(digits: str, point: int,
                                                                                 decimals: int) -> None:
    cut = min(point, len(digits))
    text = f"{digits[:cut] or '0'}.{digits[cut:] or '0'}"
    assert scale_number(text, decimals) == reference(text, decimals)


@pytest.mark.parametrize(("text", "decimals", "expected"), [
    ("2345.675", 2, 234568),  # half: to the even neighbour (8)
    ("2345.665", 2, 234566),  # half: to the even neighbour (6)
    ("2345.6651", 2, 234567),  # above half
    ("0.004", 2, 0),
    ("-1.005", 2, -100),
    ("1E+3", 0, 1000),
])
def test_encode_result__more_decimals_than_requested__rounds_half_even(text, decimals, expected):
    data = encode_result(text, params("int256", decimals))
    assert decode(["int256"], data)[0] == expected


@pytest.mark.parametrize(("text", "result_type", "message"), [
    ("NaN", "uint256", "not a finite number"),
    ("Infinity", "int256", "not a finite number"),
    ("12abc", "uint256", "not a number"),
    ("1e999999999", "uint256", "too large"),
    ("-0.6", "uint256", "negative"),
    (str(2**256), "uint256", "does not fit"),
    (str(2**255), "int256", "does not fit"),
])
def test_encode_result__unencodable_number__params_error(text, result_type, message):
    with pytest.raises(ParamsError, match=message):
        encode_result(text, params(result_type, 0))


def test_size_bounds__enclave_and_oracle_contract__agree() -> None:
    """The enclave may not import the contracts, so the numbers are stated twice; this ties them."""
    source = (PROJECT_ROOT / "contracts" / "oracle" / "nos_limits.vy").read_text()
    bounds = {name: int(value) for name, value in re.findall(r"^(MAX_\w+): constant\(uint256\) = (\d+)$", source, re.M)}
    assert bounds == {"MAX_PARAMS": MAX_PARAMS, "MAX_DATA": MAX_DATA}
