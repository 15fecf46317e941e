"""Plasma child-chain operator, client and watcher, with the shared wire format (wire.py)."""
