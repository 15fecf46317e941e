"""ANKR token, tested with ape on anvil: fixed supply, ERC-20, EIP-2612 permit."""

from __future__ import annotations

from typing import Any

import ape
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

pytestmark = pytest.mark.xdist_group("ape")

SUPPLY = 10_000_000_000 * 10**18


def test_deploy__whole_fixed_supply_to_deployer(token: Any, deployer: Any) -> None:
    assert token.totalSupply() == SUPPLY == token.TOTAL_SUPPLY()
    assert token.balanceOf(deployer) == SUPPLY
    assert (token.name(), token.symbol(), token.decimals()) == ("Ankr Network", "ANKR", 18)


def test_supply__nothing_can_mint_or_burn(token: Any) -> None:
    names = {abi.name for abi in token.contract_type.abi if abi.type == "function"}
    assert not names & {"mint", "set_minter", "burn", "burn_from", "transfer_ownership"}


def test_transfer__moves_balance_and_emits_event(token: Any, deployer: Any, holders: list[Any]) -> None:
    receipt = token.transfer(holders[0], 1_000, sender=deployer)
    assert token.balanceOf(holders[0]) == 1_000
    assert [log.value for log in receipt.decode_logs(token.Transfer)] == [1_000]


def test_transfer__more_than_balance__reverts(token: Any, holders: list[Any]) -> None:
    with ape.reverts("erc20: transfer amount exceeds balance"):
        token.transfer(holders[1], 1, sender=holders[0])


def test_transfer_from__needs_allowance(token: Any, deployer: Any, holders: list[Any]) -> None:
    with ape.reverts("erc20: insufficient allowance"):
        token.transferFrom(deployer, holders[1], 5, sender=holders[0])
    token.approve(holders[0], 5, sender=deployer)
    token.transferFrom(deployer, holders[1], 5, sender=holders[0])
    assert token.balanceOf(holders[1]) == 5
    assert token.allowance(deployer, holders[0]) == 0


def _permit_signature(token: Any, owner_key: bytes, owner: str, spender: str, value: int, deadline: int) -> Any:
    message = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"},
            ],
            "Permit": [
                {"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": {"name": "Ankr Network", "version": "1", "chainId": ape.chain.chain_id,
                   "verifyingContract": str(token.address)},
        "message": {"owner": owner, "spender": spender, "value": value, "nonce": token.nonces(owner),
                    "deadline": deadline},
    }
    return Account.sign_message(encode_typed_data(full_message=message), owner_key)


def test_permit__valid_signature__sets_allowance_once(token: Any, deployer: Any, holders: list[Any]) -> None:
    owner = Account.create()
    token.transfer(owner.address, 100, sender=deployer)
    deadline = ape.chain.pending_timestamp + 3_600
    sig = _permit_signature(token, owner.key, owner.address, str(holders[0].address), 60, deadline)
    token.permit(owner.address, holders[0], 60, deadline, sig.v, sig.r.to_bytes(32, "big"), sig.s.to_bytes(32, "big"),
                 sender=holders[1])
    assert token.allowance(owner.address, holders[0]) == 60
    assert token.nonces(owner.address) == 1
    with ape.reverts("erc20: invalid signature"):  # replay of the same permit
        token.permit(owner.address, holders[0], 60, deadline, sig.v, sig.r.to_bytes(32, "big"),
                     sig.s.to_bytes(32, "big"), sender=holders[1])


def test_permit__expired_deadline__reverts(token: Any, holders: list[Any]) -> None:
    owner = Account.create()
    deadline = ape.chain.pending_timestamp - 1
    sig = _permit_signature(token, owner.key, owner.address, str(holders[0].address), 1, deadline)
    with ape.reverts("erc20: expired deadline"):
        token.permit(owner.address, holders[0], 1, deadline, sig.v, sig.r.to_bytes(32, "big"),
                     sig.s.to_bytes(32, "big"), sender=holders[1])
