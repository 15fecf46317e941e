"""Stateful property test of the enode registry: the node list, sequences and admin set
always match a plain Python model, whatever sequence of admin and node actions runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boa
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from enode_dns.enode import sign_endpoint_update

from .conftest import (
    PROPOSAL_TTL,
    ModelEntry,
    Node,
    connection_allowed,
    model_connection_allowed,
    run_registry,
)

HOSTS = st.sampled_from(["10.0.0.1", "10.0.0.2", "2001:db8::1", "boot1.example.org", "v1.lacchain.example"])
PORTS = st.sampled_from([30303, 30304])
# Values of tens of KB by repetition: hypothesis draws at most a few KB of raw bytes per example.
LONG = st.tuples(st.binary(min_size=1, max_size=40), st.integers(10, 1_000)).map(lambda t: t[0] * t[1])


@dataclass
class ModelNode:
    host: str
    port: int
    sequence: int
    id_only: bool = False


class RegistryMachine(RuleBasedStateMachine):
    deployments: Path  # where the permissioning part writes its manifests
    nodes = Bundle("nodes")

    @initialize()
    def deploy(self) -> None:
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        self.admins = [boa.env.generate_address(f"admin{i}") for i in range(3)]
        self.threshold = 2
        registry = run_registry(self.deployments, self.admins, self.threshold, PROPOSAL_TTL)
        self.ingress, self.rules = registry.ingress, registry.rules
        self.model: dict[bytes, ModelNode] = {}

    def teardown(self) -> None:
        if hasattr(self, "_anchor"):
            self._anchor.__exit__(None, None, None)

    def _propose_and_pass(self, propose: str, *args: Any) -> None:
        with boa.env.prank(self.admins[0]):
            proposal_id = getattr(self.rules, propose)(*args)
        for admin in self.admins[1:self.threshold]:
            with boa.env.prank(admin):
                self.rules.approve(proposal_id)

    def _sign(self, node: Node, host: str, port: int, sequence: int) -> bytes:
        return sign_endpoint_update(node.key, boa.env.evm.patch.chain_id, self.rules.address, host, port, sequence)

    @rule(target=nodes, host=HOSTS, port=PORTS, id_only=st.sampled_from([False, False, True]))
    def add_node(self, host: str, port: int, id_only: bool) -> Node:
        node = Node.create()
        self._propose_and_pass("proposeAddNode", node.enode.high, node.enode.low, host, port, 1, "org", id_only)
        self.model[node.enode.key] = ModelNode(host, port, 0, id_only)
        return node

    @rule(node=nodes)
    def remove_node(self, node: Node) -> None:
        if node.enode.key not in self.model:
            with boa.reverts("permissioning: unknown node"), boa.env.prank(self.admins[0]):
                self.rules.proposeRemoveNode(node.enode.high, node.enode.low)
            return
        self._propose_and_pass("proposeRemoveNode", node.enode.high, node.enode.low)
        del self.model[node.enode.key]

    @rule(node=nodes, host=HOSTS, port=PORTS, step=st.integers(-2, 3))
    def self_update(self, node: Node, host: str, port: int, step: int) -> None:
        sequence = max(0, self.ingress.sequence_of(node.enode.key) + step)
        signature = self._sign(node, host, port, sequence)
        entry = self.model.get(node.enode.key)
        if entry is None:
            with boa.reverts("permissioning: unknown node"):
                self.rules.updateEndpoint(node.enode.key, host, port, sequence, signature)
        elif sequence <= entry.sequence:
            with boa.reverts("permissioning: stale sequence"):
                self.rules.updateEndpoint(node.enode.key, host, port, sequence, signature)
        else:
            self.rules.updateEndpoint(node.enode.key, host, port, sequence, signature)
            self.model[node.enode.key] = ModelNode(host, port, sequence, entry.id_only)

    @rule(node=nodes, host=HOSTS)
    def forged_update_refused(self, node: Node, host: str) -> None:
        sequence = self.ingress.sequence_of(node.enode.key) + 1
        forged = self._sign(Node.create(), host, 30303, sequence)
        with boa.reverts():
            self.rules.updateEndpoint(node.enode.key, host, 30303, sequence, forged)

    @rule(add=st.booleans())
    def change_admins(self, add: bool) -> None:
        if add:
            newcomer = boa.env.generate_address()
            self._propose_and_pass("proposeAddAdmin", newcomer)
            self.admins.append(newcomer)
        elif len(self.admins) > self.threshold:
            leaving = self.admins[-1]
            self._propose_and_pass("proposeRemoveAdmin", leaving)
            self.admins.remove(leaving)

    @rule(host=HOSTS)
    def expired_proposal_never_executes(self, host: str) -> None:
        node = Node.create()
        with boa.env.prank(self.admins[0]):
            proposal_id = self.rules.proposeAddNode(node.enode.high, node.enode.low, host, 30303, 0, "org", False)
        boa.env.time_travel(seconds=PROPOSAL_TTL)
        with boa.reverts("permissioning: proposal expired"), boa.env.prank(self.admins[1]):
            self.rules.approve(proposal_id)

    @rule(node=nodes, probe=st.data())
    def connection_allowed_matches_model(self, node: Node, probe: st.DataObject) -> None:
        # A rule, not an invariant: connectionAllowed is slow on py-evm, so one node per step.
        entry = self.model.get(node.enode.key)
        if entry is None:
            assert not connection_allowed(self.ingress, node.enode.hex, "10.0.0.1", 30303)
        else:
            assert connection_allowed(self.ingress, node.enode.hex, entry.host, entry.port)
            assert connection_allowed(self.ingress, node.enode.hex, entry.host, entry.port + 1) == entry.id_only
        # Any id, host and port the ABI can carry (over-long, prefixed, non-UTF-8): never a
        # revert, and true exactly for a listed triple.
        host = entry.host if entry else "10.0.0.1"
        enode_id = probe.draw(st.one_of(
            st.sampled_from([node.enode.hex, node.enode.hex.upper(), "enode://" + node.enode.hex,
                             node.enode.hex + "0", node.enode.hex[:-1]]).map(str.encode),
            st.binary(max_size=200), LONG), label="enode_id")
        probe_host = probe.draw(st.one_of(
            st.just(host.encode()), HOSTS.map(str.encode), st.binary(max_size=300), LONG,
            LONG.map(lambda tail: host.encode() + tail)), label="host")
        port = probe.draw(st.one_of(PORTS, st.integers(0, 2**16 - 1)), label="port")
        entries = {key: ModelEntry(e.host, e.port, e.id_only) for key, e in self.model.items()}
        assert connection_allowed(self.ingress, enode_id, probe_host, port) == model_connection_allowed(
            entries, enode_id, probe_host, port)

    @invariant()
    def node_list_matches_model(self) -> None:
        if not hasattr(self, "ingress"):
            return
        assert self.ingress.node_count() == len(self.model)
        for key, entry in self.model.items():
            stored = self.ingress.node(key)
            assert stored.active and (stored.host, stored.port, stored.sequence, stored.id_only) == (
                entry.host, entry.port, entry.sequence, entry.id_only)

    @invariant()
    def admins_match_model(self) -> None:
        if not hasattr(self, "rules"):
            return
        assert self.rules.adminCount() == len(self.admins)
        assert all(self.rules.is_admin(a) for a in self.admins)
        assert self.rules.threshold() == self.threshold <= len(self.admins)


def test_registry_invariants__hold_under_any_action_sequence(registry_deployments: Path) -> None:
    RegistryMachine.deployments = registry_deployments
    # py-evm runs ~50k opcodes/s: half the profile's examples and steps keep this test under 10 s
    # under "ci" (12 x 10 steps); HYPOTHESIS_PROFILE=long still runs 500 x 30.
    profile = settings()
    run_state_machine_as_test(RegistryMachine, settings=settings(
        profile, max_examples=max(12, profile.max_examples // 2), stateful_step_count=max(10, profile.stateful_step_count // 2)))
