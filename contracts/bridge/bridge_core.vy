# pragma version ~=0.4.3
"""
@title Bridge core: transfers in, transfers out, limits, holds
@custom:contract-name bridge_core
@license MIT
@notice What both bridge sides share. Outgoing transfers (locks on
        Ethereum, native deposits on the Ankr chain) are checked
        against a minimum, a maximum and a daily limit and emitted
        as `TransferInitiated`. Incoming transfers carry validator
        signatures over the EIP-712 typed data
        `Transfer(uint256 srcChainId,address srcBridge,bytes32 srcTxHash,uint256 logIndex,address recipient,uint256 amount)`
        in this bridge's domain; the source log (chain, bridge,
        tx hash, log index) is the replay key, so each source log
        pays at most once whatever else a signer puts in the tuple.
        Transfers of `holdThreshold` or more wait `holdPeriod`
        seconds, during which a guardian can cancel them. The
        deploying contract moves the value (ERC20 or native coin).
"""

from snekmate.auth import access_control
from snekmate.utils import eip712_domain_separator as eip712
from snekmate.utils import pausable

from . import bridge_validators

# The roles are the deploying contract's (it `initializes: access_control`);
# this module and bridge_validators only check them.
uses: access_control
initializes: bridge_validators[access_control := access_control]
initializes: pausable
initializes: eip712

PAUSER_ROLE: public(constant(bytes32)) = keccak256("PAUSER_ROLE")
GUARDIAN_ROLE: public(constant(bytes32)) = keccak256("GUARDIAN_ROLE")
TRANSFER_TYPEHASH: public(constant(bytes32)) = keccak256(
    "Transfer(uint256 srcChainId,address srcBridge,bytes32 srcTxHash,uint256 logIndex,address recipient,uint256 amount)"
)
EIP712_NAME: constant(String[50]) = "Ankr Bridge"
EIP712_VERSION: constant(String[20]) = "1"
DAY: constant(uint256) = 86400
PEER_SHIFT: constant(uint256) = 160
MAX_HOLD_THRESHOLD: constant(uint256) = 2**160 - 1

# transferState values
STATE_EXECUTED: constant(uint8) = 1
STATE_HELD: constant(uint8) = 2
STATE_CANCELLED: constant(uint8) = 3


struct Transfer:
    srcChainId: uint256
    srcBridge: address
    srcTxHash: bytes32
    logIndex: uint256
    recipient: address
    amount: uint256


struct Held:
    recipient: address
    amount: uint256
    releaseAt: uint256


peerChainId: public(uint256)
peerBridge: public(address)
# What every incoming transfer checks, in one storage slot (one cold read instead of
# three): the top 96 bits of keccak256(peerChainId, peerBridge), then holdThreshold.
_accept_word: uint256
minPerTx: public(uint256)
maxPerTx: public(uint256)
dailyLimit: public(uint256)
spentOnDay: public(HashMap[uint256, uint256])
holdThreshold: public(uint256)
holdPeriod: public(uint256)
transferState: public(HashMap[bytes32, uint8])
heldTransfers: public(HashMap[bytes32, Held])
totalHeld: public(uint256)


event TransferInitiated:
    sender: indexed(address)
    recipient: indexed(address)
    amount: uint256


event TransferExecuted:
    key: indexed(bytes32)
    recipient: indexed(address)
    amount: uint256


event TransferHeld:
    key: indexed(bytes32)
    recipient: indexed(address)
    amount: uint256
    release_at: uint256


event HeldTransferReleased:
    key: indexed(bytes32)
    recipient: indexed(address)
    amount: uint256


event HeldTransferCancelled:
    key: indexed(bytes32)
    guardian: indexed(address)
    amount: uint256


event PeerChanged:
    old_chain_id: uint256
    new_chain_id: uint256
    old_bridge: indexed(address)
    new_bridge: indexed(address)


event LimitsChanged:
    old_min: uint256
    new_min: uint256
    old_max: uint256
    new_max: uint256
    old_daily: uint256
    new_daily: uint256


event HoldChanged:
    old_threshold: uint256
    new_threshold: uint256
    old_period: uint256
    new_period: uint256


@deploy
def __init__(
    validators_: DynArray[address, bridge_validators.MAX_VALIDATORS],
    threshold_: uint256,
    peer_chain_id: uint256,
    limits: uint256[3],
    hold: uint256[2],
):
    """
    @dev The peer bridge address is set later with `setPeer` when
         it is not known yet (the side deployed first).
    """
    bridge_validators.__init__(validators_, threshold_)
    pausable.__init__()
    eip712.__init__(EIP712_NAME, EIP712_VERSION)
    self._set_peer(peer_chain_id, empty(address))
    self._set_limits(limits[0], limits[1], limits[2])
    self._set_hold(hold[0], hold[1])


# -- admin ---------------------------------------------------------------------------


@external
def setPeer(chain_id: uint256, bridge: address):
    """
    @notice Sets the other side: transfers are accepted only from
            logs of `bridge` on chain `chain_id`.
    @param chain_id The peer chain's id.
    @param bridge The peer bridge's address.
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    self._set_peer(chain_id, bridge)


@external
def setLimits(min_per_tx: uint256, max_per_tx: uint256, daily_limit: uint256):
    """
    @notice Limits of outgoing transfers on this side.
    @param min_per_tx Smallest transfer accepted.
    @param max_per_tx Largest transfer accepted.
    @param daily_limit Total accepted per UTC day.
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    self._set_limits(min_per_tx, max_per_tx, daily_limit)


@external
def setHold(threshold: uint256, period: uint256):
    """
    @notice Incoming transfers of `threshold` or more wait `period`
            seconds before they pay; 0 turns holds off.
    @param threshold Smallest amount that is held.
    @param period Seconds a held transfer waits.
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    self._set_hold(threshold, period)


@external
def pause():
    """
    @notice Stops transfers in and out (pauser role, not the owner).
    """
    access_control._check_role(PAUSER_ROLE, msg.sender)
    pausable._pause()


@external
def unpause():
    """
    @notice Resumes transfers (pauser role).
    """
    access_control._check_role(PAUSER_ROLE, msg.sender)
    pausable._unpause()


@external
def cancelHeld(key: bytes32):
    """
    @notice A guardian cancels a held transfer before it can be
            released; it never pays on this side.
    @param key The transfer's replay key (`transferKey`).
    """
    access_control._check_role(GUARDIAN_ROLE, msg.sender)
    assert self.transferState[key] == STATE_HELD, "bridge: transfer not held"
    held: Held = self.heldTransfers[key]
    assert block.timestamp < held.releaseAt, "bridge: hold period over"
    self.transferState[key] = STATE_CANCELLED
    self.totalHeld -= held.amount
    self.heldTransfers[key] = empty(Held)
    log HeldTransferCancelled(key=key, guardian=msg.sender, amount=held.amount)


# -- views -----------------------------------------------------------------------------


@external
@view
def transferKey(transfer: Transfer) -> bytes32:
    """
    @notice The replay key of a transfer: its source log.
    @param transfer The transfer.
    @return bytes32 keccak256 of (srcChainId, srcBridge, srcTxHash, logIndex).
    """
    return self._key(transfer)


@external
@view
def transferDigest(transfer: Transfer) -> bytes32:
    """
    @notice The EIP-712 digest validators sign for `transfer` in this domain.
    @param transfer The transfer.
    @return bytes32 The digest.
    """
    return self._digest(transfer)


# -- internals -------------------------------------------------------------------------


@internal
@view
def _key(transfer: Transfer) -> bytes32:
    return keccak256(abi_encode(transfer.srcChainId, transfer.srcBridge, transfer.srcTxHash, transfer.logIndex))


@internal
@view
def _digest(transfer: Transfer) -> bytes32:
    return eip712._hash_typed_data_v4(keccak256(abi_encode(TRANSFER_TYPEHASH, transfer)))


@internal
def _record_outgoing(sender: address, recipient: address, amount: uint256):
    """
    @dev Checks the limits of an outgoing transfer and emits it.
    """
    pausable._require_not_paused()
    assert recipient != empty(address), "bridge: zero recipient"
    assert amount >= self.minPerTx, "bridge: below minimum per transfer"
    assert amount <= self.maxPerTx, "bridge: above maximum per transfer"
    day: uint256 = block.timestamp // DAY
    spent: uint256 = self.spentOnDay[day] + amount
    assert spent <= self.dailyLimit, "bridge: daily limit exceeded"
    self.spentOnDay[day] = spent
    log TransferInitiated(sender=sender, recipient=recipient, amount=amount)


@internal
def _accept(transfer: Transfer, signatures: DynArray[bridge_validators.Signature, bridge_validators.MAX_VALIDATORS]) -> bool:
    """
    @dev Verifies an incoming transfer and marks it processed.
         Returns True when it pays now, False when it is held.
    """
    pausable._require_not_paused()
    accept_word: uint256 = self._accept_word
    assert self._peer_bits(transfer.srcChainId, transfer.srcBridge) == accept_word >> PEER_SHIFT, "bridge: not from the peer bridge"
    assert transfer.amount != 0 and transfer.recipient != empty(address), "bridge: empty transfer"
    key: bytes32 = self._key(transfer)
    assert self.transferState[key] == 0, "bridge: transfer already processed"
    bridge_validators._check_signatures(self._digest(transfer), signatures)
    hold_threshold: uint256 = accept_word & MAX_HOLD_THRESHOLD
    if hold_threshold != 0 and transfer.amount >= hold_threshold:
        release_at: uint256 = block.timestamp + self.holdPeriod
        self.transferState[key] = STATE_HELD
        self.heldTransfers[key] = Held(recipient=transfer.recipient, amount=transfer.amount, releaseAt=release_at)
        self.totalHeld += transfer.amount
        log TransferHeld(key=key, recipient=transfer.recipient, amount=transfer.amount, release_at=release_at)
        return False
    self.transferState[key] = STATE_EXECUTED
    log TransferExecuted(key=key, recipient=transfer.recipient, amount=transfer.amount)
    return True


@internal
def _take_held(key: bytes32) -> Held:
    """
    @dev Ends the hold of a transfer whose period is over; the caller pays it.
    """
    pausable._require_not_paused()
    assert self.transferState[key] == STATE_HELD, "bridge: transfer not held"
    held: Held = self.heldTransfers[key]
    assert block.timestamp >= held.releaseAt, "bridge: still on hold"
    self.transferState[key] = STATE_EXECUTED
    self.totalHeld -= held.amount
    self.heldTransfers[key] = empty(Held)
    log HeldTransferReleased(key=key, recipient=held.recipient, amount=held.amount)
    return held


@internal
@pure
def _peer_bits(chain_id: uint256, bridge: address) -> uint256:
    return convert(keccak256(abi_encode(chain_id, bridge)), uint256) >> PEER_SHIFT


@internal
def _set_peer(chain_id: uint256, bridge: address):
    log PeerChanged(old_chain_id=self.peerChainId, new_chain_id=chain_id, old_bridge=self.peerBridge, new_bridge=bridge)
    self.peerChainId = chain_id
    self.peerBridge = bridge
    self._accept_word = (self._peer_bits(chain_id, bridge) << PEER_SHIFT) | self.holdThreshold


@internal
def _set_limits(min_per_tx: uint256, max_per_tx: uint256, daily_limit: uint256):
    assert min_per_tx != 0 and min_per_tx <= max_per_tx and max_per_tx <= daily_limit, "bridge: inconsistent limits"
    log LimitsChanged(
        old_min=self.minPerTx, new_min=min_per_tx, old_max=self.maxPerTx, new_max=max_per_tx,
        old_daily=self.dailyLimit, new_daily=daily_limit,
    )
    self.minPerTx = min_per_tx
    self.maxPerTx = max_per_tx
    self.dailyLimit = daily_limit


@internal
def _set_hold(threshold: uint256, period: uint256):
    log HoldChanged(old_threshold=self.holdThreshold, new_threshold=threshold, old_period=self.holdPeriod, new_period=period)
    assert threshold <= MAX_HOLD_THRESHOLD, "bridge: hold threshold too large"
    self.holdThreshold = threshold
    self._accept_word = (self._accept_word >> PEER_SHIFT << PEER_SHIFT) | threshold
    self.holdPeriod = period
