# pragma version ~=0.4.3
"""
@title Enode rules: admins with M-of-N approvals, and signed self-updates
@custom:contract-name EnodeRules
@license MIT
@notice Decides every change to the node list held by `EnodeIngress`:
        - admins propose adding or removing a node or an admin, changing
          the threshold, or upgrading to new rules; a proposal executes
          when `threshold` current admins approved it, and expires
          `proposal_ttl` seconds after it was made;
        - a node changes its own host and port with an EIP-712 message
          signed by its enode key (the address of a public key is the
          low 20 bytes of its keccak, which is also the registry key)
          and a sequence number above the last one: no admin needed
          for an IP change, and replays or stale messages are refused.
          Anyone may submit the message; the signature authorises it.
"""

from ..interfaces import IPermissioningIngress

from snekmate.utils import ecdsa
from snekmate.utils import eip712_domain_separator

initializes: eip712_domain_separator

exports: eip712_domain_separator.eip712Domain

from . import host_validator

MAX_ADMINS: constant(uint256) = 32
MAX_HOST_LENGTH: constant(uint256) = host_validator.MAX_HOST_LENGTH
MAX_ORGANISATION_LENGTH: constant(uint256) = 64

# Node types (seed 004: validator, boot, writer; plus read-only observers).
NODE_VALIDATOR: constant(uint8) = 0
NODE_BOOT: constant(uint8) = 1
NODE_WRITER: constant(uint8) = 2
NODE_OBSERVER: constant(uint8) = 3

# Proposal kinds.
ADD_NODE: constant(uint8) = 1
REMOVE_NODE: constant(uint8) = 2
ADD_ADMIN: constant(uint8) = 3
REMOVE_ADMIN: constant(uint8) = 4
SET_THRESHOLD: constant(uint8) = 5
UPGRADE_RULES: constant(uint8) = 6

ENDPOINT_UPDATE_TYPEHASH: constant(bytes32) = keccak256(
    "EndpointUpdate(bytes32 enodeKey,string host,uint16 port,uint256 sequence)"
)


struct Proposal:
    # kind | executed << 8 | node_type << 16 | id_only << 24 | port << 32 | expires_at << 64:
    # one slot for what would take six (each struct member gets its own slot).
    meta: uint256
    approvers: DynArray[address, MAX_ADMINS]
    enode_high: bytes32
    enode_low: bytes32
    host: String[MAX_HOST_LENGTH]
    organisation: String[MAX_ORGANISATION_LENGTH]
    account: address
    amount: uint256


struct ProposalInfo:
    kind: uint8
    expires_at: uint256
    executed: bool
    approvers: DynArray[address, MAX_ADMINS]
    enode_high: bytes32
    enode_low: bytes32
    host: String[MAX_HOST_LENGTH]
    port: uint16
    node_type: uint8
    organisation: String[MAX_ORGANISATION_LENGTH]
    id_only: bool
    account: address
    amount: uint256


event ProposalCreated:
    proposal_id: indexed(uint256)
    proposer: indexed(address)
    kind: uint8
    subject: bytes32
    expires_at: uint256


event ProposalApproved:
    proposal_id: indexed(uint256)
    admin: indexed(address)
    approvals: uint256


event ProposalExecuted:
    proposal_id: indexed(uint256)
    kind: uint8
    subject: bytes32


event AdminAdded:
    account: indexed(address)
    admin_count: uint256


event AdminRemoved:
    account: indexed(address)
    admin_count: uint256


event ThresholdChanged:
    old_threshold: uint256
    new_threshold: uint256


ingress: public(IPermissioningIngress)
admins: public(DynArray[address, MAX_ADMINS])
is_admin: public(HashMap[address, bool])
threshold: public(uint256)
proposal_ttl: public(uint256)
proposal_count: public(uint256)
_proposals: HashMap[uint256, Proposal]


@deploy
def __init__(ingress: address, initial_admins: DynArray[address, MAX_ADMINS], threshold: uint256, proposal_ttl: uint256):
    """
    @notice Binds the rules to an ingress and sets the first admins, the
            approval threshold and how long proposals stay open.
    @param ingress The `EnodeIngress` holding the node list.
    @param initial_admins The admins (distinct, non-zero).
    @param threshold Approvals a proposal needs, 1..len(initial_admins).
    @param proposal_ttl Seconds a proposal stays open.
    """
    eip712_domain_separator.__init__("DCCN Enode Registry", "1")
    assert ingress.is_contract, "permissioning: ingress must be a contract"
    assert proposal_ttl > 0, "permissioning: zero proposal ttl"
    self.ingress = IPermissioningIngress(ingress)
    self.proposal_ttl = proposal_ttl
    for admin: address in initial_admins:
        self._add_admin(admin)
    self._set_threshold(threshold)


# -- proposals ---------------------------------------------------------------------------


@external
def proposeAddNode(
    enodeHigh: bytes32,
    enodeLow: bytes32,
    host: String[MAX_HOST_LENGTH],
    port: uint16,
    nodeType: uint8,
    organisation: String[MAX_ORGANISATION_LENGTH],
    idOnly: bool,
) -> uint256:
    """
    @notice Propose listing a node; counts as the proposer's approval.
    @param enodeHigh First 32 bytes of the node's public key (x).
    @param enodeLow Last 32 bytes of the node's public key (y).
    @param host IPv4/IPv6 literal or DNS name (see host_validator).
    @param port TCP listening port, non-zero.
    @param nodeType 0 validator, 1 boot, 2 writer, 3 observer.
    @param organisation The operating organisation (1..64 characters).
    @param idOnly Allow the node from any host and port.
    @return uint256 The proposal id.
    """
    self._check_node(enodeHigh, enodeLow, host, port, nodeType, organisation)
    assert not staticcall self.ingress.is_registered(host_validator._enode_key(enodeHigh, enodeLow)), \
        "permissioning: node already registered"
    id_only_bit: uint256 = 0
    if idOnly:
        id_only_bit = 1
    node_meta: uint256 = (convert(nodeType, uint256) << 16) | (id_only_bit << 24) | (convert(port, uint256) << 32)
    proposal_id: uint256 = self._open(ADD_NODE, node_meta)
    self._proposals[proposal_id].enode_high = enodeHigh
    self._proposals[proposal_id].enode_low = enodeLow
    self._proposals[proposal_id].host = host
    self._proposals[proposal_id].organisation = organisation
    return self._submit(proposal_id)


@external
def proposeRemoveNode(enodeHigh: bytes32, enodeLow: bytes32) -> uint256:
    """
    @notice Propose removing a listed node; counts as the proposer's approval.
    @return uint256 The proposal id.
    @param enodeHigh The first 32 bytes of the node's public key.
    @param enodeLow The last 32 bytes of the node's public key.
    """
    assert staticcall self.ingress.is_registered(host_validator._enode_key(enodeHigh, enodeLow)), \
        "permissioning: unknown node"
    proposal_id: uint256 = self._open(REMOVE_NODE, 0)
    self._proposals[proposal_id].enode_high = enodeHigh
    self._proposals[proposal_id].enode_low = enodeLow
    return self._submit(proposal_id)


@external
def proposeAddAdmin(account: address) -> uint256:
    """
    @notice Propose a new admin; counts as the proposer's approval.
    @return uint256 The proposal id.
    @param account The new admin (not the zero address, not an admin yet).
    """
    assert account != empty(address), "permissioning: zero address"
    assert not self.is_admin[account], "permissioning: already an admin"
    proposal_id: uint256 = self._open(ADD_ADMIN, 0)
    self._proposals[proposal_id].account = account
    return self._submit(proposal_id)


@external
def proposeRemoveAdmin(account: address) -> uint256:
    """
    @notice Propose removing an admin; counts as the proposer's approval.
    @return uint256 The proposal id.
    @param account The admin to remove.
    """
    assert self.is_admin[account], "permissioning: not an admin"
    proposal_id: uint256 = self._open(REMOVE_ADMIN, 0)
    self._proposals[proposal_id].account = account
    return self._submit(proposal_id)


@external
def proposeThreshold(newThreshold: uint256) -> uint256:
    """
    @notice Propose a new approval threshold; counts as the proposer's approval.
    @return uint256 The proposal id.
    @param newThreshold The new threshold, 1..adminCount().
    """
    assert newThreshold > 0 and newThreshold <= len(self.admins), "permissioning: threshold out of range"
    proposal_id: uint256 = self._open(SET_THRESHOLD, 0)
    self._proposals[proposal_id].amount = newThreshold
    return self._submit(proposal_id)


@external
def proposeRulesUpgrade(newRules: address) -> uint256:
    """
    @notice Propose handing the node list to a new rules contract.
    @return uint256 The proposal id.
    @param newRules The new rules contract (a contract other than this one).
    """
    assert newRules.is_contract and newRules != self, "permissioning: rules must be another contract"
    proposal_id: uint256 = self._open(UPGRADE_RULES, 0)
    self._proposals[proposal_id].account = newRules
    return self._submit(proposal_id)


@external
def approve(proposalId: uint256):
    """
    @notice Approve an open proposal; executes it once enough current
            admins approved.
    @param proposalId The proposal.
    """
    self._only_admin()
    self._check_open(proposalId)
    for approver: address in self._proposals[proposalId].approvers:
        assert approver != msg.sender, "permissioning: already approved"
    self._proposals[proposalId].approvers.append(msg.sender)
    approvals: uint256 = self._approvals(proposalId)
    log ProposalApproved(proposal_id=proposalId, admin=msg.sender, approvals=approvals)
    if approvals >= self.threshold:
        self._execute(proposalId)


@external
def execute(proposalId: uint256):
    """
    @notice Execute an open proposal that has enough approvals (after a
            threshold was lowered, say).
    @param proposalId The proposal.
    """
    self._only_admin()
    self._check_open(proposalId)
    assert self._approvals(proposalId) >= self.threshold, "permissioning: not enough approvals"
    self._execute(proposalId)


@view
@external
def proposal(proposalId: uint256) -> ProposalInfo:
    """
    @notice A proposal as stored (executed flag, approvers, payload).
    @param proposalId The proposal.
    @return ProposalInfo The proposal's kind, state, approvers and payload.
    """
    meta: uint256 = self._proposals[proposalId].meta
    return ProposalInfo(
        kind=self._kind(meta),
        expires_at=meta >> 64,
        executed=(meta >> 8) & 1 == 1,
        approvers=self._proposals[proposalId].approvers,
        enode_high=self._proposals[proposalId].enode_high,
        enode_low=self._proposals[proposalId].enode_low,
        host=self._proposals[proposalId].host,
        port=convert((meta >> 32) & 65535, uint16),
        node_type=convert((meta >> 16) & 255, uint8),
        organisation=self._proposals[proposalId].organisation,
        id_only=(meta >> 24) & 1 == 1,
        account=self._proposals[proposalId].account,
        amount=self._proposals[proposalId].amount,
    )


@view
@external
def approvals(proposalId: uint256) -> uint256:
    """
    @notice Approvals of a proposal by current admins.
    @param proposalId The proposal.
    @return uint256 The number of current admins that approved it.
    """
    return self._approvals(proposalId)


@view
@external
def adminCount() -> uint256:
    """
    @notice The number of admins.
    @return uint256 The number of admins.
    """
    return len(self.admins)


# -- self-service endpoint update ----------------------------------------------------------


@external
def updateEndpoint(enodeKey: bytes32, host: String[MAX_HOST_LENGTH], port: uint16, sequence: uint256, signature: Bytes[65]):
    """
    @notice A node moves to a new host and port, authorised by its own enode
            key. Anyone may relay the message.
    @param enodeKey keccak256 of the node's 64-byte public key.
    @param host The new IPv4/IPv6 literal or DNS name.
    @param port The new TCP port, non-zero.
    @param sequence Must exceed the node's last sequence number.
    @param signature 65-byte EIP-712 signature of EndpointUpdate by the enode key.
    """
    assert staticcall self.ingress.is_registered(enodeKey), "permissioning: unknown node"
    assert sequence > staticcall self.ingress.sequence_of(enodeKey), "permissioning: stale sequence"
    assert port != 0, "permissioning: zero port"
    kind: uint8 = 0
    ip: bytes16 = empty(bytes16)
    kind, ip = host_validator._classify_host(host)
    assert kind != host_validator.HOST_INVALID, "permissioning: malformed host"
    assert len(signature) == 65, "permissioning: signature must be 65 bytes"
    signer: address = ecdsa._recover_sig(self._endpoint_digest(enodeKey, host, port, sequence), signature)
    # The enode key's address is the low 20 bytes of keccak(public key) = enodeKey.
    assert signer == convert(convert(enodeKey, uint256) & convert(max_value(uint160), uint256), address), \
        "permissioning: not signed by the enode key"
    extcall self.ingress.set_endpoint(enodeKey, host, kind, ip, port, sequence)


@view
@external
def endpointUpdateDigest(enodeKey: bytes32, host: String[MAX_HOST_LENGTH], port: uint16, sequence: uint256) -> bytes32:
    """
    @notice The EIP-712 digest a node signs for `updateEndpoint`.
    @param enodeKey keccak256 of the node's 64-byte public key.
    @param host The new host.
    @param port The new TCP port.
    @param sequence The update's sequence number.
    @return bytes32 The digest.
    """
    return self._endpoint_digest(enodeKey, host, port, sequence)


@pure
@external
def enodeKeyOf(enodeHigh: bytes32, enodeLow: bytes32) -> bytes32:
    """
    @notice The registry key of a public key: keccak256(high || low).
    @param enodeHigh The first 32 bytes of the public key.
    @param enodeLow The last 32 bytes of the public key.
    @return bytes32 The key.
    """
    return host_validator._enode_key(enodeHigh, enodeLow)


# -- internals ---------------------------------------------------------------------------


@internal
@view
def _endpoint_digest(enode_key: bytes32, host: String[MAX_HOST_LENGTH], port: uint16, sequence: uint256) -> bytes32:
    struct_hash: bytes32 = keccak256(abi_encode(ENDPOINT_UPDATE_TYPEHASH, enode_key, keccak256(host), port, sequence))
    return eip712_domain_separator._hash_typed_data_v4(struct_hash)


@internal
@view
def _check_node(
    enode_high: bytes32,
    enode_low: bytes32,
    host: String[MAX_HOST_LENGTH],
    port: uint16,
    node_type: uint8,
    organisation: String[MAX_ORGANISATION_LENGTH],
):
    assert host_validator._is_public_key(enode_high, enode_low), "permissioning: malformed enode id"
    kind: uint8 = 0
    ip: bytes16 = empty(bytes16)
    kind, ip = host_validator._classify_host(host)
    assert kind != host_validator.HOST_INVALID, "permissioning: malformed host"
    assert port != 0, "permissioning: zero port"
    assert node_type <= NODE_OBSERVER, "permissioning: unknown node type"
    assert len(organisation) > 0, "permissioning: empty organisation"


@internal
def _open(kind: uint8, node_meta: uint256) -> uint256:
    """
    @dev A new proposal with the proposer's approval; the caller stores its
         payload field by field (a whole-struct write would also write every
         unused word of the strings and of the approver list).
    """
    self._only_admin()
    proposal_id: uint256 = self.proposal_count + 1
    self.proposal_count = proposal_id
    self._proposals[proposal_id].meta = convert(kind, uint256) | node_meta | ((block.timestamp + self.proposal_ttl) << 64)
    self._proposals[proposal_id].approvers.append(msg.sender)
    return proposal_id


@internal
def _submit(proposal_id: uint256) -> uint256:
    log ProposalCreated(
        proposal_id=proposal_id,
        proposer=msg.sender,
        kind=self._kind(self._proposals[proposal_id].meta),
        subject=self._subject(proposal_id),
        expires_at=self._proposals[proposal_id].meta >> 64,
    )
    log ProposalApproved(proposal_id=proposal_id, admin=msg.sender, approvals=1)
    if self.threshold <= 1:
        self._execute(proposal_id)
    return proposal_id


@internal
@view
def _subject(proposal_id: uint256) -> bytes32:
    """
    @dev What a proposal is about, for events: the enode key, the admin or
         rules address, or the threshold.
    """
    kind: uint8 = self._kind(self._proposals[proposal_id].meta)
    if kind == ADD_NODE or kind == REMOVE_NODE:
        return host_validator._enode_key(self._proposals[proposal_id].enode_high, self._proposals[proposal_id].enode_low)
    if kind == SET_THRESHOLD:
        return convert(self._proposals[proposal_id].amount, bytes32)
    return convert(self._proposals[proposal_id].account, bytes32)


@internal
@view
def _check_open(proposal_id: uint256):
    assert proposal_id > 0 and proposal_id <= self.proposal_count, "permissioning: unknown proposal"
    meta: uint256 = self._proposals[proposal_id].meta
    assert (meta >> 8) & 1 == 0, "permissioning: proposal already executed"
    assert block.timestamp < meta >> 64, "permissioning: proposal expired"


@internal
@view
def _approvals(proposal_id: uint256) -> uint256:
    # Approvals of admins removed since then no longer count.
    count: uint256 = 0
    for approver: address in self._proposals[proposal_id].approvers:
        if self.is_admin[approver]:
            count += 1
    return count


@internal
def _execute(proposal_id: uint256):
    meta: uint256 = self._proposals[proposal_id].meta
    kind: uint8 = self._kind(meta)
    self._proposals[proposal_id].meta = meta | (1 << 8)
    if kind == ADD_NODE:
        # Validated when proposed; the ingress refuses a node listed meanwhile. The
        # host is classified again rather than stored: computing is cheaper than two slots.
        host: String[MAX_HOST_LENGTH] = self._proposals[proposal_id].host
        host_kind: uint8 = 0
        ip: bytes16 = empty(bytes16)
        host_kind, ip = host_validator._classify_host(host)
        extcall self.ingress.add_node(
            self._proposals[proposal_id].enode_high,
            self._proposals[proposal_id].enode_low,
            host,
            host_kind,
            ip,
            convert((meta >> 32) & 65535, uint16),
            convert((meta >> 16) & 255, uint8),
            self._proposals[proposal_id].organisation,
            (meta >> 24) & 1 == 1,
        )
    elif kind == REMOVE_NODE:
        extcall self.ingress.remove_node(
            host_validator._enode_key(self._proposals[proposal_id].enode_high, self._proposals[proposal_id].enode_low)
        )
    elif kind == ADD_ADMIN:
        self._add_admin(self._proposals[proposal_id].account)
    elif kind == REMOVE_ADMIN:
        self._remove_admin(self._proposals[proposal_id].account)
    elif kind == SET_THRESHOLD:
        self._set_threshold(self._proposals[proposal_id].amount)
    elif kind == UPGRADE_RULES:
        extcall self.ingress.set_rules(self._proposals[proposal_id].account)
    log ProposalExecuted(proposal_id=proposal_id, kind=kind, subject=self._subject(proposal_id))


@internal
def _add_admin(account: address):
    assert account != empty(address), "permissioning: zero address"
    assert not self.is_admin[account], "permissioning: already an admin"
    assert len(self.admins) < MAX_ADMINS, "permissioning: too many admins"
    self.admins.append(account)
    self.is_admin[account] = True
    log AdminAdded(account=account, admin_count=len(self.admins))


@internal
def _remove_admin(account: address):
    assert self.is_admin[account], "permissioning: not an admin"
    assert len(self.admins) - 1 >= self.threshold, "permissioning: admins would fall below the threshold"
    remaining: DynArray[address, MAX_ADMINS] = []
    for admin: address in self.admins:
        if admin != account:
            remaining.append(admin)
    self.admins = remaining
    self.is_admin[account] = False
    log AdminRemoved(account=account, admin_count=len(self.admins))


@internal
def _set_threshold(new_threshold: uint256):
    assert new_threshold > 0 and new_threshold <= len(self.admins), "permissioning: threshold out of range"
    log ThresholdChanged(old_threshold=self.threshold, new_threshold=new_threshold)
    self.threshold = new_threshold


@internal
@pure
def _kind(meta: uint256) -> uint8:
    return convert(meta & 255, uint8)


@internal
@view
def _only_admin():
    assert self.is_admin[msg.sender], "permissioning: only an admin"
