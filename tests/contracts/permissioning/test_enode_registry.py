"""Enode registry scenarios: M-of-N admin changes, expiry, signed self-updates, lookups."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import boa
import pytest

from enode_dns.enode import EnodeId

from .conftest import BOOT, PROPOSAL_TTL, VALIDATOR, Node, Registry, connection_allowed, registry_context


def _events(contract: object, name: str) -> list[object]:
    """Decoded logs of the last call to `contract`, including those of contracts it called."""
    return [e for e in contract.get_logs() if type(e).__name__ == name]  # type: ignore[attr-defined]


# -- M-of-N node admission ----------------------------------------------------------------


def test_add_node__one_approval_of_two__not_listed_until_second(registry: Registry, boot_node: Node) -> None:
    proposal_id = registry.propose_add(boot_node, "10.0.0.1")
    assert not registry.ingress.is_registered(boot_node.enode.key)
    assert not registry.allowed(boot_node, "10.0.0.1")
    registry.approve(proposal_id, registry.admins[1])
    added = _events(registry.rules, "NodeAdded")
    assert registry.ingress.is_registered(boot_node.enode.key)
    assert registry.allowed(boot_node, "10.0.0.1")
    assert registry.ingress.node_count() == 1
    assert len(added) == 1 and added[0].host == "10.0.0.1" and added[0].node_type == BOOT


def test_approve__same_admin_twice__reverts(registry: Registry, boot_node: Node) -> None:
    proposal_id = registry.propose_add(boot_node)
    with boa.reverts("permissioning: already approved"), boa.env.prank(registry.admins[0]):
        registry.rules.approve(proposal_id)


def test_propose_and_approve__by_non_admin__revert(registry: Registry, boot_node: Node) -> None:
    outsider = boa.env.generate_address("outsider")
    with boa.reverts("permissioning: only an admin"):
        registry.propose_add(boot_node, admin=outsider)
    proposal_id = registry.propose_add(boot_node)
    with boa.reverts("permissioning: only an admin"), boa.env.prank(outsider):
        registry.rules.approve(proposal_id)


def test_approve__after_expiry__reverts_and_node_stays_out(registry: Registry, boot_node: Node) -> None:
    proposal_id = registry.propose_add(boot_node)
    boa.env.time_travel(seconds=PROPOSAL_TTL)
    with boa.reverts("permissioning: proposal expired"), boa.env.prank(registry.admins[1]):
        registry.rules.approve(proposal_id)
    assert not registry.ingress.is_registered(boot_node.enode.key)


def test_approve__executed_proposal__reverts(registry: Registry, boot_node: Node) -> None:
    proposal_id = registry.propose_add(boot_node)
    registry.approve(proposal_id, registry.admins[1])
    with boa.reverts("permissioning: proposal already executed"), boa.env.prank(registry.admins[2]):
        registry.rules.approve(proposal_id)


def test_propose_add__already_registered__reverts(registry: Registry, boot_node: Node) -> None:
    registry.add(boot_node)
    with boa.reverts("permissioning: node already registered"):
        registry.propose_add(boot_node)


def test_remove_node__two_approvals__connection_refused_with_old_values_logged(
    registry: Registry, boot_node: Node
) -> None:
    registry.add(boot_node, "boot1.example.org", 30303)
    registry.remove(boot_node)
    removed = _events(registry.rules, "NodeRemoved")
    assert removed[0].host == "boot1.example.org" and removed[0].port == 30303
    assert not registry.allowed(boot_node, "boot1.example.org")
    assert registry.ingress.node_count() == 0


def test_add_admin__m_of_n__new_admin_can_approve(registry: Registry, boot_node: Node) -> None:
    dave = boa.env.generate_address("dave")
    with boa.env.prank(registry.admins[0]):
        proposal_id = registry.rules.proposeAddAdmin(dave)
    assert not registry.rules.is_admin(dave)
    registry.approve(proposal_id, registry.admins[2])
    assert registry.rules.is_admin(dave) and registry.rules.adminCount() == 4
    node_proposal = registry.propose_add(boot_node)
    registry.approve(node_proposal, dave)
    assert registry.ingress.is_registered(boot_node.enode.key)


def test_remove_admin__approvals_of_removed_admin_no_longer_count(registry: Registry, boot_node: Node) -> None:
    carol = registry.admins[2]
    node_proposal = registry.propose_add(boot_node, admin=carol)
    with boa.env.prank(registry.admins[0]):
        removal = registry.rules.proposeRemoveAdmin(carol)
    registry.approve(removal, registry.admins[1])
    assert not registry.rules.is_admin(carol)
    assert registry.rules.approvals(node_proposal) == 0
    registry.approve(node_proposal, registry.admins[0])
    assert not registry.ingress.is_registered(boot_node.enode.key)
    registry.approve(node_proposal, registry.admins[1])
    assert registry.ingress.is_registered(boot_node.enode.key)


def test_remove_admin__would_fall_below_threshold__reverts(make_registry: Callable[..., Registry]) -> None:
    registry = make_registry(admins=2, threshold=2)
    with boa.env.prank(registry.admins[0]):
        proposal_id = registry.rules.proposeRemoveAdmin(registry.admins[1])
    with boa.reverts("permissioning: admins would fall below the threshold"):
        registry.approve(proposal_id, registry.admins[1])


def test_threshold__raised_to_three__two_approvals_no_longer_enough(registry: Registry, boot_node: Node) -> None:
    with boa.env.prank(registry.admins[0]):
        proposal_id = registry.rules.proposeThreshold(3)
    registry.approve(proposal_id, registry.admins[1])
    assert registry.rules.threshold() == 3
    node_proposal = registry.propose_add(boot_node)
    registry.approve(node_proposal, registry.admins[1])
    assert not registry.ingress.is_registered(boot_node.enode.key)
    registry.approve(node_proposal, registry.admins[2])
    assert registry.ingress.is_registered(boot_node.enode.key)


@pytest.mark.parametrize(("admins", "threshold"), [(0, 1), (2, 0), (2, 3)])
def test_constructor__threshold_out_of_range__reverts(
    registry_deployments: Path, isolated: None, admins: int, threshold: int
) -> None:
    ctx = registry_context(registry_deployments)  # the part refuses these values itself: deploy the rules here
    ingress = ctx.deploy("EnodeIngress", part="permissioning")
    with boa.reverts("permissioning: threshold out of range"):
        ctx.deploy("EnodeRules", ingress, [boa.env.generate_address() for _ in range(admins)], threshold,
                   PROPOSAL_TTL, part="permissioning")


# -- input validation ---------------------------------------------------------------------


@pytest.mark.parametrize("host", [
    "", "a..b", ".a.b", "a.b.", "-a.b", "a-.b", "A.example.org", "a_b.org", "a.123", "1.2.3", "1.2.3.4.5",
    "256.0.0.1", "01.2.3.4", "1:2:3:4:5:6:7:8:9", "1::2::3", "::ffff:1.2.3.4", "fe80::1%eth0", "[::1]",
    "x" * 64 + ".org", "a b.org",
])
def test_propose_add__malformed_host__reverts(registry: Registry, boot_node: Node, host: str) -> None:
    with boa.reverts("permissioning: malformed host"):
        registry.propose_add(boot_node, host)


def test_propose_add__enode_id_not_a_curve_point__reverts(registry: Registry, boot_node: Node) -> None:
    high, low = boot_node.enode.high, bytes(31) + b"\x01"
    with boa.reverts("permissioning: malformed enode id"), boa.env.prank(registry.admins[0]):
        registry.rules.proposeAddNode(high, low, "10.0.0.1", 30303, BOOT, "ankr", False)
    with boa.reverts("permissioning: malformed enode id"), boa.env.prank(registry.admins[0]):
        registry.rules.proposeAddNode(bytes(32), bytes(32), "10.0.0.1", 30303, BOOT, "ankr", False)


@pytest.mark.parametrize(("port", "node_type", "organisation", "reason"), [
    (0, BOOT, "ankr", "zero port"), (30303, 4, "ankr", "unknown node type"), (30303, BOOT, "", "empty organisation"),
])
def test_propose_add__bad_port_type_or_organisation__reverts(
    registry: Registry, boot_node: Node, port: int, node_type: int, organisation: str, reason: str
) -> None:
    with boa.reverts(f"permissioning: {reason}"):
        registry.propose_add(boot_node, "10.0.0.1", port, node_type=node_type, organisation=organisation)


# -- connectionAllowed / enodeAllowed -----------------------------------------------------------


def test_connection_allowed__by_ip_name_and_port(registry: Registry, boot_node: Node, validator_node: Node) -> None:
    registry.add(boot_node, "10.0.0.1", 30303)
    registry.add(validator_node, "validator1.lacchain.example", 30311, node_type=VALIDATOR)
    assert registry.allowed(boot_node, "10.0.0.1", 30303)
    assert registry.allowed(boot_node, "::ffff:a00:1", 30303)  # the same address, IPv6 spelling
    assert not registry.allowed(boot_node, "10.0.0.1", 30304)
    assert not registry.allowed(boot_node, "10.0.0.2", 30303)
    assert not registry.allowed(boot_node, "boot.example.org", 30303)
    assert registry.allowed(validator_node, "validator1.lacchain.example", 30311)
    assert not registry.allowed(validator_node, "validator2.lacchain.example", 30311)
    assert not registry.allowed(validator_node, "10.0.0.1", 30311)


def test_connection_allowed__unknown_malformed_or_uppercase_id(registry: Registry, boot_node: Node) -> None:
    registry.add(boot_node, "10.0.0.1")
    assert not registry.allowed(Node.create(), "10.0.0.1")
    assert not connection_allowed(registry.ingress, boot_node.enode.hex[:-2], "10.0.0.1", 30303)
    assert not connection_allowed(registry.ingress, boot_node.enode.hex[:-1] + "g", "10.0.0.1", 30303)
    assert connection_allowed(registry.ingress, boot_node.enode.hex.upper(), "10.0.0.1", 30303)


def test_connection_allowed__id_only_entry__any_host_and_port(registry: Registry, boot_node: Node) -> None:
    registry.add(boot_node, "10.0.0.1", id_only=True)
    assert registry.allowed(boot_node, "192.168.1.9", 1234)
    assert registry.allowed(boot_node, "anywhere.example.org", 30303)


def test_connection_allowed__ipv6_entry(registry: Registry, boot_node: Node) -> None:
    registry.add(boot_node, "2001:db8::7", 30303)
    assert registry.allowed(boot_node, "2001:0db8:0:0:0:0:0:7", 30303)
    assert not registry.allowed(boot_node, "2001:db8::8", 30303)


def test_enode_allowed__v1_lookup_by_bytes16_ip(registry: Registry, boot_node: Node, validator_node: Node) -> None:
    registry.add(boot_node, "10.0.0.1", 30303)
    registry.add(validator_node, "validator1.example.org", 30303)
    mapped = bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 1])
    assert registry.ingress.enodeAllowed(boot_node.enode.high, boot_node.enode.low, mapped, 30303)
    assert not registry.ingress.enodeAllowed(boot_node.enode.high, boot_node.enode.low, mapped, 30304)
    assert not registry.ingress.enodeAllowed(validator_node.enode.high, validator_node.enode.low, bytes(16), 30303)


# -- signed self-updates ------------------------------------------------------------------------


def test_update_endpoint__signed_by_enode_key__moves_node_and_logs_old_and_new(
    registry: Registry, boot_node: Node
) -> None:
    registry.add(boot_node, "10.0.0.1", 30303)
    relayer = boa.env.generate_address("relayer")  # anyone may carry the signed message
    signature = registry.signed_update(boot_node, "203.0.113.7", 30304, 1)
    with boa.env.prank(relayer):
        registry.rules.updateEndpoint(boot_node.enode.key, "203.0.113.7", 30304, 1, signature)
    updated = _events(registry.rules, "EndpointUpdated")[0]
    assert (updated.old_host, updated.old_port, updated.new_host, updated.new_port, updated.sequence) == (
        "10.0.0.1", 30303, "203.0.113.7", 30304, 1)
    assert registry.allowed(boot_node, "203.0.113.7", 30304)
    assert not registry.allowed(boot_node, "10.0.0.1", 30303)
    assert registry.ingress.sequence_of(boot_node.enode.key) == 1


def test_update_endpoint__replayed_message__reverts(registry: Registry, boot_node: Node) -> None:
    registry.add(boot_node)
    signature = registry.signed_update(boot_node, "203.0.113.7", 30303, 1)
    registry.rules.updateEndpoint(boot_node.enode.key, "203.0.113.7", 30303, 1, signature)
    with boa.reverts("permissioning: stale sequence"):
        registry.rules.updateEndpoint(boot_node.enode.key, "203.0.113.7", 30303, 1, signature)


def test_update_endpoint__stale_sequence__reverts(registry: Registry, boot_node: Node) -> None:
    registry.add(boot_node)
    registry.rules.updateEndpoint(boot_node.enode.key, "203.0.113.9", 30303, 5,
                                  registry.signed_update(boot_node, "203.0.113.9", 30303, 5))
    older = registry.signed_update(boot_node, "203.0.113.7", 30303, 4)
    with boa.reverts("permissioning: stale sequence"):
        registry.rules.updateEndpoint(boot_node.enode.key, "203.0.113.7", 30303, 4, older)


def test_update_endpoint__forged_or_tampered_signature__reverts(registry: Registry, boot_node: Node) -> None:
    registry.add(boot_node, "10.0.0.1")
    forger = Node.create()
    forged = registry.signed_update(forger, "203.0.113.66", 30303, 1)
    with boa.reverts("permissioning: not signed by the enode key"):
        registry.rules.updateEndpoint(boot_node.enode.key, "203.0.113.66", 30303, 1, forged)
    genuine = registry.signed_update(boot_node, "203.0.113.7", 30303, 1)
    with boa.reverts("permissioning: not signed by the enode key"):
        registry.rules.updateEndpoint(boot_node.enode.key, "203.0.113.66", 30303, 1, genuine)
    with boa.reverts():
        registry.rules.updateEndpoint(boot_node.enode.key, "203.0.113.7", 30303, 1, genuine[:64] + b"\x05")
    assert registry.allowed(boot_node, "10.0.0.1")


def test_update_endpoint__malformed_host_or_unknown_node__reverts(registry: Registry, boot_node: Node) -> None:
    registry.add(boot_node)
    bad = registry.signed_update(boot_node, "bad..host", 30303, 1)
    with boa.reverts("permissioning: malformed host"):
        registry.rules.updateEndpoint(boot_node.enode.key, "bad..host", 30303, 1, bad)
    stranger = Node.create()
    with boa.reverts("permissioning: unknown node"):
        registry.rules.updateEndpoint(stranger.enode.key, "10.0.0.9", 30303, 1,
                                      registry.signed_update(stranger, "10.0.0.9", 30303, 1))


def test_update_endpoint__after_removal_and_readmission__old_signature_stays_stale(
    registry: Registry, boot_node: Node
) -> None:
    registry.add(boot_node)
    first = registry.signed_update(boot_node, "203.0.113.7", 30303, 1)
    registry.rules.updateEndpoint(boot_node.enode.key, "203.0.113.7", 30303, 1, first)
    registry.remove(boot_node)
    registry.add(boot_node, "10.0.0.1")
    with boa.reverts("permissioning: stale sequence"):
        registry.rules.updateEndpoint(boot_node.enode.key, "203.0.113.7", 30303, 1, first)


def test_digest__matches_python_typed_data(registry: Registry, boot_node: Node) -> None:
    from eth_account.messages import _hash_eip191_message, encode_typed_data

    from enode_dns.enode import endpoint_update_digest, endpoint_update_typed_data

    data = endpoint_update_typed_data(boa.env.evm.patch.chain_id, registry.rules.address, boot_node.enode.key,
                                      "boot1.example.org", 30303, 7)
    message = encode_typed_data(full_message=data)
    assert registry.rules.endpointUpdateDigest(boot_node.enode.key, "boot1.example.org", 30303, 7) == \
        _hash_eip191_message(message) == endpoint_update_digest(
            boa.env.evm.patch.chain_id, registry.rules.address, boot_node.enode.key, "boot1.example.org", 30303, 7)


# -- ingress / rules split -------------------------------------------------------------------------


def test_ingress_writes__from_anyone_but_rules__revert(registry: Registry, boot_node: Node) -> None:
    registry.add(boot_node)
    with boa.reverts("permissioning: only the rules contract"):
        registry.ingress.remove_node(boot_node.enode.key)
    with boa.reverts("permissioning: only the rules contract"):
        registry.ingress.set_rules(registry.rules.address)


def test_rules_upgrade__keeps_node_list_and_moves_authority(
    registry: Registry, boot_node: Node
) -> None:
    registry.add(boot_node, "10.0.0.1")
    assert registry.ctx is not None
    new_rules = registry.ctx.deploy("EnodeRules", registry.ingress, registry.admins, 2, PROPOSAL_TTL,
                                    part="permissioning", label="EnodeRulesUpgrade")
    with boa.env.prank(registry.admins[0]):
        proposal_id = registry.rules.proposeRulesUpgrade(new_rules.address)
    registry.approve(proposal_id, registry.admins[1])
    assert registry.ingress.rules() == new_rules.address
    assert registry.allowed(boot_node, "10.0.0.1")
    # The old rules lost their write access; the new ones have it, with the sequence kept.
    old_signature = registry.signed_update(boot_node, "203.0.113.7", 30303, 1)
    with boa.reverts("permissioning: only the rules contract"):
        registry.rules.updateEndpoint(boot_node.enode.key, "203.0.113.7", 30303, 1, old_signature)
    with boa.reverts("permissioning: not signed by the enode key"):
        new_rules.updateEndpoint(boot_node.enode.key, "203.0.113.7", 30303, 1, old_signature)
    new_registry = Registry(registry.ingress, new_rules, registry.admins)
    new_rules.updateEndpoint(boot_node.enode.key, "203.0.113.7", 30303, 1,
                             new_registry.signed_update(boot_node, "203.0.113.7", 30303, 1))
    assert registry.allowed(boot_node, "203.0.113.7")


def test_enode_id__python_helpers_agree_with_contract(registry: Registry, boot_node: Node) -> None:
    assert registry.rules.enodeKeyOf(boot_node.enode.high, boot_node.enode.low) == boot_node.enode.key
    assert EnodeId.from_hex(boot_node.enode.hex) == boot_node.enode
