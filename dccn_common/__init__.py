"""What every service of the suite needs: following a chain, sending transactions,
SQLite state, config, keys, logs, health, the local anvil harness and contract artifacts."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
