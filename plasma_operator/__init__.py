"""Plasma child-chain operator service: the server (plasma-operator) and its HTTP API; the protocol it runs is plasma_core."""
