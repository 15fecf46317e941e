"""The anvil harness: start, control, and stop a real node."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from dccn_devtools.anvil import Anvil, AnvilError
from dccn_devtools.ports import free_port


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_two_instances__different_chain_ids__both_answer_and_stop_cleanly() -> None:
    with Anvil(chain_id=4242) as first, Anvil(chain_id=4343) as second:
        assert first.web3().eth.chain_id == 4242
        assert second.web3().eth.chain_id == 4343
        ports = (first.port, second.port)
    assert all(_port_is_free(port) for port in ports)


def test_mine_and_warp__advance_blocks_and_time(chain: Anvil) -> None:
    w3 = chain.web3()
    start_block = w3.eth.block_number
    start_time = w3.eth.get_block("latest")["timestamp"]
    chain.mine(5)
    chain.warp(3_600)
    assert w3.eth.block_number == start_block + 6
    assert w3.eth.get_block("latest")["timestamp"] >= start_time + 3_600


def test_snapshot_revert__restores_balances(chain: Anvil, roles) -> None:
    w3 = chain.web3()
    before = w3.eth.get_balance(roles.bob.address)
    snapshot = chain.snapshot()
    w3.eth.send_transaction({"from": roles.alice.address, "to": roles.bob.address, "value": 10**18})
    assert w3.eth.get_balance(roles.bob.address) == before + 10**18
    chain.revert(snapshot)
    assert w3.eth.get_balance(roles.bob.address) == before


@pytest.mark.reorgs
def test_reorg__replaces_blocks_and_drops_their_transactions(chain: Anvil, roles) -> None:
    w3 = chain.web3()
    tx_hash = w3.eth.send_transaction({"from": roles.alice.address, "to": roles.bob.address, "value": 1})
    mined_in = w3.eth.get_transaction_receipt(tx_hash)
    old_hash = mined_in["blockHash"]
    chain.reorg(1)
    assert w3.eth.get_block(mined_in["blockNumber"])["hash"] != old_hash
    with pytest.raises(Exception, match="not found"):
        w3.eth.get_transaction_receipt(tx_hash)


def test_reorg__node_that_reverted_a_snapshot__refused_before_touching_the_chain(roles) -> None:
    # After evm_revert, anvil_reorg can load a reverted branch's state (a deployed contract lost
    # its code in the sender tests): the harness refuses rather than hand a test a wrong chain.
    with Anvil(chain_id=4545) as node:
        w3 = node.web3()
        snapshot = node.snapshot()
        w3.eth.send_transaction({"from": roles.alice.address, "to": roles.bob.address, "value": 1})
        node.revert(snapshot)
        head = node.block_number()
        with pytest.raises(AnvilError, match="no reorg on a node that has reverted a snapshot"):
            node.reorg(1)
        with pytest.raises(AnvilError, match="no reorg on a node that has reverted a snapshot"):
            node.rollback(1)
        assert node.block_number() == head


def test_web3__send_on_an_automining_node__returns_once_mined(chain: Anvil, roles) -> None:
    # Without the middleware about one send in three returned before its block (measured).
    w3 = chain.web3()
    for _ in range(150):
        head = w3.eth.block_number
        tx_hash = w3.eth.send_transaction({"from": roles.alice.address, "to": roles.bob.address, "value": 1})
        assert w3.eth.block_number == head + 1
        assert w3.eth.get_transaction_receipt(tx_hash)["blockNumber"] == head + 1


def test_web3__send_with_automine_off_or_behind_a_nonce_gap__returns_without_waiting(chain: Anvil, roles) -> None:
    w3 = chain.web3()
    nonce = w3.eth.get_transaction_count(roles.alice.address)
    started = time.monotonic()
    w3.eth.send_transaction({"from": roles.alice.address, "to": roles.bob.address, "value": 1, "nonce": nonce + 3})
    chain.set_automine(False)
    w3.eth.send_transaction({"from": roles.bob.address, "to": roles.alice.address, "value": 1})
    assert time.monotonic() - started < 5  # the 30 s mining timeout was not waited out
    pool = chain.rpc("txpool_content")
    assert len(pool["queued"][roles.alice.address.lower()]) == 1
    assert len(pool["pending"][roles.bob.address.lower()]) == 1


def test_web3__benchmark_client__sends_without_the_mining_wait(chain: Anvil) -> None:
    def layers(w3) -> list[str]:
        return [name for _, name in w3.middleware_onion.middleware]

    assert "mined_on_return" in layers(chain.web3())
    assert "mined_on_return" not in layers(chain.web3(mined_on_return=False))


def test_loopback_only__other_hosts_refused() -> None:
    with pytest.raises(AnvilError, match="loopback"):
        Anvil(host="0.0.0.0")


def test_cli__starts_in_background_and_writes_pid(tmp_path) -> None:
    port = free_port()
    pid_file = tmp_path / "anvil.pid"
    result = subprocess.run(
        [sys.executable, "-m", "dccn_devtools.anvil", "--port", str(port), "--chain-id", "777", "--pid-file", str(pid_file)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"chain 777 at http://127.0.0.1:{port}" in result.stdout
    pid = int(pid_file.read_text())
    try:
        assert Anvil(port=port, chain_id=777).web3().eth.chain_id == 777
    finally:
        os.kill(pid, signal.SIGTERM)


def test_start__port_already_serving_the_same_chain__refused_and_nothing_left_running() -> None:
    with Anvil(chain_id=31337) as someone_elses:
        mine = Anvil(port=someone_elses.port, chain_id=31337)
        with pytest.raises(AnvilError, match=f"port {someone_elses.port} is in use"):
            mine.start()
        assert not mine.running
        assert someone_elses.running


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dccn_devtools.anvil", *args], capture_output=True, text=True,
                          timeout=60)


def test_cli__port_in_use__error_line_exit_2_and_no_pid_written(tmp_path) -> None:
    pid_file = tmp_path / "anvil.pid"
    with Anvil(chain_id=31337) as someone_elses:
        result = _run_cli("--port", str(someone_elses.port), "--pid-file", str(pid_file))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: port {someone_elses.port} is in use"
    assert not pid_file.exists()


def test_cli__default__mines_blocks_on_an_interval_without_transactions(tmp_path) -> None:
    pid_file = tmp_path / "anvil.pid"
    port = free_port()
    result = _run_cli("--port", str(port), "--chain-id", "778", "--pid-file", str(pid_file))
    assert result.returncode == 0, result.stderr
    assert "automine and a block every 1s" in result.stdout
    try:
        node = Anvil(port=port, chain_id=778)
        first = node.block_number()
        time.sleep(3.5)  # the ticker's start, then a block a second
        assert node.block_number() >= first + 2
        # Still automine: ape waits for receipts only on a node that says so.
        assert node.rpc("anvil_getAutomine") is True
    finally:
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
