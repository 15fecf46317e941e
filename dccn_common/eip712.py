"""EIP-712 typed-data hashing: `Domain`, `Struct`, `digest`, `typed_data`.

The code lives in the enclave's package (`nos_enclave.eip712`), which may import nothing from
the project so that its measurement covers all it runs; every other service uses that one copy.
"""

from nos_enclave.eip712 import Domain, Struct, digest, keccak, typed_data

__all__ = ["Domain", "Struct", "digest", "keccak", "typed_data"]
