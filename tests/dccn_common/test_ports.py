"""Test ports come from below the ephemeral range, one slice per xdist worker, never twice."""

from __future__ import annotations

import socket

import pytest

from dccn_devtools import ports


def test_worker_slice__each_worker_and_the_outsider__disjoint_and_below_ephemeral(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    slices = []
    for name in ("gw0", "gw1", ""):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", name)
        slices.append(set(ports.worker_slice()))
    assert all(len(s) > 1_000 for s in slices)
    assert not (slices[0] & slices[1]) and not (slices[0] & slices[2]) and not (slices[1] & slices[2])
    assert max(max(s) for s in slices) < ports.ephemeral_start()


def test_free_port__many_calls__never_repeats_and_binds() -> None:
    handed = [ports.free_port() for _ in range(200)]
    assert len(set(handed)) == len(handed)
    assert all(port in ports.worker_slice() for port in handed)
    with socket.socket() as server:
        server.bind(("127.0.0.1", handed[-1]))  # still free: nothing else draws from this slice


def test_free_port__port_held_by_another_process__skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = ports.free_port(), ports.free_port()
    ports._handed_out.difference_update({first, second})  # as if this process had never seen them
    held = socket.socket()
    try:
        held.bind(("127.0.0.1", first))
        held.listen()
        monkeypatch.setattr(ports, "worker_slice", lambda: range(first, first + 1))
        with pytest.raises(ports.NoFreePort):
            ports.free_port()
        monkeypatch.setattr(ports, "worker_slice", lambda: range(second, second + 1))
        assert ports.free_port() == second
    finally:
        held.close()


def test_free_port__slice_exhausted__clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "worker_slice", lambda: range(0))
    with pytest.raises(ports.NoFreePort, match="no free port"):
        ports.free_port()
