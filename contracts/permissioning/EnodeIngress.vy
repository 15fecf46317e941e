# pragma version ~=0.4.3
"""
@title Enode ingress: the node list and the interface Besu calls
@custom:contract-name EnodeIngress
@custom:fallback-abi ../interfaces/IBesuNodePermissioning.vyi
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

from ..interfaces import IPermissioningIngress

implements: IPermissioningIngress

from . import host_validator

MAX_HOST_LENGTH: constant(uint256) = host_validator.MAX_HOST_LENGTH
MAX_ORGANISATION_LENGTH: constant(uint256) = 64
MAX_HOST_WORDS: constant(uint256) = 8  # ceil(253 / 32)
ENODE_HEX_LENGTH: constant(uint256) = host_validator.ENODE_HEX_LENGTH
ABI_HEAD_LENGTH: constant(uint256) = 96  # connectionAllowed's three head words
CONNECTION_ALLOWED_SELECTOR: constant(bytes4) = method_id("connectionAllowed(string,string,uint16)", output_type=bytes4)


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
    """
    @notice The deployer becomes the bootstrapper, which sets the first
            rules contract (`set_rules`) and has no other power.
    """
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
    @param enode_high The first 32 bytes of the node's 64-byte public key.
    @param enode_low The last 32 bytes of the node's public key.
    @param host The node's host: a DNS name or an IP literal.
    @param host_kind How `host` classifies: 1 DNS name, 2 IPv4, 3 IPv6 (`classifyHost`).
    @param ip The 16-byte address of an IP literal (IPv4-mapped for IPv4), zero for a DNS name.
    @param port The node's TCP port.
    @param node_type 0 validator, 1 bootnode, 2 writer, 3 observer.
    @param organisation The organisation running the node.
    @param id_only True if the node is allowed by its id alone, at any endpoint.
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
    @param enode_key keccak256 of the node's 64-byte public key.
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
    @param enode_key keccak256 of the node's 64-byte public key.
    @param host The new host: a DNS name or an IP literal.
    @param host_kind How `host` classifies: 1 DNS name, 2 IPv4, 3 IPv6.
    @param ip The 16-byte address of an IP literal, zero for a DNS name.
    @param port The new TCP port.
    @param sequence The update's sequence number, above the node's last one.
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
def __default__() -> bool:
    """
    @notice Besu permissioning v2, `connectionAllowed(string enodeId,
            string enodeHost, uint16 enodePort) -> bool` (declared in
            interfaces/IBesuNodePermissioning.vyi): may a node with this
            enode URL connect? Any other selector reverts.
    @dev Decoded here by hand, not as an external function: Vyper's ABI
         decoder reverts on strings longer than their declared bound, and
         Besu treats a revert as an error. Every input the ABI can carry
         gets a well-formed bool, in O(1) (only the heads, the id and at
         most 253 host bytes are read): an id that is not 128 hex digits,
         a host that is not a valid IP or name, a port word above 65535,
         an offset or length pointing outside the call, or a truncated
         call is simply not allowed.
    @return bool True if the node is registered at this host and port
            (or registered to match on its id only).
    """
    if len(msg.data) < 4:
        raise "permissioning: unknown function"
    if convert(slice(msg.data, 0, 4), bytes4) != CONNECTION_ALLOWED_SELECTOR:
        raise "permissioning: unknown function"
    if len(msg.data) < 4 + ABI_HEAD_LENGTH:
        return False
    port_word: uint256 = self._calldata_word(4 + 64)
    if port_word > convert(max_value(uint16), uint256):
        return False
    ok: bool = False
    id_start: uint256 = 0
    id_length: uint256 = 0
    ok, id_start, id_length = self._calldata_string(0, ENODE_HEX_LENGTH)
    if not ok or id_length != ENODE_HEX_LENGTH:
        return False
    host_start: uint256 = 0
    host_length: uint256 = 0
    ok, host_start, host_length = self._calldata_string(32, MAX_HOST_LENGTH)
    if not ok:
        return False
    enode_id: String[ENODE_HEX_LENGTH] = convert(slice(msg.data, id_start, ENODE_HEX_LENGTH), String[ENODE_HEX_LENGTH])
    return self._connection_allowed(
        enode_id, self._calldata_host(host_start, host_length), host_length, convert(port_word, uint16)
    )


@internal
@view
def _calldata_word(position: uint256) -> uint256:
    """
    @dev The 32 bytes of the call at `position`; the caller checked that
         they are inside it.
    """
    return convert(slice(msg.data, position, 32), uint256)


@internal
@view
def _calldata_string(head_position: uint256, max_length: uint256) -> (bool, uint256, uint256):
    """
    @dev (ok, start, length) of the `string` argument whose offset is in the
         head word at `head_position` (relative to the arguments). ok is
         False if its length word or its zero-padded content lies outside
         the call, or it is longer than `max_length`. Compares before any
         addition, so hostile offsets cannot overflow.
    """
    arguments: uint256 = len(msg.data) - 4
    offset: uint256 = self._calldata_word(4 + head_position)
    if offset > arguments - 32:
        return False, 0, 0
    length: uint256 = self._calldata_word(4 + offset)
    if length > max_length:
        return False, 0, 0
    if (length + 31) // 32 * 32 > arguments - 32 - offset:
        return False, 0, 0
    return True, 4 + offset + 32, length


@internal
@view
def _calldata_host(start: uint256, length: uint256) -> Bytes[host_validator.PADDED_LENGTH]:
    """
    @dev The host's padded words, followed by one zero word (what
         host_validator reads); words past `length` are left zero.
    """
    words: bytes32[MAX_HOST_WORDS] = empty(bytes32[MAX_HOST_WORDS])
    for i: uint256 in range(MAX_HOST_WORDS):
        if i * 32 >= length:
            break
        words[i] = convert(slice(msg.data, start + i * 32, 32), bytes32)
    return concat(
        words[0], words[1], words[2], words[3], words[4], words[5], words[6], words[7], empty(bytes32)
    )


@internal
@view
def _connection_allowed(
    enode_id: String[ENODE_HEX_LENGTH], host: Bytes[host_validator.PADDED_LENGTH], host_length: uint256, port: uint16
) -> bool:
    """
    @dev The lookup behind connectionAllowed: the first `host_length` bytes
         of `host` are the host.
    """
    ok: bool = False
    high: bytes32 = empty(bytes32)
    low: bytes32 = empty(bytes32)
    ok, high, low = host_validator._parse_enode_hex(enode_id)
    if not ok:
        return False
    key: bytes32 = host_validator._enode_key(high, low)
    packed: uint256 = self._nodes[key].packed
    if packed & 255 == 0:
        return False
    if (packed >> 8) & 255 == 1:
        return True  # registered to match on its id only
    if self._port(packed) != port:
        return False
    stored_kind: uint8 = self._host_kind(packed)
    if stored_kind == host_validator.HOST_DNS:
        return keccak256(slice(host, 0, host_length)) == keccak256(self._nodes[key].host)
    kind: uint8 = 0
    ip: bytes16 = empty(bytes16)
    kind, ip = host_validator._classify_padded(host, host_length)
    return kind != host_validator.HOST_DNS and kind != host_validator.HOST_INVALID and ip == self._ip(packed)


@view
@external
def enodeAllowed(enodeHigh: bytes32, enodeLow: bytes32, ip: bytes16, port: uint16) -> bool:
    """
    @notice Version-1 style lookup (seed 004's struct: enodeHigh, enodeLow,
            bytes16 ip, uint16 port). IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d).
    @return bool True if the node is registered at this IP and port (or by
            id only). A node registered by DNS name matches here only by id.
    @param enodeHigh The first 32 bytes of the node's public key.
    @param enodeLow The last 32 bytes of the node's public key.
    @param ip The connecting IP, IPv4 as IPv4-mapped IPv6.
    @param port The connecting TCP port.
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
    @param enode_key keccak256 of the node's 64-byte public key.
    @return bool True if the node is listed.
    """
    return self._is_active(enode_key)


@view
@external
def sequence_of(enode_key: bytes32) -> uint256:
    """
    @notice The last sequence number a node's self-update used.
    @param enode_key keccak256 of the node's 64-byte public key.
    @return uint256 The sequence number (0 before any update).
    """
    return self._nodes[enode_key].sequence


@view
@external
def node(enode_key: bytes32) -> NodeInfo:
    """
    @notice A node's entry (all zero if it is not listed, except the sequence).
    @param enode_key keccak256 of the node's 64-byte public key.
    @return NodeInfo The node's entry.
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
    @param host The host to classify.
    @return (uint8, bytes16) The kind (0..3) and the 16-byte address (zero unless an IP literal).
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
