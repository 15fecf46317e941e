"""The hot-path EIP-712 digest is the generic typed-data encoder's digest, byte for byte."""

from __future__ import annotations

from eth_account import Account
from eth_account.messages import SignableMessage, _hash_eip191_message, encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from token_bridge.transfer import (
    Destination,
    Transfer,
    recover_signer,
    sign_transfer,
    struct_hash,
    transfer_digest,
    transfer_typed_data,
)

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
uint256 = st.integers(min_value=0, max_value=2**256 - 1)
transfers = st.builds(Transfer, uint256, addresses, st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex()),
                      uint256, addresses, uint256)
destinations = st.builds(Destination, uint256, addresses)
VALIDATOR = Account.from_key("0x" + "5a" * 32)


def signable(transfer: Transfer, destination: Destination) -> SignableMessage:
    """The reference: eth-account's generic typed-data encoder over the message's JSON form."""
    return encode_typed_data(full_message=transfer_typed_data(transfer, destination))


@settings(max_examples=200, deadline=None)
@given(transfers, destinations)
def test_transfer_digest__any_transfer__equals_typed_data_encoder(transfer: Transfer, destination: Destination) -> None:
    assert transfer_digest(transfer, destination) == _hash_eip191_message(signable(transfer, destination))
    assert struct_hash(transfer) == bytes(signable(transfer, destination).body)  # the relayer's row key


@settings(max_examples=25, deadline=None)
@given(transfers, destinations)
def test_sign_transfer__validator_signature__same_as_sign_message_and_recovers_validator(
    transfer: Transfer, destination: Destination
) -> None:
    signature = sign_transfer(VALIDATOR, transfer, destination)
    reference = VALIDATOR.sign_message(signable(transfer, destination))
    assert (signature.v, signature.r, signature.s) == (reference.v, reference.r, reference.s)
    assert recover_signer(transfer, destination, signature) == VALIDATOR.address


def test_recover_signer__other_destination__not_the_validator() -> None:
    transfer = Transfer(1, "0x" + "11" * 20, "0x" + "22" * 32, 0, "0x" + "33" * 20, 10**18)
    signature = sign_transfer(VALIDATOR, transfer, Destination(2, "0x" + "44" * 20))
    assert recover_signer(transfer, Destination(3, "0x" + "44" * 20), signature) != VALIDATOR.address
