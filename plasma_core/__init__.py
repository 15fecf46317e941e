"""Plasma protocol and child-chain state machine shared by the operator and the user side: the wire
format (wire.py), transaction validation, signer recovery, the chain store and the ledger (ChildChain),
and the root-chain settings both services read."""
