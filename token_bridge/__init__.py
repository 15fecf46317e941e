"""ANKR bridge validator and relayer: ERC20 ANKR on Ethereum <-> native ANKR on the Ankr chain."""
