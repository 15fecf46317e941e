# pragma version ~=0.4.3
"""
@title ANKR bridge, Ethereum side (foreign)
@custom:contract-name ForeignBridge
@license MIT
@notice On Ethereum ANKR is an ERC20. `relayTokens` locks ANKR here
        and emits `TransferInitiated`; validators sign it and a
        relayer pays the same amount in native coin on the Ankr
        chain. `executeSignatures` releases locked ANKR for a
        transfer signed by a threshold of validators that left the
        Ankr chain. ANKR locked here == native ANKR outside the
        home bridge, plus what is in flight.
"""

from ethereum.ercs import IERC20
from snekmate.auth import access_control

from ..interfaces import IForeignBridge
from . import bridge_core
from . import bridge_validators

implements: IForeignBridge
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

token: public(immutable(IERC20))


@deploy
def __init__(
    token_: IERC20,
    validators_: DynArray[address, bridge_validators.MAX_VALIDATORS],
    threshold_: uint256,
    peer_chain_id: uint256,
    limits: uint256[3],
    hold: uint256[2],
):
    """
    @notice The deployer becomes admin (DEFAULT_ADMIN_ROLE); grant
            PAUSER_ROLE and GUARDIAN_ROLE to other accounts.
    @param token_ The ANKR ERC20.
    @param validators_ The initial validator addresses.
    @param threshold_ Signatures needed (>= two thirds).
    @param peer_chain_id Chain id of the Ankr chain (peer bridge set later with setPeer).
    @param limits [min per transfer, max per transfer, daily limit] of locks.
    @param hold [hold threshold, hold period in seconds] of releases.
    """
    access_control.__init__()
    bridge_core.__init__(validators_, threshold_, peer_chain_id, limits, hold)
    token = token_


@external
@nonreentrant
def relayTokens(recipient: address, amount: uint256):
    """
    @notice Locks `amount` ANKR of the caller (approve first) to be
            paid as native coin to `recipient` on the Ankr chain.
    @param recipient Who receives the native coin.
    @param amount ANKR in wei, within the limits.
    """
    bridge_core._record_outgoing(msg.sender, recipient, amount)
    assert extcall token.transferFrom(msg.sender, self, amount, default_return_value=True), "bridge: transferFrom failed"


@external
@nonreentrant
def executeSignatures(
    transfer: bridge_core.Transfer,
    signatures: DynArray[bridge_validators.Signature, bridge_validators.MAX_VALIDATORS],
):
    """
    @notice Releases locked ANKR for a transfer from the Ankr chain,
            signed by a threshold of validators sorted by address.
            Large transfers are held instead (see `releaseHeld`).
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
@view
def lockedBalance() -> uint256:
    """
    @notice ANKR held by the bridge (locked plus held releases).
    @return uint256 The token balance of this contract.
    """
    return staticcall token.balanceOf(self)


@internal
def _pay(recipient: address, amount: uint256):
    assert extcall token.transfer(recipient, amount, default_return_value=True), "bridge: transfer failed"
