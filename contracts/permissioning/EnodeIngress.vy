# pragma version ~=0.4.3
"""
@title Enode ingress: the node list and the interface Besu calls
@custom:contract-name EnodeIngress
@license MIT
@notice The address Besu's contract-based node permissioning is
        pointed at. It holds the node list and answers
        `connectionAllowed` (permissioning v2: enode id, host as IP or
        DNS name, port) and `enodeAllowed` (v1 style: enode high/low,
        16-byte IP, port) in O(1): entries are keyed by the keccak of
        the 64-byte enode public key.
        Every write comes from the current rules contract
        (`EnodeRules`: admins, M-of-N approvals, signed self-updates).
        Upgrading the rules means deploying new rules and having the
        current rules hand over with `set_rules` (itself an M-of-N
        proposal): the node list, the sequence numbers and this address
        stay, so Besu's configuration never changes.
"""

from ..interfaces import permissioning_ingress

implements: permissioning_ingress

from . import host_validator

MAX_HOST_LENGTH: constant(uint256) = 253
MAX_ORGANISATION_LENGTH: constant(uint256) = 64


struct Node:
    enode_high: bytes32
    enode_low: bytes32
    host: String[MAX_HOST_LENGTH]
    organisation: String[MAX_ORGANISATION_LENGTH]
    sequence: uint256
    # active | id_only << 8 | host_kind << 16 | node_type << 24 | port << 32 | ip << 128:
    # one slot instead of six, the bulk of what an admission costs.
    packed: uint256


struct NodeInfo:
    enode_high: bytes32
    enode_low: bytes32
    host: String[MAX_HOST_LENGTH]
    port: uint16
    node_type: uint8
    organisation: String[MAX_ORGANISATION_LENGTH]
    id_only: bool
    sequence: uint256
    active: bool
    host_kind: uint8
    ip: bytes16


event NodeAdded:
    enode_key: indexed(bytes32)
    enode_high: bytes32
    enode_low: bytes32
    host: String[MAX_HOST_LENGTH]
    port: uint16
    node_type: uint8
    organisation: String[MAX_ORGANISATION_LENGTH]
    id_only: bool


event NodeRemoved:
    enode_key: indexed(bytes32)
    enode_high: bytes32
    enode_low: bytes32
    host: String[MAX_HOST_LENGTH]
    port: uint16
    node_type: uint8
    organisation: String[MAX_ORGANISATION_LENGTH]


event EndpointUpdated:
    enode_key: indexed(bytes32)
    old_host: String[MAX_HOST_LENGTH]
    old_port: uint16
    new_host: String[MAX_HOST_LENGTH]
    new_port: uint16
    sequence: uint256


event RulesChanged:
    old_rules: indexed(address)
    new_rules: indexed(address)


_nodes: HashMap[bytes32, Node]
node_count: public(uint256)
rules: public(address)
# May set the first rules contract once, then has no power at all.
bootstrapper: public(address)


@deploy
def __init__():
    self.bootstrapper = msg.sender


@external
def set_rules(new_rules: address):
    """
    @notice Point the ingress at a rules contract. The bootstrapper
            does this once after deployment; afterwards only the
            current rules may hand over (an approved upgrade).
    @param new_rules The new rules contract.
    """
    if self.rules == empty(address):
        assert msg.sender == self.bootstrapper, "permissioning: only the bootstrapper sets the first rules"
    else:
        assert msg.sender == self.rules, "permissioning: only the rules contract"
    assert new_rules.is_contract, "permissioning: rules must be a contract"
    log RulesChanged(old_rules=self.rules, new_rules=new_rules)
    self.rules = new_rules
    self.bootstrapper = empty(address)


@external
def add_node(
    enode_high: bytes32,
    enode_low: bytes32,
    host: String[MAX_HOST_LENGTH],
    host_kind: uint8,
    ip: bytes16,
    port: uint16,
    node_type: uint8,
    organisation: String[MAX_ORGANISATION_LENGTH],
    id_only: bool,
):
    """
    @notice Store a node (rules contract only; it validated the input).
    """
    self._only_rules()
    key: bytes32 = host_validator._enode_key(enode_high, enode_low)
    assert not self._is_active(key), "permissioning: node already registered"
    # Field by field: a whole-struct write would also write every unused word of
    # the host and organisation. The sequence survives removal, so signatures
    # from an earlier membership stay stale.
    self._nodes[key].enode_high = enode_high
    self._nodes[key].enode_low = enode_low
    self._nodes[key].host = host
    self._nodes[key].organisation = organisation
    self._nodes[key].packed = self._pack(id_only, host_kind, node_type, port, ip)
    self.node_count += 1
    log NodeAdded(
        enode_key=key,
        enode_high=enode_high,
        enode_low=enode_low,
        host=host,
        port=port,
        node_type=node_type,
        organisation=organisation,
        id_only=id_only,
    )


@external
def remove_node(enode_key: bytes32):
    """
    @notice Remove a node (rules contract only).
    """
    self._only_rules()
    assert self._is_active(enode_key), "permissioning: unknown node"
    packed: uint256 = self._nodes[enode_key].packed
    log NodeRemoved(
        enode_key=enode_key,
        enode_high=self._nodes[enode_key].enode_high,
        enode_low=self._nodes[enode_key].enode_low,
        host=self._nodes[enode_key].host,
        port=self._port(packed),
        node_type=self._node_type(packed),
        organisation=self._nodes[enode_key].organisation,
    )
    sequence: uint256 = self._nodes[enode_key].sequence
    self._nodes[enode_key] = empty(Node)
    self._nodes[enode_key].sequence = sequence
    self.node_count -= 1


@external
def set_endpoint(
    enode_key: bytes32, host: String[MAX_HOST_LENGTH], host_kind: uint8, ip: bytes16, port: uint16, sequence: uint256
):
    """
    @notice Change a node's host and port (rules contract only; it checked
            the node's signature and that `sequence` is newer).
    """
    self._only_rules()
    assert self._is_active(enode_key), "permissioning: unknown node"
    assert sequence > self._nodes[enode_key].sequence, "permissioning: stale sequence"
    old_host: String[MAX_HOST_LENGTH] = self._nodes[enode_key].host
    packed: uint256 = self._nodes[enode_key].packed
    self._nodes[enode_key].host = host
    self._nodes[enode_key].packed = self._pack(
        (packed >> 8) & 255 == 1, host_kind, self._node_type(packed), port, ip
    )
    self._nodes[enode_key].sequence = sequence
    log EndpointUpdated(
        enode_key=enode_key,
        old_host=old_host,
        old_port=self._port(packed),
        new_host=host,
        new_port=port,
        sequence=sequence,
    )


@view
@external
def connectionAllowed(enodeId: String[128], enodeHost: String[MAX_HOST_LENGTH], enodePort: uint16) -> bool:
    """
    @notice Besu permissioning v2: may a node with this enode URL connect?
    @dev Never reverts on malformed input (Besu would treat a revert as an
         error): a malformed id or host is simply not allowed.
    @param enodeId The 128 hex digits of the node's public key (no 0x).
    @param enodeHost An IPv4/IPv6 literal or a DNS name.
    @param enodePort The node's TCP listening port.
    @return bool True if the node is registered at this host and port
            (or registered to match on its id only).
    """
    ok: bool = False
    high: bytes32 = empty(bytes32)
    low: bytes32 = empty(bytes32)
    ok, high, low = host_validator._parse_enode_hex(enodeId)
    if not ok:
        return False
    key: bytes32 = host_validator._enode_key(high, low)
    packed: uint256 = self._nodes[key].packed
    if packed & 255 == 0:
        return False
    if (packed >> 8) & 255 == 1:
        return True  # registered to match on its id only
    if self._port(packed) != enodePort:
        return False
    stored_kind: uint8 = self._host_kind(packed)
    if stored_kind == host_validator.HOST_DNS:
        return keccak256(enodeHost) == keccak256(self._nodes[key].host)
    kind: uint8 = 0
    ip: bytes16 = empty(bytes16)
    kind, ip = host_validator._classify_host(enodeHost)
    return kind != host_validator.HOST_DNS and kind != host_validator.HOST_INVALID and ip == self._ip(packed)


@view
@external
def enodeAllowed(enodeHigh: bytes32, enodeLow: bytes32, ip: bytes16, port: uint16) -> bool:
    """
    @notice Version-1 style lookup (seed 004's struct: enodeHigh, enodeLow,
            bytes16 ip, uint16 port). IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d).
    @return bool True if the node is registered at this IP and port (or by
            id only). A node registered by DNS name matches here only by id.
    """
    key: bytes32 = host_validator._enode_key(enodeHigh, enodeLow)
    packed: uint256 = self._nodes[key].packed
    if packed & 255 == 0:
        return False
    if (packed >> 8) & 255 == 1:
        return True
    kind: uint8 = self._host_kind(packed)
    if kind != host_validator.HOST_IPV4 and kind != host_validator.HOST_IPV6:
        return False
    return self._ip(packed) == ip and self._port(packed) == port


@view
@external
def is_registered(enode_key: bytes32) -> bool:
    """
    @notice True if the node with this key (keccak of its public key) is listed.
    """
    return self._is_active(enode_key)


@view
@external
def sequence_of(enode_key: bytes32) -> uint256:
    """
    @notice The last sequence number a node's self-update used.
    """
    return self._nodes[enode_key].sequence


@view
@external
def node(enode_key: bytes32) -> NodeInfo:
    """
    @notice A node's entry (all zero if it is not listed, except the sequence).
    @param enode_key keccak256 of the node's 64-byte public key.
    """
    packed: uint256 = self._nodes[enode_key].packed
    return NodeInfo(
        enode_high=self._nodes[enode_key].enode_high,
        enode_low=self._nodes[enode_key].enode_low,
        host=self._nodes[enode_key].host,
        port=self._port(packed),
        node_type=self._node_type(packed),
        organisation=self._nodes[enode_key].organisation,
        id_only=(packed >> 8) & 255 == 1,
        sequence=self._nodes[enode_key].sequence,
        active=packed & 255 == 1,
        host_kind=self._host_kind(packed),
        ip=self._ip(packed),
    )


@view
@external
def classifyHost(host: String[MAX_HOST_LENGTH]) -> (uint8, bytes16):
    """
    @notice How the registry reads a host: 0 invalid, 1 DNS name, 2 IPv4,
            3 IPv6, with the 16-byte address of an IP literal.
    """
    return host_validator._classify_host(host)


@internal
@pure
def _pack(id_only: bool, host_kind: uint8, node_type: uint8, port: uint16, ip: bytes16) -> uint256:
    flags: uint256 = 1
    if id_only:
        flags |= 1 << 8
    return (
        flags
        | (convert(host_kind, uint256) << 16)
        | (convert(node_type, uint256) << 24)
        | (convert(port, uint256) << 32)
        | (convert(convert(ip, uint128), uint256) << 128)
    )


@internal
@pure
def _port(packed: uint256) -> uint16:
    return convert((packed >> 32) & 65535, uint16)


@internal
@pure
def _node_type(packed: uint256) -> uint8:
    return convert((packed >> 24) & 255, uint8)


@internal
@pure
def _host_kind(packed: uint256) -> uint8:
    return convert((packed >> 16) & 255, uint8)


@internal
@pure
def _ip(packed: uint256) -> bytes16:
    return convert(convert(packed >> 128, uint128), bytes16)


@internal
@view
def _is_active(enode_key: bytes32) -> bool:
    return self._nodes[enode_key].packed & 255 == 1


@internal
@view
def _only_rules():
    assert msg.sender == self.rules, "permissioning: only the rules contract"
