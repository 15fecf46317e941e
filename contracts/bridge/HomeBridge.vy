# pragma version ~=0.4.3
"""
@title ANKR bridge, Ankr chain side (home)
@custom:contract-name HomeBridge
@license MIT
@notice On the Ankr chain ANKR is the native coin. This contract
        holds the native supply (pre-funded in genesis; on anvil
        with anvil_setBalance, or `fund`). `relayNative` takes
        native coin back and emits `TransferInitiated`, to be paid
        in ERC20 ANKR on Ethereum; `executeSignatures` pays native
        coin for a transfer signed by a threshold of validators.
        A payment a recipient refuses (a contract that reverts) is
        kept for it and pulled with `withdraw`.
"""

from snekmate.auth import access_control

from ..interfaces import IHomeBridge
from . import bridge_core
from . import bridge_validators

implements: IHomeBridge
initializes: access_control
initializes: bridge_core[access_control := access_control]

exports: (
    access_control.hasRole,
    access_control.getRoleAdmin,
    access_control.grantRole,
    access_control.revokeRole,
    access_control.renounceRole,
    access_control.DEFAULT_ADMIN_ROLE,
    bridge_core.bridge_validators.addValidator,
    bridge_core.bridge_validators.removeValidator,
    bridge_core.bridge_validators.setThreshold,
    bridge_core.bridge_validators.isValidator,
    bridge_core.bridge_validators.validatorCount,
    bridge_core.bridge_validators.threshold,
    bridge_core.pausable.paused,
    bridge_core.eip712.eip712Domain,
    bridge_core.__interface__,
)

# Gas forwarded with a native payment: enough for a wallet, too little to grief the relayer.
PUSH_GAS: constant(uint256) = 30_000

owed: public(HashMap[address, uint256])
totalOwed: public(uint256)


event Funded:
    sender: indexed(address)
    amount: uint256


event PaymentDeferred:
    recipient: indexed(address)
    amount: uint256


event Withdrawn:
    recipient: indexed(address)
    amount: uint256


@deploy
@payable
def __init__(
    validators_: DynArray[address, bridge_validators.MAX_VALIDATORS],
    threshold_: uint256,
    peer_chain_id: uint256,
    peer_bridge: address,
    limits: uint256[3],
    hold: uint256[2],
):
    """
    @notice The deployer becomes admin; any value sent funds the bridge.
    @param validators_ The initial validator addresses.
    @param threshold_ Signatures needed (>= two thirds).
    @param peer_chain_id Chain id of Ethereum.
    @param peer_bridge The ForeignBridge address.
    @param limits [min per transfer, max per transfer, daily limit] of deposits.
    @param hold [hold threshold, hold period in seconds] of releases.
    """
    access_control.__init__()
    bridge_core.__init__(validators_, threshold_, peer_chain_id, limits, hold)
    bridge_core._set_peer(peer_chain_id, peer_bridge)


@external
@payable
def fund():
    """
    @notice Adds native coin to the supply the bridge holds (not a transfer).
    """
    log Funded(sender=msg.sender, amount=msg.value)


@external
@payable
@nonreentrant
def relayNative(recipient: address):
    """
    @notice Sends `msg.value` native ANKR to be paid as ERC20 ANKR to
            `recipient` on Ethereum.
    @param recipient Who receives the ERC20 on Ethereum.
    """
    bridge_core._record_outgoing(msg.sender, recipient, msg.value)


@external
@nonreentrant
def executeSignatures(
    transfer: bridge_core.Transfer,
    signatures: DynArray[bridge_validators.Signature, bridge_validators.MAX_VALIDATORS],
):
    """
    @notice Pays native coin for a transfer from Ethereum, signed by
            a threshold of validators sorted by address. Large
            transfers are held instead (see `releaseHeld`).
    @param transfer The source log and what it pays.
    @param signatures Validator signatures (v, r, s), signers strictly increasing.
    """
    if bridge_core._accept(transfer, signatures):
        self._pay(transfer.recipient, transfer.amount)


@external
@nonreentrant
def releaseHeld(key: bytes32):
    """
    @notice Pays a held transfer once its hold period is over (anyone may call).
    @param key The transfer's replay key.
    """
    held: bridge_core.Held = bridge_core._take_held(key)
    self._pay(held.recipient, held.amount)


@external
@nonreentrant
def withdraw():
    """
    @notice Pulls native coin whose push the caller refused.
    """
    amount: uint256 = self.owed[msg.sender]
    assert amount != 0, "bridge: nothing owed"
    self.owed[msg.sender] = 0
    self.totalOwed -= amount
    log Withdrawn(recipient=msg.sender, amount=amount)
    send(msg.sender, amount)


@internal
def _pay(recipient: address, amount: uint256):
    if not raw_call(recipient, b"", value=amount, gas=PUSH_GAS, revert_on_failure=False):
        self.owed[recipient] += amount
        self.totalOwed += amount
        log PaymentDeferred(recipient=recipient, amount=amount)
