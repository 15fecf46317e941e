# pragma version ~=0.4.3
"""
@title NOS price consumer (example dApp)
@custom:contract-name PriceConsumer
@license MIT
@notice Asks the NOS oracle for a price and stores the answer. The
        response data is one ABI-encoded uint256 (the price scaled by
        the `decimals` the params ask for). Shows the requester side:
        paying the fee, accepting only the oracle's callback for its
        own requests, and pulling refunds out of the oracle.
"""

from snekmate.auth import ownable

from ..interfaces import INosConsumer
from ..interfaces import INosOracle

implements: INosConsumer

initializes: ownable

exports: (ownable.owner, ownable.transfer_ownership)


event PriceRequested:
    requestId: indexed(bytes32)
    fee: uint256


event PriceUpdated:
    requestId: indexed(bytes32)
    old_price: uint256
    new_price: uint256


ORACLE: public(immutable(INosOracle))
CALLBACK_GAS_LIMIT: public(constant(uint32)) = 60_000

price: public(uint256)
updated_at: public(uint256)
last_request_id: public(bytes32)
# @dev Requests of this contract still waiting for an answer.
pending: public(HashMap[bytes32, bool])


@deploy
def __init__(oracle: address):
    """
    @notice Binds the consumer to one oracle.
    @param oracle The NosOracle address.
    """
    ownable.__init__()
    ORACLE = INosOracle(oracle)


@external
@payable
def requestPrice(params: Bytes[1024]) -> bytes32:
    """
    @notice Asks the oracle for a price; `msg.value` is the oracle fee.
    @param params The NOS params (source URL, selector, decimals).
    @return bytes32 The request id.
    """
    ownable._check_owner()
    request_id: bytes32 = extcall ORACLE.request(params, self, CALLBACK_GAS_LIMIT, value=msg.value)
    self.pending[request_id] = True
    self.last_request_id = request_id
    log PriceRequested(requestId=request_id, fee=msg.value)
    return request_id


@external
def nosCallback(requestId: bytes32, data: Bytes[512]):
    """
    @notice Receives the oracle's answer (m4) and stores the price.
    @param requestId The answered request.
    @param data The ABI-encoded price.
    """
    assert msg.sender == ORACLE.address, "consumer: caller is not the oracle"
    assert self.pending[requestId], "consumer: unknown request"
    self.pending[requestId] = False
    new_price: uint256 = abi_decode(data, uint256)
    log PriceUpdated(requestId=requestId, old_price=self.price, new_price=new_price)
    self.price = new_price
    self.updated_at = block.timestamp


@external
def cancelRequest(requestId: bytes32):
    """
    @notice Cancels an expired, unanswered request (fee credited back).
    @param requestId The request.
    """
    ownable._check_owner()
    self.pending[requestId] = False
    extcall ORACLE.cancel(requestId)


@external
def withdrawRefunds(recipient: address):
    """
    @notice Pulls the oracle credit of this contract (unused fees) to
            `recipient`; the contract itself accepts no ETH.
    @param recipient Where the refunds go.
    """
    ownable._check_owner()
    extcall ORACLE.withdraw(recipient)
