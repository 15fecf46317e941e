# pragma version ~=0.4.3
"""
@title Bridge validator set
@custom:contract-name bridge_validators
@license MIT
@notice The validators of one bridge side and the number of them
        whose signatures a transfer needs. The threshold is always
        at least two thirds of the set (3 of 4, 5 of 7), and the
        admin (`DEFAULT_ADMIN_ROLE`) changes both, with events.
        Signatures must come sorted by signer address, strictly
        increasing, which refuses duplicates without a lookup.
        The roles (snekmate access_control) are the deployable
        contract's: it `initializes:` them, this module `uses:` them.
"""

from snekmate.auth import access_control
from snekmate.utils import ecdsa

uses: access_control

MAX_VALIDATORS: constant(uint256) = 16


struct Signature:
    v: uint256
    r: uint256
    s: uint256


isValidator: public(HashMap[address, bool])
validatorCount: public(uint256)
threshold: public(uint256)


event ValidatorAdded:
    validator: indexed(address)
    validator_count: uint256


event ValidatorRemoved:
    validator: indexed(address)
    validator_count: uint256


event ThresholdChanged:
    old_threshold: uint256
    new_threshold: uint256


@deploy
def __init__(validators_: DynArray[address, MAX_VALIDATORS], threshold_: uint256):
    """
    @dev The deploying contract initializes access_control (the
         deployer becomes admin) before this.
    """
    for validator: address in validators_:
        self._add(validator)
    self._set_threshold(threshold_)


@external
def addValidator(validator: address, new_threshold: uint256):
    """
    @notice Adds `validator` and sets the threshold in the same
            step, so the set never violates the two-thirds rule.
    @param validator The validator's signing address.
    @param new_threshold Signatures needed from now on.
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    self._add(validator)
    self._set_threshold(new_threshold)


@external
def removeValidator(validator: address, new_threshold: uint256):
    """
    @notice Removes `validator` and sets the threshold in the same step.
    @param validator The validator's signing address.
    @param new_threshold Signatures needed from now on.
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    assert self.isValidator[validator], "bridge: not a validator"
    self.isValidator[validator] = False
    self.validatorCount -= 1
    log ValidatorRemoved(validator=validator, validator_count=self.validatorCount)
    self._set_threshold(new_threshold)


@external
def setThreshold(new_threshold: uint256):
    """
    @notice Sets how many validator signatures a transfer needs.
    @param new_threshold At least two thirds of the set, at most all of it.
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    self._set_threshold(new_threshold)


@internal
def _add(validator: address):
    assert validator != empty(address), "bridge: zero validator"
    assert not self.isValidator[validator], "bridge: already a validator"
    assert self.validatorCount < MAX_VALIDATORS, "bridge: too many validators"
    self.isValidator[validator] = True
    self.validatorCount += 1
    log ValidatorAdded(validator=validator, validator_count=self.validatorCount)


@internal
def _set_threshold(new_threshold: uint256):
    count: uint256 = self.validatorCount
    assert new_threshold >= 1 and new_threshold <= count, "bridge: threshold out of range"
    assert new_threshold * 3 >= count * 2, "bridge: threshold below two thirds"
    log ThresholdChanged(old_threshold=self.threshold, new_threshold=new_threshold)
    self.threshold = new_threshold


@internal
@view
def _check_signatures(digest: bytes32, signatures: DynArray[Signature, MAX_VALIDATORS]):
    """
    @dev Reverts unless at least `threshold` distinct validators
         signed `digest`. Every signature must be a validator's,
         low-s (snekmate ecdsa), and signers strictly increasing.
    """
    assert len(signatures) >= self.threshold, "bridge: below threshold"
    previous: uint160 = 0
    for sig: Signature in signatures:
        signer: address = ecdsa._try_recover_vrs(digest, sig.v, sig.r, sig.s)
        assert convert(signer, uint160) > previous, "bridge: signers not strictly increasing"
        assert self.isValidator[signer], "bridge: signer is not a validator"
        previous = convert(signer, uint160)
