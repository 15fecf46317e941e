# pragma version ~=0.4.3
"""
@title NOS oracle size bounds
@custom:contract-name nos_limits
@license MIT
@notice The byte bounds of a request's params and of a response's data,
        in one place: `NosOracle` uses them, and so do the interfaces
        (`INosOracle`, `INosConsumer`), which cannot import the
        deployable contract that implements them. The enclave's
        protocol (nos_enclave/protocol.py) states the same numbers.
"""

MAX_PARAMS: constant(uint256) = 1024
MAX_DATA: constant(uint256) = 512
