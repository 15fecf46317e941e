"""Carry the registry to Besu releases that no longer call `connectionAllowed`.

Besu deprecated contract-based (onchain) node permissioning in 24.12.0 and removed it in
25.6.0; what newer nodes still have is local permissioning: the `nodes-allowlist` of
`permissions_config.toml` (`--permissions-nodes-config-file-enabled`), and the `perm_*`
JSON-RPC methods that change that list at runtime (Besu persists those changes to the same
file). Three modes (`besu_permissioning` in the daemon's config):

- `contract`: Besu up to 24.x asks `EnodeIngress.connectionAllowed`; nothing to carry.
- `files`: the daemon rewrites `nodes-allowlist` (besu_files.py); with `besu_rpc_url` it then
  calls `perm_reloadPermissionsFromFile` so the running node reads it without a restart.
- `rpc`: the daemon reconciles Besu's live allowlist with the registry mirror through
  `perm_getNodesAllowlist`, `perm_addNodesToAllowlist` and `perm_removeNodesFromAllowlist`.

Reconciliation only removes entries the daemon added itself (recorded in the database before the
call, so a crash between the call and the record never leaves an entry it forgets), so the
operator's own entries stay; it is idempotent and safe to repeat after any restart.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from dccn_common.store import Connection, apply_schema, transaction

log = logging.getLogger("enode_dns")

BesuPermissioning = Literal["contract", "files", "rpc"]

# Besu's messages (RpcErrorType) for the outcomes reconciliation treats as already done.
EXISTING_ENTRY = "Cannot add an existing node to allowlist"
ABSENT_ENTRY = "Cannot remove an absent node from allowlist"

SCHEMA = """
CREATE TABLE IF NOT EXISTS besu_allowlist_managed (
    endpoint TEXT PRIMARY KEY,
    url TEXT NOT NULL
)
"""


class BesuRpcError(RuntimeError):
    """A JSON-RPC error object from Besu, or a reply that is not JSON-RPC."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: {message} ({code})")
        self.code = code
        self.message = message


class BesuPermRpc:
    """Besu's node-allowlist JSON-RPC methods (the PERM API, `--rpc-http-api=PERM`)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self._client = httpx.Client(timeout=timeout)
        self._id = 0

    def call(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        response = self._client.post(self.url, json={"jsonrpc": "2.0", "method": method, "params": params,
                                                     "id": self._id})
        try:
            reply = response.json()
        except ValueError as err:
            raise BesuRpcError(method, response.status_code, f"not JSON-RPC: {response.text[:100]!r}") from err
        if not isinstance(reply, dict):
            raise BesuRpcError(method, response.status_code, "not a JSON-RPC object")
        if "error" in reply:
            error = reply["error"] if isinstance(reply["error"], dict) else {}
            raise BesuRpcError(method, int(error.get("code", 0)), str(error.get("message", reply["error"])))
        return reply.get("result")

    def nodes_allowlist(self) -> list[str]:
        result = self.call("perm_getNodesAllowlist", [])
        if not isinstance(result, list) or not all(isinstance(url, str) for url in result):
            raise BesuRpcError("perm_getNodesAllowlist", 0, f"expected a list of enode URLs, got {result!r:.100}")
        return result

    def add_nodes(self, urls: list[str]) -> None:
        self.call("perm_addNodesToAllowlist", [urls])

    def remove_nodes(self, urls: list[str]) -> None:
        self.call("perm_removeNodesFromAllowlist", [urls])

    def reload_from_file(self) -> None:
        self.call("perm_reloadPermissionsFromFile", [])

    def close(self) -> None:
        self._client.close()


def endpoint_of(url: str) -> str | None:
    """What identifies an allowlist entry: id@ip:port, the id lower case and the IP in its
    canonical form (Besu prints `?discport=` and its own spelling); None if not an enode URL."""
    if not url.startswith("enode://") or "@" not in url:
        return None
    node_id, _, rest = url.removeprefix("enode://").partition("@")
    host_port = rest.split("?", 1)[0]
    host, sep, port = host_port.rpartition(":")
    if not sep or not port.isdigit() or len(node_id) != 128:
        return None
    try:
        int(node_id, 16)
        ip = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None
    return f"{node_id.lower()}@{ip.compressed}:{int(port)}"


@dataclass
class AllowlistStatus:
    mode: str
    synced_at: float | None = None
    entries: int = 0
    added: int = 0
    removed: int = 0
    errors: list[str] = field(default_factory=list)


class AllowlistSync:
    """Reconciles Besu's live node allowlist with the enode URLs the registry lists."""

    def __init__(self, db: Connection, rpc: BesuPermRpc, *,
                 write: Callable[[], AbstractContextManager[Any]] | None = None) -> None:
        self.db = db
        # The daemon passes its bot's fenced transaction: only the active instance records entries.
        self.write = write or (lambda: transaction(db))
        self.rpc = rpc
        self.status = AllowlistStatus("rpc")
        apply_schema(db, "enode_besu_allowlist", 1, SCHEMA)

    def managed(self) -> dict[str, str]:
        """endpoint -> URL of the entries this daemon added (and has not removed yet)."""
        return {row["endpoint"]: row["url"] for row in self.db.execute("SELECT * FROM besu_allowlist_managed")}

    def reconcile(self, desired_urls: list[str], keep_ids: frozenset[str] = frozenset()) -> AllowlistStatus:
        """Add what the registry lists and Besu lacks, remove what this daemon added and the
        registry no longer lists. `keep_ids`: listed nodes whose name does not resolve just now;
        their last entries stay (a DNS hiccup must not cut a validator off). Besu or the network
        failing is reported, never raised: the daemon's other work (self-updates) goes on, and
        the next tick retries."""
        errors: list[str] = []
        try:
            current = {e: url for url in self.rpc.nodes_allowlist() if (e := endpoint_of(url))}
            desired = {e: url for url in desired_urls if (e := endpoint_of(url))}
            errors.extend(f"not an enode URL with an IP: {url}" for url in desired_urls if endpoint_of(url) is None)
            added = self._add([url for e, url in desired.items() if e not in current], errors)
            removed = self._remove(current, desired, keep_ids, errors)
            entries = len(self.rpc.nodes_allowlist())
        except (BesuRpcError, httpx.HTTPError) as err:
            errors.append(f"{type(err).__name__}: {err}"[:300])
            self.status = AllowlistStatus("rpc", self.status.synced_at, self.status.entries, errors=errors)
            return self.status
        if added or removed:
            log.info("besu allowlist reconciled", extra={"added": added, "removed": removed, "entries": entries})
        self.status = AllowlistStatus("rpc", time.time(), entries, added, removed, errors)
        return self.status

    def _add(self, urls: list[str], errors: list[str]) -> int:
        # Recorded first: an entry added just before a crash is still known to be ours.
        with self.write():
            self.db.executemany("INSERT OR REPLACE INTO besu_allowlist_managed (endpoint, url) VALUES (?, ?)",
                                [(endpoint_of(url), url) for url in urls])
        added = 0
        for url in urls:  # one per call: Besu refuses a whole batch for one bad entry
            try:
                self.rpc.add_nodes([url])
                added += 1
            except BesuRpcError as err:
                if err.message != EXISTING_ENTRY:
                    errors.append(f"add {url}: {err.message}")
        return added

    def _remove(self, current: dict[str, str], desired: dict[str, str], keep_ids: frozenset[str],
                errors: list[str]) -> int:
        removed = 0
        done: list[str] = []
        for endpoint in self.managed():
            if endpoint in desired or endpoint.split("@")[0] in keep_ids:
                continue
            if endpoint not in current:
                done.append(endpoint)  # already gone (removed before a restart, or by the operator)
                continue
            try:
                self.rpc.remove_nodes([current[endpoint]])
                removed += 1
                done.append(endpoint)
            except BesuRpcError as err:
                if err.message == ABSENT_ENTRY:
                    done.append(endpoint)
                else:  # e.g. a bootnode or static node, which Besu never removes: retried, reported
                    errors.append(f"remove {current[endpoint]}: {err.message}")
        with self.write():
            self.db.executemany("DELETE FROM besu_allowlist_managed WHERE endpoint = ?", [(e,) for e in done])
        return removed


class FileReload:
    """`files` mode with an RPC URL: after the permissions file changed (and once at start,
    in case the daemon stopped between a write and the reload), ask Besu to re-read it."""

    def __init__(self, rpc: BesuPermRpc) -> None:
        self.rpc = rpc
        self.pending = True
        self.status = AllowlistStatus("files")

    def after_render(self, permissions_changed: bool, entries: int) -> AllowlistStatus:
        self.pending = self.pending or permissions_changed
        if not self.pending:
            return self.status
        try:
            self.rpc.reload_from_file()
        except (BesuRpcError, httpx.HTTPError) as err:
            self.status = AllowlistStatus("files", self.status.synced_at, entries,
                                          errors=[f"{type(err).__name__}: {err}"[:300]])
            return self.status
        self.pending = False
        self.status = AllowlistStatus("files", time.time(), entries)
        return self.status
