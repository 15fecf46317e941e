# pragma version ~=0.4.3
"""
@title Test helper: a depositor contract that rejects every payment
@notice Owns a deposit output and exits it, but reverts when paid, to show a payee
        that reverts never blocks the exit queue (payments are pulled, not pushed).
"""

interface RootChain:
    def deposit(): payable
    def startExit(blknum: uint256, txindex: uint256, oindex: uint256, txBytes: Bytes[1024], proof: Bytes[512], confirmSig: Bytes[130]): payable
    def withdraw(): nonpayable


@external
@payable
def deposit(root_chain: address, amount: uint256):
    """
    @notice Deposits `amount` from this contract.
    """
    extcall RootChain(root_chain).deposit(value=amount)


@external
@payable
def startExit(root_chain: address, blknum: uint256, bond: uint256):
    """
    @notice Exits this contract's deposit output in block `blknum`.
    """
    extcall RootChain(root_chain).startExit(blknum, 0, 0, b"", b"", b"", value=bond)


@external
def withdraw(root_chain: address):
    """
    @notice Pulls what the root chain owes; reverts because this contract refuses the coin.
    """
    extcall RootChain(root_chain).withdraw()


@external
@payable
def __default__():
    raise "rejecting exitor: no payments"
