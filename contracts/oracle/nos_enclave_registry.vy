# pragma version ~=0.4.3
"""
@title NOS enclave registry
@custom:contract-name nos_enclave_registry
@license MIT
@notice Which enclave signing keys the NOS oracle accepts, each with
        the code measurement (hash of the enclave program) it was
        registered for. The owner registers, revokes and rotates keys;
        a real TEE attestation check can replace the owner later
        without changing the oracle's delivery path.
"""

from snekmate.auth import ownable

uses: ownable


event EnclaveRegistered:
    key: indexed(address)
    old_measurement: bytes32
    new_measurement: bytes32


event EnclaveRevoked:
    key: indexed(address)
    measurement: bytes32


# @dev A registered, unrevoked key maps to its non-zero measurement.
enclave_measurement: public(HashMap[address, bytes32])


@external
def registerEnclave(key: address, measurement: bytes32):
    """
    @notice Accepts `key` as an enclave signing key running the program
            whose hash is `measurement` (re-registering updates it).
    @param key The enclave's signing address.
    @param measurement The hash of the enclave program.
    """
    ownable._check_owner()
    self._register(key, measurement)


@external
def revokeEnclave(key: address):
    """
    @notice Stops accepting responses signed by `key`.
    @param key A registered enclave signing address.
    """
    ownable._check_owner()
    self._revoke(key)


@external
def rotateEnclave(old_key: address, new_key: address, measurement: bytes32):
    """
    @notice Key rotation in one transaction: accepts `new_key` and
            revokes `old_key`, so there is no window with neither.
    @param old_key The key being retired.
    @param new_key The replacement key.
    @param measurement The measurement of the enclave holding `new_key`.
    """
    ownable._check_owner()
    assert old_key != new_key, "nos: rotation to the same key"
    self._register(new_key, measurement)
    self._revoke(old_key)


@internal
@view
def _is_enclave(key: address) -> bool:
    return self.enclave_measurement[key] != empty(bytes32)


@internal
def _register(key: address, measurement: bytes32):
    assert key != empty(address), "nos: zero enclave key"
    assert measurement != empty(bytes32), "nos: zero measurement"
    old: bytes32 = self.enclave_measurement[key]
    self.enclave_measurement[key] = measurement
    log EnclaveRegistered(key=key, old_measurement=old, new_measurement=measurement)


@internal
def _revoke(key: address):
    measurement: bytes32 = self.enclave_measurement[key]
    assert measurement != empty(bytes32), "nos: enclave not registered"
    self.enclave_measurement[key] = empty(bytes32)
    log EnclaveRevoked(key=key, measurement=measurement)
