"""`ape run demo`: the same one-command demo as `make demo` (see dccn_demo)."""

from dccn_demo.__main__ import main as cli  # noqa: F401  (ape runs the click command `cli`)
