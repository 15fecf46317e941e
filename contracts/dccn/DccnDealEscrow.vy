# pragma version ~=0.4.3
"""
@title DCCN deal escrow (SLA)
@custom:contract-name DccnDealEscrow
@license MIT
@notice A tenant opens a deal with a resource provider and an
        application provider: a rate per second, a maximum duration,
        an ANKR deposit and an SLA level (0..100). Payment streams
        lazily: `settle` (or any other touch) moves the deal's paid-up
        point to now in O(1); the deal closes when its deposit runs out.
        `collect` splits what was settled into the platform fee, the
        application provider's share and the resource provider's
        share, credits them for pull withdrawal and credits the w1/w2
        rewards. An authorised monitor reports measured service levels;
        one below the deal's SLA refunds the unused deposit to the
        tenant and slashes the provider's stake. The tenant rates the
        provider 0..100 once after the deal ends. Tenant, provider and
        application provider must be three distinct accounts, and a
        deal feeds reputation (its end, its service levels, its rating)
        only once it has paid at least `min_reputation_fee` in platform
        fees: the part that leaves a colluding group, so bought
        reputation costs real fees (docs/dccn.md has the arithmetic).
@dev Gas: everything `settle` reads and writes is in one slot
     (`Deal`); the parties sit in a second slot with 32-bit party ids,
     so opening a deal writes two new slots.
"""

from ethereum.ercs import IERC20
from snekmate.auth import access_control
from ..interfaces import IDccnReputation
from ..interfaces import IDccnStaking

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

# May report measured service levels (and so breaches).
MONITOR_ROLE: public(constant(bytes32)) = keccak256("MONITOR_ROLE")

BPS: constant(uint256) = 10_000
MAX_LEVEL: constant(uint256) = 100

ACTIVE: constant(uint8) = 1
COMPLETED: constant(uint8) = 2
BREACHED: constant(uint8) = 3
RATED: constant(uint8) = 4  # flag added to COMPLETED or BREACHED
# What a ReputationUnchanged event refers to.
INPUT_DEAL_END: constant(uint256) = 1
INPUT_SERVICE_LEVEL: constant(uint256) = 2
INPUT_RATING: constant(uint256) = 3
# How a qualifying deal's platform fee is credited to its parties' w3 fee backing (the
# shares sum to the fee, so a ring of accounts is backed by exactly the fees it paid):
# in proportion to the reputation one deal can give each (provider 0.4, tenant and
# application provider 0.2 each); the application provider gets the remainder.
PROVIDER_BACKING_BPS: constant(uint256) = 5_000
TENANT_BACKING_BPS: constant(uint256) = 2_500
MASK16: constant(uint256) = 2**16 - 1
MASK32: constant(uint256) = 2**32 - 1
MASK64: constant(uint256) = 2**64 - 1
MASK80: constant(uint256) = 2**80 - 1
MASK96: constant(uint256) = 2**96 - 1
MASK160: constant(uint256) = 2**160 - 1


struct Deal:
    start: uint32
    settled_to: uint32
    end: uint32
    rate: uint80  # ANKR wei per second
    status: uint8
    sla: uint8
    collected_to: uint32
    fee_bps: uint16
    app_bps: uint16


struct Parties:
    tenant: address
    provider: uint32
    app_provider: uint32


struct Params:
    next_deal: uint64
    party_count: uint32
    fee_bps: uint16
    app_bps: uint16
    slash_bps: uint16
    min_reputation_fee: uint96  # ANKR wei of platform fee a deal must pay to feed reputation


event PartyRegistered:
    account: indexed(address)
    party_id: uint256

event DealOpened:
    deal_id: indexed(uint256)
    tenant: indexed(address)
    provider: indexed(address)
    app_provider: address
    rate: uint256
    start: uint256
    end: uint256
    deposit: uint256
    sla: uint256

event DealSettled:
    deal_id: indexed(uint256)
    settled_to: uint256
    amount: uint256

event DealCollected:
    deal_id: indexed(uint256)
    amount: uint256
    platform_fee: uint256
    app_share: uint256
    provider_share: uint256

event DealClosed:
    deal_id: indexed(uint256)
    status: uint256
    refund: uint256

event ServiceLevelReported:
    deal_id: indexed(uint256)
    monitor: indexed(address)
    level: uint256
    sla: uint256

event SlaBreached:
    deal_id: indexed(uint256)
    provider: indexed(address)
    refund: uint256
    slashed: uint256

event DealRated:
    deal_id: indexed(uint256)
    provider: indexed(address)
    score: uint256

event ReputationUnchanged:
    deal_id: indexed(uint256)
    kind: uint256  # 1 = deal end, 2 = service level, 3 = rating
    platform_fee_paid: uint256
    min_reputation_fee: uint256

event Withdrawal:
    account: indexed(address)
    amount: uint256

event ParameterChanged:
    name: String[32]
    old_value: uint256
    new_value: uint256

event TreasuryChanged:
    old_treasury: indexed(address)
    new_treasury: indexed(address)


TOKEN: public(immutable(IERC20))
STAKING: public(immutable(IDccnStaking))
REPUTATION: public(immutable(IDccnReputation))

# Vyper gives every value its own slot, so each struct is packed by hand into one word.
_params: uint256
_deals: HashMap[uint256, uint256]
_parties: HashMap[uint256, uint256]
party_id: public(HashMap[address, uint32])
party_address: public(HashMap[uint32, address])
balances: public(HashMap[address, uint256])
treasury: public(address)


@deploy
def __init__(token: IERC20, staking: IDccnStaking, reputation: IDccnReputation, treasury: address,
             fee_bps: uint256, app_bps: uint256, slash_bps: uint256, min_reputation_fee: uint256):
    """
    @notice Sets the currency, the staking and reputation contracts,
            the treasury that receives platform fees, the platform fee,
            the application provider's share, the slash on a breach
            (basis points of the deal's value) and the platform fee a
            deal must have paid to feed reputation. The deployer is admin.
    @param token The ERC-20 deals are paid in (ANKR).
    @param staking The staking contract (slashes, w1 / w2 credits).
    @param reputation The reputation contract (deal outcomes, service levels, ratings).
    @param treasury Where platform fees are credited (not the zero address).
    @param fee_bps The platform fee, basis points of what a deal streams.
    @param app_bps The application provider's share, basis points.
    @param slash_bps The slash on a breach, basis points of the deal's value.
    @param min_reputation_fee The platform fee (ANKR wei) a deal must have paid to feed reputation.
    """
    access_control.__init__()
    assert treasury != empty(address), "escrow: zero treasury"
    TOKEN = token
    STAKING = staking
    REPUTATION = reputation
    self.treasury = treasury
    self._store_params(Params(next_deal=1, party_count=0, fee_bps=0, app_bps=0, slash_bps=0, min_reputation_fee=0))
    self._set_split(fee_bps, app_bps, slash_bps)
    self._set_min_reputation_fee(min_reputation_fee)


# -- deals ----------------------------------------------------------------------------


@external
def register_party() -> uint256:
    """
    @notice Gives the caller a party id (done once by providers so
            opening deals with them stays cheap; `open_deal` does it
            otherwise).
    @return uint256 The caller's party id.
    """
    return convert(self._party(msg.sender), uint256)


@external
@nonreentrant
def open_deal(provider: address, app_provider: address, rate: uint256, max_duration: uint256,
              deposit: uint256, sla: uint256) -> uint256:
    """
    @notice Opens a deal paying `rate` ANKR wei per second to `provider`
            (with `app_provider`'s share) for at most `max_duration`
            seconds, as long as `deposit` lasts. Only what the deal can
            stream (rate x duration) is pulled from the caller. The
            caller, `provider` and `app_provider` must be distinct.
    @return uint256 The deal id.
    @param provider The resource provider paid by the deal.
    @param app_provider The application provider taking its share.
    @param rate ANKR wei per second.
    @param max_duration The most seconds the deal runs.
    @param deposit ANKR wei backing the deal; at most rate x max_duration of it is pulled.
    @param sla The service level (0..100) below which a report is a breach.
    """
    assert provider != empty(address) and app_provider != empty(address), "escrow: zero party"
    # One account in two roles could buy itself reputation (and w1/w2 rewards) for nothing.
    assert provider != msg.sender and app_provider != msg.sender and provider != app_provider, \
        "escrow: parties must be distinct"
    assert rate > 0 and rate <= convert(max_value(uint80), uint256), "escrow: bad rate"
    assert sla <= MAX_LEVEL, "escrow: sla above 100"
    duration: uint256 = min(max_duration, deposit // rate)
    assert duration > 0, "escrow: deposit below one second"
    amount: uint256 = rate * duration
    # The hot path works on the packed words directly (the Params and Deal layouts below).
    params: uint256 = self._params
    deal_id: uint256 = params & MASK64
    assert deal_id < MASK64, "escrow: deal ids exhausted"
    self._params = params + 1  # next_deal is the low 64 bits
    end: uint256 = block.timestamp + duration
    assert end <= MASK32, "escrow: end beyond 2106"
    now: uint256 = block.timestamp
    # start, settled_to, end, rate, status, sla, collected_to, fee_bps, app_bps (fee and app shares as stored).
    self._deals[deal_id] = (now | now << 32 | end << 64 | rate << 96 | convert(ACTIVE, uint256) << 176
                            | sla << 184 | now << 192 | ((params >> 96) & MASK32) << 224)
    self._store_parties(deal_id, Parties(tenant=msg.sender, provider=self._party(provider),
                                         app_provider=self._party(app_provider)))
    assert extcall TOKEN.transferFrom(msg.sender, self, amount, default_return_value=True), "escrow: transfer failed"
    log DealOpened(deal_id=deal_id, tenant=msg.sender, provider=provider, app_provider=app_provider, rate=rate,
                   start=block.timestamp, end=end, deposit=amount, sla=sla)
    return deal_id


@external
def settle(deal_id: uint256):
    """
    @notice Streams the deal's payment up to now (or its end) in O(1);
            a deal whose deposit ran out is closed as completed.
    @param deal_id The deal.
    """
    self._settle(deal_id)


@external
@nonreentrant
def collect(deal_id: uint256):
    """
    @notice Settles the deal, then splits what was settled since the
            last collection into platform fee, application provider's
            share and provider's share, credits them for withdrawal and
            credits the w1 / w2 rewards on the staking contract.
    @param deal_id The deal.
    """
    d: Deal = self._settle(deal_id)
    if d.collected_to == d.settled_to:
        return
    before: uint256 = convert(d.rate, uint256) * convert(d.collected_to - d.start, uint256)
    after: uint256 = convert(d.rate, uint256) * convert(d.settled_to - d.start, uint256)
    fee_bps: uint256 = convert(d.fee_bps, uint256)
    app_bps: uint256 = convert(d.app_bps, uint256)
    # Split cumulative amounts, so rounding never drifts across collections.
    fee: uint256 = after * fee_bps // BPS - before * fee_bps // BPS
    app_share: uint256 = after * app_bps // BPS - before * app_bps // BPS
    amount: uint256 = after - before
    provider_share: uint256 = amount - fee - app_share
    d.collected_to = d.settled_to
    self._store_deal(deal_id, d)
    p: Parties = self._load_parties(deal_id)
    provider: address = self.party_address[p.provider]
    app_provider: address = self.party_address[p.app_provider]
    self.balances[self.treasury] += fee
    self.balances[app_provider] += app_share
    self.balances[provider] += provider_share
    log DealCollected(deal_id=deal_id, amount=amount, platform_fee=fee, app_share=app_share,
                      provider_share=provider_share)
    extcall STAKING.credit_activity(p.tenant, amount, provider, provider_share, app_provider, app_share)


@external
@nonreentrant
def cancel_deal(deal_id: uint256):
    """
    @notice Tenant only: ends an active deal now; the unused deposit is
            credited back to the tenant.
    @param deal_id The deal (active, opened by the caller).
    """
    p: Parties = self._load_parties(deal_id)
    assert p.tenant == msg.sender, "escrow: not the tenant"
    d: Deal = self._settle(deal_id)
    assert d.status == ACTIVE, "escrow: deal not active"
    refund: uint256 = self._close(deal_id, d, p, COMPLETED)
    self._record_end(deal_id, d, p, True)
    log DealClosed(deal_id=deal_id, status=convert(COMPLETED, uint256), refund=refund)


@external
@nonreentrant
def report_service_level(deal_id: uint256, level: uint256):
    """
    @notice Monitor only: the measured service level (0..100) of an
            active deal. Below the deal's SLA it is a breach: the unused
            deposit goes back to the tenant and the provider's stake is
            slashed (paid to the tenant, the finder fee to the monitor).
    @param deal_id The deal (active).
    @param level The measured service level, 0..100.
    """
    access_control._check_role(MONITOR_ROLE, msg.sender)
    assert level <= MAX_LEVEL, "escrow: level above 100"
    d: Deal = self._settle(deal_id)
    assert d.status == ACTIVE, "escrow: deal not active"
    p: Parties = self._load_parties(deal_id)
    provider: address = self.party_address[p.provider]
    log ServiceLevelReported(deal_id=deal_id, monitor=msg.sender, level=level, sla=convert(d.sla, uint256))
    if self._feeds_reputation(deal_id, d, INPUT_SERVICE_LEVEL):
        extcall REPUTATION.record_service_level(provider, level)
    if level >= convert(d.sla, uint256):
        return
    value: uint256 = convert(d.rate, uint256) * convert(d.end - d.start, uint256)
    refund: uint256 = self._close(deal_id, d, p, BREACHED)
    self._record_end(deal_id, d, p, False)
    slashed: uint256 = extcall STAKING.slash(provider, value * convert(self._load_params().slash_bps, uint256) // BPS,
                                             p.tenant, msg.sender)
    log SlaBreached(deal_id=deal_id, provider=provider, refund=refund, slashed=slashed)
    log DealClosed(deal_id=deal_id, status=convert(BREACHED, uint256), refund=refund)


@external
def rate_provider(deal_id: uint256, score: uint256):
    """
    @notice Tenant only, once, after the deal ended: rates the resource
            provider 0..100 (feeds its reputation if the deal paid the
            minimum platform fee; otherwise only marks the deal rated).
    @param deal_id The deal (ended, opened by the caller, not yet rated).
    @param score The rating, 0..100.
    """
    p: Parties = self._load_parties(deal_id)
    assert p.tenant == msg.sender, "escrow: not the tenant"
    assert score <= MAX_LEVEL, "escrow: score above 100"
    d: Deal = self._settle(deal_id)
    assert d.status == COMPLETED or d.status == BREACHED, "escrow: deal not ended or already rated"
    d.status += RATED
    self._store_deal(deal_id, d)
    provider: address = self.party_address[p.provider]
    if self._feeds_reputation(deal_id, d, INPUT_RATING):
        extcall REPUTATION.record_rating(provider, score)
    log DealRated(deal_id=deal_id, provider=provider, score=score)


@external
@nonreentrant
def withdraw() -> uint256:
    """
    @notice Pays the caller everything credited to it (shares, refunds).
    @return uint256 The amount paid.
    """
    amount: uint256 = self.balances[msg.sender]
    assert amount > 0, "escrow: nothing to withdraw"
    self.balances[msg.sender] = 0
    assert extcall TOKEN.transfer(msg.sender, amount, default_return_value=True), "escrow: transfer failed"
    log Withdrawal(account=msg.sender, amount=amount)
    return amount


# -- governance -----------------------------------------------------------------------


@external
def set_split(fee_bps: uint256, app_bps: uint256, slash_bps: uint256):
    """
    @notice Admin only: platform fee, application provider's share and
            breach slash (basis points) for deals opened from now on.
            The fee must be at least the staking contract's
            `min_fee_bps()` ("escrow: weights exceed fee").
    @param fee_bps Platform fee, basis points of what a deal streams.
    @param app_bps Application provider's share, basis points.
    @param slash_bps Slash on an SLA breach, basis points of the deal's value.
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    self._set_split(fee_bps, app_bps, slash_bps)


@external
def set_min_reputation_fee(min_fee: uint256):
    """
    @notice Admin only: the platform fee (ANKR wei) a deal must have
            paid before its end, service levels and rating feed
            reputation; applies to every reputation input from now on.
    @param min_fee The new minimum platform fee, ANKR wei.
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    self._set_min_reputation_fee(min_fee)


@external
def set_treasury(treasury: address):
    """
    @notice Admin only: where platform fees are credited from now on.
    @param treasury The new treasury (not the zero address).
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    assert treasury != empty(address), "escrow: zero treasury"
    log TreasuryChanged(old_treasury=self.treasury, new_treasury=treasury)
    self.treasury = treasury


# -- views ----------------------------------------------------------------------------


@view
@external
def split() -> (uint256, uint256, uint256):
    """
    @notice (platform fee, application provider's share, breach slash)
            in basis points for new deals.
    @return (uint256, uint256, uint256) Platform fee, application provider's share, breach slash (bps).
    """
    p: Params = self._load_params()
    return (convert(p.fee_bps, uint256), convert(p.app_bps, uint256), convert(p.slash_bps, uint256))


@view
@external
def min_reputation_fee() -> uint256:
    """
    @notice Platform fee (ANKR wei) a deal must have paid to feed reputation.
    @return uint256 ANKR wei.
    """
    return convert(self._load_params().min_reputation_fee, uint256)


@view
@external
def platform_fee_paid(deal_id: uint256) -> uint256:
    """
    @notice Platform fee of what the deal has settled so far (what the
            minimum for reputation is compared with).
    @param deal_id The deal.
    @return uint256 ANKR wei.
    """
    return self._platform_fee(self._load_deal(deal_id))


@view
@external
def deal_count() -> uint256:
    """
    @notice Number of deals opened so far.
    @return uint256 The number of deals (ids run from 1).
    """
    return convert(self._load_params().next_deal, uint256) - 1


@view
@external
def deal(deal_id: uint256) -> (uint256, uint256, uint256, uint256, uint256, uint256, uint256):
    """
    @notice (start, settled_to, end, rate, status, sla, collected_to);
            status 1 active, 2 completed, 3 breached, +4 once rated.
    @param deal_id The deal.
    @return (uint256, uint256, uint256, uint256, uint256, uint256, uint256) Start, settled_to, end, rate, status, sla, collected_to.
    """
    d: Deal = self._load_deal(deal_id)
    return (convert(d.start, uint256), convert(d.settled_to, uint256), convert(d.end, uint256),
            convert(d.rate, uint256), convert(d.status, uint256), convert(d.sla, uint256),
            convert(d.collected_to, uint256))


@view
@external
def parties(deal_id: uint256) -> (address, address, address):
    """
    @notice (tenant, resource provider, application provider) of a deal.
    @param deal_id The deal.
    @return (address, address, address) Tenant, resource provider, application provider.
    """
    p: Parties = self._load_parties(deal_id)
    return (p.tenant, self.party_address[p.provider], self.party_address[p.app_provider])


@view
@external
def streamed(deal_id: uint256) -> uint256:
    """
    @notice ANKR streamed to the deal's providers so far, settled or not.
    @param deal_id The deal.
    @return uint256 ANKR wei streamed so far.
    """
    d: Deal = self._load_deal(deal_id)
    to: uint256 = convert(d.settled_to, uint256)
    if d.status == ACTIVE:
        to = min(block.timestamp, convert(d.end, uint256))
    return convert(d.rate, uint256) * (to - convert(d.start, uint256))


# -- internals ------------------------------------------------------------------------


@internal
def _party(account: address) -> uint32:
    pid: uint32 = self.party_id[account]
    if pid != 0:
        return pid
    params: Params = self._load_params()
    count: uint32 = params.party_count + 1
    params.party_count = count
    self._store_params(params)
    self.party_id[account] = count
    self.party_address[count] = account
    log PartyRegistered(account=account, party_id=convert(count, uint256))
    return count


@internal
def _settle(deal_id: uint256) -> Deal:
    d: Deal = self._load_deal(deal_id)
    assert d.status != 0, "escrow: unknown deal"
    if d.status != ACTIVE:
        return d
    to: uint32 = min(convert(block.timestamp, uint32), d.end)
    if to == d.settled_to:
        return d
    amount: uint256 = convert(d.rate, uint256) * convert(to - d.settled_to, uint256)
    d.settled_to = to
    if to == d.end:
        d.status = COMPLETED  # the deposit ran out
    self._store_deal(deal_id, d)
    log DealSettled(deal_id=deal_id, settled_to=convert(to, uint256), amount=amount)
    if d.status == COMPLETED:
        self._record_end(deal_id, d, self._load_parties(deal_id), True)
        log DealClosed(deal_id=deal_id, status=convert(COMPLETED, uint256), refund=0)
    return d


@internal
def _close(deal_id: uint256, d: Deal, p: Parties, status: uint8) -> uint256:
    """Ends an active deal at its settled point; credits the unused deposit to the tenant."""
    refund: uint256 = convert(d.rate, uint256) * convert(d.end - d.settled_to, uint256)
    closed: Deal = d
    closed.end = d.settled_to
    closed.status = status
    self._store_deal(deal_id, closed)
    self.balances[p.tenant] += refund
    return refund


@view
@internal
def _platform_fee(d: Deal) -> uint256:
    """The platform fee of what the deal has settled (as `collect` credits it in the end)."""
    return convert(d.rate, uint256) * convert(d.settled_to - d.start, uint256) * convert(d.fee_bps, uint256) // BPS


@internal
def _feeds_reputation(deal_id: uint256, d: Deal, kind: uint256) -> bool:
    """True if the deal paid the minimum platform fee; otherwise logs that reputation stays unchanged."""
    fee: uint256 = self._platform_fee(d)
    minimum: uint256 = convert(self._load_params().min_reputation_fee, uint256)
    if fee >= minimum:
        return True
    log ReputationUnchanged(deal_id=deal_id, kind=kind, platform_fee_paid=fee, min_reputation_fee=minimum)
    return False


@internal
def _record_end(deal_id: uint256, d: Deal, p: Parties, completed: bool):
    """Feeds the ended deal into the reputation of its three parties, if it paid the minimum fee."""
    if not self._feeds_reputation(deal_id, d, INPUT_DEAL_END):
        return
    amount: uint256 = convert(d.rate, uint256) * convert(d.settled_to - d.start, uint256)
    fee: uint256 = amount * convert(d.fee_bps, uint256) // BPS
    app_share: uint256 = amount * convert(d.app_bps, uint256) // BPS
    provider_backing: uint256 = fee * PROVIDER_BACKING_BPS // BPS
    tenant_backing: uint256 = fee * TENANT_BACKING_BPS // BPS
    extcall REPUTATION.record_deal(self.party_address[p.provider], completed, amount - fee - app_share,
                                   provider_backing)
    extcall REPUTATION.record_deal(self.party_address[p.app_provider], completed, app_share,
                                   fee - provider_backing - tenant_backing)
    extcall REPUTATION.record_deal(p.tenant, completed, amount, tenant_backing)


@internal
def _set_split(fee_bps: uint256, app_bps: uint256, slash_bps: uint256):
    assert fee_bps + app_bps <= BPS, "escrow: split above 100%"
    # Below this fee a deal's w1 / w2 rewards plus the w3 its fees back would pay its parties more than it costs.
    assert fee_bps >= staticcall STAKING.min_fee_bps(), "escrow: weights exceed fee"
    assert slash_bps <= BPS, "escrow: slash above 100%"
    p: Params = self._load_params()
    log ParameterChanged(name="fee_bps", old_value=convert(p.fee_bps, uint256), new_value=fee_bps)
    log ParameterChanged(name="app_bps", old_value=convert(p.app_bps, uint256), new_value=app_bps)
    log ParameterChanged(name="slash_bps", old_value=convert(p.slash_bps, uint256), new_value=slash_bps)
    p.fee_bps = convert(fee_bps, uint16)
    p.app_bps = convert(app_bps, uint16)
    p.slash_bps = convert(slash_bps, uint16)
    self._store_params(p)


@internal
def _set_min_reputation_fee(min_fee: uint256):
    assert min_fee <= MASK96, "escrow: minimum fee too large"
    p: Params = self._load_params()
    log ParameterChanged(name="min_reputation_fee", old_value=convert(p.min_reputation_fee, uint256),
                         new_value=min_fee)
    p.min_reputation_fee = convert(min_fee, uint96)
    self._store_params(p)


# -- packing: one storage word per struct ---------------------------------------------


@view
@internal
def _load_deal(deal_id: uint256) -> Deal:
    w: uint256 = self._deals[deal_id]
    return Deal(start=convert(w & MASK32, uint32), settled_to=convert((w >> 32) & MASK32, uint32),
                end=convert((w >> 64) & MASK32, uint32), rate=convert((w >> 96) & MASK80, uint80),
                status=convert((w >> 176) & 255, uint8), sla=convert((w >> 184) & 255, uint8),
                collected_to=convert((w >> 192) & MASK32, uint32), fee_bps=convert((w >> 224) & MASK16, uint16),
                app_bps=convert(w >> 240, uint16))


@internal
def _store_deal(deal_id: uint256, d: Deal):
    self._deals[deal_id] = (convert(d.start, uint256) | convert(d.settled_to, uint256) << 32
                            | convert(d.end, uint256) << 64 | convert(d.rate, uint256) << 96
                            | convert(d.status, uint256) << 176 | convert(d.sla, uint256) << 184
                            | convert(d.collected_to, uint256) << 192 | convert(d.fee_bps, uint256) << 224
                            | convert(d.app_bps, uint256) << 240)


@view
@internal
def _load_parties(deal_id: uint256) -> Parties:
    w: uint256 = self._parties[deal_id]
    return Parties(tenant=convert(convert(w & MASK160, uint160), address),
                   provider=convert((w >> 160) & MASK32, uint32), app_provider=convert(w >> 192, uint32))


@internal
def _store_parties(deal_id: uint256, p: Parties):
    self._parties[deal_id] = (convert(convert(p.tenant, uint160), uint256) | convert(p.provider, uint256) << 160
                              | convert(p.app_provider, uint256) << 192)


@view
@internal
def _load_params() -> Params:
    w: uint256 = self._params
    return Params(next_deal=convert(w & MASK64, uint64), party_count=convert((w >> 64) & MASK32, uint32),
                  fee_bps=convert((w >> 96) & MASK16, uint16), app_bps=convert((w >> 112) & MASK16, uint16),
                  slash_bps=convert((w >> 128) & MASK16, uint16), min_reputation_fee=convert(w >> 144, uint96))


@internal
def _store_params(p: Params):
    self._params = (convert(p.next_deal, uint256) | convert(p.party_count, uint256) << 64
                    | convert(p.fee_bps, uint256) << 96 | convert(p.app_bps, uint256) << 112
                    | convert(p.slash_bps, uint256) << 128 | convert(p.min_reputation_fee, uint256) << 144)
