"""The durable transaction sender: idempotent keys, crash between sign and
broadcast, gas bumping with a stuck transaction, reverts reported."""

from __future__ import annotations

import time
from typing import Any

import pytest

from dccn_common.sender import FINAL_STATUSES, TxSender
from dccn_common.store import transaction
from dccn_devtools.pytest_fixtures import BACKENDS
from tests.dccn_common.conftest import transfer_data

# Every test here runs on SQLite and on a real PostgreSQL server (dccn_devtools.postgres).
pytestmark = pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)


def test_send_now__mined_and_recorded(make_sender, funded_token, roles) -> None:
    sender = make_sender()
    entry = sender.send_now("pay-bob-1", funded_token.address, transfer_data(funded_token, roles.bob.address, 5))
    assert entry.status == "mined" and entry.gas_used and entry.block_number
    assert funded_token.functions.balanceOf(roles.bob.address).call() == 5


def test_enqueue__same_key_twice__sent_once(make_sender, funded_token, roles) -> None:
    sender = make_sender()
    data = transfer_data(funded_token, roles.bob.address, 7)
    with transaction(sender.db):
        assert sender.enqueue(sender.db, "k", funded_token.address, data)
        assert not sender.enqueue(sender.db, "k", funded_token.address, data)
    sender.send_now("k", funded_token.address, data)
    assert funded_token.functions.balanceOf(roles.bob.address).call() == 7


def test_crash_after_signing__restart_rebroadcasts_same_transaction(
    make_sender, funded_token, roles, monkeypatch
) -> None:
    sender = make_sender()
    data = transfer_data(funded_token, roles.bob.address, 9)
    with transaction(sender.db):
        sender.enqueue(sender.db, "crashy", funded_token.address, data)
    # The process dies right after storing the signed bytes, before they reach the node.
    monkeypatch.setattr(TxSender, "_broadcast", lambda self, raw: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        sender.process()
    monkeypatch.undo()
    stored_hash = sender.entry("crashy").tx_hash
    restarted = make_sender()
    deadline = time.monotonic() + 30
    while restarted.entry("crashy").status not in FINAL_STATUSES and time.monotonic() < deadline:
        restarted.process()  # the first pass rebroadcasts; a later one sees the receipt
        time.sleep(0.05)
    entry = restarted.entry("crashy")
    assert entry.status == "mined" and entry.tx_hash == stored_hash
    assert funded_token.functions.balanceOf(roles.bob.address).call() == 9


def test_stuck_transaction__bumped_with_same_nonce__executes_once(
    chain, make_sender, funded_token, roles
) -> None:
    sender = make_sender(bump_after=0.0)
    data = transfer_data(funded_token, roles.bob.address, 11)
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
    too_much = transfer_data(funded_token, roles.bob.address, 10**30)
    entry = sender.send_now("overdraw", funded_token.address, too_much)
    assert entry.status == "failed"
    assert "not sent" in (entry.error or "")


# -- reorgs and replaced versions (issue 12) ---------------------------------------------


def _receipt_block(w3: Any, tx_hash: str) -> int:
    return int(w3.eth.get_transaction_receipt(tx_hash)["blockNumber"])


def _stored_raw(sender: TxSender, key: str) -> str:
    return "0x" + bytes(sender.db.execute("SELECT raw FROM outbox WHERE key = ?", (key,)).fetchone()["raw"]).hex()


@pytest.mark.reorgs
def test_reorg_removes_mined_tx__same_bytes_rebroadcast__next_row_gets_next_nonce(
    chain, w3, make_sender, funded_token, roles
) -> None:
    sender = make_sender()
    first = sender.send_now("pay-1", funded_token.address, transfer_data(funded_token, roles.bob.address, 3))
    nonce = w3.eth.get_transaction_count(roles.relayer.address) - 1
    chain.mine(2)
    chain.reorg(3)  # a reorg deeper than any confirmation depth: anvil drops the transaction
    assert funded_token.functions.balanceOf(roles.bob.address).call() == 0
    second = sender.send_now("pay-2", funded_token.address, transfer_data(funded_token, roles.bob.address, 4),
                             timeout=10)
    again = sender.entry("pay-1")
    assert again.status == "mined" and again.tx_hash == first.tx_hash  # the same bytes, not a new signature
    assert w3.eth.get_transaction(first.tx_hash)["nonce"] == nonce
    assert w3.eth.get_transaction(second.tx_hash)["nonce"] == nonce + 1
    assert again.block_number == _receipt_block(w3, first.tx_hash)
    assert funded_token.functions.balanceOf(roles.bob.address).call() == 7


@pytest.mark.reorgs
def test_reorg_reincludes_tx__recorded_at_new_block__nothing_new_signed(
    chain, w3, make_sender, funded_token, roles
) -> None:
    sender = make_sender()
    first = sender.send_now("pay", funded_token.address, transfer_data(funded_token, roles.bob.address, 5))
    raw = _stored_raw(sender, "pay")
    chain.mine(2)
    chain.reorg(3, [(raw, 1)])  # the same transaction, one block later on the new branch
    sender.process()
    entry = sender.entry("pay")
    assert entry.status == "mined" and entry.tx_hash == first.tx_hash
    assert entry.block_number == _receipt_block(w3, first.tx_hash) != first.block_number
    assert entry.block_hash == w3.eth.get_block(entry.block_number)["hash"].to_0x_hex()
    assert sender.tx_hashes("pay") == [first.tx_hash]
    assert funded_token.functions.balanceOf(roles.bob.address).call() == 5


@pytest.mark.reorgs
def test_reorg_returns_tx_to_mempool__sender_waits__mined_once(chain, w3, make_sender, funded_token, roles) -> None:
    sender = make_sender()
    first = sender.send_now("pay", funded_token.address, transfer_data(funded_token, roles.bob.address, 6))
    raw = _stored_raw(sender, "pay")
    chain.set_automine(False)
    try:
        chain.reorg(1)
        w3.eth.send_raw_transaction(raw)  # what a real node does with a removed transaction
        sender.process()
        sender.process()
        entry = sender.entry("pay")
        assert entry.status == "sent" and entry.tx_hash == first.tx_hash
        assert sender.tx_hashes("pay") == [first.tx_hash]  # waited: nothing new signed
        assert len(chain.rpc("txpool_content")["pending"][roles.relayer.address.lower()]) == 1
    finally:
        chain.set_automine(True)
    chain.mine()
    sender.process()
    entry = sender.entry("pay")
    assert entry.status == "mined" and entry.block_number == _receipt_block(w3, first.tx_hash)
    assert funded_token.functions.balanceOf(roles.bob.address).call() == 6


@pytest.mark.reorgs
def test_deep_reorg_removing_two_rows__next_transaction_mined__nothing_stuck(
    chain, w3, make_sender, funded_token, roles
) -> None:
    sender = make_sender()
    start_nonce = w3.eth.get_transaction_count(roles.relayer.address)
    entries = [sender.send_now(f"pay-{amount}", funded_token.address,
                               transfer_data(funded_token, roles.bob.address, amount)) for amount in (1, 2)]
    chain.mine()
    chain.reorg(3)  # both transfers and the block on top of them
    third = sender.send_now("pay-4", funded_token.address, transfer_data(funded_token, roles.bob.address, 4),
                            timeout=10)
    assert third.status == "mined"
    hashes = [e.tx_hash for e in entries] + [third.tx_hash]
    assert [w3.eth.get_transaction(h)["nonce"] for h in hashes] == [start_nonce, start_nonce + 1, start_nonce + 2]
    assert all(sender.entry(e.key).status == "mined" for e in entries)
    assert funded_token.functions.balanceOf(roles.bob.address).call() == 7


@pytest.mark.reorgs
def test_follower_rewind__sender_reopens_rows_before_service_handlers(
    chain, w3, make_db, make_sender, funded_token, roles
) -> None:
    from dccn_common.follower import ChainFollower

    sender = make_sender()
    follower = ChainFollower(w3, sender.db, "svc", start_block=w3.eth.block_number)
    seen: list[str] = []

    @follower.on_rewind
    def service_rewind(first_removed: int, db: Any) -> None:
        seen.append(db.execute("SELECT status FROM outbox WHERE key = 'pay'").fetchone()["status"])

    sender.watch_rewinds(follower)
    follower.poll_once()
    sender.send_now("pay", funded_token.address, transfer_data(funded_token, roles.bob.address, 2))
    follower.poll_once()
    chain.reorg(1)
    follower.poll_once()
    assert seen == ["sent"]


def test_watch_rewinds__follower_on_another_database__refused(w3, make_db, make_sender) -> None:
    from dccn_common.follower import ChainFollower

    with pytest.raises(ValueError, match="share one database"):
        make_sender().watch_rewinds(ChainFollower(w3, make_db("other.db"), "svc"))


def test_replaced_version_mined_after_row_failed__recognised_as_mined(
    chain, w3, make_sender, funded_token, roles
) -> None:
    sender = make_sender(bump_after=0.0, max_attempts=2)
    with transaction(sender.db):
        sender.enqueue(sender.db, "slow", funded_token.address, transfer_data(funded_token, roles.bob.address, 8))
    chain.set_automine(False)
    try:
        sender.process()  # version A
        first_hash, first_raw = sender.entry("slow").tx_hash, _stored_raw(sender, "slow")
        sender.process()  # replaced by version B
        assert sender.entry("slow").error is None  # the error column holds errors only
        sender.process()  # given up: failed
        assert sender.entry("slow").status == "failed"
        # B never makes it; A, replaced long ago, is mined after all.
        chain.rpc("anvil_dropAllTransactions")
        w3.eth.send_raw_transaction(first_raw)
    finally:
        chain.set_automine(True)
    chain.mine()
    sender.process()
    entry = sender.entry("slow")
    assert entry.status == "mined" and entry.tx_hash == first_hash and entry.error is None
    assert funded_token.functions.balanceOf(roles.bob.address).call() == 8


def test_row_failed_holding_nonce_below_a_sent_row__gap_closed__later_row_mined(
    chain, w3, make_sender, funded_token, roles
) -> None:
    hasty = make_sender(bump_after=0.0, max_attempts=1)
    chain.set_automine(False)
    try:
        with transaction(hasty.db):
            hasty.enqueue(hasty.db, "gives-up", funded_token.address,
                          transfer_data(funded_token, roles.bob.address, 1))
        hasty.process()
        with transaction(hasty.db):
            hasty.enqueue(hasty.db, "later", funded_token.address, transfer_data(funded_token, roles.bob.address, 2))
        hasty.process()  # the first row fails holding its nonce; the later one is signed above it
        assert hasty.entry("gives-up").status == "failed"
        chain.rpc("anvil_dropAllTransactions")  # the failed row's version leaves the pool
    finally:
        chain.set_automine(True)
    patient = make_sender()
    for _ in range(20):
        patient.process()
        if patient.entry("later").status == "mined":
            break
        chain.mine()
    assert patient.entry("later").status == "mined"
    assert funded_token.functions.balanceOf(roles.bob.address).call() == 2
    assert patient.pending_count() == 0


OLD_SCHEMA = """
CREATE TABLE outbox (key TEXT PRIMARY KEY, sender TEXT NOT NULL, to_address TEXT NOT NULL, data BLOB NOT NULL,
    value TEXT NOT NULL, gas INTEGER, nonce INTEGER, max_fee TEXT, priority_fee TEXT, raw BLOB, tx_hash TEXT,
    sent_at REAL, attempts INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'pending',
    block_number INTEGER, gas_used INTEGER, error TEXT, created_at REAL NOT NULL);
CREATE TABLE outbox_nonce (sender TEXT PRIMARY KEY, next_nonce INTEGER NOT NULL)
"""


def test_database_of_old_schema__opens__hash_list_moved_out_of_error(make_db, make_sender, roles) -> None:
    db = make_db("old.db")
    for statement in OLD_SCHEMA.split(";"):
        db.execute(statement)
    db.execute("INSERT INTO outbox (key, sender, to_address, data, value, nonce, max_fee, priority_fee, raw, tx_hash, "
               "sent_at, attempts, status, error, created_at) VALUES ('k', ?, ?, x'', '0', 0, '1', '1', x'01', "
               "'0xcc', 1, 3, 'sent', '0xaa,0xbb', 1)", (roles.relayer.address, roles.bob.address))
    db.close()
    sender = make_sender("old.db")
    entry = sender.entry("k")
    assert entry.error is None and entry.status == "sent" and entry.block_hash is None
    assert sorted(sender.tx_hashes("k")) == ["0xaa", "0xbb", "0xcc"]


@pytest.mark.reorgs
def test_reorg_below_the_last_verified_head__detected_without_a_follower__same_bytes_mined_again(
    chain, w3, make_sender, funded_token, roles
) -> None:
    sender = make_sender()
    first = sender.send_now("pay", funded_token.address, transfer_data(funded_token, roles.bob.address, 4))
    sender.process()  # verified at this head
    chain.mine(2)
    sender.process()  # verified again, two blocks on: the row's block is now below the last verified head
    chain.reorg(3)  # removes the row's block and both verified heads
    # Until the row is final on the canonical chain: right after the reorg the node may still
    # answer with the removed block's receipt, which a later pass finds stale and reopens.
    deadline = time.monotonic() + 10
    while True:
        sender.process()
        entry = sender.entry("pay")
        on_chain = entry is not None and entry.status == "mined" and entry.block_number is not None and (
            w3.eth.get_block(entry.block_number)["hash"].to_0x_hex() == entry.block_hash)
        if on_chain or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert entry.status == "mined" and entry.tx_hash == first.tx_hash
    assert entry.block_number == _receipt_block(w3, first.tx_hash)
    assert funded_token.functions.balanceOf(roles.bob.address).call() == 4


def test_outbox_written_by_newer_code__refused_with_store_error(make_db, make_sender) -> None:
    from dccn_common.store import StoreError, apply_schema

    make_sender("newer.db")  # version 1, as this code writes it
    apply_schema(make_db("newer.db"), "outbox", 2, "ALTER TABLE outbox ADD COLUMN future TEXT")
    with pytest.raises(StoreError, match="schema outbox is at version 2, newer than this code knows"):
        make_sender("newer.db")


def test_crash_between_commit_and_batched_broadcast__restart_sends_the_same_bytes(
    w3, make_sender, funded_token, roles, monkeypatch
) -> None:
    sender = make_sender()
    keys = [f"crashy-{i}" for i in range(5)]
    with transaction(sender.db):
        for i, key in enumerate(keys):
            sender.enqueue(sender.db, key, funded_token.address, transfer_data(funded_token, roles.bob.address, i + 1),
                           gas=60_000)
    nonce = w3.eth.get_transaction_count(roles.relayer.address, "pending")
    # The process dies with every row's signed bytes committed, before the batched request leaves.
    monkeypatch.setattr(TxSender, "_send_raw", lambda self, raws: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        sender.process()
    monkeypatch.undo()
    stored = {key: sender.entry(key).tx_hash for key in keys}
    assert all(sender.entry(key).status == "sent" for key in keys)
    assert w3.eth.get_transaction_count(roles.relayer.address, "pending") == nonce  # nothing reached the node
    restarted = make_sender()
    deadline = time.monotonic() + 30
    while any(restarted.entry(k).status not in FINAL_STATUSES for k in keys) and time.monotonic() < deadline:
        restarted.process()
        time.sleep(0.05)
    for key in keys:
        entry = restarted.entry(key)
        assert entry.status == "mined" and entry.tx_hash == stored[key]
        assert restarted.tx_hashes(key) == [stored[key]]  # rebroadcast, never signed again
    assert [w3.eth.get_transaction(stored[k])["nonce"] for k in keys] == list(range(nonce, nonce + 5))
    assert funded_token.functions.balanceOf(roles.bob.address).call() == 15
