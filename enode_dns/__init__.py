"""Dynamic DNS for permissioned enodes: the node-side daemon of the enode registry.

It watches the node's public address and pushes EIP-712 self-updates signed by
the enode key to `EnodeRules`; on boot and validator nodes it follows the
`EnodeIngress` events and rewrites Besu's config.toml bootnodes,
static-nodes.json and permissions_config.toml.
"""
