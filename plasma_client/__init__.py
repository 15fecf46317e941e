"""Plasma user side: the plasma-client CLI, its wallet, the operator API's HTTP client and the
plasma-watcher service (fraud proofs from its own replay of the child chain)."""
