# pragma version ~=0.4.3
"""
@title DCCN staking and participant rewards
@custom:contract-name DccnStaking
@license MIT
@notice Providers stake ANKR. A stake counts from the next epoch and
        leaves through an unbonding period; only the escrow role can
        slash it, paying the harmed tenant minus a finder fee.
        Rewards follow seed 000: Rewards = sum w_i * p_i with
        w0 per day on stake held (an O(1) accumulator), w1 on stake
        consumed and w2 on fees earned (credited by the escrow), and
        w3 per month times reputation, integrated over time (each
        second pays the reputation it had), and backed by fees: an
        account's cumulative w3 never exceeds `reputation_reward_backing_bps`
        of the platform fees of the qualifying deals that fed its
        reputation (w3 earned above that waits, unpaid, for more fees:
        nothing is forfeited). Rewards are paid from a pool funded
        with ANKR; what the pool cannot pay stays owed.
@dev Gas: the stake-holding accumulator `rpt` is the sum of
     w0 (WAD per day) x elapsed seconds, an exact integer, so an
     account's accrual is one division by WAD x DAY (at most 1 wei
     lost per update). It does not depend on the total stake, so it is
     a piecewise-linear function of time that only changes slope when
     governance changes w0: no transaction writes a global checkpoint,
     and the accumulator at an epoch start is computed, not recorded
     (the w0 history is written by `set_weights`). Hot state is packed
     one slot per path (docs/gas/dccn.md).
"""

from ethereum.ercs import IERC20
from snekmate.auth import access_control
from ..interfaces import IDccnReputation
from ..interfaces import IDccnStaking

implements: IDccnStaking


interface FeeSource:
    def split() -> (uint256, uint256, uint256): view


initializes: access_control

exports: (
    access_control.supportsInterface,
    access_control.grantRole,
    access_control.revokeRole,
    access_control.renounceRole,
    access_control.set_role_admin,
    access_control.hasRole,
    access_control.getRoleAdmin,
    access_control.DEFAULT_ADMIN_ROLE,
)

# May slash stakes (the deal escrow).
ESCROW_ROLE: public(constant(bytes32)) = keccak256("ESCROW_ROLE")
# May credit w1 / w2 activity rewards (the deal escrow).
REWARDER_ROLE: public(constant(bytes32)) = keccak256("REWARDER_ROLE")

WAD: constant(uint256) = 10**18
DAY: constant(uint256) = 86_400
MONTH: constant(uint256) = 30 * DAY
BPS: constant(uint256) = 10_000
ACCRUAL_DENOMINATOR: constant(uint256) = WAD * DAY
REPUTATION_DENOMINATOR: constant(uint256) = WAD * MONTH
MASK32: constant(uint256) = 2**32 - 1
MASK96: constant(uint256) = 2**96 - 1
MASK128: constant(uint256) = 2**128 - 1
MASK160: constant(uint256) = 2**160 - 1
MASK224: constant(uint256) = 2**224 - 1
MAX_W0: constant(uint256) = 2**63 - 1  # w0 fits 63 bits of the clock word


# One stretch of constant w0: rpt(t) = rpt + w0 * (t - start) while it lasts.
struct Segment:
    rpt: uint96  # sum of w0 (WAD/day) * seconds since genesis, at `start`
    start: uint32
    w0: uint64  # WAD per day per staked token


# The hot global word: the current segment as rpt(t) = w0 * (t - GENESIS) + offset, and the pool.
struct Clock:
    offset: int256  # 97 bits signed
    w0: uint256  # 63 bits
    reward_pool: uint256  # 96 bits


struct Totals:
    active: uint96
    pending: uint96
    pending_epoch: uint32  # when `pending` turns active; 0 = none
    segment: uint32  # index of the current w0 segment


struct Position:
    active: uint96
    pending: uint96
    pending_epoch: uint32
    segment: uint32  # w0 segment when `pending` was staked (resolves the accumulator at its epoch start)


struct Accrual:
    rpt_paid: uint128
    earned: uint128


struct ReputationAccrual:
    # Total earned: the highest reward integral (reputation WAD x w3 x seconds) seen; it only grows.
    earned_integral: uint160
    rewarded: uint96  # total paid: cumulative w3 reward credited (ANKR wei)


struct W3Clock:
    w3_time: uint224  # integral of w3 (ANKR wei per month) over seconds up to `updated_at`
    updated_at: uint32


struct Unbonding:
    amount: uint96
    unlock_at: uint64


event Staked:
    account: indexed(address)
    amount: uint256
    active_from_epoch: uint256

event UnstakeRequested:
    account: indexed(address)
    amount: uint256
    unbonding: uint256
    unlock_at: uint256

event Withdrawn:
    account: indexed(address)
    amount: uint256

event RewardClaimed:
    account: indexed(address)
    paid: uint256
    still_owed: uint256

event RewardCredited:
    account: indexed(address)
    amount: uint256
    kind: uint256  # 1 = stake consumed (w1), 2 = fee earned (w2), 3 = reputation (w3)

event ReputationRewardAccrued:
    account: indexed(address)
    old_earned_integral: uint256  # reward integral (reputation WAD x w3 x seconds) earned up to before
    new_earned_integral: uint256
    amount: uint256  # credited now: min(earned, cap) - old_rewarded
    old_rewarded: uint256  # cumulative w3 reward paid before
    new_rewarded: uint256
    earned: uint256  # total w3 earned (ANKR wei): new_earned_integral / (1e18 x month)
    cap: uint256  # backing share x the account's fee backing

event RewardsFunded:
    funder: indexed(address)
    amount: uint256
    reward_pool: uint256

event Slashed:
    provider: indexed(address)
    victim: indexed(address)
    finder: indexed(address)
    amount: uint256
    finder_fee: uint256

event ParameterChanged:
    name: String[32]
    old_value: uint256
    new_value: uint256

event FeeSourceChanged:
    old_source: indexed(address)
    new_source: indexed(address)

event ReputationSourceChanged:
    old_source: indexed(address)
    new_source: indexed(address)


TOKEN: public(immutable(IERC20))
EPOCH_LENGTH: public(immutable(uint256))
GENESIS: public(immutable(uint256))

# Vyper gives every value its own slot, so each struct is packed by hand into one word.
# The current w0 segment and the reward pool, one word: every accrual reads it, a claim writes it.
_clock: uint256
_totals: uint256
_positions: HashMap[address, uint256]
_accruals: HashMap[address, uint256]
_unbondings: HashMap[address, uint256]
# Every w0 segment by index (governance writes them), and the last one begun in each epoch:
# together they give the accumulator at any epoch start in O(1).
_segments: HashMap[uint32, uint256]
_epoch_last_segment: HashMap[uint32, uint32]
# Per account: total w3 earned, as the highest reward integral (reputation WAD x w3 x seconds, as
# the source reports it) seen, and total w3 paid (credited; at most the cap). One word.
_reputation_accruals: HashMap[address, uint256]
# Integral of w3 over time (the reputation source weighs reputation with it), one word.
_w3_clock: uint256

w1: public(uint256)
w2: public(uint256)
w3: public(uint256)
unbonding_period: public(uint256)
finder_fee_bps: public(uint256)
# Share (basis points, <= 100%) of an account's fee backing it can ever earn as w3.
reputation_reward_backing_bps: public(uint256)
reputation_source: public(IDccnReputation)
# The deal escrow whose platform fee the weights are checked against (`split()`).
fee_source: public(address)


@deploy
def __init__(token: IERC20, epoch_length: uint256, unbonding_period: uint256, w0: uint256, w1: uint256,
             w2: uint256, w3: uint256, finder_fee_bps: uint256, reputation_reward_backing_bps: uint256):
    """
    @notice Sets the currency, the epoch length, the unbonding period,
            the reward weights (w0..w2 in WAD, w3 in ANKR wei per month),
            the finder fee and the w3 fee backing share. The deployer
            holds the admin role. (The escrow's constructor checks its
            fee against these weights: `min_fee_bps`.)
    @param token The ERC-20 staked and paid out (ANKR).
    @param epoch_length Seconds per epoch; must be > 0.
    @param unbonding_period Seconds an unstaked amount waits before it can be withdrawn.
    @param w0 Stake-holding weight, WAD per staked token per day.
    @param w1 Consumption weight (WAD), paid on stake consumed by tenants.
    @param w2 Earnings weight (WAD), paid on fees earned by providers.
    @param w3 Reputation weight, ANKR wei per month at full reputation.
    @param finder_fee_bps The finder's share of a slash, basis points (<= 10000).
    @param reputation_reward_backing_bps Share of platform fees that backs the w3 reward, basis points.
    """
    access_control.__init__()
    assert epoch_length > 0, "staking: zero epoch length"
    assert finder_fee_bps <= BPS, "staking: finder fee above 100%"
    assert reputation_reward_backing_bps <= BPS, "staking: backing above 100%"
    self.reputation_reward_backing_bps = reputation_reward_backing_bps
    TOKEN = token
    EPOCH_LENGTH = epoch_length
    GENESIS = block.timestamp
    assert w0 <= MAX_W0, "staking: w0 too large"
    self._store_clock(Clock(offset=0, w0=w0, reward_pool=0))
    self._segments[0] = self._pack_segment(Segment(rpt=0, start=convert(block.timestamp, uint32),
                                                   w0=convert(w0, uint64)))
    self.w1 = w1
    self.w2 = w2
    self.w3 = w3
    self._store_w3_clock(W3Clock(w3_time=0, updated_at=convert(block.timestamp, uint32)))
    self.unbonding_period = unbonding_period
    self.finder_fee_bps = finder_fee_bps


# -- staking --------------------------------------------------------------------------


@external
@nonreentrant
def stake(amount: uint256):
    """
    @notice Stakes `amount` ANKR (approved beforehand); it counts
            from the next epoch.
    @dev Gas: accrues only if an earlier pending stake has begun; no
         global checkpoint (docs/gas/dccn.md).
    @param amount ANKR wei to stake.
    """
    assert amount > 0, "staking: zero amount"
    now_epoch: uint256 = self._epoch(block.timestamp)
    p: Position = self._load_position(msg.sender)
    # Only a pending stake that turned active needs accruing: a top-up leaves the active stake's accrual as it is.
    if p.pending > 0 and now_epoch >= convert(p.pending_epoch, uint256):
        a: Accrual = empty(Accrual)
        changed: bool = False
        p, a, changed = self._accrue(p, self._load_accrual(msg.sender), self._load_clock())
        self._store_accrual(msg.sender, a)
    epoch: uint32 = convert(now_epoch + 1, uint32)
    t: Totals = self._totals_now()
    t.pending += convert(amount, uint96)
    t.pending_epoch = epoch
    self._store_totals(t)
    p.pending += convert(amount, uint96)
    p.pending_epoch = epoch
    p.segment = t.segment
    self._store_position(msg.sender, p)
    assert extcall TOKEN.transferFrom(msg.sender, self, amount, default_return_value=True), "staking: transfer failed"
    log Staked(account=msg.sender, amount=amount, active_from_epoch=convert(epoch, uint256))


@external
def request_unstake(amount: uint256):
    """
    @notice Moves `amount` of the caller's stake (pending first, then
            active) into unbonding; it stops earning at once and can be
            withdrawn after the unbonding period (which restarts).
    @param amount How much stake to unbond; must be > 0.
    """
    assert amount > 0, "staking: zero amount"
    p: Position = self._settle(msg.sender)
    from_pending: uint96 = min(p.pending, convert(amount, uint96))
    from_active: uint96 = convert(amount, uint96) - from_pending
    assert from_active <= p.active, "staking: amount above stake"
    p.pending -= from_pending
    p.active -= from_active
    if p.pending == 0:
        p.pending_epoch = 0
    self._store_position(msg.sender, p)
    self._reduce_totals(from_pending, from_active)
    u: Unbonding = self._load_unbonding(msg.sender)
    u.amount += convert(amount, uint96)
    u.unlock_at = convert(block.timestamp + self.unbonding_period, uint64)
    self._store_unbonding(msg.sender, u)
    log UnstakeRequested(account=msg.sender, amount=amount, unbonding=convert(u.amount, uint256),
                         unlock_at=convert(u.unlock_at, uint256))


@external
@nonreentrant
def withdraw():
    """
    @notice Pays out the caller's unbonded stake once its unbonding
            period is over.
    """
    u: Unbonding = self._load_unbonding(msg.sender)
    assert u.amount > 0, "staking: nothing unbonding"
    assert block.timestamp >= convert(u.unlock_at, uint256), "staking: still unbonding"
    amount: uint256 = convert(u.amount, uint256)
    self._unbondings[msg.sender] = 0
    assert extcall TOKEN.transfer(msg.sender, amount, default_return_value=True), "staking: transfer failed"
    log Withdrawn(account=msg.sender, amount=amount)


@external
@nonreentrant
def slash(provider: address, amount: uint256, victim: address, finder: address) -> uint256:
    """
    @notice Escrow role only: takes up to `amount` of `provider`'s stake
            (pending, then active, then unbonding) and pays it to
            `victim`, minus the finder fee paid to `finder`.
    @return uint256 The amount actually slashed.
    @param provider The provider whose stake is taken.
    @param amount The most to take.
    @param victim Who receives the slashed amount less the finder fee (not the zero address).
    @param finder Who receives the finder fee.
    """
    access_control._check_role(ESCROW_ROLE, msg.sender)
    assert victim != empty(address), "staking: zero victim"
    p: Position = self._settle(provider)
    want: uint96 = convert(min(amount, convert(max_value(uint96), uint256)), uint96)
    from_pending: uint96 = min(p.pending, want)
    want -= from_pending
    from_active: uint96 = min(p.active, want)
    want -= from_active
    u: Unbonding = self._load_unbonding(provider)
    from_unbonding: uint96 = min(u.amount, want)
    p.pending -= from_pending
    p.active -= from_active
    if p.pending == 0:
        p.pending_epoch = 0
    self._store_position(provider, p)
    self._reduce_totals(from_pending, from_active)
    if from_unbonding > 0:
        u.amount -= from_unbonding
        self._store_unbonding(provider, u)
    slashed: uint256 = convert(from_pending + from_active + from_unbonding, uint256)
    finder_fee: uint256 = 0
    if finder != empty(address):
        finder_fee = slashed * self.finder_fee_bps // BPS
    if finder_fee > 0:
        assert extcall TOKEN.transfer(finder, finder_fee, default_return_value=True), "staking: transfer failed"
    if slashed > finder_fee:
        assert extcall TOKEN.transfer(victim, slashed - finder_fee, default_return_value=True), "staking: transfer failed"
    log Slashed(provider=provider, victim=victim, finder=finder, amount=slashed, finder_fee=finder_fee)
    return slashed


# -- rewards --------------------------------------------------------------------------


@external
@nonreentrant
def fund_rewards(amount: uint256):
    """
    @notice Adds `amount` ANKR (approved beforehand) to the reward pool.
    @param amount How much to add, in token units; must be > 0.
    """
    assert amount > 0, "staking: zero amount"
    c: Clock = self._load_clock()
    pool: uint256 = c.reward_pool + amount
    assert pool <= MASK96, "staking: pool too large"
    c.reward_pool = pool
    self._store_clock(c)
    assert extcall TOKEN.transferFrom(msg.sender, self, amount, default_return_value=True), "staking: transfer failed"
    log RewardsFunded(funder=msg.sender, amount=amount, reward_pool=pool)


@external
@nonreentrant
def claim() -> uint256:
    """
    @notice Pays the caller's accrued rewards from the pool; what the
            pool cannot cover stays owed.
    @return uint256 The amount paid.
    """
    p: Position = self._load_position(msg.sender)
    pending: uint96 = p.pending
    a: Accrual = empty(Accrual)
    changed: bool = False
    c: Clock = self._load_clock()
    p, a, changed = self._accrue(p, self._load_accrual(msg.sender), c)
    if p.pending != pending:
        self._store_position(msg.sender, p)  # its pending stake turned active
    paid: uint128 = convert(min(convert(a.earned, uint256), c.reward_pool), uint128)
    assert paid > 0, "staking: nothing to claim"
    a.earned -= paid
    self._store_accrual(msg.sender, a)
    c.reward_pool -= convert(paid, uint256)
    self._store_clock(c)
    assert extcall TOKEN.transfer(msg.sender, convert(paid, uint256), default_return_value=True), "staking: transfer failed"
    log RewardClaimed(account=msg.sender, paid=convert(paid, uint256), still_owed=convert(a.earned, uint256))
    return convert(paid, uint256)


@external
def credit_activity(tenant: address, consumed: uint256, provider: address, provider_earned: uint256,
                    app_provider: address, app_earned: uint256):
    """
    @notice Rewarder role only: credits w1 x stake consumed to the
            tenant and w2 x fees earned to the resource and application
            providers (seed 000, "calculated on each transaction").
    @param tenant The tenant that consumed stake.
    @param consumed The amount consumed, credited x w1.
    @param provider The resource provider.
    @param provider_earned Its fees earned, credited x w2.
    @param app_provider The application provider.
    @param app_earned Its fees earned, credited x w2.
    """
    access_control._check_role(REWARDER_ROLE, msg.sender)
    self._credit(tenant, consumed * self.w1 // WAD, 1)
    w2: uint256 = self.w2
    self._credit(provider, provider_earned * w2 // WAD, 2)
    self._credit(app_provider, app_earned * w2 // WAD, 2)


@external
def accrue_reputation_reward(account: address) -> uint256:
    """
    @notice Credits w3 (per month) x the reputation `account` held,
            second by second, each second at the w3 of that second, up
            to its fee backing. Total earned = the source's reward
            integral (reputation x w3 x seconds) / (1e18 x month);
            total paid never exceeds `reputation_reward_backing_bps` of
            the account's fee backing (platform fees of the qualifying
            deals that fed its reputation). Each call credits
            min(total earned, cap) - total paid: what the cap holds
            back is paid by a later call once more fees back it, so no
            caller can make an account forfeit anything. A month at
            reputation 0 pays 0; a new reputation counts only from when
            it was set. Anyone may call it for any account.
    @dev O(1): one read of the source, one word read and at most one
         written. A source whose integral is below what was earned (a
         new source) adds nothing until it passes it.
    @param account The account whose w3 reward accrues.
    @return uint256 The amount credited.
    """
    source: IDccnReputation = self.reputation_source
    assert source.address != empty(address), "staking: no reputation source"
    integral: uint256 = 0
    backing: uint256 = 0
    integral, backing = staticcall source.reward_basis(account)
    r: ReputationAccrual = self._load_reputation_accrual(account)
    old_earned: uint256 = convert(r.earned_integral, uint256)
    new_earned: uint256 = max(old_earned, integral)
    # One division of the total: the exact reward rounded down once, however often it is called.
    earned: uint256 = new_earned // REPUTATION_DENOMINATOR
    rewarded: uint256 = convert(r.rewarded, uint256)
    if new_earned == old_earned and earned <= rewarded:
        return 0  # nothing earned since, nothing held back: nothing changes
    cap: uint256 = backing * self.reputation_reward_backing_bps // BPS
    due: uint256 = min(earned, cap)
    amount: uint256 = due - min(due, rewarded)  # 0 if the cap fell (governance) below what was paid
    if new_earned == old_earned and amount == 0:
        return 0  # held back, and still no more backing: nothing changes
    r.earned_integral = convert(new_earned, uint160)
    r.rewarded = convert(rewarded + amount, uint96)
    self._store_reputation_accrual(account, r)
    self._credit(account, amount, 3)
    log ReputationRewardAccrued(account=account, old_earned_integral=old_earned, new_earned_integral=new_earned,
                                amount=amount, old_rewarded=rewarded, new_rewarded=rewarded + amount,
                                earned=earned, cap=cap)
    return amount


# -- governance -----------------------------------------------------------------------


@external
def set_weights(w0: uint256, w1: uint256, w2: uint256, w3: uint256):
    """
    @notice Admin only: sets the reward weights (w0..w2 in WAD, w3 in
            ANKR wei per month). Stake held so far accrues at the old w0
            and reputation held so far at the old w3 (`w3_time`).
            Refused ("staking: weights exceed fee") if the fee source's
            platform fee would fall below `min_fee_bps` for them.
    @param w0 Stake-holding weight, WAD per staked token per day (at
              most 2^63 - 1, "staking: w0 too large"); starts a new
              accumulator segment.
    @param w1 Stake-consumed weight, WAD.
    @param w2 Fee-earned weight, WAD.
    @param w3 Reputation weight, ANKR wei per month at reputation 1.
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    self._check_fee_covers(w1, w2, self.reputation_reward_backing_bps)
    # A new w0 segment from now on; the old ones stay for accounts whose pending stake began in them.
    assert w0 <= MAX_W0, "staking: w0 too large"
    clock: Clock = self._load_clock()
    log ParameterChanged(name="w0", old_value=clock.w0, new_value=w0)
    rpt: uint256 = self._rpt_now(clock, block.timestamp)
    t: Totals = self._load_totals()
    t.segment += 1
    self._store_totals(t)
    self._segments[t.segment] = self._pack_segment(Segment(rpt=convert(rpt, uint96),
                                                           start=convert(block.timestamp, uint32),
                                                           w0=convert(w0, uint64)))
    self._epoch_last_segment[convert(self._epoch(block.timestamp), uint32)] = t.segment
    clock.offset = convert(rpt, int256) - convert(w0 * (block.timestamp - GENESIS), int256)
    clock.w0 = w0
    self._store_clock(clock)
    log ParameterChanged(name="w1", old_value=self.w1, new_value=w1)
    self.w1 = w1
    log ParameterChanged(name="w2", old_value=self.w2, new_value=w2)
    self.w2 = w2
    old_w3: uint256 = self.w3
    c: W3Clock = self._load_w3_clock()
    c.w3_time = convert(self._w3_time_at(c, old_w3, block.timestamp), uint224)
    c.updated_at = convert(block.timestamp, uint32)
    self._store_w3_clock(c)
    log ParameterChanged(name="w3", old_value=old_w3, new_value=w3)
    self.w3 = w3


@external
def set_unbonding_period(period: uint256):
    """
    @notice Admin only: sets the unbonding period for later requests.
    @param period The new unbonding period, seconds.
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    log ParameterChanged(name="unbonding_period", old_value=self.unbonding_period, new_value=period)
    self.unbonding_period = period


@external
def set_finder_fee_bps(fee_bps: uint256):
    """
    @notice Admin only: sets the finder's share of a slash, in basis points.
    @param fee_bps The new finder fee, basis points (<= 10000).
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    assert fee_bps <= BPS, "staking: finder fee above 100%"
    log ParameterChanged(name="finder_fee_bps", old_value=self.finder_fee_bps, new_value=fee_bps)
    self.finder_fee_bps = fee_bps


@external
def set_reputation_reward_backing(backing_bps: uint256):
    """
    @notice Admin only: the share (basis points, <= 100%) of an
            account's fee backing it can ever earn as w3 reward.
    @param backing_bps The new share.
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    assert backing_bps <= BPS, "staking: backing above 100%"
    self._check_fee_covers(self.w1, self.w2, backing_bps)
    log ParameterChanged(name="reputation_reward_backing_bps", old_value=self.reputation_reward_backing_bps,
                         new_value=backing_bps)
    self.reputation_reward_backing_bps = backing_bps


@external
def set_fee_source(source: address):
    """
    @notice Admin only: the deal escrow whose platform fee (`split()`)
            weight and backing changes are checked against; its current
            fee must already cover the current weights.
    @param source The escrow (empty: no check on later changes).
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    log FeeSourceChanged(old_source=self.fee_source, new_source=source)
    self.fee_source = source
    self._check_fee_covers(self.w1, self.w2, self.reputation_reward_backing_bps)


@external
def set_reputation_source(source: IDccnReputation):
    """
    @notice Admin only: sets the reputation contract the w3 reward reads.
    @param source The reputation contract.
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    log ReputationSourceChanged(old_source=self.reputation_source.address, new_source=source.address)
    self.reputation_source = source


# -- views ----------------------------------------------------------------------------


@view
@external
def w0() -> uint256:
    """
    @notice The stake-holding weight, WAD per staked token per day.
    @return uint256 w0 (WAD).
    """
    return self._load_clock().w0


@view
@external
def min_fee_bps() -> uint256:
    """
    @notice The lowest platform fee (basis points) at which a deal's
            w1 + w2 rewards plus the w3 reward its fee can back stay
            within the fee it pays: w1 + w2 x (1 - fee) <= fee x
            (1 - backing); above 100% if no fee can.
    @return uint256 Basis points.
    """
    return self._min_fee_bps(self.w1, self.w2, self.reputation_reward_backing_bps)


@view
@external
def w3_time() -> uint256:
    """
    @notice The integral of w3 (ANKR wei per month) over seconds since
            deployment, each second at the w3 it had: the clock the
            reputation source weighs reputation with.
    @return uint256 ANKR wei per month x seconds.
    """
    return self._w3_time_at(self._load_w3_clock(), self.w3, block.timestamp)


@view
@external
def reputation_earned_integral(account: address) -> uint256:
    """
    @notice Reward integral (reputation WAD x w3 x seconds) earned up
            to the last accrual: the highest the source has reported.
    @param account The account.
    @return uint256 Its earned reward integral.
    """
    return convert(self._load_reputation_accrual(account).earned_integral, uint256)


@view
@external
def reputation_earned(account: address) -> uint256:
    """
    @notice Total w3 earned by `account` up to the last accrual (ANKR
            wei), paid or not: what exceeds `reputation_rewarded` is
            paid once the fee backing allows it.
    @param account The account.
    @return uint256 ANKR wei of w3 earned.
    """
    return convert(self._load_reputation_accrual(account).earned_integral, uint256) // REPUTATION_DENOMINATOR


@view
@external
def reputation_rewarded(account: address) -> uint256:
    """
    @notice Cumulative w3 reward credited (paid) to `account` (ANKR
            wei): min(earned, cap) at its last accrual.
    @param account The account.
    @return uint256 ANKR wei of w3 credited so far.
    """
    return convert(self._load_reputation_accrual(account).rewarded, uint256)


@view
@external
def reputation_reward_cap(account: address) -> uint256:
    """
    @notice The most w3 `account` can ever be credited with its fee
            backing so far: backing share x fee backing.
    @param account The account.
    @return uint256 ANKR wei.
    """
    source: IDccnReputation = self.reputation_source
    if source.address == empty(address):
        return 0
    integral: uint256 = 0
    backing: uint256 = 0
    integral, backing = staticcall source.reward_basis(account)
    return backing * self.reputation_reward_backing_bps // BPS


@view
@external
def reward_pool() -> uint256:
    """
    @notice ANKR available to pay rewards.
    @return uint256 ANKR wei.
    """
    return self._load_clock().reward_pool


@view
@external
def current_epoch() -> uint256:
    """
    @notice The epoch now (epochs start at 1 at deployment).
    @return uint256 The epoch number.
    """
    return self._epoch(block.timestamp)


@view
@external
def staked(account: address) -> uint256:
    """
    @notice The stake of `account` that counts now (active).
    @param account The staker.
    @return uint256 Its active stake.
    """
    p: Position = self._load_position(account)
    active: uint256 = convert(p.active, uint256)
    if p.pending > 0 and self._epoch(block.timestamp) >= convert(p.pending_epoch, uint256):
        active += convert(p.pending, uint256)
    return active


@view
@external
def stake_info(account: address) -> (uint256, uint256, uint256, uint256, uint256):
    """
    @notice (active, pending, epoch the pending stake turns active,
            unbonding, unlock time) of `account`, as stored.
    @param account The staker.
    @return (uint256, uint256, uint256, uint256, uint256) Active, pending, pending epoch, unbonding, unlock time.
    """
    p: Position = self._load_position(account)
    u: Unbonding = self._load_unbonding(account)
    return (convert(p.active, uint256), convert(p.pending, uint256), convert(p.pending_epoch, uint256),
            convert(u.amount, uint256), convert(u.unlock_at, uint256))


@view
@external
def total_staked() -> uint256:
    """
    @notice The total stake that counts now (participation is a
            provider's `staked` over this).
    @return uint256 The total active stake.
    """
    return convert(self._totals_now().active, uint256)


@view
@external
def earned(account: address) -> uint256:
    """
    @notice Rewards owed to `account` now, claimed or not yet.
    @param account The staker.
    @return uint256 ANKR wei owed.
    """
    p: Position = empty(Position)
    a: Accrual = empty(Accrual)
    changed: bool = False
    p, a, changed = self._accrue(self._load_position(account), self._load_accrual(account), self._load_clock())
    return convert(a.earned, uint256)


# -- internals ------------------------------------------------------------------------


@view
@internal
def _epoch(timestamp: uint256) -> uint256:
    return (timestamp - GENESIS) // EPOCH_LENGTH + 1


@view
@internal
def _epoch_start(epoch: uint32) -> uint256:
    return GENESIS + (convert(epoch, uint256) - 1) * EPOCH_LENGTH


@pure
@internal
def _rpt_at(c: Segment, timestamp: uint256) -> uint256:
    return convert(c.rpt, uint256) + convert(c.w0, uint256) * (timestamp - convert(c.start, uint256))


@view
@internal
def _rpt_now(c: Clock, timestamp: uint256) -> uint256:
    """The accumulator at `timestamp` within the current segment."""
    return convert(convert(c.w0 * (timestamp - GENESIS), int256) + c.offset, uint256)


@view
@internal
def _rpt_at_epoch_start(p: Position, c: Clock) -> uint256:
    """The accumulator at the start of `p.pending_epoch` (begun after `p` was staked), in O(1)."""
    start: uint256 = self._epoch_start(p.pending_epoch)
    if p.segment == self._load_totals().segment:
        return self._rpt_now(c, start)  # w0 unchanged since the stake: the usual case
    # w0 changed since: the segment covering the start is the last one begun in the epoch before it,
    # or, if none was, the one the stake was made in (stake is made in the epoch before).
    index: uint32 = max(p.segment, self._epoch_last_segment[p.pending_epoch - 1])
    return self._rpt_at(self._unpack_segment(self._segments[index]), start)


@view
@internal
def _accrue(p: Position, a: Accrual, c: Clock) -> (Position, Accrual, bool):
    """Accrues the stake-holding reward of position `p` into `a` and activates its pending stake if
    due (nothing stored: the caller stores what changed); true if `a` changed."""
    rolled: bool = p.pending > 0 and self._epoch(block.timestamp) >= convert(p.pending_epoch, uint256)
    if p.active == 0 and not rolled:
        return p, a, False
    rpt: uint256 = self._rpt_now(c, block.timestamp)
    scaled: uint256 = 0
    if rolled:
        scaled = convert(p.pending, uint256) * (rpt - self._rpt_at_epoch_start(p, c))
    if p.active > 0:
        scaled += convert(p.active, uint256) * (rpt - convert(a.rpt_paid, uint256))
    # One division per update: at most 1 wei lost.
    a.earned += convert(scaled // ACCRUAL_DENOMINATOR, uint128)
    a.rpt_paid = convert(rpt, uint128)
    if rolled:
        p.active += p.pending
        p.pending = 0
        p.pending_epoch = 0
    return p, a, True


@internal
def _settle(account: address) -> Position:
    """Accrues the account's stake-holding reward and activates its pending stake if due (both stored)."""
    p: Position = self._load_position(account)
    a: Accrual = empty(Accrual)
    changed: bool = False
    p, a, changed = self._accrue(p, self._load_accrual(account), self._load_clock())
    if changed:
        self._store_accrual(account, a)
        self._store_position(account, p)
    return p


@view
@internal
def _totals_now() -> Totals:
    """The totals with a pending total whose epoch began counted as active."""
    t: Totals = self._load_totals()
    if t.pending > 0 and self._epoch(block.timestamp) >= convert(t.pending_epoch, uint256):
        t.active += t.pending
        t.pending = 0
        t.pending_epoch = 0
    return t


@pure
@internal
def _w3_time_at(c: W3Clock, w3: uint256, now: uint256) -> uint256:
    return convert(c.w3_time, uint256) + w3 * (now - convert(c.updated_at, uint256))


@pure
@internal
def _min_fee_bps(w1: uint256, w2: uint256, backing_bps: uint256) -> uint256:
    # fee f (bps) works iff w1 BPS^2 + w2 BPS (BPS - f) <= f (BPS - backing) WAD,
    # i.e. f >= (w1 + w2) BPS^2 / ((BPS - backing) WAD + w2 BPS), rounded up.
    numerator: uint256 = (w1 + w2) * BPS * BPS
    denominator: uint256 = (BPS - backing_bps) * WAD + w2 * BPS
    if numerator == 0:
        return 0
    if denominator == 0:
        return BPS + 1
    return (numerator + denominator - 1) // denominator


@view
@internal
def _check_fee_covers(w1: uint256, w2: uint256, backing_bps: uint256):
    source: address = self.fee_source
    if source == empty(address):
        return
    fee_bps: uint256 = 0
    app_bps: uint256 = 0
    slash_bps: uint256 = 0
    fee_bps, app_bps, slash_bps = staticcall FeeSource(source).split()
    assert fee_bps >= self._min_fee_bps(w1, w2, backing_bps), "staking: weights exceed fee"


@internal
def _credit(account: address, amount: uint256, kind: uint256):
    if account == empty(address) or amount == 0:
        return
    a: Accrual = self._load_accrual(account)
    a.earned += convert(amount, uint128)
    self._store_accrual(account, a)
    log RewardCredited(account=account, amount=amount, kind=kind)


@internal
def _reduce_totals(from_pending: uint96, from_active: uint96):
    t: Totals = self._totals_now()
    t.pending -= from_pending
    t.active -= from_active
    self._store_totals(t)


# -- packing: one storage word per struct ---------------------------------------------


@pure
@internal
def _pack_segment(c: Segment) -> uint256:
    return convert(c.rpt, uint256) | convert(c.start, uint256) << 96 | convert(c.w0, uint256) << 128


@pure
@internal
def _unpack_segment(w: uint256) -> Segment:
    return Segment(rpt=convert(w & MASK96, uint96), start=convert((w >> 96) & MASK32, uint32),
                   w0=convert(w >> 128, uint64))


@view
@internal
def _load_clock() -> Clock:
    w: uint256 = self._clock
    offset: int256 = convert(w >> 159, int256)
    if offset >= 2**96:
        offset -= 2**97  # two's complement in 97 bits
    return Clock(offset=offset, w0=(w >> 96) & MAX_W0, reward_pool=w & MASK96)


@internal
def _store_clock(c: Clock):
    assert c.offset >= -(2**96) and c.offset < 2**96, "staking: accumulator overflow"
    offset: uint256 = convert(c.offset, uint256) if c.offset >= 0 else convert(c.offset + 2**97, uint256)
    self._clock = c.reward_pool | c.w0 << 96 | offset << 159


@view
@internal
def _load_totals() -> Totals:
    w: uint256 = self._totals
    return Totals(active=convert(w & MASK96, uint96), pending=convert((w >> 96) & MASK96, uint96),
                  pending_epoch=convert((w >> 192) & MASK32, uint32), segment=convert(w >> 224, uint32))


@internal
def _store_totals(t: Totals):
    self._totals = (convert(t.active, uint256) | convert(t.pending, uint256) << 96
                    | convert(t.pending_epoch, uint256) << 192 | convert(t.segment, uint256) << 224)


@view
@internal
def _load_position(account: address) -> Position:
    w: uint256 = self._positions[account]
    return Position(active=convert(w & MASK96, uint96), pending=convert((w >> 96) & MASK96, uint96),
                    pending_epoch=convert((w >> 192) & MASK32, uint32), segment=convert(w >> 224, uint32))


@internal
def _store_position(account: address, p: Position):
    self._positions[account] = (convert(p.active, uint256) | convert(p.pending, uint256) << 96
                                | convert(p.pending_epoch, uint256) << 192 | convert(p.segment, uint256) << 224)


@view
@internal
def _load_accrual(account: address) -> Accrual:
    w: uint256 = self._accruals[account]
    return Accrual(rpt_paid=convert(w & MASK128, uint128), earned=convert(w >> 128, uint128))


@internal
def _store_accrual(account: address, a: Accrual):
    self._accruals[account] = convert(a.rpt_paid, uint256) | convert(a.earned, uint256) << 128


@view
@internal
def _load_reputation_accrual(account: address) -> ReputationAccrual:
    w: uint256 = self._reputation_accruals[account]
    return ReputationAccrual(earned_integral=convert(w & MASK160, uint160), rewarded=convert(w >> 160, uint96))


@internal
def _store_reputation_accrual(account: address, r: ReputationAccrual):
    self._reputation_accruals[account] = convert(r.earned_integral, uint256) | convert(r.rewarded, uint256) << 160


@view
@internal
def _load_w3_clock() -> W3Clock:
    w: uint256 = self._w3_clock
    return W3Clock(w3_time=convert(w & MASK224, uint224), updated_at=convert(w >> 224, uint32))


@internal
def _store_w3_clock(c: W3Clock):
    self._w3_clock = convert(c.w3_time, uint256) | convert(c.updated_at, uint256) << 224


@view
@internal
def _load_unbonding(account: address) -> Unbonding:
    w: uint256 = self._unbondings[account]
    return Unbonding(amount=convert(w & MASK96, uint96), unlock_at=convert(w >> 96, uint64))


@internal
def _store_unbonding(account: address, u: Unbonding):
    self._unbondings[account] = convert(u.amount, uint256) | convert(u.unlock_at, uint256) << 96
