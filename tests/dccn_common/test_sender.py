"""The durable transaction sender: idempotent keys, crash between sign and
broadcast, gas bumping with a stuck transaction, reverts reported."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from dccn_common.sender import TxSender
from dccn_common.store import transaction


@pytest.fixture
def make_sender(w3: Any, make_db: Any, roles: Any):
    def factory(name: str = "sender.db", **kwargs: Any) -> TxSender:
        return TxSender(w3, make_db(name), Account.from_key(roles.relayer.key), **kwargs)

    return factory


def _transfer_data(token: Any, to: str, amount: int) -> bytes:
    return bytes.fromhex(token.functions.transfer(to, amount)._encode_transaction_data()[2:])


@pytest.fixture
def funded_token(ankr_token: Any, roles: Any) -> Any:
    ankr_token.functions.transfer(roles.relayer.address, 10**21).transact({"from": roles.deployer.address})
    return ankr_token


def test_send_now__mined_and_recorded(make_sender, funded_token, roles) -> None:
    sender = make_sender()
    entry = sender.send_now("pay-bob-1", funded_token.address, _transfer_data(funded_token, roles.bob.address, 5))
    assert entry.status == "mined" and entry.gas_used and entry.block_number
    assert funded_token.functions.balanceOf(roles.bob.address).call() == 5


def test_enqueue__same_key_twice__sent_once(make_sender, funded_token, roles) -> None:
    sender = make_sender()
    data = _transfer_data(funded_token, roles.bob.address, 7)
    with transaction(sender.db):
        assert sender.enqueue(sender.db, "k", funded_token.address, data)
        assert not sender.enqueue(sender.db, "k", funded_token.address, data)
    sender.send_now("k", funded_token.address, data)
    assert funded_token.functions.balanceOf(roles.bob.address).call() == 7


def test_crash_after_signing__restart_rebroadcasts_same_transaction(
    make_sender, funded_token, roles, monkeypatch
) -> None:
    sender = make_sender()
    data = _transfer_data(funded_token, roles.bob.address, 9)
    with transaction(sender.db):
        sender.enqueue(sender.db, "crashy", funded_token.address, data)
    # The process dies right after storing the signed bytes, before they reach the node.
    monkeypatch.setattr(TxSender, "_broadcast", lambda self, raw: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        sender.process()
    monkeypatch.undo()
    stored_hash = sender.entry("crashy").tx_hash
    restarted = make_sender()
    restarted.process()
    restarted.process()
    entry = restarted.entry("crashy")
    assert entry.status == "mined" and entry.tx_hash == stored_hash
    assert funded_token.functions.balanceOf(roles.bob.address).call() == 9


def test_stuck_transaction__bumped_with_same_nonce__executes_once(
    chain, make_sender, funded_token, roles
) -> None:
    sender = make_sender(bump_after=0.0)
    data = _transfer_data(funded_token, roles.bob.address, 11)
    with transaction(sender.db):
        sender.enqueue(sender.db, "stuck", funded_token.address, data)
    chain.set_automine(False)
    try:
        sender.process()  # signed and broadcast, not mined
        first_hash = sender.entry("stuck").tx_hash
        sender.process()  # older than bump_after: replaced with higher fees
        assert sender.entry("stuck").tx_hash != first_hash
    finally:
        chain.set_automine(True)
    chain.mine()
    sender.process()
    assert sender.entry("stuck").status == "mined"
    assert funded_token.functions.balanceOf(roles.bob.address).call() == 11


def test_call_that_would_revert__marked_failed_with_reason(make_sender, funded_token, roles) -> None:
    sender = make_sender()
    too_much = _transfer_data(funded_token, roles.bob.address, 10**30)
    entry = sender.send_now("overdraw", funded_token.address, too_much)
    assert entry.status == "failed"
    assert "not sent" in (entry.error or "")
