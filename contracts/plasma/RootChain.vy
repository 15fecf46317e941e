# pragma version ~=0.4.3
"""
@title Plasma MVP root chain
@custom:contract-name RootChain
@license MIT
@notice Root chain of a Plasma MVP child chain bound at deployment to one
        currency (the native coin, or one ERC-20 such as ANKR). The operator
        submits block roots; users deposit, exit outputs through a priority
        queue after a challenge period, and challenge exits of spent outputs
        with the exitor's confirm signature. A fraud proof of an invalid
        block pays the operator's bond to the prover and freezes the chain.
        The operator collects each block's fees through a fee transaction in its
        last leaf (txindex 65535), the one input-less transaction that is not fraud.
        Wire format, exit game and fraud proof format: docs/plasma.md.
@dev Gas choices: block numbering, deposit offset, the deposit pool and the
     frozen flag share one storage word; block and deposit timestamps are
     packed four to a word; a deposit block stores its one output (owner,
     amount) instead of a root (the root is computed in `getChildChain`);
     an exit is two words, its record (owner, amount) and its state (its
     maturity time while pending); a challenge only clears the state word
     and the queue drops the dead key when it reaches the top (lazy
     deletion, docs/gas/plasma.md); an input of an exiting transaction
     keeps one word naming that spender and its signer. RLP decoding, the
     signing hash, signer recovery and the positional Merkle root live in
     the stateless modules plasma_rlp, plasma_tx and plasma_merkle.
"""

from ethereum.ercs import IERC20

from ..interfaces import IRootChain
from . import plasma_merkle
from . import plasma_rlp
from . import plasma_tx
from . import priority_queue

implements: IRootChain
initializes: priority_queue


event BlockSubmitted:
    blknum: indexed(uint256)
    root: bytes32
    timestamp: uint256


event Deposit:
    depositor: indexed(address)
    blknum: indexed(uint256)
    amount: uint256


event ExitStarted:
    exitor: indexed(address)
    blknum: uint256
    txindex: uint256
    oindex: uint256
    amount: uint256


event ExitChallenged:
    exitId: indexed(uint256)
    challenger: indexed(address)
    blknum: uint256
    txindex: uint256
    bond: uint256


event ExitFinalized:
    exitId: indexed(uint256)
    exitor: indexed(address)
    amount: uint256


event ExcessBondRefunded:
    exitor: indexed(address)
    amount: uint256


event Withdrawal:
    account: indexed(address)
    amount: uint256
    bondAmount: uint256


event InvalidBlockProven:
    blknum: indexed(uint256)
    txindex: uint256
    prover: indexed(address)
    kind: uint256
    bond: uint256


CHILD_BLOCK_INTERVAL: public(constant(uint256)) = 1000
# Outputs and the deposit pool fit 95 bits (3.9e28 base units, above ANKR's 1e28 supply).
MAX_AMOUNT: public(constant(uint256)) = 2**95 - 1
FRAUD_NONEXISTENT_INPUT: public(constant(uint256)) = 1
FRAUD_DOUBLE_SPEND: public(constant(uint256)) = 2
FRAUD_OUTPUTS_EXCEED_INPUTS: public(constant(uint256)) = 3
MAX_FINALIZE_PER_CALL: public(constant(uint256)) = 512

EXIT_STATUS_NONE: constant(uint256) = 0
EXIT_STATUS_PENDING: constant(uint256) = 1
EXIT_STATUS_FINALIZED: constant(uint256) = 2
EXIT_STATUS_CHALLENGED: constant(uint256) = 3
# `_exit_states` value of a finalized exit; a pending one holds its exitable-at time (> 1).
_FINALIZED: constant(uint256) = 1

_BLKNUM_FACTOR: constant(uint256) = 1_000_000_000
_TXINDEX_FACTOR: constant(uint256) = 10_000
_MAX_TXINDEX: constant(uint256) = plasma_merkle.MAX_LEAVES
# The operator's fee transaction takes the last leaf of its block.
_FEE_TXINDEX: constant(uint256) = _MAX_TXINDEX - 1
_SIG_LENGTH: constant(uint256) = plasma_rlp.SIG_LENGTH
_MAX_TX: constant(uint256) = plasma_rlp.MAX_TX_BYTES
_PROOF: constant(uint256) = plasma_merkle.PROOF_LENGTH
_FIELDS: constant(uint256) = plasma_rlp.FIELDS
# Exit ids map to 64-bit queue keys blknum << 17 | txindex << 1 | oindex, in the same order
# (txindex < 2**16, oindex < 2); blocks up to 2**47 fit.
_KEY_TXINDEX_SHIFT: constant(uint256) = 1
_KEY_BLKNUM_SHIFT: constant(uint256) = 17
# getNextExit looks below at most this many challenged (dead) keys at the top of the queue.
_SEARCH_BOUND: constant(uint256) = 1024

_MASK_16: constant(uint256) = 2**16 - 1
_MASK_64: constant(uint256) = 2**64 - 1
_MASK_96: constant(uint256) = 2**96 - 1
_MASK_160: constant(uint256) = 2**160 - 1
_DEPOSIT_SHIFT: constant(uint256) = 64
_POOL_SHIFT: constant(uint256) = 80
_FROZEN_BIT: constant(uint256) = 1 << 255

# Gas kept back per finalized exit: fixed work plus one 4-ary heap level per two bits of the size.
_FINALIZE_GAS_BASE: constant(uint256) = 80_000
_FINALIZE_GAS_PER_LEVEL: constant(uint256) = 9_000

operator: public(immutable(address))
token: public(immutable(address))
exitBond: public(immutable(uint256))
exitPeriod: public(immutable(uint256))

# Amounts of the chain's currency owed to each account (exits; on a native chain also bonds).
balances: public(HashMap[address, uint256])
# Native-coin bonds owed to each account on a token chain.
bondBalances: public(HashMap[address, uint256])
operatorBond: public(uint256)

# currentChildBlock (64 bits) | currentDepositBlock << 64 (16 bits) | pool << 80 (96 bits) | frozen << 255
_state: uint256
_roots: HashMap[uint256, bytes32]
# Operator block k = blknum / 1000: word k >> 2, 64-bit lane k & 3.
_block_times: HashMap[uint256, uint256]
# Deposit block: owner | amount << 160.
_deposits: HashMap[uint256, uint256]
# Deposit block blknum: word blknum >> 2, 64-bit lane blknum & 3.
_deposit_times: HashMap[uint256, uint256]
# Exit record (keyed by exit id): owner | amount << 160; never cleared, so no output exits twice.
_exits: HashMap[uint256, uint256]
# Exit state: its exitable-at time while pending, _FINALIZED once paid, 0 when none or challenged.
# An exit is live (blocks exits of the same value) iff its state is non-zero.
_exit_states: HashMap[uint256, uint256]
# Output position -> signer | spender << 160: `spender` (position of its oindex 0) is a transaction
# that spends the output, `signer` who signed that input; written when an exit of the spender starts.
_spenders: HashMap[uint256, uint256]


@deploy
@payable
def __init__(_operator: address, _token: address, _exit_bond: uint256, _exit_period: uint256):
    """
    @notice Binds the chain to its operator and currency; `msg.value` is the operator bond.
    @param _operator The only address that may submit blocks.
    @param _token The ERC-20 this chain carries, or the zero address for the native coin.
    @param _exit_bond Native-coin bond posted with every exit.
    @param _exit_period Challenge period in seconds (one week on a testnet).
    """
    assert _operator != empty(address), "plasma: zero operator"
    assert msg.value > 0, "plasma: operator bond required"
    assert _exit_bond > 0, "plasma: zero exit bond"
    assert _exit_period > 0, "plasma: zero exit period"
    priority_queue.__init__()
    operator = _operator
    token = _token
    exitBond = _exit_bond
    exitPeriod = _exit_period
    self.operatorBond = msg.value
    self._state = CHILD_BLOCK_INTERVAL | (1 << _DEPOSIT_SHIFT)


# ---------------------------------------------------------------- blocks and deposits


@external
def submitBlock(root: bytes32):
    """
    @notice Stores the next operator block's Merkle root and timestamp.
    @dev Operator only; refused once a fraud proof froze the chain.
    @param root Root of the block's depth-16 transaction tree.
    """
    assert msg.sender == operator, "plasma: caller is not the operator"
    assert root != empty(bytes32), "plasma: empty root"
    state: uint256 = self._state
    assert state & _FROZEN_BIT == 0, "plasma: chain frozen"
    blknum: uint256 = state & _MASK_64
    self._roots[blknum] = root
    k: uint256 = blknum // CHILD_BLOCK_INTERVAL
    self._block_times[k >> 2] = self._block_times[k >> 2] | (block.timestamp << ((k & 3) * 64))
    # Next operator block; deposit offsets restart at 1.
    self._state = (state & ~(_MASK_64 | (_MASK_16 << _DEPOSIT_SHIFT))) \
        | (blknum + CHILD_BLOCK_INTERVAL) | (1 << _DEPOSIT_SHIFT)
    log BlockSubmitted(blknum=blknum, root=root, timestamp=block.timestamp)


@external
@payable
def deposit():
    """
    @notice Deposits `msg.value` of the native coin into a new deposit block owned by the caller.
    """
    assert token == empty(address), "plasma: this chain takes token deposits"
    self._deposit(msg.sender, msg.value)


@external
@nonreentrant
def depositToken(amount: uint256):
    """
    @notice Deposits `amount` of the chain's ERC-20 (approved beforehand) into a new deposit block.
    @param amount Token amount, in base units.
    """
    assert token != empty(address), "plasma: this chain takes native deposits"
    self._deposit(msg.sender, amount)
    assert extcall IERC20(token).transferFrom(msg.sender, self, amount, default_return_value=True), \
        "plasma: token transfer failed"


@internal
def _deposit(owner: address, amount: uint256):
    assert amount > 0, "plasma: zero deposit"
    state: uint256 = self._state
    assert state & _FROZEN_BIT == 0, "plasma: chain frozen"
    pool: uint256 = (state >> _POOL_SHIFT) & _MASK_96
    assert amount <= MAX_AMOUNT - pool, "plasma: deposit pool full"
    offset: uint256 = (state >> _DEPOSIT_SHIFT) & _MASK_16
    assert offset < CHILD_BLOCK_INTERVAL, "plasma: too many deposits since the last block"
    blknum: uint256 = (state & _MASK_64) - CHILD_BLOCK_INTERVAL + offset
    self._deposits[blknum] = convert(owner, uint256) | (amount << 160)
    self._deposit_times[blknum >> 2] = self._deposit_times[blknum >> 2] | (block.timestamp << ((blknum & 3) * 64))
    # offset + 1 and pool + amount cannot carry out of their fields (checked above).
    self._state = state + (1 << _DEPOSIT_SHIFT) + (amount << _POOL_SHIFT)
    log Deposit(depositor=owner, blknum=blknum, amount=amount)


# ---------------------------------------------------------------- exits


@external
@payable
def startExit(
    blknum: uint256,
    txindex: uint256,
    oindex: uint256,
    txBytes: Bytes[_MAX_TX],
    proof: Bytes[_PROOF],
    confirmSig: Bytes[2 * _SIG_LENGTH],
):
    """
    @notice Starts the exit of output `oindex` of the transaction at (`blknum`, `txindex`).
    @dev Only the output's owner. An output's value leaves once, whoever exits first: refused
         while an input of its transaction has a pending or finalized exit ("plasma: input has
         an exit"), and while a transaction that spends it with its owner's signature has one
         ("plasma: output spent by an exiting tx"); a challenge of the other exit lifts the refusal.
         For an operator block: `txBytes` is the 13-field RLP,
         `proof` its 16 x 32-byte inclusion proof, `confirmSig` the confirm signatures of
         the used inputs in slot order (65 bytes each); the operator's fee transaction
         (no inputs, txindex 65535, output 0 to the operator) exits with an empty one,
         and any other transaction that spends nothing cannot exit. For a deposit block the stored
         deposit is the output: `txBytes` and `proof` are not read and `confirmSig` is empty.
         `msg.value` must cover the exit bond; the excess is credited to the caller's
         pull-payment balance. Exitable at max(block time + 2 * period, now + period).
    @param blknum Block of the output.
    @param txindex Index of the transaction in the block (< 2**16).
    @param oindex Output index, 0 or 1.
    @param txBytes The transaction's RLP.
    @param proof Merkle proof of the transaction.
    @param confirmSig Concatenated confirm signatures of its inputs.
    """
    assert msg.value >= exitBond, "plasma: exit bond too small"
    assert oindex < 2, "plasma: oindex out of range"
    assert blknum != 0 and blknum < self._state & _MASK_64, "plasma: unknown block"
    exit_id: uint256 = blknum * _BLKNUM_FACTOR + txindex * _TXINDEX_FACTOR + oindex
    assert self._exits[exit_id] == 0, "plasma: output already exited"

    owner: address = empty(address)
    amount: uint256 = 0
    created: uint256 = 0
    if blknum % CHILD_BLOCK_INTERVAL != 0:
        record: uint256 = self._deposits[blknum]
        assert record != 0, "plasma: unknown block"
        assert txindex == 0 and oindex == 0, "plasma: no such output"
        assert len(confirmSig) == 0, "plasma: deposit exits take no confirm signature"
        owner = convert(convert(record & _MASK_160, uint160), address)
        amount = record >> 160
        created = self._deposit_time(blknum)
    else:
        fields: uint256[_FIELDS] = self._included(blknum, txindex, txBytes, proof, _FIELDS)
        owner = plasma_tx._owner(fields, oindex)
        amount = fields[9 + 2 * oindex]
        self._check_inputs(exit_id - oindex, txBytes, fields, keccak256(concat(keccak256(txBytes), self._roots[blknum])), confirmSig)
        created = self._block_time(blknum)

    assert owner == msg.sender, "plasma: caller does not own the output"
    assert amount != 0, "plasma: empty output"
    # A spend signed by someone else (only an invalid block holds one) does not block the owner.
    spender: uint256 = self._spenders[exit_id]
    spender_pos: uint256 = spender >> 160
    assert spender & _MASK_160 != convert(owner, uint256) \
        or (self._exit_states[spender_pos] == 0 and self._exit_states[unsafe_add(spender_pos, 1)] == 0), \
        "plasma: output spent by an exiting tx"
    assert amount <= MAX_AMOUNT, "plasma: amount too large"
    exitable_at: uint256 = max(created + 2 * exitPeriod, block.timestamp + exitPeriod)
    self._exits[exit_id] = convert(owner, uint256) | (amount << 160)
    self._exit_states[exit_id] = exitable_at
    # txindex < 2**16 here: checked by the inclusion proof, or 0 for a deposit.
    priority_queue._insert((blknum << _KEY_BLKNUM_SHIFT) | (txindex << _KEY_TXINDEX_SHIFT) | oindex)

    excess: uint256 = msg.value - exitBond
    if excess != 0:
        self._credit_bond(msg.sender, excess)
        log ExcessBondRefunded(exitor=msg.sender, amount=excess)
    log ExitStarted(exitor=owner, blknum=blknum, txindex=txindex, oindex=oindex, amount=amount)


@external
def challengeExit(
    exitId: uint256,
    blknum: uint256,
    txindex: uint256,
    oindex: uint256,
    txBytes: Bytes[_MAX_TX],
    proof: Bytes[_PROOF],
    confirmSig: Bytes[_SIG_LENGTH],
):
    """
    @notice Cancels a pending exit of an output that was spent, and pays its bond to the caller.
    @dev The exit leaves the queue at once for every view (exits, getNextExit, exitQueueSize);
         its key is popped later by finalizeExits. A challenged exit no longer refuses exits
         of the transactions that spend its output, nor of the inputs of its own transaction.
    @param exitId The exit (= position of the exiting output).
    @param blknum Block of the spending transaction (a submitted operator block).
    @param txindex Index of the spending transaction in that block.
    @param oindex Input slot (0 or 1) of the spending transaction that spends the exiting output.
    @param txBytes RLP of the spending transaction.
    @param proof Merkle proof of the spending transaction.
    @param confirmSig The exitor's confirm signature of the spending transaction.
    """
    assert self._exit_states[exitId] > _FINALIZED, "plasma: no such pending exit"
    assert oindex < 2, "plasma: oindex out of range"
    # Only the spending input's three fields are read: the transaction is bound by its inclusion
    # proof and the exitor's confirm signature over its bytes.
    fields: uint256[_FIELDS] = self._included(blknum, txindex, txBytes, proof, 4 * oindex + 3)
    assert fields[4 * oindex] == exitId // _BLKNUM_FACTOR \
        and fields[4 * oindex + 1] == (exitId % _BLKNUM_FACTOR) // _TXINDEX_FACTOR \
        and fields[4 * oindex + 2] == exitId % _TXINDEX_FACTOR, \
        "plasma: transaction does not spend the exiting output"
    assert len(confirmSig) == _SIG_LENGTH, "plasma: confirm signature must be 65 bytes"
    record: uint256 = self._exits[exitId]
    signer: address = plasma_tx._recover(keccak256(concat(keccak256(txBytes), self._roots[blknum])), confirmSig, 0)
    assert signer == convert(convert(record & _MASK_160, uint160), address), "plasma: bad confirm signature"

    # Lazy deletion: the key stays in the queue, dead, until finalizeExits pops it from the top.
    self._exit_states[exitId] = 0
    priority_queue._discard()
    self._credit_bond(msg.sender, exitBond)
    log ExitChallenged(exitId=exitId, challenger=msg.sender, blknum=blknum, txindex=txindex, bond=exitBond)


@external
def finalizeExits(maxExits: uint256) -> uint256:
    """
    @notice Pays matured exits in priority order into the pull-payment ledger.
    @dev Anyone may call. Challenged exits' dead keys met at the top are dropped on the way
         (at most 512 of them per call). Stops at the first exit not yet exitable, after `maxExits`
         (at most 512 per call) or when gas runs low, keeping what it did. A payout is
         capped by the deposit pool, so a defrauded chain pays in priority order until
         the pool is dry.
    @param maxExits Most exits to finalize in this call.
    @return Number of exits finalized.
    """
    state: uint256 = self._state
    pool: uint256 = (state >> _POOL_SHIFT) & _MASK_96
    done: uint256 = 0
    # Depth of the 4-ary heap now (it only shrinks below): the gas one more pop may need.
    reserve: uint256 = _FINALIZE_GAS_BASE
    levels: uint256 = priority_queue._size_of()
    for _: uint256 in range(32):
        if levels == 0:
            break
        levels >>= 2
        reserve += _FINALIZE_GAS_PER_LEVEL
    wanted: uint256 = min(maxExits, MAX_FINALIZE_PER_CALL)
    # Up to 512 exits and 512 dead keys of challenged exits.
    for _: uint256 in range(2 * MAX_FINALIZE_PER_CALL):
        if done == wanted:
            break
        size: uint256 = priority_queue._size_of()
        if size == 0:
            break
        if msg.gas < reserve:
            break
        exit_id: uint256 = self._exit_id(priority_queue._read(0))
        exit_state: uint256 = self._exit_states[exit_id]
        if exit_state > block.timestamp:
            break
        # A challenged exit's dead key (state 0) is dropped, matured or not.
        priority_queue._pop(exit_state == 0)
        if exit_state == 0:
            continue
        self._exit_states[exit_id] = _FINALIZED
        record: uint256 = self._exits[exit_id]
        owner: address = convert(convert(record & _MASK_160, uint160), address)
        paid: uint256 = min(record >> 160, pool)
        pool -= paid
        if token == empty(address):
            self.balances[owner] += paid + exitBond
        else:
            self.balances[owner] += paid
            self.bondBalances[owner] += exitBond
        log ExitFinalized(exitId=exit_id, exitor=owner, amount=paid)
        done += 1
    if done != 0:
        self._state = (state & ~(_MASK_96 << _POOL_SHIFT)) | (pool << _POOL_SHIFT)
    return done


@external
@nonreentrant
def withdraw():
    """
    @notice Pays the caller everything the ledger owes it: exits in the chain's currency,
            and bonds in the native coin.
    """
    amount: uint256 = self.balances[msg.sender]
    bond_amount: uint256 = self.bondBalances[msg.sender]
    assert amount != 0 or bond_amount != 0, "plasma: nothing to withdraw"
    self.balances[msg.sender] = 0
    self.bondBalances[msg.sender] = 0
    if token == empty(address):
        raw_call(msg.sender, b"", value=amount + bond_amount)
    else:
        if amount != 0:
            assert extcall IERC20(token).transfer(msg.sender, amount, default_return_value=True), \
                "plasma: token transfer failed"
        if bond_amount != 0:
            raw_call(msg.sender, b"", value=bond_amount)
    log Withdrawal(account=msg.sender, amount=amount, bondAmount=bond_amount)


# ---------------------------------------------------------------- fraud proof


@external
def proveInvalidBlock(
    blknum: uint256,
    txindex: uint256,
    txBytes: Bytes[_MAX_TX],
    proof: Bytes[_PROOF],
    kind: uint256,
    slot: uint256,
    evidencePosition: uint256,
    evidenceTxs: DynArray[Bytes[_MAX_TX], 2],
    evidenceProofs: DynArray[Bytes[_PROOF], 2],
):
    """
    @notice Proves that the transaction at (`blknum`, `txindex`) makes its block invalid;
            pays the operator bond to the caller and freezes block submissions and deposits.
            Exits keep working so everyone can leave.
    @dev kind 1 (FRAUD_NONEXISTENT_INPUT): input `slot` names no output: a later or the same
         block, a bad index, a missing deposit, or, with evidenceTxs[0] = the entry at the
         input's position (empty for an empty leaf) and evidenceProofs[0] its proof, an empty
         leaf or an unused output (zero owner).
         kind 2 (FRAUD_DOUBLE_SPEND): evidenceTxs[0] is an included transaction at the earlier
         position evidencePosition = blknum * 10**9 + txindex * 10**4 + its input slot (or this
         same transaction with the other slot) spending the same output as input `slot`.
         kind 3 (FRAUD_OUTPUTS_EXCEED_INPUTS): for each used input in slot order, the
         transaction that created it with its proof (empty for a deposit input); the outputs
         plus fee exceed the inputs' values, or the transaction spends nothing and is not the
         operator's fee transaction (txindex 65535, first output to the operator, second unused),
         whose amount only watchers can check (docs/plasma.md, "Fee transaction").
    @param blknum The invalid transaction's operator block.
    @param txindex Its index in the block.
    @param txBytes Its RLP.
    @param proof Its Merkle proof.
    @param kind Which rule it breaks (1, 2 or 3).
    @param slot The input slot concerned (kinds 1 and 2).
    @param evidencePosition Position of the earlier spend (kind 2).
    @param evidenceTxs Supporting transactions, as described for each kind.
    @param evidenceProofs Their Merkle proofs.
    """
    state: uint256 = self._state
    assert state & _FROZEN_BIT == 0, "plasma: chain frozen"
    assert len(evidenceTxs) == len(evidenceProofs), "plasma: one proof per evidence transaction"
    fields: uint256[_FIELDS] = self._included(blknum, txindex, txBytes, proof, _FIELDS)
    if kind == FRAUD_NONEXISTENT_INPUT or kind == FRAUD_DOUBLE_SPEND:
        # One check site for both kinds and both cases: each reason string costs bytecode.
        assert slot < 2 and fields[4 * slot] != 0, "plasma: no used input at slot"
    if kind == FRAUD_NONEXISTENT_INPUT:
        assert self._input_missing(blknum, fields, slot, evidenceTxs, evidenceProofs), "plasma: input exists"
    elif kind == FRAUD_DOUBLE_SPEND:
        assert self._spent_before(blknum, txindex, fields, slot, evidencePosition, evidenceTxs, evidenceProofs), \
            "plasma: not a double spend"
    elif kind == FRAUD_OUTPUTS_EXCEED_INPUTS:
        assert self._overspends(txindex, fields, evidenceTxs, evidenceProofs), "plasma: outputs do not exceed inputs"
    else:
        raise "plasma: unknown fraud kind"

    bond: uint256 = self.operatorBond
    self._state = state | _FROZEN_BIT
    self.operatorBond = 0
    self._credit_bond(msg.sender, bond)
    log InvalidBlockProven(blknum=blknum, txindex=txindex, prover=msg.sender, kind=kind, bond=bond)


@internal
@view
def _input_missing(
    blknum: uint256,
    fields: uint256[_FIELDS],
    slot: uint256,
    txs: DynArray[Bytes[_MAX_TX], 2],
    proofs: DynArray[Bytes[_PROOF], 2],
) -> bool:
    # slot < 2 names a used input (checked by the caller).
    in_blknum: uint256 = fields[4 * slot]
    in_txindex: uint256 = fields[4 * slot + 1]
    in_oindex: uint256 = fields[4 * slot + 2]
    if in_blknum >= blknum or in_txindex >= _MAX_TXINDEX or in_oindex > 1:
        return True
    if in_blknum % CHILD_BLOCK_INTERVAL != 0:
        return self._deposits[in_blknum] == 0 or in_txindex != 0 or in_oindex != 0
    assert len(txs) == 1, "plasma: evidence must be the entry at the input's position"
    leaf: bytes32 = empty(bytes32)
    if len(txs[0]) != 0:
        leaf = keccak256(txs[0])
    assert plasma_merkle._root_from_proof(leaf, in_txindex, proofs[0]) == self._roots[in_blknum], \
        "plasma: evidence not in block"
    if len(txs[0]) == 0:
        return True
    return plasma_tx._owner(plasma_rlp._decode_first(txs[0], _FIELDS), in_oindex) == empty(address)


@internal
@view
def _spent_before(
    blknum: uint256,
    txindex: uint256,
    fields: uint256[_FIELDS],
    slot: uint256,
    position: uint256,
    txs: DynArray[Bytes[_MAX_TX], 2],
    proofs: DynArray[Bytes[_PROOF], 2],
) -> bool:
    # slot < 2 names a used input (checked by the caller).
    other_blknum: uint256 = position // _BLKNUM_FACTOR
    other_txindex: uint256 = (position % _BLKNUM_FACTOR) // _TXINDEX_FACTOR
    other_slot: uint256 = position % _TXINDEX_FACTOR
    assert other_slot < 2, "plasma: slot out of range"
    other: uint256[_FIELDS] = fields
    if other_blknum == blknum and other_txindex == txindex:
        assert other_slot != slot, "plasma: evidence is the same input"
    else:
        assert other_blknum < blknum or (other_blknum == blknum and other_txindex < txindex), \
            "plasma: evidence must be the earlier spend"
        assert len(txs) == 1, "plasma: evidence must be one earlier spend"
        other = self._included(other_blknum, other_txindex, txs[0], proofs[0], _FIELDS)
    return other[4 * other_slot] == fields[4 * slot] \
        and other[4 * other_slot + 1] == fields[4 * slot + 1] \
        and other[4 * other_slot + 2] == fields[4 * slot + 2]


@internal
@view
def _overspends(
    txindex: uint256, fields: uint256[_FIELDS], txs: DynArray[Bytes[_MAX_TX], 2], proofs: DynArray[Bytes[_PROOF], 2]
) -> bool:
    total_in: uint256 = 0
    used: uint256 = 0
    for s: uint256 in range(2):
        in_blknum: uint256 = fields[4 * s]
        if in_blknum == 0:
            continue
        in_txindex: uint256 = fields[4 * s + 1]
        in_oindex: uint256 = fields[4 * s + 2]
        assert used < len(txs), "plasma: one evidence entry per used input"
        input_value: uint256 = 0
        if in_blknum % CHILD_BLOCK_INTERVAL != 0:
            if in_txindex == 0 and in_oindex == 0:
                input_value = self._deposits[in_blknum] >> 160
        elif self._roots[in_blknum] != empty(bytes32) and in_oindex < 2:
            input_value = self._included(in_blknum, in_txindex, txs[used], proofs[used], _FIELDS)[9 + 2 * in_oindex]
        total_in = self._saturating_add(total_in, input_value)
        used += 1
    if used == 0:
        return not self._is_fee_tx(txindex, fields)
    assert used == len(txs), "plasma: one evidence entry per used input"
    # Compare without overflowing: a fraudulent transaction may carry huge amounts.
    for i: uint256 in [9, 11, 12]:
        if fields[i] > total_in:
            return True
        total_in -= fields[i]
    return False


@internal
@view
def _included(
    blknum: uint256, txindex: uint256, tx_bytes: Bytes[_MAX_TX], proof: Bytes[_PROOF], count: uint256
) -> uint256[_FIELDS]:
    # The first `count` decoded fields of a transaction proven to sit at `txindex` of submitted
    # operator block `blknum`.
    root: bytes32 = self._roots[blknum]
    assert root != empty(bytes32), "plasma: unknown block"
    assert plasma_merkle._root_from_proof(keccak256(tx_bytes), txindex, proof) == root, \
        "plasma: transaction not in block"
    return plasma_rlp._decode_first(tx_bytes, count)


@internal
@pure
def _saturating_add(a: uint256, b: uint256) -> uint256:
    if b > max_value(uint256) - a:
        return max_value(uint256)
    return a + b


# ---------------------------------------------------------------- views


@external
@view
def currentChildBlock() -> uint256:
    """
    @notice Number the next operator block gets (a multiple of 1000).
    @return uint256 The next operator block number.
    """
    return self._state & _MASK_64


@external
@view
def currentDepositBlock() -> uint256:
    """
    @notice Offset (1..999) of the next deposit block after the last operator block.
    @return uint256 The deposit block offset.
    """
    return (self._state >> _DEPOSIT_SHIFT) & _MASK_16


@external
@view
def frozen() -> bool:
    """
    @notice Whether a fraud proof stopped block submissions and deposits.
    @return bool True once a fraud proof succeeded.
    """
    return self._state & _FROZEN_BIT != 0


@external
@view
def depositPool() -> uint256:
    """
    @notice Deposited funds not yet paid out to exits (the most exits can still be paid).
    @return uint256 The pool, in the chain's currency (wei or token units).
    """
    return (self._state >> _POOL_SHIFT) & _MASK_96


@external
@view
def getChildChain(blknum: uint256) -> (bytes32, uint256):
    """
    @notice Root and timestamp of block `blknum`; a deposit block's root is computed here.
    @return (root, timestamp), zeros for a block that does not exist.
    @param blknum The child block number (operator or deposit block).
    """
    if blknum % CHILD_BLOCK_INTERVAL == 0:
        root: bytes32 = self._roots[blknum]
        if root == empty(bytes32):
            return empty(bytes32), 0
        return root, self._block_time(blknum)
    record: uint256 = self._deposits[blknum]
    if record == 0:
        return empty(bytes32), 0
    return plasma_merkle._root_of_first_leaf(plasma_tx._deposit_leaf(record)), self._deposit_time(blknum)


@external
@view
def getNextExit() -> (uint256, uint256):
    """
    @notice The exit that finalizes next.
    @return (exitId, exitableAt); reverts "plasma: no exits" when the queue is empty.
    """
    assert priority_queue._live_size() != 0, "plasma: no exits"
    # Challenged exits' keys stay in the heap until finalizeExits pops them: the next exit is the
    # smallest of the first live key on each path down from the root (a live key's subtree is larger).
    size: uint256 = priority_queue._size_of()
    # Breadth first over dead keys; more than _SEARCH_BOUND of them on top reverts (finalizeExits drops them).
    best: uint256 = max_value(uint256)
    todo: uint256[_SEARCH_BOUND] = empty(uint256[_SEARCH_BOUND])
    queued: uint256 = 1
    for i: uint256 in range(_SEARCH_BOUND):
        if i == queued:
            break
        pos: uint256 = todo[i]
        key: uint256 = priority_queue._read(pos)
        if key >= best:
            continue
        if self._exit_states[self._exit_id(key)] != 0:
            best = key
            continue
        for j: uint256 in range(1, 5):
            if pos * 4 + j >= size:
                break
            todo[queued] = pos * 4 + j
            queued += 1
    exit_id: uint256 = self._exit_id(best)
    return exit_id, self._exit_states[exit_id]


@external
@view
def exits(exitId: uint256) -> (address, uint256, uint256, uint256):
    """
    @notice An exit's state.
    @return (owner, amount, exitableAt, status): status 0 none, 1 pending, 2 finalized,
            3 challenged; exitableAt is 0 once the exit left the queue.
    @param exitId The exit: blknum * 1e9 + txindex * 1e4 + oindex, the exited output's position.
    """
    record: uint256 = self._exits[exitId]
    exit_state: uint256 = self._exit_states[exitId]
    status: uint256 = EXIT_STATUS_NONE
    exitable_at: uint256 = 0
    if exit_state > _FINALIZED:
        status = EXIT_STATUS_PENDING
        exitable_at = exit_state
    elif exit_state == _FINALIZED:
        status = EXIT_STATUS_FINALIZED
    elif record != 0:
        status = EXIT_STATUS_CHALLENGED
    owner: address = convert(convert(record & _MASK_160, uint160), address)
    return owner, record >> 160, exitable_at, status


@external
@view
def exitQueueSize() -> uint256:
    """
    @notice Number of pending exits.
    @return uint256 The number of live exits in the queue.
    """
    return priority_queue._live_size()


# ---------------------------------------------------------------- internals


@internal
def _credit_bond(account: address, amount: uint256):
    if token == empty(address):
        self.balances[account] += amount
    else:
        self.bondBalances[account] += amount


@internal
@view
def _block_time(blknum: uint256) -> uint256:
    k: uint256 = blknum // CHILD_BLOCK_INTERVAL
    return (self._block_times[k >> 2] >> ((k & 3) * 64)) & _MASK_64


@internal
@view
def _deposit_time(blknum: uint256) -> uint256:
    return (self._deposit_times[blknum >> 2] >> ((blknum & 3) * 64)) & _MASK_64



@internal
@view
def _is_fee_tx(txindex: uint256, fields: uint256[_FIELDS]) -> bool:
    # No inputs, first output to the operator, second output unused, in the last leaf.
    # Only called on a transaction included in a submitted (so operator) block.
    return txindex == _FEE_TXINDEX and fields[0] == 0 and fields[4] == 0 \
        and plasma_tx._owner(fields, 0) == operator and fields[10] == 0 and fields[11] == 0








@internal
def _check_inputs(
    tx_pos: uint256,
    tx_bytes: Bytes[_MAX_TX],
    fields: uint256[_FIELDS],
    confirm_hash: bytes32,
    confirm_sigs: Bytes[2 * _SIG_LENGTH],
):
    # Each used input's owner (who signed the transaction) must also have confirmed it, and no
    # input may have a live exit; each input records this transaction as its exiting spender.
    signing_hash: bytes32 = plasma_tx._signing_hash(tx_bytes, fields)
    used: uint256 = 0
    for s: uint256 in range(2):
        if fields[4 * s] == 0:
            continue
        assert len(confirm_sigs) >= _SIG_LENGTH * (used + 1), "plasma: missing confirm signature"
        signer: address = plasma_tx._recover(signing_hash, tx_bytes, fields[4 * s + 3])
        confirmer: address = plasma_tx._recover(confirm_hash, confirm_sigs, _SIG_LENGTH * used)
        assert signer == confirmer, "plasma: bad confirm signature"
        # Wrapping math: an invalid block's input may hold any numbers; the position is only a key.
        pos: uint256 = unsafe_add(unsafe_add(unsafe_mul(fields[4 * s], _BLKNUM_FACTOR),
                                             unsafe_mul(fields[4 * s + 1], _TXINDEX_FACTOR)), fields[4 * s + 2])
        assert self._exit_states[pos] == 0, "plasma: input has an exit"
        self._spenders[pos] = convert(signer, uint256) | (tx_pos << 160)
        used += 1
    # The operator's fee transaction spends nothing and exits with no confirm signature.
    assert used != 0 or self._is_fee_tx((tx_pos % _BLKNUM_FACTOR) // _TXINDEX_FACTOR, fields), \
        "plasma: transaction spends nothing"
    assert len(confirm_sigs) == _SIG_LENGTH * used, "plasma: wrong number of confirm signatures"


@internal
@pure
def _exit_id(key: uint256) -> uint256:
    # Inverse of the queue key startExit inserts.
    return (key >> _KEY_BLKNUM_SHIFT) * _BLKNUM_FACTOR \
        + ((key >> _KEY_TXINDEX_SHIFT) & _MASK_16) * _TXINDEX_FACTOR + (key & 1)
