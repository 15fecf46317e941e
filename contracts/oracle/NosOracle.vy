# pragma version ~=0.4.3
# pragma optimize gas
"""
@title NOS oracle
@custom:contract-name NosOracle
@license MIT
@notice Request/response oracle of seed 001 section 5 (m1..m4). A
        requester pays a fee with `request` (m1); the relay hands the
        request to an enclave (m2); the enclave fetches the source over
        TLS and signs an EIP-712 `Response(requestId, paramsHash,
        dataHash)` (m3); anyone submits it with `deliver` or
        `deliverBatch`, and the oracle calls the requester's callback
        with exactly the gas it paid for (m4).
        Gas sustainability: the fee covers `DELIVERY_OVERHEAD` plus the
        callback gas limit at the requester's maximum gas price; at
        delivery the submitter is paid what it spent (capped at that
        price and at the fee) and the rest is credited to the
        requester. All payouts are pull withdrawals.
        Storage per request: two words; a third only when a requester
        uses a second, different callback contract (its first one is
        kept in its account word). Params are only emitted, never
        stored. Gas per operation: docs/gas/oracle.md.
"""

from snekmate.auth import ownable
from snekmate.utils import ecdsa
from snekmate.utils import eip712_domain_separator as eip712

from ..interfaces import INosOracle

from . import nos_enclave_registry as registry
from . import nos_limits

implements: INosOracle

initializes: ownable
initializes: ecdsa
initializes: eip712
initializes: registry[ownable := ownable]

exports: (
    ownable.owner,
    ownable.transfer_ownership,
    eip712.eip712Domain,
    registry.enclave_measurement,
    registry.registerEnclave,
    registry.revokeEnclave,
    registry.rotateEnclave,
)


MAX_PARAMS: constant(uint256) = nos_limits.MAX_PARAMS
MAX_DATA: constant(uint256) = nos_limits.MAX_DATA
MAX_BATCH: constant(uint256) = 64
MAX_CALLBACK_GAS: public(constant(uint256)) = 5_000_000

STATUS_NONE: constant(uint256) = 0
STATUS_PENDING: constant(uint256) = 1
STATUS_DELIVERED: constant(uint256) = 2
STATUS_FAILED: constant(uint256) = 3
STATUS_CANCELLED: constant(uint256) = 4

# What an enclave signs to publish its encryption key: keccak256(prefix || key).
ENCRYPTION_KEY_PREFIX: constant(Bytes[21]) = b"NOS encryption key v1"
RESPONSE_TYPEHASH: constant(bytes32) = keccak256(
    "Response(bytes32 requestId,bytes32 paramsHash,bytes32 dataHash)"
)
CALLBACK_SELECTOR: constant(bytes4) = method_id("nosCallback(bytes32,bytes)", output_type=bytes4)

# Word A of a request: the top 192 bits of the params hash | the fee (64
# bits); cleared when settled (the slot-clearing refund).
FEE_BITS: constant(uint256) = 64
FEE_MASK: constant(uint256) = (1 << FEE_BITS) - 1
# Word B: requester (160) | callback gas limit (32) | expiry (40) | callback
# mode (2) | status (3). The status stays here, not in word A, so a batch
# decides to skip a settled id with one cold read.
ADDRESS_MASK: constant(uint256) = (1 << 160) - 1
LIMIT_SHIFT: constant(uint256) = 160
EXPIRY_SHIFT: constant(uint256) = 192
LIMIT_MASK: constant(uint256) = (1 << 32) - 1
EXPIRY_MASK: constant(uint256) = (1 << 40) - 1
MODE_SHIFT: constant(uint256) = 232
MODE_REQUESTER: constant(uint256) = 0  # the requester is the callback
MODE_NONE: constant(uint256) = 1  # no callback: data only in the event
MODE_ACCOUNT: constant(uint256) = 2  # the requester's default callback (its account word)
MODE_OWN_SLOT: constant(uint256) = 3  # any other callback: a word of its own
STATUS_SHIFT: constant(uint256) = 234
# An account: default callback (160) | requester nonce (32) | credit (64).
# One word, so a first request creates one slot and a delivery touches one
# slot per party; credit beyond 64 bits spills into `_credit_overflow`.
NONCE_SHIFT: constant(uint256) = 160
NONCE_MASK: constant(uint256) = (1 << 32) - 1
CREDIT_SHIFT: constant(uint256) = 192
CREDIT_MAX: constant(uint256) = (1 << 64) - 1
BELOW_CREDIT_MASK: constant(uint256) = (1 << CREDIT_SHIFT) - 1

# Gas the CALL itself may need before the callee starts (cold account,
# memory); kept back so the callee still gets its full limit.
CALL_RESERVE: constant(uint256) = 5_000
# Delivery gas that the per-response measurement does not see: before it
# (calldata decoding, ABI head) and after it (credit, event), minus the
# refund for clearing word A. Calibrated by the accounting tests.
RESPONSE_UNMEASURED_GAS: constant(uint256) = 7_700
SLOT_CLEAR_REFUND: constant(uint256) = 4_800
# Per transaction: intrinsic gas, crediting the submitter, entry and exit.
TX_FIXED_GAS: constant(uint256) = 21_000 + 5_000 + 1_500
CALLDATA_GAS_PER_BYTE: constant(uint256) = 16
# ABI bytes of one batch entry besides its padded data: array offset, four
# head words, two length words, the signature padded to 96. Of these, 186
# are always zero (offsets, lengths, padding; 4 gas each), the rest at most 16.
RESPONSE_ABI_BYTES: constant(uint256) = 32 + 4 * 32 + 32 + 32 + 96
RESPONSE_ABI_ZERO_BYTES: constant(uint256) = 6 * 31
RESPONSE_ABI_GAS: constant(uint256) = 4 * RESPONSE_ABI_ZERO_BYTES + 16 * (RESPONSE_ABI_BYTES - RESPONSE_ABI_ZERO_BYTES)
# A batch's own fixed cost (memory for up to 64 entries, two loops), and
# what the single-delivery constants overcount per batch entry (warm reads,
# no per-call entry). Calibrated by the batch accounting tests.
BATCH_FIXED_GAS: constant(uint256) = 14_100
BATCH_ENTRY_OVERCOUNT: constant(uint256) = 1_800


struct Response:
    requestId: bytes32
    paramsHash: bytes32
    data: Bytes[MAX_DATA]
    signature: Bytes[65]


event Request:
    requestId: indexed(bytes32)
    requester: indexed(address)
    paramsHash: bytes32
    params: Bytes[MAX_PARAMS]
    fee: uint256
    expiresAt: uint256
    callback: address
    callbackGasLimit: uint256
    maxGasPrice: uint256


event Delivered:
    requestId: indexed(bytes32)
    enclave: indexed(address)
    submitter: indexed(address)
    callbackSucceeded: bool
    payment: uint256
    refund: uint256
    data: Bytes[MAX_DATA]


# A batch entry not delivered (no state change); status is why: 0 unknown id,
# 1 pending but expired, 2 delivered, 3 callback failed, 4 cancelled.
event DeliverySkipped:
    requestId: indexed(bytes32)
    status: uint256


# An enclave's ECIES public key for private requests, vouched for by its signing key.
event EncryptionKeyPublished:
    enclave: indexed(address)
    old_key: Bytes[33]
    new_key: Bytes[33]


event Cancelled:
    requestId: indexed(bytes32)
    requester: indexed(address)
    refund: uint256


event Withdrawn:
    account: indexed(address)
    recipient: indexed(address)
    amount: uint256


# Seconds a request stays answerable; afterwards the requester may cancel.
REQUEST_TTL: public(immutable(uint256))
# Gas of one delivery apart from the callback, reserved in every fee.
DELIVERY_OVERHEAD: public(immutable(uint256))

_request_a: HashMap[bytes32, uint256]
_request_b: HashMap[bytes32, uint256]
_callbacks: HashMap[bytes32, address]
_accounts: HashMap[address, uint256]
# @dev Credit above what an account word holds (64 bits); rarely non-zero.
_credit_overflow: HashMap[address, uint256]
# @dev Enclave signing address -> its compressed secp256k1 encryption key.
enclaveEncryptionKey: public(HashMap[address, Bytes[33]])


@deploy
def __init__(request_ttl: uint256, delivery_overhead: uint256):
    """
    @notice Deploys the oracle; the deployer is the registry admin.
    @param request_ttl Seconds before an unanswered request can be cancelled.
    @param delivery_overhead Gas reserved per request for its delivery,
           excluding the callback (must cover a single `deliver`).
    """
    assert request_ttl > 0, "nos: zero request ttl"
    assert delivery_overhead >= 40_000, "nos: delivery overhead too low"
    ownable.__init__()
    ecdsa.__init__()
    eip712.__init__("NOS", "1")
    REQUEST_TTL = request_ttl
    DELIVERY_OVERHEAD = delivery_overhead


# -- requests --------------------------------------------------------------------


@external
@payable
def request(params: Bytes[MAX_PARAMS], callback: address, callbackGasLimit: uint32) -> bytes32:
    """
    @notice Asks the oracle for data (m1). `msg.value` is the fee; it
            sets the maximum gas price the requester accepts:
            fee / (DELIVERY_OVERHEAD + callbackGasLimit).
    @param params What to fetch (JSON, or an encrypted private request).
    @param callback Contract whose `nosCallback` receives the data;
           the zero address for no callback (data only in the event).
    @param callbackGasLimit Gas the callback gets, exactly.
    @return bytes32 The request id: keccak256(chain id, oracle, requester, nonce).
    """
    assert callback != self, "nos: callback into the oracle"
    limit: uint256 = convert(callbackGasLimit, uint256)
    assert limit <= MAX_CALLBACK_GAS, "nos: callback gas limit too high"
    assert msg.value <= FEE_MASK, "nos: fee too large"
    max_gas_price: uint256 = msg.value // (DELIVERY_OVERHEAD + limit)
    assert max_gas_price > 0, "nos: fee does not cover delivery"

    account: uint256 = self._accounts[msg.sender]
    nonce: uint256 = (account >> NONCE_SHIFT) & NONCE_MASK
    assert nonce < NONCE_MASK, "nos: nonce exhausted"
    mode: uint256 = MODE_REQUESTER
    if callback == empty(address):
        mode = MODE_NONE
    elif callback != msg.sender:
        kept: uint256 = account & ADDRESS_MASK
        # The first separate callback becomes the account's default for good:
        # a pending request must never see its callback change under it.
        if kept == 0:
            account |= convert(callback, uint256)
            kept = convert(callback, uint256)
        mode = MODE_ACCOUNT if kept == convert(callback, uint256) else MODE_OWN_SLOT
    self._accounts[msg.sender] = account + (1 << NONCE_SHIFT)
    request_id: bytes32 = self._request_id(msg.sender, nonce)
    # A fresh id by construction (unique nonce); no read of the word to prove it.

    params_hash: bytes32 = keccak256(params)
    expires_at: uint256 = block.timestamp + REQUEST_TTL
    self._request_a[request_id] = ((convert(params_hash, uint256) >> FEE_BITS) << FEE_BITS) | msg.value
    self._request_b[request_id] = (
        convert(msg.sender, uint256)
        | (limit << LIMIT_SHIFT)
        | (expires_at << EXPIRY_SHIFT)
        | (mode << MODE_SHIFT)
        | (STATUS_PENDING << STATUS_SHIFT)
    )
    if mode == MODE_OWN_SLOT:
        self._callbacks[request_id] = callback

    log Request(
        requestId=request_id,
        requester=msg.sender,
        paramsHash=params_hash,
        params=params,
        fee=msg.value,
        expiresAt=expires_at,
        callback=callback,
        callbackGasLimit=limit,
        maxGasPrice=max_gas_price,
    )
    return request_id


@external
@nonreentrant
def cancel(requestId: bytes32):
    """
    @notice After expiry, the requester takes back the whole fee of an
            unanswered request (credited; withdraw to receive it).
    @param requestId The request to cancel.
    """
    word_b: uint256 = self._request_b[requestId]
    assert word_b != 0, "nos: unknown request"
    requester: address = convert(word_b & ADDRESS_MASK, address)
    assert msg.sender == requester, "nos: only the requester can cancel"
    assert (word_b >> STATUS_SHIFT) & 7 == STATUS_PENDING, "nos: request not pending"
    assert block.timestamp > (word_b >> EXPIRY_SHIFT) & EXPIRY_MASK, "nos: request not expired"
    fee: uint256 = self._request_a[requestId] & FEE_MASK
    self._request_a[requestId] = 0
    self._request_b[requestId] = self._with_status(word_b, STATUS_CANCELLED)
    self._credit(requester, fee)
    log Cancelled(requestId=requestId, requester=requester, refund=fee)


# -- private requests --------------------------------------------------------------


@external
def publishEncryptionKey(encryptionKey: Bytes[33], signature: Bytes[65]):
    """
    @notice Publishes a registered enclave's encryption key, so dApps
            read from chain the key a private request is sealed to.
            Anyone may submit it: the enclave's signing key signs
            keccak256("NOS encryption key v1" || encryptionKey).
    @param encryptionKey The enclave's compressed secp256k1 public key.
    @param signature The enclave's 65-byte signature of that digest.
    """
    assert len(encryptionKey) == 33, "nos: encryption key must be 33 bytes (compressed)"
    prefix: bytes1 = convert(slice(encryptionKey, 0, 1), bytes1)
    assert prefix == 0x02 or prefix == 0x03, "nos: encryption key must be a compressed point"
    signer: address = ecdsa._recover_sig(keccak256(concat(ENCRYPTION_KEY_PREFIX, encryptionKey)), signature)
    assert registry._is_enclave(signer), "nos: signer is not a registered enclave"
    old_key: Bytes[33] = self.enclaveEncryptionKey[signer]
    self.enclaveEncryptionKey[signer] = encryptionKey
    log EncryptionKeyPublished(enclave=signer, old_key=old_key, new_key=encryptionKey)


# -- deliveries ------------------------------------------------------------------


@external
@nonreentrant
def deliver(requestId: bytes32, paramsHash: bytes32, data: Bytes[MAX_DATA], signature: Bytes[65]):
    """
    @notice Delivers one enclave-signed response (m3 -> m4). Reverts
            unless the request is pending and unexpired, the params
            hash matches and a registered enclave signed it. A failing
            callback does not revert: the request is marked failed.
    @param requestId The request answered.
    @param paramsHash keccak256 of the request's params.
    @param data The response data passed to the callback.
    @param signature The enclave's EIP-712 signature of the response.
    """
    tx_gas: uint256 = TX_FIXED_GAS + CALLDATA_GAS_PER_BYTE * len(msg.data)
    delivered: bool = False
    payment: uint256 = 0
    delivered, payment = self._deliver(requestId, paramsHash, data, signature, tx_gas, False)
    if payment > 0:
        self._credit(msg.sender, payment)


@external
@nonreentrant
def deliverBatch(responses: DynArray[Response, MAX_BATCH]) -> uint256:
    """
    @notice Delivers many responses in one transaction, sharing the
            intrinsic gas. Ids that are unknown, already delivered,
            failed, cancelled or expired (and a repeated id) are
            skipped with `DeliverySkipped(requestId, status)` before
            any signature check, so relays racing each other lose only
            the gas of the skipped entries; any other invalid response
            reverts the batch. Each delivered response pays for its own
            calldata and execution; the shared transaction gas is split
            among the delivered ones only.
    @param responses The signed responses.
    @return uint256 How many were delivered.
    """
    count: uint256 = len(responses)
    assert count > 0, "nos: empty batch"
    # Pass 1: find what is answerable (its cold read is measured and paid by
    # that response), so the shared gas is divided by what will be delivered.
    own_gas: DynArray[uint256, MAX_BATCH] = []
    own_bytes: uint256 = 0
    expected: uint256 = 0
    for i: uint256 in range(count, bound=MAX_BATCH):
        gas_start: uint256 = msg.gas
        request_id: bytes32 = responses[i].requestId
        padded: uint256 = (len(responses[i].data) + 31) // 32 * 32
        own_bytes += RESPONSE_ABI_BYTES + padded
        word_b: uint256 = self._request_b[request_id]
        status: uint256 = (word_b >> STATUS_SHIFT) & 7
        if status != STATUS_PENDING or block.timestamp > (word_b >> EXPIRY_SHIFT) & EXPIRY_MASK:
            log DeliverySkipped(requestId=request_id, status=status)
            own_gas.append(0)
        else:
            expected += 1
            own_gas.append(
                gas_start - msg.gas + RESPONSE_ABI_GAS + CALLDATA_GAS_PER_BYTE * padded - BATCH_ENTRY_OVERCOUNT
            )
    assert own_bytes <= len(msg.data), "nos: non-canonical batch encoding"
    pool: uint256 = TX_FIXED_GAS + BATCH_FIXED_GAS + CALLDATA_GAS_PER_BYTE * (len(msg.data) - own_bytes)

    # Pass 2: deliver; a repeated id is skipped here and leaves its share to the rest.
    total: uint256 = 0
    delivered: uint256 = 0
    for i: uint256 in range(count, bound=MAX_BATCH):
        if own_gas[i] == 0:
            continue
        share: uint256 = pool // expected
        expected -= 1
        done: bool = False
        payment: uint256 = 0
        done, payment = self._deliver(
            responses[i].requestId,
            responses[i].paramsHash,
            responses[i].data,
            responses[i].signature,
            own_gas[i] + share,
            True,
        )
        if done:
            pool -= share
            total += payment
            delivered += 1
    if total > 0:
        self._credit(msg.sender, total)
    return delivered


@external
@nonreentrant
def withdraw(recipient: address = msg.sender):
    """
    @notice Pays out everything credited to the caller (refunds,
            cancelled fees, delivery payments).
    @param recipient Where to send it (default: the caller).
    """
    account: uint256 = self._accounts[msg.sender]
    overflow: uint256 = self._credit_overflow[msg.sender]
    amount: uint256 = (account >> CREDIT_SHIFT) + overflow
    assert amount > 0, "nos: nothing to withdraw"
    self._accounts[msg.sender] = account & BELOW_CREDIT_MASK
    if overflow > 0:
        self._credit_overflow[msg.sender] = 0
    log Withdrawn(account=msg.sender, recipient=recipient, amount=amount)
    raw_call(recipient, b"", value=amount)


# -- views -----------------------------------------------------------------------


@external
@view
def requestFee(callbackGasLimit: uint32, maxGasPrice: uint256) -> uint256:
    """
    @notice The fee to send with `request` for a maximum gas price.
    @param callbackGasLimit The callback's gas limit.
    @param maxGasPrice The highest gas price (wei) a delivery may cost.
    @return uint256 The fee in wei.
    """
    return (DELIVERY_OVERHEAD + convert(callbackGasLimit, uint256)) * maxGasPrice


@external
@view
def requests(
    requestId: bytes32,
) -> (address, address, uint256, uint256, uint256, uint256):
    """
    @notice A request's record.
    @param requestId The request.
    @return (requester, callback, callbackGasLimit, expiresAt, fee held, status)
            with status 0 none, 1 pending, 2 delivered, 3 callback failed, 4 cancelled.
    """
    word_b: uint256 = self._request_b[requestId]
    requester: address = convert(word_b & ADDRESS_MASK, address)
    return (
        requester,
        self._callback_of(requestId, word_b),
        (word_b >> LIMIT_SHIFT) & LIMIT_MASK,
        (word_b >> EXPIRY_SHIFT) & EXPIRY_MASK,
        self._request_a[requestId] & FEE_MASK,
        (word_b >> STATUS_SHIFT) & 7,
    )


@external
@view
def statusOf(requestId: bytes32) -> uint256:
    """
    @notice 0 none, 1 pending, 2 delivered, 3 callback failed, 4 cancelled.
    @param requestId The request.
    @return uint256 The status.
    """
    return (self._request_b[requestId] >> STATUS_SHIFT) & 7


@external
@view
def statusesOf(requestIds: DynArray[bytes32, MAX_BATCH]) -> DynArray[uint256, MAX_BATCH]:
    """
    @notice The statuses of many requests in one call (relays drop
            settled ids from a batch with it right before sending).
    @param requestIds Up to 64 request ids.
    @return DynArray[uint256, 64] Their statuses, in order (0 none,
            1 pending, 2 delivered, 3 callback failed, 4 cancelled).
    """
    result: DynArray[uint256, MAX_BATCH] = []
    for request_id: bytes32 in requestIds:
        result.append((self._request_b[request_id] >> STATUS_SHIFT) & 7)
    return result


@external
@view
def nonces(requester: address) -> uint256:
    """
    @notice How many requests `requester` has made.
    @param requester The requester.
    @return uint256 The next nonce.
    """
    return (self._accounts[requester] >> NONCE_SHIFT) & NONCE_MASK


@external
@view
def nextRequestId(requester: address) -> bytes32:
    """
    @notice The id `requester`'s next request will get (private
            requests bind their ciphertext to it).
    @param requester The requester.
    @return bytes32 The id.
    """
    return self._request_id(requester, (self._accounts[requester] >> NONCE_SHIFT) & NONCE_MASK)


@external
@view
def credits(account: address) -> uint256:
    """
    @notice What `account` can withdraw.
    @param account The account.
    @return uint256 Wei owed.
    """
    return (self._accounts[account] >> CREDIT_SHIFT) + self._credit_overflow[account]


@external
@view
def DOMAIN_SEPARATOR() -> bytes32:
    """
    @notice The EIP-712 domain separator (name "NOS", version "1").
    @return bytes32 The domain separator.
    """
    return eip712._domain_separator_v4()


@external
@view
def responseDigest(requestId: bytes32, paramsHash: bytes32, dataHash: bytes32) -> bytes32:
    """
    @notice The EIP-712 digest an enclave signs for a response.
    @param requestId The request.
    @param paramsHash keccak256 of its params.
    @param dataHash keccak256 of the response data.
    @return bytes32 The digest.
    """
    return self._digest(requestId, paramsHash, dataHash)


# -- internals -------------------------------------------------------------------


@internal
@view
def _request_id(requester: address, nonce: uint256) -> bytes32:
    return keccak256(abi_encode(chain.id, self, requester, nonce))


@internal
@view
def _digest(request_id: bytes32, params_hash: bytes32, data_hash: bytes32) -> bytes32:
    return eip712._hash_typed_data_v4(
        keccak256(abi_encode(RESPONSE_TYPEHASH, request_id, params_hash, data_hash))
    )


@internal
@view
def _callback_of(request_id: bytes32, word_b: uint256) -> address:
    mode: uint256 = (word_b >> MODE_SHIFT) & 3
    requester: address = convert(word_b & ADDRESS_MASK, address)
    if mode == MODE_REQUESTER:
        return requester
    if mode == MODE_NONE:
        return empty(address)
    if mode == MODE_ACCOUNT:
        return convert(self._accounts[requester] & ADDRESS_MASK, address)
    return self._callbacks[request_id]


@internal
@pure
def _with_status(word_b: uint256, status: uint256) -> uint256:
    return (word_b & ~(7 << STATUS_SHIFT)) | (status << STATUS_SHIFT)


@internal
def _credit(account: address, amount: uint256):
    # amount < 2^64 (fees are capped there), so one spill always makes room.
    word: uint256 = self._accounts[account]
    credit: uint256 = (word >> CREDIT_SHIFT) + amount
    if credit > CREDIT_MAX:
        self._credit_overflow[account] += credit
        credit = 0
    self._accounts[account] = (word & BELOW_CREDIT_MASK) | (credit << CREDIT_SHIFT)


@internal
def _deliver(
    request_id: bytes32,
    params_hash: bytes32,
    data: Bytes[MAX_DATA],
    signature: Bytes[65],
    tx_gas: uint256,
    skip_settled: bool,
) -> (bool, uint256):
    # Returns (delivered, the submitter's payment); (False, 0) when skipped.
    gas_start: uint256 = msg.gas
    word_b: uint256 = self._request_b[request_id]
    assert word_b != 0, "nos: unknown request"
    status: uint256 = (word_b >> STATUS_SHIFT) & 7
    expired: bool = block.timestamp > (word_b >> EXPIRY_SHIFT) & EXPIRY_MASK
    if skip_settled and (status != STATUS_PENDING or expired):
        log DeliverySkipped(requestId=request_id, status=status)
        return False, 0
    assert status == STATUS_PENDING, "nos: request not pending"
    assert not expired, "nos: request expired"

    word_a: uint256 = self._request_a[request_id]
    assert (convert(params_hash, uint256) >> FEE_BITS) == (word_a >> FEE_BITS), "nos: params hash mismatch"
    signer: address = ecdsa._recover_sig(self._digest(request_id, params_hash, keccak256(data)), signature)
    assert registry._is_enclave(signer), "nos: signer is not a registered enclave"

    # Settle before the callback runs (checks-effects-interactions).
    self._request_a[request_id] = 0
    self._request_b[request_id] = self._with_status(word_b, STATUS_DELIVERED)
    limit: uint256 = (word_b >> LIMIT_SHIFT) & LIMIT_MASK
    callback: address = self._callback_of(request_id, word_b)
    succeeded: bool = True
    if callback != empty(address):
        succeeded = self._call_back(callback, request_id, data, limit)
        if not succeeded:
            self._request_b[request_id] = self._with_status(word_b, STATUS_FAILED)

    fee: uint256 = word_a & FEE_MASK
    gas_spent: uint256 = gas_start - msg.gas + RESPONSE_UNMEASURED_GAS - SLOT_CLEAR_REFUND + tx_gas
    price: uint256 = min(tx.gasprice, fee // (DELIVERY_OVERHEAD + limit))
    payment: uint256 = min(gas_spent * price, fee)
    refund: uint256 = fee - payment
    requester: address = convert(word_b & ADDRESS_MASK, address)
    if refund > 0:
        self._credit(requester, refund)
    log Delivered(
        requestId=request_id,
        enclave=signer,
        submitter=msg.sender,
        callbackSucceeded=succeeded,
        payment=payment,
        refund=refund,
        data=data,
    )
    return True, payment


@internal
def _call_back(callback: address, request_id: bytes32, data: Bytes[MAX_DATA], limit: uint256) -> bool:
    if callback.codesize == 0:
        return False
    # EIP-150 forwards at most 63/64 of what is left: make sure that is
    # at least `limit`, or a submitter could starve the callback on purpose.
    assert msg.gas * 63 // 64 > limit + CALL_RESERVE, "nos: not enough gas for the callback"
    return raw_call(
        callback,
        abi_encode(request_id, data, method_id=CALLBACK_SELECTOR),
        gas=limit,
        max_outsize=0,
        revert_on_failure=False,
    )
