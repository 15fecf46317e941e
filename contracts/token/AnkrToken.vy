# pragma version ~=0.4.3
"""
@title ANKR token
@custom:contract-name AnkrToken
@license MIT
@notice ERC-20 with EIP-2612 permit and a fixed supply of
        10,000,000,000 ANKR (18 decimals), all minted to the
        deployer at construction (seed 000: "the circulation
        is 10 billion"). Nothing can mint afterwards: the
        deployer's minter role is dropped in the constructor
        and `mint`, `set_minter` and `burn` are not exported.
        On the Ankr chain ANKR is the native coin instead; the
        bridge moves it 1:1, so this contract never needs to mint.
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed

from ..interfaces import IAnkrToken

implements: IERC20
implements: IERC20Detailed
implements: IAnkrToken

from snekmate.auth import ownable
from snekmate.tokens import erc20

initializes: ownable
initializes: erc20[ownable := ownable]

exports: (
    erc20.totalSupply,
    erc20.balanceOf,
    erc20.allowance,
    erc20.name,
    erc20.symbol,
    erc20.decimals,
    erc20.transfer,
    erc20.transferFrom,
    erc20.approve,
    erc20.nonces,
    erc20.permit,
    erc20.DOMAIN_SEPARATOR,
    erc20.eip712Domain,
)

# Whole tokens in circulation (seed 000).
TOTAL_SUPPLY: public(constant(uint256)) = 10_000_000_000 * 10**18
EIP712_VERSION: constant(String[20]) = "1"


@deploy
def __init__():
    """
    @notice Mints the whole supply to the deployer and gives up
            the minter role, so the supply can never change.
    """
    ownable.__init__()
    erc20.__init__("Ankr Network", "ANKR", 18, "Ankr Network", EIP712_VERSION)
    erc20._mint(msg.sender, TOTAL_SUPPLY)
    erc20.is_minter[msg.sender] = False
    log erc20.RoleMinterChanged(minter=msg.sender, status=False)
