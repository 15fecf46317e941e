# pragma version ~=0.4.3
"""
@title DCCN proof-of-capacity rewards
@custom:contract-name DccnCapacityRewards
@license MIT
@notice Seed 003: each node's capacity is reported daily by an
        authorised reporter, C = P / Q * (sqrt(t) * o) + (sR - sT)
        (P processors, Q cores per processor, t the reported time in
        ms, o the overhead factor in WAD, sR disk reported, sT disk
        taken; negative C counts as 0). The day's RW1 pool
        (RW1 = SP * PMA * C / (N * C_avg), i.e. the pool split by C,
        since N * C_avg is the day's total C) is claimed by each node
        once the day is over.
"""

from ethereum.ercs import IERC20
from snekmate.auth import access_control

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

# May report node capacities.
REPORTER_ROLE: public(constant(bytes32)) = keccak256("REPORTER_ROLE")

WAD: constant(uint256) = 10**18
DAY: constant(uint256) = 86_400
MAX_CLAIM_DAYS: constant(uint256) = 64


struct Report:
    capacity: uint128  # WAD
    claimed: bool


event CapacityReported:
    node: indexed(address)
    day: indexed(uint256)
    capacity: uint256
    day_total: uint256

event DayPoolAllocated:
    day: indexed(uint256)
    pool: uint256
    reserve: uint256

event CapacityRewardClaimed:
    node: indexed(address)
    day: indexed(uint256)
    amount: uint256

event Funded:
    funder: indexed(address)
    amount: uint256
    reserve: uint256

event ParameterChanged:
    name: String[32]
    old_value: uint256
    new_value: uint256


TOKEN: public(immutable(IERC20))

reports: public(HashMap[address, HashMap[uint256, Report]])
day_total: public(HashMap[uint256, uint256])
day_pool: public(HashMap[uint256, uint256])
day_allocated: public(HashMap[uint256, bool])
reserve: public(uint256)  # funded, not yet allocated to a day
daily_reward: public(uint256)  # SP * PMA: the most one day's pool takes


@deploy
def __init__(token: IERC20, daily_reward: uint256):
    """
    @notice Sets the currency and the daily RW1 pool size. The
            deployer holds the admin role.
    @param token The ERC-20 the rewards are paid in (ANKR).
    @param daily_reward SP * PMA: the most one day's pool takes from the reserve.
    """
    access_control.__init__()
    TOKEN = token
    self.daily_reward = daily_reward


@external
@nonreentrant
def fund(amount: uint256):
    """
    @notice Adds `amount` ANKR (approved beforehand) to the reserve that
            the daily pools are drawn from.
    @param amount How much to add, in token units; must be > 0.
    """
    assert amount > 0, "capacity: zero amount"
    self.reserve += amount
    assert extcall TOKEN.transferFrom(msg.sender, self, amount, default_return_value=True), "capacity: transfer failed"
    log Funded(funder=msg.sender, amount=amount, reserve=self.reserve)


@external
def report(node: address, processors: uint256, cores: uint256, time_ms: uint256, overhead: uint256,
           disk_reported: uint256, disk_taken: uint256) -> uint256:
    """
    @notice Reporter only: today's capacity report of `node`, once per
            node and day. The first report of a day allocates its pool.
    @return uint256 The node's capacity C (WAD).
    @param node The node the report is about (not the zero address).
    @param processors P, the node's processor count.
    @param cores Q, cores per processor; must be > 0.
    @param time_ms t, the reported time in milliseconds.
    @param overhead o, the overhead factor (WAD).
    @param disk_reported sR, the disk the node reports.
    @param disk_taken sT, the disk already taken.
    """
    access_control._check_role(REPORTER_ROLE, msg.sender)
    assert node != empty(address), "capacity: zero node"
    day: uint256 = block.timestamp // DAY
    assert self.reports[node][day].capacity == 0, "capacity: already reported today"
    capacity: uint256 = self._capacity(processors, cores, time_ms, overhead, disk_reported, disk_taken)
    assert capacity > 0, "capacity: zero capacity"
    if not self.day_allocated[day]:
        self.day_allocated[day] = True
        pool: uint256 = min(self.daily_reward, self.reserve)
        self.reserve -= pool
        self.day_pool[day] = pool
        log DayPoolAllocated(day=day, pool=pool, reserve=self.reserve)
    self.reports[node][day] = Report(capacity=convert(capacity, uint128), claimed=False)
    total: uint256 = self.day_total[day] + capacity
    self.day_total[day] = total
    log CapacityReported(node=node, day=day, capacity=capacity, day_total=total)
    return capacity


@external
@nonreentrant
def claim(days: DynArray[uint256, MAX_CLAIM_DAYS]) -> uint256:
    """
    @notice Pays the caller its share of each listed, finished day's
            pool: pool x C / total C.
    @return uint256 The amount paid.
    @param days The finished days to claim, at most MAX_CLAIM_DAYS; unreported or claimed days pay 0.
    """
    today: uint256 = block.timestamp // DAY
    paid: uint256 = 0
    for day: uint256 in days:
        assert day < today, "capacity: day not over"
        r: Report = self.reports[msg.sender][day]
        assert r.capacity > 0, "capacity: no report that day"
        assert not r.claimed, "capacity: already claimed"
        self.reports[msg.sender][day].claimed = True
        amount: uint256 = self.day_pool[day] * convert(r.capacity, uint256) // self.day_total[day]
        paid += amount
        log CapacityRewardClaimed(node=msg.sender, day=day, amount=amount)
    if paid > 0:
        assert extcall TOKEN.transfer(msg.sender, paid, default_return_value=True), "capacity: transfer failed"
    return paid


@external
def set_daily_reward(daily_reward: uint256):
    """
    @notice Admin only: the size of the days' pools from now on.
    @param daily_reward The new SP * PMA, the most one day's pool takes.
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    log ParameterChanged(name="daily_reward", old_value=self.daily_reward, new_value=daily_reward)
    self.daily_reward = daily_reward


@view
@external
def capacity_of(processors: uint256, cores: uint256, time_ms: uint256, overhead: uint256, disk_reported: uint256,
                disk_taken: uint256) -> uint256:
    """
    @notice C for these figures, in WAD (what `report` would record).
    @param processors P, the processor count.
    @param cores Q, cores per processor; must be > 0.
    @param time_ms t, the time in milliseconds.
    @param overhead o, the overhead factor (WAD).
    @param disk_reported sR, the disk reported.
    @param disk_taken sT, the disk taken.
    @return uint256 C in WAD, 0 if negative.
    """
    return self._capacity(processors, cores, time_ms, overhead, disk_reported, disk_taken)


@view
@external
def claimable(node: address, day: uint256) -> uint256:
    """
    @notice What `node` can claim for `day` (0 if claimed or unreported).
    @param node The node.
    @param day The day number (timestamp // 86400).
    @return uint256 The amount `claim` would pay `node` for `day`.
    """
    r: Report = self.reports[node][day]
    if r.claimed or r.capacity == 0:
        return 0
    return self.day_pool[day] * convert(r.capacity, uint256) // self.day_total[day]


@pure
@internal
def _capacity(processors: uint256, cores: uint256, time_ms: uint256, overhead: uint256, disk_reported: uint256,
              disk_taken: uint256) -> uint256:
    assert cores > 0, "capacity: zero cores"
    compute: uint256 = processors * WAD // cores * isqrt(time_ms * WAD * WAD) // WAD * overhead // WAD
    disk: int256 = (convert(disk_reported, int256) - convert(disk_taken, int256)) * convert(WAD, int256)
    total: int256 = convert(compute, int256) + disk
    if total <= 0:
        return 0
    return convert(total, uint256)
