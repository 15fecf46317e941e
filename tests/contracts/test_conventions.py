"""Contract conventions CONTRIBUTING.md states, checked on the Vyper types (no bytecode).

Interfaces: every contracts/interfaces/I*.vyi against the contract it describes. The ABI
cannot show a bound (`Bytes[1024]` and `Bytes[512]` are both `bytes`), so a literal in an
interface that drifts from the contract's constant would only show when a Vyper caller's
call reverts. This compiles both and compares argument, return and event field types
(with their bounds), indexed-ness and mutability.

NatSpec: every external function and constructor of a deployable contract, written here
or in a project module it exports from, has @notice or @dev, an @param per argument and
@return when it returns (public-variable getters cannot carry a docstring in Vyper).
"""

from __future__ import annotations

import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from vyper import ast as vy_ast
from vyper.compiler.input_bundle import FilesystemInputBundle
from vyper.compiler.phases import CompilerData
from vyper.semantics.types import InterfaceT

from dccn_devtools.contracts import CONTRACTS_DIR

# interface -> (contract, whether the interface lists every function the contract exposes)
INTERFACES: dict[str, tuple[str, bool]] = {
    "IAnkrToken": ("token/AnkrToken.vy", True),
    "IForeignBridge": ("bridge/ForeignBridge.vy", True),
    "IHomeBridge": ("bridge/HomeBridge.vy", True),
    "IRootChain": ("plasma/RootChain.vy", True),
    # What another contract calls: a subset of the functions, every event.
    "IDccnReputation": ("dccn/DccnReputation.vy", False),
    "IDccnStaking": ("dccn/DccnStaking.vy", False),
    "INosOracle": ("oracle/NosOracle.vy", False),
    "IPermissioningIngress": ("permissioning/EnodeIngress.vy", False),
}
# Interfaces a contract serves but did not define (no events of their own).
CALLED_INTERFACES: dict[str, str] = {
    "INosConsumer": "examples/PriceConsumer.vy",
}


@cache
def _module_type(path: Path) -> Any:
    bundle = FilesystemInputBundle([CONTRACTS_DIR.parent, CONTRACTS_DIR, *[Path(p) for p in sys.path if p]])
    data = CompilerData(bundle.load_file(path.relative_to(CONTRACTS_DIR.parent)), input_bundle=bundle)
    return data.annotated_vyper_module._metadata["type"]


def _interface_type(path: Path) -> Any:
    return _module_type(path).interface


def _constant(path: Path, name: str) -> int:
    return int(_module_type(path).variables[name].decl_node.value.get_folded_value().value)


def _type(typ: Any) -> str:
    # A contract may type an address as an interface (`token: IERC20`); the ABI is the same.
    return "address" if isinstance(typ, InterfaceT) else str(typ)


def _function(fn: Any) -> tuple[Any, ...]:
    return (
        tuple((arg.name, _type(arg.typ)) for arg in fn.arguments),
        _type(fn.return_type),
        fn.mutability.value,
    )


def _event(event: Any) -> tuple[Any, ...]:
    return tuple(zip(event.arguments, map(_type, event.arguments.values()), event.indexed, strict=True))


def test_every_interface_is_checked() -> None:
    on_disk = {p.stem for p in (CONTRACTS_DIR / "interfaces").glob("I*.vyi")}
    assert on_disk == set(INTERFACES) | set(CALLED_INTERFACES) | {"IBesuNodePermissioning"}


def test_besu_permissioning_bounds_are_the_ingress_constants() -> None:
    """EnodeIngress serves connectionAllowed from `__default__`, so `implements:` cannot
    check it: its bounds must still be the ingress's own."""
    ingress = CONTRACTS_DIR / "permissioning" / "EnodeIngress.vy"
    fn = _interface_type(CONTRACTS_DIR / "interfaces" / "IBesuNodePermissioning.vyi").functions["connectionAllowed"]
    assert _function(fn) == (
        (
            ("enodeId", f"String[{_constant(ingress, 'ENODE_HEX_LENGTH')}]"),
            ("enodeHost", f"String[{_constant(ingress, 'MAX_HOST_LENGTH')}]"),
            ("enodePort", "uint16"),
        ),
        "bool",
        "view",
    )


@pytest.mark.parametrize("name", sorted(INTERFACES) + sorted(CALLED_INTERFACES))
def test_interface_matches_contract(name: str) -> None:
    contract, complete = INTERFACES.get(name, (CALLED_INTERFACES.get(name, ""), False))
    iface = _interface_type(CONTRACTS_DIR / "interfaces" / f"{name}.vyi")
    impl = _interface_type(CONTRACTS_DIR / contract)

    for fn_name, fn in iface.functions.items():
        assert fn_name in impl.functions, f"{name}.{fn_name} is not exposed by {contract}"
        assert _function(fn) == _function(impl.functions[fn_name]), f"{name}.{fn_name} differs from {contract}"
    for event_name, event in iface.events.items():
        assert event_name in impl.events, f"{name} declares {event_name}, which {contract} does not emit"
        assert _event(event) == _event(impl.events[event_name]), f"{name}.{event_name} differs from {contract}"

    if name in INTERFACES:
        assert set(impl.events) == set(iface.events), f"{name} must declare every event {contract} emits"
    if complete:
        assert set(impl.functions) == set(iface.functions), f"{name} must list every function of {contract}"


DEPLOYABLE = sorted(
    p for p in CONTRACTS_DIR.rglob("*.vy") if p.name[0].isupper() and p.parent.name != "testing"
)


@pytest.mark.parametrize("path", DEPLOYABLE, ids=lambda p: p.stem)
def test_natspec_on_every_external_function(path: Path) -> None:
    module = _module_type(path)
    functions = [*module.exposed_functions, *([module.init_function] if module.init_function else [])]
    missing: list[str] = []
    checked = 0
    for fn in functions:
        node = fn.decl_node
        if not isinstance(node, vy_ast.FunctionDef) or fn.name == "__default__":
            continue
        if not (node.node_source_code or "").lstrip().startswith(("def", "@")):
            continue  # the getter of a public variable
        if "snekmate" in str(node.module_node.resolved_path):
            continue  # the library's own docstrings
        checked += 1
        doc = node.get("doc_string.value") or ""
        if not re.search(r"@(notice|dev)\b", doc):
            missing.append(f"{fn.name}: @notice or @dev")
        missing += [f"{fn.name}: @param {a.name}" for a in fn.arguments if not re.search(rf"@param\s+{a.name}\b", doc)]
        if fn.return_type is not None and "@return" not in doc:
            missing.append(f"{fn.name}: @return")
    assert checked > 0
    assert not missing, f"{path.name}: {missing}"
