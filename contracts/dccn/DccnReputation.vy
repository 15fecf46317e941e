# pragma version ~=0.4.3
"""
@title DCCN reputation
@custom:contract-name DccnReputation
@license MIT
@notice Reputation in [0, 1] (WAD) per seed 000's tables:
        0.4 TotalFee + 0.2 TotalCompletedDeals + 0.2 CompletedDealsRatio
        + 0.1 ServiceLevel (p / p_max) + 0.1 RatingScore (p / 100),
        where both totals are EMAs p_t = psi * log10(p) / divisor
        + (1 - psi) * p_{t-1} (divisor 1000 in the seed). The deal
        escrow records deals, service levels and ratings; the staking
        contract (w3) reads `reputation_integral`, the scheduler reads
        `reputation`.
@dev Reputation changes only when something is recorded, so it is a
     step function of time: before every change the elapsed seconds x
     the old reputation are folded into a per-account integral, and
     `reputation_integral` adds the seconds since. O(1), never a loop
     over months; a month pays the reputation it had, never later.
     The same word keeps the account's fee backing: the platform fees
     of the qualifying deals it was a party to (its share, as the
     recorder splits each deal's fee), the cap of its w3 reward.
     The w3 reward reads `reward_integral`: reputation integrated
     against the staking contract's clock W = integral of w3 dt, kept
     in O(1) per account as an offset Y with reward_integral = Y +
     reputation x W(now); when the reputation changes from r to r', Y
     gains (r - r') x W(now). So a w3 change weighs only later seconds.
"""

from snekmate.auth import access_control
from snekmate.utils import math
from ..interfaces import IDccnReputation

implements: IDccnReputation


interface RewardClock:
    def w3_time() -> uint256: view


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

# May record deals, service levels and ratings (the deal escrow).
RECORDER_ROLE: public(constant(bytes32)) = keccak256("RECORDER_ROLE")

WAD: constant(uint256) = 10**18
MASK32: constant(uint256) = 2**32 - 1
MASK64: constant(uint256) = 2**64 - 1
MASK128: constant(uint256) = 2**128 - 1
LN10_WAD: constant(uint256) = 2_302_585_092_994_045_684
MAX_LEVEL: constant(uint256) = 100
# Seed 000 weights, in WAD.
W_TOTAL_FEE: constant(uint256) = 4 * 10**17
W_COMPLETED: constant(uint256) = 2 * 10**17
W_RATIO: constant(uint256) = 2 * 10**17
W_SERVICE: constant(uint256) = 10**17
W_RATING: constant(uint256) = 10**17


struct Deals:
    ema_fee: uint64  # WAD
    ema_completed: uint64  # WAD
    completed: uint32
    failed: uint32


struct Scores:
    total_fee: uint128  # ANKR wei
    rating_sum: uint32
    rating_count: uint32
    service_sum: uint32
    service_count: uint32


struct Clock:
    updated_at: uint32  # when the reputation last changed
    integral: uint128  # reputation (WAD) x seconds up to `updated_at`
    backing: uint96  # platform fees (ANKR wei) of qualifying deals credited to the account


event DealRecorded:
    account: indexed(address)
    completed: bool
    fee: uint256
    old_reputation: uint256
    new_reputation: uint256

event ServiceLevelRecorded:
    account: indexed(address)
    level: uint256
    old_reputation: uint256
    new_reputation: uint256

event RatingRecorded:
    account: indexed(address)
    score: uint256
    old_reputation: uint256
    new_reputation: uint256

event FeeBackingRecorded:
    account: indexed(address)
    old_backing: uint256
    new_backing: uint256

event ReputationIntegralFolded:
    account: indexed(address)
    old_integral: uint256
    new_integral: uint256

event RewardClockSet:
    old_clock: indexed(address)
    new_clock: indexed(address)

event ParameterChanged:
    name: String[32]
    old_value: uint256
    new_value: uint256


# Vyper gives every value its own slot, so each struct is packed by hand into one word.
_deals: HashMap[address, uint256]
_scores: HashMap[address, uint256]
_clocks: HashMap[address, uint256]
# Per account offset Y: reward_integral = Y + reputation x W(now), W = the clock's integral of w3 dt.
_reward_offsets: HashMap[address, int256]
# The staking contract whose `w3_time()` (integral of w3 over time) weighs the reward integral.
reward_clock: public(address)
psi: public(uint256)  # WAD
log_divisor: public(uint256)


@deploy
def __init__(psi: uint256, log_divisor: uint256):
    """
    @notice Sets the EMA factor psi (WAD, 0 < psi <= 1) and the log
            divisor (seed: 1000). The deployer holds the admin role.
    @param psi The EMA factor (WAD), 0 < psi <= 1e18.
    @param log_divisor The divisor of the log-scaled fee and deal indices (seed: 1000).
    """
    access_control.__init__()
    self._set_params(psi, log_divisor)


@external
def record_deal(account: address, completed: bool, fee: uint256, backing: uint256):
    """
    @notice Recorder only: a deal of `account` ended (completed or
            failed) with `fee` ANKR paid or earned; updates both EMAs
            and adds `backing` (the account's share of the platform fee
            the deal paid) to its fee backing, the cap of its w3 reward.
    @param account The party whose reputation changes.
    @param completed True if the deal completed, False if it failed.
    @param fee ANKR wei the account paid (tenant) or earned (providers).
    @param backing ANKR wei of platform fee credited to the account's backing.
    """
    access_control._check_role(RECORDER_ROLE, msg.sender)
    old: uint256 = self._fold(account)
    if backing > 0:
        c: Clock = self._load_clock(account)
        old_backing: uint256 = convert(c.backing, uint256)
        c.backing += convert(backing, uint96)
        self._store_clock(account, c)
        log FeeBackingRecorded(account=account, old_backing=old_backing, new_backing=convert(c.backing, uint256))
    d: Deals = self._load_deals(account)
    s: Scores = self._load_scores(account)
    s.total_fee += convert(fee, uint128)
    psi: uint256 = self.psi
    divisor: uint256 = self.log_divisor
    d.ema_fee = convert(self._ema(convert(d.ema_fee, uint256), convert(s.total_fee, uint256), psi, divisor), uint64)
    if completed:
        d.completed += 1
        d.ema_completed = convert(
            self._ema(convert(d.ema_completed, uint256), convert(d.completed, uint256) * WAD, psi, divisor), uint64)
    else:
        d.failed += 1
    self._store_deals(account, d)
    self._store_scores(account, s)
    log DealRecorded(account=account, completed=completed, fee=fee, old_reputation=old,
                     new_reputation=self._shift(account, old))


@external
def record_service_level(account: address, level: uint256):
    """
    @notice Recorder only: a measured service level (0..100) of `account`.
    @param account The provider measured.
    @param level The service level, 0..100.
    """
    access_control._check_role(RECORDER_ROLE, msg.sender)
    assert level <= MAX_LEVEL, "reputation: level above 100"
    old: uint256 = self._fold(account)
    s: Scores = self._load_scores(account)
    s.service_sum += convert(level, uint32)
    s.service_count += 1
    self._store_scores(account, s)
    log ServiceLevelRecorded(account=account, level=level, old_reputation=old,
                             new_reputation=self._shift(account, old))


@external
def record_rating(account: address, score: uint256):
    """
    @notice Recorder only: a tenant's rating (0..100) of `account`.
    @param account The provider rated.
    @param score The rating, 0..100.
    """
    access_control._check_role(RECORDER_ROLE, msg.sender)
    assert score <= MAX_LEVEL, "reputation: score above 100"
    old: uint256 = self._fold(account)
    s: Scores = self._load_scores(account)
    s.rating_sum += convert(score, uint32)
    s.rating_count += 1
    self._store_scores(account, s)
    log RatingRecorded(account=account, score=score, old_reputation=old, new_reputation=self._shift(account, old))


@external
def set_reward_clock(clock: address):
    """
    @notice Admin only, once: the staking contract whose `w3_time()`
            weighs `reward_integral` (set at deployment, before any
            record; a later change would shift every account's offset).
    @param clock The staking contract.
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    assert self.reward_clock == empty(address), "reputation: reward clock already set"
    assert clock != empty(address), "reputation: zero reward clock"
    log RewardClockSet(old_clock=empty(address), new_clock=clock)
    self.reward_clock = clock


@external
def set_params(psi: uint256, log_divisor: uint256):
    """
    @notice Admin only: sets psi (WAD) and the log divisor.
    @param psi The new EMA factor (WAD), 0 < psi <= 1e18.
    @param log_divisor The new log divisor.
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    self._set_params(psi, log_divisor)


@view
@external
def reputation(account: address) -> uint256:
    """
    @notice Reputation of `account` in [0, 1e18].
    @param account The provider.
    @return uint256 Its reputation (WAD).
    """
    return self._reputation(account)


@view
@external
def reputation_integral(account: address) -> uint256:
    """
    @notice Reputation of `account` integrated over time up to now:
            the sum of reputation (WAD) x seconds it was held, from its
            first record. w3 pays w3 x this / (1e18 x month).
    @param account The provider.
    @return uint256 Reputation (WAD) x seconds.
    """
    return self._integral(account, self._load_clock(account))


@view
@external
def fee_backing(account: address) -> uint256:
    """
    @notice Platform fees (ANKR wei) of the qualifying deals credited to
            `account`: staking pays it at most a fixed fraction of this
            as w3 reward, ever.
    @param account The account.
    @return uint256 ANKR wei of platform fees.
    """
    return convert(self._load_clock(account).backing, uint256)


@view
@external
def reward_integral(account: address) -> uint256:
    """
    @notice Reputation of `account` integrated against the reward
            clock: the sum of reputation (WAD) x w3 (ANKR wei per
            month) x seconds, each second at the w3 of that second.
    @param account The account.
    @return uint256 Reputation (WAD) x w3 x seconds.
    """
    return self._reward_integral(account)


@view
@external
def reward_basis(account: address) -> (uint256, uint256):
    """
    @notice (reward integral up to now, fee backing) of `account`,
            read in one call by the staking contract's w3 accrual.
    @param account The account.
    @return (uint256, uint256) Reputation (WAD) x w3 x seconds; ANKR wei of fees.
    """
    return (self._reward_integral(account), convert(self._load_clock(account).backing, uint256))


@view
@external
def components(account: address) -> (uint256, uint256, uint256, uint256, uint256):
    """
    @notice The five indices of seed 000, each in [0, 1e18]:
            (TotalFee EMA, TotalCompletedDeals EMA, CompletedDealsRatio,
            ServiceLevel, RatingScore).
    @param account The provider.
    @return (uint256, uint256, uint256, uint256, uint256) The five indices (WAD).
    """
    return self._components(account)


@view
@external
def deals(account: address) -> Deals:
    """
    @notice (TotalFee EMA, TotalCompletedDeals EMA, completed, failed) of `account`.
    @param account The provider.
    @return Deals Its deal record.
    """
    return self._load_deals(account)


@view
@external
def scores(account: address) -> Scores:
    """
    @notice (total fee, rating sum, ratings, service level sum, levels) of `account`.
    @param account The provider.
    @return Scores Its score sums and counts.
    """
    return self._load_scores(account)


@view
@internal
def _components(account: address) -> (uint256, uint256, uint256, uint256, uint256):
    d: Deals = self._load_deals(account)
    s: Scores = self._load_scores(account)
    ratio: uint256 = 0
    ended: uint256 = convert(d.completed, uint256) + convert(d.failed, uint256)
    if ended > 0:
        ratio = convert(d.completed, uint256) * WAD // ended
    service: uint256 = 0
    if s.service_count > 0:
        service = convert(s.service_sum, uint256) * WAD // (convert(s.service_count, uint256) * MAX_LEVEL)
    rating: uint256 = 0
    if s.rating_count > 0:
        rating = convert(s.rating_sum, uint256) * WAD // (convert(s.rating_count, uint256) * MAX_LEVEL)
    return (min(convert(d.ema_fee, uint256), WAD), min(convert(d.ema_completed, uint256), WAD), ratio, service,
            rating)


@view
@internal
def _reputation(account: address) -> uint256:
    fee: uint256 = 0
    completed: uint256 = 0
    ratio: uint256 = 0
    service: uint256 = 0
    rating: uint256 = 0
    fee, completed, ratio, service, rating = self._components(account)
    score: uint256 = (W_TOTAL_FEE * fee + W_COMPLETED * completed + W_RATIO * ratio + W_SERVICE * service
                      + W_RATING * rating) // WAD
    return min(score, WAD)


@internal
def _fold(account: address) -> uint256:
    """Before a change: adds the seconds since the last change x the reputation held; returns that reputation."""
    reputation: uint256 = self._reputation(account)
    c: Clock = self._load_clock(account)
    elapsed: uint256 = block.timestamp - convert(c.updated_at, uint256)
    if elapsed == 0 and c.updated_at != 0:
        return reputation
    old_integral: uint256 = convert(c.integral, uint256)
    c.integral += convert(elapsed * reputation, uint128)
    c.updated_at = convert(block.timestamp, uint32)
    self._store_clock(account, c)
    if reputation > 0:
        log ReputationIntegralFolded(account=account, old_integral=old_integral,
                                     new_integral=convert(c.integral, uint256))
    return reputation


@view
@internal
def _integral(account: address, c: Clock) -> uint256:
    return convert(c.integral, uint256) + (block.timestamp - convert(c.updated_at, uint256)) * self._reputation(
        account)


@view
@internal
def _w3_time() -> uint256:
    clock: address = self.reward_clock
    if clock == empty(address):
        return 0
    return staticcall RewardClock(clock).w3_time()


@view
@internal
def _reward_integral(account: address) -> uint256:
    reputation: uint256 = self._reputation(account)
    offset: int256 = self._reward_offsets[account]
    if reputation == 0:
        return convert(offset, uint256)
    return convert(offset + convert(reputation * self._w3_time(), int256), uint256)


@internal
def _shift(account: address, old: uint256) -> uint256:
    """After a change from `old`: moves the offset so the reward integral is continuous; returns the new reputation."""
    new: uint256 = self._reputation(account)
    if new != old:
        w: int256 = convert(self._w3_time(), int256)
        self._reward_offsets[account] += (convert(old, int256) - convert(new, int256)) * w
    return new


@pure
@internal
def _log10_wad(x_wad: uint256) -> uint256:
    """log10 of a WAD number, clamped at 0 below 1."""
    if x_wad <= WAD:
        return 0
    return convert(math._wad_ln(convert(x_wad, int256)), uint256) * WAD // LN10_WAD


@pure
@internal
def _ema(previous: uint256, total_wad: uint256, psi: uint256, divisor: uint256) -> uint256:
    sample: uint256 = self._log10_wad(total_wad) // divisor
    return min((psi * sample + (WAD - psi) * previous) // WAD, WAD)


@internal
def _set_params(psi: uint256, log_divisor: uint256):
    assert psi > 0 and psi <= WAD, "reputation: psi out of (0, 1]"
    assert log_divisor > 0, "reputation: zero divisor"
    log ParameterChanged(name="psi", old_value=self.psi, new_value=psi)
    log ParameterChanged(name="log_divisor", old_value=self.log_divisor, new_value=log_divisor)
    self.psi = psi
    self.log_divisor = log_divisor


# -- packing: one storage word per struct ---------------------------------------------


@view
@internal
def _load_deals(account: address) -> Deals:
    w: uint256 = self._deals[account]
    return Deals(ema_fee=convert(w & MASK64, uint64), ema_completed=convert((w >> 64) & MASK64, uint64),
                 completed=convert((w >> 128) & MASK32, uint32), failed=convert(w >> 160, uint32))


@internal
def _store_deals(account: address, d: Deals):
    self._deals[account] = (convert(d.ema_fee, uint256) | convert(d.ema_completed, uint256) << 64
                            | convert(d.completed, uint256) << 128 | convert(d.failed, uint256) << 160)


@view
@internal
def _load_scores(account: address) -> Scores:
    w: uint256 = self._scores[account]
    return Scores(total_fee=convert(w & MASK128, uint128), rating_sum=convert((w >> 128) & MASK32, uint32),
                  rating_count=convert((w >> 160) & MASK32, uint32), service_sum=convert((w >> 192) & MASK32, uint32),
                  service_count=convert(w >> 224, uint32))


@internal
def _store_scores(account: address, s: Scores):
    self._scores[account] = (convert(s.total_fee, uint256) | convert(s.rating_sum, uint256) << 128
                             | convert(s.rating_count, uint256) << 160 | convert(s.service_sum, uint256) << 192
                             | convert(s.service_count, uint256) << 224)


@view
@internal
def _load_clock(account: address) -> Clock:
    w: uint256 = self._clocks[account]
    return Clock(updated_at=convert(w & MASK32, uint32), integral=convert((w >> 32) & MASK128, uint128),
                 backing=convert(w >> 160, uint96))


@internal
def _store_clock(account: address, c: Clock):
    self._clocks[account] = (convert(c.updated_at, uint256) | convert(c.integral, uint256) << 32
                             | convert(c.backing, uint256) << 160)
