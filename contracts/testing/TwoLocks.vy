# pragma version ~=0.4.3
"""
@title Test helper: two bridge locks in one transaction
@notice Emits two TransferInitiated logs from one transaction, so
        tests can check each log is its own transfer.
"""

from ethereum.ercs import IERC20


interface IForeignBridge:
    def relayTokens(recipient: address, amount: uint256): nonpayable


@external
def lock_twice(token: IERC20, bridge: IForeignBridge, recipient: address, first: uint256, second: uint256):
    """
    @notice Pulls first + second ANKR from the caller and locks them in two calls.
    """
    assert extcall token.transferFrom(msg.sender, self, first + second)
    extcall token.approve(bridge.address, first + second)
    extcall bridge.relayTokens(recipient, first)
    extcall bridge.relayTokens(recipient, second)
